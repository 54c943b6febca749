"""Self-supervised losses of Monodepth2: SSIM+L1 photometric error, per-pixel minimum
reprojection with auto-masking, and edge-aware smoothness.

All functions are pure and differentiable; shapes are in the docstrings.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

C1 = 0.01 ** 2
C2 = 0.03 ** 2


def _check_image_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"expected two B×C×H×W tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"images must be at least 2×2 for the reflection-padded SSIM, got {tuple(x.shape)}")


def box3(x: torch.Tensor) -> torch.Tensor:
    """3×3 mean, stride 1, no padding (= ``F.avg_pool2d(x, 3, 1)``): B×C×H×W -> B×C×(H−2)×(W−2).

    On CPU as two separable 3-tap sums of shifted slices: 4× faster forward and 5× faster forward+backward
    than ``avg_pool2d`` there (torch 2.13, measured in docs/learning.md round 10), where SSIM's pooling was
    a fifth of a training step. CUDA keeps the pooling kernel (one launch instead of four)."""
    if x.device.type != "cpu":
        return F.avg_pool2d(x, 3, 1)
    rows = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
    return (rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SSIM dissimilarity (1 − SSIM)/2 ∈ [0, 1], B×C×H×W -> B×C×H×W.

    3×3 average pooling on reflection-padded inputs (padding 1), C1 = 0.01², C2 = 0.03².
    """
    _check_image_pair(x, y)
    x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = box3(x)
    mu_y = box3(y)
    sigma_x = box3(x * x) - mu_x ** 2
    sigma_y = box3(y * y) - mu_y ** 2
    sigma_xy = box3(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + C1) * (2 * sigma_xy + C2)
    den = (mu_x ** 2 + mu_y ** 2 + C1) * (sigma_x + sigma_y + C2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """pe = w·SSIM-dissimilarity + (1 − w)·L1, averaged over channels: B×C×H×W -> B×1×H×W.

    ``ssim_weight=0`` gives pure L1 (the ``no_ssim`` ablation).
    """
    _check_image_pair(pred, target)
    if not 0.0 <= ssim_weight <= 1.0:
        raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if ssim_weight == 0:
        return l1
    return ssim_weight * ssim(pred, target).mean(1, keepdim=True) + (1 - ssim_weight) * l1


def smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Edge-aware first-order smoothness of mean-normalised disparity (scalar).

    disp B×1×H×W, image B×C×H×W. Gradients of disp/mean(disp) are weighted by
    exp(−mean_c |∂image|) so depth edges are allowed where the image has edges.
    """
    if disp.dim() != 4 or disp.shape[1] != 1:
        raise ValueError(f"disp must be B×1×H×W, got {tuple(disp.shape)}")
    if image.dim() != 4 or image.shape[0] != disp.shape[0] or image.shape[2:] != disp.shape[2:]:
        raise ValueError(f"image must be B×C×H×W matching disp {tuple(disp.shape)}, got {tuple(image.shape)}")
    disp = disp / (disp.mean((2, 3), keepdim=True) + 1e-7)
    gx = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    gy = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    ix = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    iy = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (gx * torch.exp(-ix)).mean() + (gy * torch.exp(-iy)).mean()


def min_reprojection(errors: list[torch.Tensor], identity_errors: list[torch.Tensor] | None = None,
                     average: bool = False, noise: float = 1e-5, generator: torch.Generator | None = None,
                     margin: float = 0.0):
    """Per-pixel minimum (or average) over source frames, with optional auto-masking.

    errors: list of B×1×H×W reprojection errors (one per source frame).
    identity_errors: errors of the *un-warped* sources; when given, a pixel keeps its
    loss only where some warped error is below every identity error (the auto-mask).
    The identity errors get ``noise``·N(0, 1) added to break ties on static pixels. ``margin`` > 0 scales
    them by ``1 − margin`` first: a pixel is then kept only where warping explains it clearly better than
    not moving (0 is the paper's rule).
    Returns ``(loss B×1×H×W, mask B×1×H×W float)``; the mask is all ones without
    identity errors.
    """
    if not errors:
        raise ValueError("errors must be a non-empty list")
    shape = errors[0].shape
    for e in list(errors) + list(identity_errors or []):
        if e.dim() != 4 or e.shape[1] != 1 or e.shape != shape:
            raise ValueError(f"every error must be B×1×H×W of shape {tuple(shape)}, got {tuple(e.shape)}")
    reproj = torch.cat(errors, 1)
    if average:
        reproj = reproj.mean(1, keepdim=True)
    if identity_errors is None:
        loss = reproj.min(1, keepdim=True)[0] if not average else reproj
        return loss, torch.ones_like(loss)
    ident = torch.cat(identity_errors, 1)
    if average:
        ident = ident.mean(1, keepdim=True)
    if margin:
        ident = ident * (1.0 - margin)
    if noise:
        ident = ident + noise * torch.randn(ident.shape, generator=generator, device=ident.device,
                                            dtype=ident.dtype)
    combined = torch.cat([ident, reproj], 1)
    loss, idx = combined.min(1, keepdim=True)
    mask = (idx >= ident.shape[1]).to(loss.dtype)
    return loss, mask


ROAD_BAND_LOG = math.log(1.25)   # ground_bound: band pixels within ×/÷1.25 of the band's median count as road


def ground_ray_depth(inv_K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Depth at which each pixel's ray meets a level ground plane one unit below the camera: B×1×H×W.

    The camera's y axis points down; a ray ``inv_K·[u, v, 1]`` with y component ``r_y > 0`` hits the plane
    y = 1 at depth ``1 / r_y``. Rays at or above the horizon never hit it: ``inf``.
    inv_K: B×4×4 or B×3×3 inverse intrinsics in pixels of the H×W image.
    """
    v = torch.arange(height, device=inv_K.device, dtype=inv_K.dtype)[:, None].expand(height, width)
    u = torch.arange(width, device=inv_K.device, dtype=inv_K.dtype)[None, :].expand(height, width)
    r_y = inv_K[:, 1:2, 0:1] * u + inv_K[:, 1:2, 1:2] * v + inv_K[:, 1:2, 2:3]   # B×H×W
    ground = torch.where(r_y > 1e-6, 1.0 / r_y.clamp_min(1e-6), torch.full_like(r_y, float("inf")))
    return ground.unsqueeze(1)


def ground_bound(depth: torch.Tensor, inv_K: torch.Tensor, band: tuple = (0.8, 1.0),
                 tolerance: float = 0.1) -> torch.Tensor:
    """Hinge on depth beyond the ground along each ray below the horizon (scalar, scale-invariant).

    The ground in front of a level camera is opaque: whatever a ray below the horizon sees is at most as far
    as the point where the ray meets the ground. With depth known only up to scale (monocular training), the
    camera height in the network's units is estimated per image as the geometric mean of depth / ground-ray
    depth over the road in a lower ``band`` of rows (fractions of the image height): the band's pixels within
    ×/÷1.25 of its median ratio, so objects standing in the band do not pull it; the loss is then the
    mean over the image of ``max(0, log(depth / (h·ground)) − log(1 + tolerance))``. A region predicted
    farther than the road it stands on (the hole monocular training makes of a vehicle that moves with the
    camera) is pulled in; a correct scene (ground plane, objects on it) scores zero. The gradient flows
    through the height estimate too (over the road pixels), so the loss is exactly scale-invariant and its
    gradient never moves the depth's global scale (a detached estimate let the pull on the holes drag every
    depth down to ``min_depth``, measured on the KITTI sample).
    depth: B×1×H×W (> 0), inv_K: B×4×4 or B×3×3 in pixels of that size.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    log_excess, counted = ground_log_excess(depth, inv_K, band)
    excess = torch.relu(log_excess - math.log1p(tolerance))
    return torch.where(counted, excess, torch.zeros_like(excess)).mean()


def ground_log_excess(depth: torch.Tensor, inv_K: torch.Tensor, band: tuple = (0.8, 1.0)) -> tuple:
    """``log(depth / (h·ground))`` per pixel and where it counts (below the horizon, in an image whose band
    has road): the quantity :func:`ground_bound` charges beyond ``log(1 + tolerance)``, with ``h`` estimated
    from the band's road pixels as described there (differentiable through ``h``). Both B×1×H×W."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be B×1×H×W, got {tuple(depth.shape)}")
    top, bottom = band
    if not 0.0 <= top < bottom <= 1.0:
        raise ValueError(f"band must satisfy 0 <= top < bottom <= 1, got {band}")
    b, _, h, w = depth.shape
    ground = ground_ray_depth(inv_K.to(depth.dtype), h, w)
    below = torch.isfinite(ground)
    log_ground = torch.log(torch.where(below, ground, torch.ones_like(ground)))
    log_ratio = torch.log(depth.clamp_min(1e-12)) - log_ground
    r0, r1 = int(top * h), max(int(top * h) + 1, int(round(bottom * h)))
    band_ratio, in_band = log_ratio[:, :, r0:r1], below[:, :, r0:r1]
    with torch.no_grad():   # the road: band pixels near the band's median (objects standing in it are nearer)
        centre = torch.where(in_band, band_ratio, torch.full_like(band_ratio, float("nan"))).flatten(1)
        centre = torch.nanmedian(centre, dim=1).values.view(-1, 1, 1, 1)
        road = (in_band & ((band_ratio - centre).abs() < ROAD_BAND_LOG)).to(depth.dtype)
    count = road.sum((1, 2, 3), keepdim=True)
    log_h = (band_ratio * road).sum((1, 2, 3), keepdim=True) / count.clamp_min(1)
    return log_ratio - log_h, below & (count > 0)
