"""The one inference interface: uint8 H×W×3 host images -> float32 H×W depth on the host.

A :class:`Backend` owns a *disparity network* (B×3×h×w float in [0, 1] -> sigmoid
disparity B×1×h×w at the model's size) built by one runtime (eager PyTorch,
TorchScript, torch.compile, ONNX Runtime, ...), and shares the host-side path with
every other backend, so all of them compute the same thing:

1. stack the images, upload, NHWC uint8 -> NCHW float in [0, 1];
2. resize to the network size (bilinear, antialiased — as :meth:`DepthModel.predict_batch`);
3. the backend's network (in its dtype and memory format);
4. disparity back to float32, bilinear resize to the image size, ``disp_to_depth`` × the
   model's *current* ``depth_scale`` (so a scale set after building still applies);
5. download to host numpy.

Steps 4–5 stay in float32 whatever the network precision, so a bf16 network only
rounds the features, never the depth formula.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..model import check_images

PRECISION_TOL = {"fp32": 1e-3, "bf16": 1e-2, "fp16": 1e-2, "int8": 1e-2}   # default max relative error


class BackendUnavailable(RuntimeError):
    """A backend cannot run here (missing library, wrong device, failed build); the message says why."""


class BackendMissing(BackendUnavailable):
    """What the backend needs is absent here: a library, a device type or a hardware feature."""


class DispNet(nn.Module):
    """``forward(x B×3×h×w in [0, 1]) -> disparity B×1×h×w`` (scale 0 only; the other heads are not run)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if 0 not in model.config.scales:
            raise ValueError(f"model has no full-resolution output (scales {model.config.scales})")
        self.encoder = model.encoder
        self.decoder = model.decoder
        self.decoder.scales = (0,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))[("disp", 0)]


@dataclass
class Backend:
    """One way to run the depth network; ``predict_batch(images) -> [H×W float32 depth]``.

    ``net`` takes the network input in ``input_dtype`` / ``channels_last`` on ``device`` and
    returns the disparity (any float dtype, any device; it is moved back here).
    """

    name: str
    model: nn.Module                 # the DepthModel: size, depth range and depth_scale are read from it
    net: object                      # callable: B×3×h×w tensor -> B×1×h×w disparity
    device: torch.device
    precision: str = "fp32"
    input_dtype: torch.dtype = torch.float32
    channels_last: bool = False
    detail: str = ""                 # e.g. the ONNX Runtime providers in use

    def to_input(self, images) -> torch.Tensor:
        """Stacked uint8 host images -> network input (steps 1–2 of the module docstring)."""
        check_images(images)
        m = self.model
        x = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[2:] != (m.height, m.width):
            x = F.interpolate(x, (m.height, m.width), mode="bilinear", align_corners=False, antialias=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.input_dtype)

    def to_depth(self, disp: torch.Tensor, size) -> torch.Tensor:
        """Network disparity -> float32 depth B×H×W at ``size`` (step 4)."""
        disp = disp.to(self.device).float()
        if tuple(disp.shape[2:]) != tuple(size):
            disp = F.interpolate(disp, tuple(size), mode="bilinear", align_corners=False)
        return self.model.to_depth(disp)[:, 0]

    def predict_batch(self, images) -> list[np.ndarray]:
        """Depth float32 H×W (× the model's depth_scale) for each same-size H×W×3 uint8 RGB image."""
        with torch.inference_mode():
            depth = self.to_depth(self.net(self.to_input(images)), images[0].shape[:2])
            return list(depth.cpu().numpy().astype(np.float32, copy=False))

    def predict(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch([image])[0]

    def time_ms(self, images, iters: int = 3) -> float:
        """Median wall-clock milliseconds of ``predict_batch(images)`` over ``iters`` calls."""
        times = []
        for _ in range(max(1, iters)):
            t0 = time.perf_counter()
            self.predict_batch(images)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            times.append((time.perf_counter() - t0) * 1e3)
        return float(np.median(times))

    def describe(self) -> str:
        extra = f", {self.detail}" if self.detail else ""
        return f"{self.name} ({self.precision}, {self.device}{extra})"


def max_rel_err(depth: np.ndarray, ref: np.ndarray) -> float:
    """max |depth − ref| / max |ref| (the parity measure of every backend against eager fp32)."""
    depth, ref = np.asarray(depth, np.float64), np.asarray(ref, np.float64)
    if depth.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(depth)):
        return float("inf")
    return float(np.abs(depth - ref).max() / max(np.abs(ref).max(), 1e-12))
