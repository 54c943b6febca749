"""Depth pictures out (numpy + OpenCV): 16-bit millimetre PNG and colour pictures of inverse depth.

Depth is H×W float32 metres along the optical z axis; non-finite or non-positive values are invalid.
"""
from __future__ import annotations

import cv2
import numpy as np

from .clouds import valid_mask

COLORMAPS = {name[len("COLORMAP_"):].lower(): getattr(cv2, name) for name in dir(cv2) if name.startswith("COLORMAP_")}
MM_MAX = 65535  # largest 16-bit PNG value: 65.535 m


def depth_to_mm_png(depth: np.ndarray) -> np.ndarray:
    """H×W depth (m) -> H×W uint16 millimetres, rounded; 0 = invalid; clipped at 65535 (65.535 m)."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H×W, got shape {depth.shape}")
    mm = np.zeros(depth.shape, np.uint16)
    ok = valid_mask(depth)
    mm[ok] = np.clip(np.round(depth[ok] * 1000.0), 0, MM_MAX).astype(np.uint16)
    return mm


def colorize_depth(depth: np.ndarray, colormap: str = "magma", lo_pct: float = 2.0, hi_pct: float = 98.0) -> np.ndarray:
    """H×W depth -> H×W×3 uint8 **BGR** picture of inverse depth (near = bright).

    Inverse depth is normalised between its ``lo_pct`` and ``hi_pct`` percentiles over valid pixels
    (robust to a few outliers); invalid pixels are black.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose from {sorted(COLORMAPS)}")
    depth = np.asarray(depth, dtype=np.float32)
    ok = valid_mask(depth)
    disp = np.zeros(depth.shape, np.float32)
    np.divide(1.0, depth, out=disp, where=ok)
    grey = np.zeros(depth.shape, np.uint8)
    if ok.any():
        lo, hi = np.percentile(disp[ok], [lo_pct, hi_pct])
        if hi > lo:
            grey = np.clip((disp - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
        else:
            grey[ok] = 128
    bgr = cv2.applyColorMap(grey, COLORMAPS[colormap])
    bgr[~ok] = 0
    return bgr
