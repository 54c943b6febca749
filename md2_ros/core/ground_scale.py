"""Metric scale from the camera's mounting height: fit the ground plane in relative depth.

A mono self-supervised model predicts depth up to an unknown factor. If the camera sits
``camera_height`` metres above a flat ground and part of the ground is visible in the lower
part of the image, the factor is ``camera_height / d`` where ``d`` is the distance of the
ground plane from the optical centre *in the network's units*.

Pure numpy (no torch, no ROS). Conventions: REP 103 optical frame (x right, y down, z forward),
pixel centres at integer coordinates, ``K`` 3×3 in pixels of the depth map.

* :func:`estimate_ground_scale` — one frame: back-project a lower band of the image, RANSAC
  plane hypotheses restricted to roughly horizontal planes, least-squares refit on the inliers;
  returns a :class:`GroundFit` with the scale, the inlier share and, when rejected, the reason.
* :class:`ScaleSmoother` — median over the last accepted estimates; failed frames are counted
  and leave the smoothed scale unchanged (unset until a first frame succeeds).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroundParams:
    """Tuning of the ground fit (defaults suit a forward-looking car or robot camera).

    band: (top, bottom) rows of the ground region as fractions of the image height.
    max_tilt_deg: largest angle between the plane normal and the camera's y axis.
    min_inlier_share: least fraction of the band's points on the plane.
    inlier_tol: point-to-plane distance allowed, as a fraction of the plane's distance.
    """

    band: tuple = (0.6, 1.0)
    max_tilt_deg: float = 15.0
    min_inlier_share: float = 0.3
    min_points: int = 100
    inlier_tol: float = 0.05
    iterations: int = 200
    max_points: int = 4000
    seed: int = 0

    def __post_init__(self):
        top, bottom = self.band
        if not 0.0 <= top < bottom <= 1.0:
            raise ValueError(f"ground band must satisfy 0 <= top < bottom <= 1, got {self.band}")
        if not 0 < self.max_tilt_deg < 90:
            raise ValueError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if not 0 < self.min_inlier_share <= 1 or not self.inlier_tol > 0:
            raise ValueError("min_inlier_share must be in (0, 1] and inlier_tol > 0")
        if self.min_points < 3 or self.iterations < 1 or self.max_points < self.min_points:
            raise ValueError("need min_points >= 3, iterations >= 1, max_points >= min_points")


@dataclass(frozen=True)
class GroundFit:
    """One frame's result. ``scale`` is None when rejected, and ``reason`` says why."""

    scale: float | None
    inlier_share: float = 0.0
    reason: str = ""
    distance: float = math.nan      # plane distance from the camera, in the depth's units
    tilt_deg: float = math.nan      # angle between the plane normal and the camera's y axis
    num_points: int = 0

    @property
    def ok(self) -> bool:
        return self.scale is not None


def band_points(depth: np.ndarray, K: np.ndarray, band: tuple) -> np.ndarray:
    """Camera points N×3 (float64) of the valid pixels (finite, > 0) in rows ``band`` of ``depth``."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H×W, got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape[-2:] not in ((3, 3), (3, 4), (4, 4)) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError(f"K must be a 3×3 pinhole matrix with fx, fy > 0, got {K.tolist()}")
    h, w = depth.shape
    top, bottom = int(math.floor(band[0] * h)), int(math.ceil(band[1] * h))
    v, u = np.mgrid[top:bottom, 0:w].astype(np.float64)
    z = depth[top:bottom].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    z, u, v = z[ok], u[ok], v[ok]
    x = (u - K[0, 2]) / K[0, 0] * z
    y = (v - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], 1)


def _hypotheses(pts: np.ndarray, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Planes through random point triples: unit normals n×3 with n_y >= 0, offsets n (n·X = d)."""
    idx = rng.integers(0, len(pts), size=(n, 3))
    a, b, c = pts[idx[:, 0]], pts[idx[:, 1]], pts[idx[:, 2]]
    normal = np.cross(b - a, c - a)
    norm = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = normal / np.maximum(norm, 1e-12)
    normal *= np.where(normal[:, 1:2] < 0, -1.0, 1.0)
    return normal, np.einsum("ij,ij->i", normal, a)


