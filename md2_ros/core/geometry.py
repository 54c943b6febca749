"""Camera geometry for view synthesis: disparity↔depth, back-projection, projection, poses.

Conventions: pinhole camera, REP-103 optical frame (x right, y down, z forward);
pixel (u, v) has its centre at integer coordinates u = 0..W−1, v = 0..H−1.
"""
from __future__ import annotations

import numpy as np
import torch


def _check(t: torch.Tensor, name: str, shape: tuple) -> None:
    """Raise ValueError unless ``t`` has the given shape (None = any size)."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if not ok:
        want = "×".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must be {want}, got {tuple(t.shape)}")


def disp_to_depth(disp, min_depth: float = 0.1, max_depth: float = 100.0):
    """Sigmoid output in [0, 1] -> (scaled_disp, depth) with depth in [min_depth, max_depth].

    scaled_disp = 1/max + (1/min − 1/max)·disp; depth = 1/scaled_disp. Works on tensors or arrays.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


def depth_to_disp(depth, min_depth: float = 0.1, max_depth: float = 100.0):
    """Inverse of :func:`disp_to_depth`: depth -> sigmoid-space disparity in [0, 1]."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)


def pixel_grid(height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """3×(H·W) homogeneous pixel coordinates (u, v, 1), row-major."""
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], 0)


def backproject(depth: torch.Tensor, inv_K: torch.Tensor) -> torch.Tensor:
    """Depth B×1×H×W and inverse intrinsics B×4×4 -> homogeneous camera points B×4×(H·W)."""
    _check(depth, "depth", (None, 1, None, None))
    _check(inv_K, "inv_K", (depth.shape[0], 4, 4))
    b, _, h, w = depth.shape
    pix = pixel_grid(h, w, depth.dtype, depth.device)
    rays = inv_K[:, :3, :3] @ pix.unsqueeze(0)
    pts = rays * depth.reshape(b, 1, -1)
    return torch.cat([pts, torch.ones_like(pts[:, :1])], 1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Homogeneous points B×4×N (N = H·W) seen by camera K (B×4×4) after motion T (B×4×4)
    -> sampling grid B×H×W×2 in [−1, 1] for ``grid_sample(align_corners=False)``.

    u_norm = (2u + 1)/W − 1 maps pixel centres exactly (no half-pixel drift).
    """
    _check(points, "points", (None, 4, height * width))
    b = points.shape[0]
    _check(K, "K", (b, 4, 4))
    _check(T, "T", (b, 4, 4))
    cam = (K @ T)[:, :3, :] @ points
    z = cam[:, 2:3].clamp_min(eps)
    pix = cam[:, :2] / z
    pix = pix.view(b, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([width, height], dtype=pix.dtype, device=pix.device)
    return (2 * pix + 1) / scale - 1


def rot_from_axisangle(vec: torch.Tensor) -> torch.Tensor:
    """Axis-angle B×1×3 -> rotation B×4×4 (Rodrigues). Smooth at zero angle."""
    _check(vec, "axisangle", (None, 1, 3))
    v = vec[:, 0]
    angle = torch.linalg.norm(v, dim=1, keepdim=True)
    axis = v / angle.clamp_min(1e-12)  # exact unit axis (the +1e-7 trick skews R slightly)
    ca, sa = torch.cos(angle), torch.sin(angle)
    c = 1 - ca
    x, y, z = axis[:, 0:1], axis[:, 1:2], axis[:, 2:3]
    rows = [
        [ca + x * x * c, x * y * c - z * sa, x * z * c + y * sa],
        [y * x * c + z * sa, ca + y * y * c, y * z * c - x * sa],
        [z * x * c - y * sa, z * y * c + x * sa, ca + z * z * c],
    ]
    rot = torch.zeros(v.shape[0], 4, 4, dtype=v.dtype, device=v.device)
    for i in range(3):
        for j in range(3):
            rot[:, i, j] = rows[i][j][:, 0]
    rot[:, 3, 3] = 1
    return rot


def translation_matrix(t: torch.Tensor) -> torch.Tensor:
    """Translation B×1×3 (or B×3) -> B×4×4."""
    t = t.reshape(-1, 3)
    out = torch.eye(4, dtype=t.dtype, device=t.device).repeat(t.shape[0], 1, 1)
    out[:, :3, 3] = t
    return out


def transformation_from_parameters(axisangle: torch.Tensor, translation: torch.Tensor,
                                   invert: bool = False) -> torch.Tensor:
    """(axis-angle B×1×3, translation B×1×3) -> B×4×4 [R|t]; ``invert`` gives [Rᵀ | −Rᵀt]."""
    _check(translation, "translation", (axisangle.shape[0], 1, 3))
    rot = rot_from_axisangle(axisangle)
    if invert:
        rot = rot.transpose(1, 2)
        return rot @ translation_matrix(-translation)
    return translation_matrix(translation) @ rot


def scale_intrinsics(K, width: float, height: float):
    """Normalised intrinsics (first row in fractions of width, second of height) -> pixels.

    Accepts 3×3 / 4×4 arrays or tensors, or batches (…×3×3, …×4×4). Returns a copy.
    """
    out = K.clone() if isinstance(K, torch.Tensor) else np.array(K, dtype=np.float64, copy=True)
    if out.shape[-1] not in (3, 4) or out.shape[-2] != out.shape[-1]:
        raise ValueError(f"K must be …×3×3 or …×4×4, got {tuple(out.shape)}")
    out[..., 0, :] *= width
    out[..., 1, :] *= height
    return out


def normalise_intrinsics(K, width: float, height: float):
    """Pixel intrinsics -> normalised (inverse of :func:`scale_intrinsics`)."""
    return scale_intrinsics(K, 1.0 / width, 1.0 / height)


def warp(source: torch.Tensor, depth: torch.Tensor, T: torch.Tensor, K: torch.Tensor,
         inv_K: torch.Tensor) -> torch.Tensor:
    """Synthesise the target view from ``source`` (B×C×H×W) given the target's ``depth``
    (B×1×H×W), the target→source motion ``T`` (B×4×4) and intrinsics K / inv_K (B×4×4).

    Bilinear sampling, border padding, pixel-centre convention (align_corners=False).
    """
    b, _, h, w = depth.shape
    if source.dim() != 4 or source.shape[0] != b or source.shape[2:] != depth.shape[2:]:
        raise ValueError(f"source must be B×C×H×W matching depth {tuple(depth.shape)}, got {tuple(source.shape)}")
    grid = project(backproject(depth, inv_K), K, T, h, w)
    return torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)
