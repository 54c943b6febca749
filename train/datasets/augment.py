"""Monodepth2 training augmentation, in plain torch (no torchvision).

Colour jitter exactly as the paper: with probability 0.5 a sample gets brightness, contrast and
saturation factors drawn uniformly from [0.8, 1.2] and a hue shift drawn uniformly from [-0.1, 0.1]
(fraction of the hue circle); the four operations are applied in a random order (as torchvision's
ColorJitter does, which the official code used). One set of parameters (factors *and* order) is drawn
per sample and applied to every frame and scale of it, so the photometric loss compares like with like.
Only the ``color_aug`` images the networks see are jittered; the loss uses the un-jittered ``color``.

Horizontal flip with probability 0.5, applied to every frame of the sample. The principal point is
mirrored exactly (``cx -> w - 1 - cx`` in pixel-index coordinates, pixel centres at 0..w-1), and the
stereo transform's x translation changes sign (left and right swap sides) — see `base.build_sample`.

Random numbers come from torch's global RNG (or a given `torch.Generator`), which DataLoader
re-seeds in every worker, so runs are reproducible and workers do not repeat each other.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["ColorJitterParams", "sample_color_jitter", "apply_color_jitter", "sample_flip", "flip_intrinsics",
           "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue", "rgb_to_hsv", "hsv_to_rgb"]

BRIGHTNESS = (0.8, 1.2)
CONTRAST = (0.8, 1.2)
SATURATION = (0.8, 1.2)
HUE = (-0.1, 0.1)


@dataclass(frozen=True)
class ColorJitterParams:
    """One draw of the colour jitter: factors, hue shift and the order of the 4 ops (0 b, 1 c, 2 s, 3 h)."""

    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    order: tuple = (0, 1, 2, 3)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=generator).item())


def sample_color_jitter(p: float = 0.5, generator: torch.Generator | None = None, brightness=BRIGHTNESS,
                        contrast=CONTRAST, saturation=SATURATION, hue=HUE) -> ColorJitterParams | None:
    """With probability ``p`` return random `ColorJitterParams` (paper ranges by default), else None."""
    if torch.rand((), generator=generator).item() >= p:
        return None
    order = tuple(int(i) for i in torch.randperm(4, generator=generator))
    return ColorJitterParams(_uniform(*brightness, generator), _uniform(*contrast, generator),
                             _uniform(*saturation, generator), _uniform(*hue, generator), order)


def sample_flip(p: float = 0.5, generator: torch.Generator | None = None) -> bool:
    """True with probability ``p``."""
    return bool(torch.rand((), generator=generator).item() < p)


def _gray(img: torch.Tensor) -> torch.Tensor:
    """... x 3 x H x W -> ... x 1 x H x W (ITU-R 601 luma, as PIL/torchvision)."""
    r, g, b = img.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(img: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * img + (1.0 - factor) * other).clamp_(0.0, 1.0)


def adjust_brightness(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale intensities: ``img * factor`` clamped to [0, 1]. img: ... x 3 x H x W float."""
    return (img * factor).clamp_(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the mean grey level of each image (per image, over H and W)."""
    mean = _gray(img).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, factor)


def adjust_saturation(img: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the image's own grey version."""
    return _blend(img, _gray(img), factor)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """... x 3 x H x W RGB in [0,1] -> HSV with h, s, v in [0, 1] (ties resolved r, g, b like colorsys)."""
    r, g, b = img.unbind(-3)
    maxc, which = img.max(dim=-3)  # first maximum: r before g before b
    delta = maxc - img.min(dim=-3).values
    s = delta / maxc.clamp(min=1e-12)
    diffs = torch.stack([g - b, b - r, r - g], dim=-3).gather(-3, which.unsqueeze(-3)).squeeze(-3)
    h = (diffs / delta.clamp(min=1e-12) + 2.0 * which) / 6.0 % 1.0
    return torch.stack([h * (delta > 0), s, maxc], dim=-3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of `rgb_to_hsv` (closed form: channel n in (5, 3, 1) is v - v s clamp(min(k, 4 - k), 0, 1),
    k = (n + 6 h) mod 6)."""
    h, s, v = hsv.unbind(-3)
    h6 = (h % 1.0) * 6.0
    vs = v * s
    out = []
    for n in (5.0, 3.0, 1.0):
        k = (h6 + n) % 6.0
        out.append(v - vs * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(out, dim=-3)


def adjust_hue(img: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of the circle, in [-0.5, 0.5]); saturation and value unchanged.

    CPU float32 tensors go through OpenCV's float HSV conversion (same definition as `rgb_to_hsv`, about
    4x faster); anything else uses the torch functions.
    """
    if shift == 0.0:
        return img
    if img.device.type == "cpu" and img.dtype == torch.float32:
        flat = img.reshape(-1, 3, *img.shape[-2:])
        out = torch.empty_like(flat)
        for i in range(flat.shape[0]):
            hsv = cv2.cvtColor(flat[i].permute(1, 2, 0).contiguous().numpy(), cv2.COLOR_RGB2HSV)  # H in degrees
            hsv[..., 0] = (hsv[..., 0] + 360.0 * shift) % 360.0
            out[i] = torch.from_numpy(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)).permute(2, 0, 1)
        return out.reshape(img.shape).clamp_(0.0, 1.0)
    hsv = rgb_to_hsv(img)
    hsv = torch.stack([(hsv[..., 0, :, :] + shift) % 1.0, hsv[..., 1, :, :], hsv[..., 2, :, :]], dim=-3)
    return hsv_to_rgb(hsv).clamp_(0.0, 1.0)


def apply_color_jitter(img: torch.Tensor, params: ColorJitterParams) -> torch.Tensor:
    """Apply one jitter draw to ``img`` (... x 3 x H x W float in [0,1]); returns a new tensor."""
    if img.shape[-3] != 3:
        raise ValueError(f"expected ... x 3 x H x W RGB, got {tuple(img.shape)}")
    out = img
    for op in params.order:
        if op == 0:
            out = adjust_brightness(out, params.brightness)
        elif op == 1:
            out = adjust_contrast(out, params.contrast)
        elif op == 2:
            out = adjust_saturation(out, params.saturation)
        else:
            out = adjust_hue(out, params.hue)
    return out if out is not img else img.clone()


def flip_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics (pixels, 3x3 or 4x4) of the horizontally mirrored image of width ``width``:
    ``cx -> width - 1 - cx`` (pixel centres at 0..width-1); fx, fy, cy unchanged."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] = width - 1 - K[0, 2]
    return K