def _refit(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane (total least squares via SVD) -> unit normal with n_y >= 0, offset."""
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    normal = vt[-1] * (1.0 if vt[-1][1] >= 0 else -1.0)
    return normal, float(normal @ centre)


def _tilt_deg(normal: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(abs(normal[1]), 0.0, 1.0))))


def fit_ground_plane(pts: np.ndarray, p: GroundParams) -> tuple[np.ndarray, float, np.ndarray] | str:
    """RANSAC over roughly horizontal planes below the camera, then two refits on the inliers.

    Returns (unit normal, offset d > 0, inlier mask) or a string saying why no plane was found.
    """
    rng = np.random.default_rng(p.seed)
    normals, offsets = _hypotheses(pts, rng, p.iterations)
    cos_max = math.cos(math.radians(p.max_tilt_deg))
    usable = (normals[:, 1] >= cos_max) & (offsets > 0)
    if not usable.any():
        tilt = _tilt_deg(_refit(pts)[0])
        return (f"no roughly horizontal plane below the camera in the ground band (the band's best plane is "
                f"tilted {tilt:.0f}° from the camera's y axis; limit {p.max_tilt_deg:g}°)")
    normals, offsets = normals[usable], offsets[usable]
    resid = np.abs(pts @ normals.T - offsets) / offsets       # N × hypotheses, relative to the distance
    best = int(np.argmax((resid < p.inlier_tol).sum(0)))
    inliers = resid[:, best] < p.inlier_tol
    normal, d = normals[best], float(offsets[best])
    for _ in range(2):
        if inliers.sum() < 3:
            break
        normal, d = _refit(pts[inliers])
        if d <= 0:
            return "the fitted ground plane passes above the camera"
        inliers = np.abs(pts @ normal - d) / d < p.inlier_tol
    return normal, d, inliers


def estimate_ground_scale(depth: np.ndarray, K: np.ndarray, camera_height: float,
                          params: GroundParams | None = None) -> GroundFit:
    """Factor that puts the ground plane of ``depth`` (H×W, relative units) at ``camera_height`` metres.

    K: 3×3 intrinsics in pixels of ``depth``. Rejected (``scale=None`` with a reason) when the band holds
    too few valid points, no roughly horizontal plane is found, or too few points lie on it.
    """
    p = params or GroundParams()
    if not (math.isfinite(camera_height) and camera_height > 0):
        raise ValueError(f"camera_height must be a positive number of metres, got {camera_height}")
    pts = band_points(depth, K, p.band)
    n_valid = len(pts)
    if n_valid < p.min_points:
        return GroundFit(None, 0.0, f"only {n_valid} valid depth pixels in the ground band "
                                    f"(rows {p.band[0]:.2f}-{p.band[1]:.2f} of the image; need {p.min_points})")
    if n_valid > p.max_points:
        pts = pts[np.random.default_rng(p.seed + 1).choice(n_valid, p.max_points, replace=False)]
    fit = fit_ground_plane(pts, p)
    if isinstance(fit, str):
        return GroundFit(None, 0.0, fit, num_points=len(pts))
    normal, d, inliers = fit
    share, tilt = float(inliers.mean()), _tilt_deg(normal)
    if tilt > p.max_tilt_deg:
        return GroundFit(None, share, f"ground plane tilted {tilt:.1f}° from the camera's y axis "
                                      f"(limit {p.max_tilt_deg:g}°)", d, tilt, len(pts))
    if share < p.min_inlier_share:
        return GroundFit(None, share, f"only {share:.0%} of the ground band lies on one plane (need "
                                      f"{p.min_inlier_share:.0%}): no ground visible?", d, tilt, len(pts))
    return GroundFit(float(camera_height / d), share, "", d, tilt, len(pts))


class ScaleSmoother:
    """Median of the last ``window`` accepted per-frame scales; rejected frames never enter it.

    ``update(fit)`` returns the smoothed scale (None until a frame has been accepted). ``last`` is the
    latest fit, ``rejected_in_a_row`` counts consecutive failures (for diagnostics).
    """

    def __init__(self, window: int = 15):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._values: deque = deque(maxlen=int(window))
        self.last: GroundFit | None = None
        self.accepted = self.rejected = self.rejected_in_a_row = 0

    @property
    def value(self) -> float | None:
        return float(np.median(self._values)) if self._values else None

    def update(self, fit: GroundFit) -> float | None:
        self.last = fit
        if fit.ok:
            self._values.append(fit.scale)
            self.accepted += 1
            self.rejected_in_a_row = 0
        else:
            self.rejected += 1
            self.rejected_in_a_row += 1
        return self.value

    def resize(self, window: int) -> None:
        """Change the window length, keeping the newest values."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if window != self._values.maxlen:
            self._values = deque(self._values, maxlen=int(window))
