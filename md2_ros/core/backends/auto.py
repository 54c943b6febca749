"""``backend: auto``: build the candidates this device supports, check each against eager fp32 on warm-up
frames, keep the fastest that passes — within a time budget, so start-up is bounded.

Parity is measured on the whole host path (uint8 images -> depth at the image size):

* ``max_rel_err`` = max |d − d_eager| / max |d_eager| must be ≤ the precision's tolerance
  (:data:`~.base.PRECISION_TOL`: 1e-3 fp32, 1e-2 bf16/fp16/int8; configurable);
* ``mean_rel_err`` = mean |d − d_eager| / d_eager must be ≤ ``mean_tol`` (default 4e-4). A
  per-pixel relative change ε moves the Eigen abs_rel by at most ≈ 2ε(1 + abs_rel), so for a
  model with abs_rel ≥ 0.1 this keeps abs_rel within 1 % relative of eager's.

Any failure (missing library, wrong device, build or compile error, parity failure) is
recorded as one line in :attr:`Selection.trials`; eager is always the fallback.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import PRECISION_TOL, Backend, BackendUnavailable, max_rel_err
from .registry import SPECS, build_backend

MEAN_TOL = 4e-4


@dataclass
class Trial:
    name: str
    status: str                    # chosen | passed | rejected | unavailable | skipped
    ms: float | None = None        # median end-to-end ms for the warm-up batch
    max_rel_err: float | None = None
    mean_rel_err: float | None = None
    reason: str = ""

    def line(self) -> str:
        parts = [f"{self.name}: {self.status}"]
        if self.ms is not None:
            parts.append(f"{self.ms:.1f} ms")
        if self.max_rel_err is not None:
            parts.append(f"max rel err {self.max_rel_err:.1e}, mean {self.mean_rel_err:.1e}")
        return ", ".join(parts) + (f" ({self.reason})" if self.reason else "")


@dataclass
class Selection:
    backend: Backend
    trials: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the log: the choice, its ms, and why the others were not chosen."""
        chosen = next(t for t in self.trials if t.status == "chosen")
        others = "; ".join(t.line() for t in self.trials if t.status != "chosen")
        return (f"backend auto chose {self.backend.describe()}: {chosen.ms:.1f} ms per warm-up batch, fastest "
                f"that matches eager fp32 (max rel err {chosen.max_rel_err:.1e}); selection took "
                f"{self.seconds:.1f} s; others: {others}")


def warmup_frames(model, size=None, count: int = 1) -> list[np.ndarray]:
    """Deterministic textured uint8 RGB frames (sky/road gradient + texture + noise), default 2× model size."""
    h, w = size or (model.height * 2, model.width * 2)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for k in range(count):
        base = 60 + 150 * yy[..., None] / h + 30 * np.sin(xx[..., None] / (7 + k) + np.arange(3) * 2.0)
        frames.append(np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8))
    return frames


def mean_rel_err(depth, ref) -> float:
    depth, ref = np.asarray(depth, np.float64), np.asarray(ref, np.float64)
    if depth.shape != ref.shape or not np.all(np.isfinite(depth)):
        return float("inf")
    return float(np.mean(np.abs(depth - ref) / np.maximum(np.abs(ref), 1e-12)))


def candidate_names(device: torch.device, names=None) -> list[str]:
    """The non-eager candidates for ``device`` in registry order (cheapest builds first)."""
    names = list(names) if names is not None else [n for n in SPECS if n != "eager"]
    return [n for n in names if n != "eager" and device.type in SPECS[n].devices]


def _check(name, backend, frames, ref, tol, mean_tol, iters) -> Trial:
    out = np.stack(backend.predict_batch(frames))          # also the first (warming) call
    err, mean = max_rel_err(out, ref), mean_rel_err(out, ref)
    limit = tol.get(backend.precision, PRECISION_TOL["fp32"])
    if not (err <= limit and mean <= mean_tol):
        return Trial(name, "rejected", None, err, mean,
                     f"differs from eager fp32: max rel {err:.1e} (limit {limit:.0e}), mean {mean:.1e} "
                     f"(limit {mean_tol:.0e})")
    return Trial(name, "passed", backend.time_ms(frames, iters), err, mean)


def select_backend(model, device=None, *, candidates=None, frames=None, tolerances=None,
                   mean_tol: float = MEAN_TOL, budget_s: float = 60.0, iters: int = 3) -> Selection:
    """Build, check and time the candidates; return the fastest that matches eager (eager if none)."""
    t_start = time.monotonic()
    device = torch.device(device) if device is not None else model.device
    frames = frames if frames is not None else warmup_frames(model)
    tol = {**PRECISION_TOL, **(tolerances or {})}
    eager = build_backend("eager", model, device)
    ref = np.stack(eager.predict_batch(frames))
    trials = [Trial("eager", "passed", eager.time_ms(frames, iters), 0.0, 0.0)]
    built = {"eager": eager}
    for name in candidate_names(device, candidates):
        left = budget_s - (time.monotonic() - t_start)
        need = SPECS[name].build_s.get(device.type, 10.0)
        if need > left:
            trials.append(Trial(name, "skipped", reason=f"builds in ~{need:.0f} s, {max(left, 0):.0f} s of "
                                                         f"the {budget_s:.0f} s budget left"))
            continue
        try:
            backend = build_backend(name, model, device, **_build_kwargs(name, model, frames))
            trial = _check(name, backend, frames, ref, tol, mean_tol, iters)
        except BackendUnavailable as exc:
            trial = Trial(name, "unavailable", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a backend that builds but fails to run is also a fallback
            trial = Trial(name, "unavailable", reason=f"failed on the warm-up frame: {type(exc).__name__}: {exc}")
        trials.append(trial)
        if trial.status == "passed":
            built[name] = backend
    best = min((t for t in trials if t.status == "passed"), key=lambda t: t.ms)
    best.status = "chosen"
    return Selection(built[best.name], trials, time.monotonic() - t_start)


def _build_kwargs(name, model, frames) -> dict:
    """int8 calibrates on the warm-up frames (resized to the network like every backend does)."""
    if name != "int8":
        return {}
    probe = build_backend("eager", model, torch.device("cpu"))
    with torch.inference_mode():
        return {"calibration": [probe.to_input([f]).numpy() for f in frames]}
