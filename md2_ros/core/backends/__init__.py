"""Inference backends behind one interface (:class:`Backend`: uint8 images -> depth on the host).

``make_backend("auto", model)`` is what the node and ``md2-depth`` use: it picks the fastest
backend that matches eager fp32 on this device and logs the choice; a named backend that
cannot be built falls back to eager with one clear log line.
"""
from __future__ import annotations

import logging

import torch

from .auto import MEAN_TOL, Selection, Trial, select_backend, warmup_frames
from .base import PRECISION_TOL, Backend, BackendMissing, BackendUnavailable, DispNet, max_rel_err
from .registry import NAMES, SPECS, BackendSpec, build_backend, check_name

__all__ = ["Backend", "BackendMissing", "BackendSpec", "BackendUnavailable", "DispNet", "MEAN_TOL", "NAMES", "PRECISION_TOL",
           "SPECS", "Selection", "Trial", "build_backend", "check_name", "make_backend", "max_rel_err",
           "select_backend", "warmup_frames"]

log = logging.getLogger(__name__)


def make_backend(name: str, model, device=None, *, info=log.info, warn=log.warning, **auto_kwargs) -> Backend:
    """The backend the user asked for (``auto`` selects), logging through ``info`` / ``warn``.

    Never raises for an unavailable backend: it falls back to eager and says why in one line.
    ``auto_kwargs`` go to :func:`select_backend` (budget_s, tolerances, mean_tol, candidates, frames).
    """
    check_name(name)
    device = torch.device(device) if device is not None else model.device
    if name == "auto":
        selection = select_backend(model, device, **auto_kwargs)
        info(selection.summary())
        return selection.backend
    try:
        backend = build_backend(name, model, device)
    except BackendUnavailable as exc:
        warn(f"backend {name} unavailable, falling back to eager: {exc}")
        return build_backend("eager", model, device)
    info(f"backend {backend.describe()} (forced; not checked against eager)")
    return backend
