"""Pictures for people: the contact sheet and two views of a coloured point cloud (numpy/OpenCV splatting)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def contact_sheet(rgbs: list, colors: list, path: Path, cols: int = 2, width: int = 620) -> None:
    """Rows of (camera image | colorized depth) pairs."""
    tiles = []
    for rgb, col in zip(rgbs, colors):
        h = int(round(rgb.shape[0] * width / rgb.shape[1]))
        a = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (width, h), interpolation=cv2.INTER_AREA)
        b = cv2.resize(col, (width, h), interpolation=cv2.INTER_NEAREST)
        tiles.append(np.vstack([a, b, np.zeros((6, width, 3), np.uint8)]))
    rows = [np.hstack(tiles[i:i + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[i:i + cols])))
            for i in range(0, len(tiles), cols)]
    cv2.imwrite(str(path), np.vstack(rows))


def splat(u: np.ndarray, v: np.ndarray, order: np.ndarray, rgb: np.ndarray, size: tuple, radius: int = 1):
    """H×W×3 BGR picture with each point (u, v) painted as a (2r+1)² square in its RGB colour; points are
    painted in decreasing ``order`` so the smallest order (the nearest) ends on top."""
    h, w = size
    img = np.full((h, w, 3), 24, np.uint8)
    ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    ok = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & np.isfinite(order)
    idx = np.flatnonzero(ok)[np.argsort(-order[ok], kind="stable")]
    bgr = rgb[idx][:, ::-1]
    for dv in range(-radius, radius + 1):
        for du in range(-radius, radius + 1):
            img[np.clip(vi[idx] + dv, 0, h - 1), np.clip(ui[idx] + du, 0, w - 1)] = bgr
    return img


def _points(xyz: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts, cols = xyz.reshape(-1, 3).astype(np.float64), rgb.reshape(-1, 3)
    keep = np.isfinite(pts).all(1)
    return pts[keep], cols[keep]


def perspective_view(xyz: np.ndarray, rgb: np.ndarray, size=(480, 720), yaw_deg=-30.0, pitch_deg=20.0):
    """The cloud seen by a virtual camera turned ``yaw_deg`` about the scene's centre and looking down by
    ``pitch_deg`` (optical frame: x right, y down, z forward)."""
    pts, cols = _points(xyz, rgb)
    if not len(pts):
        return np.full(size + (3,), 24, np.uint8)
    centre = np.array([0.0, 0.0, np.median(pts[:, 2])])
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    cam = (pts - centre) @ (rx @ ry).T + np.array([0.0, 0.0, 1.6 * centre[2]])
    z = cam[:, 2]
    f = 0.9 * size[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = f * cam[:, 0] / z + size[1] / 2, f * cam[:, 1] / z + size[0] / 2
    return splat(u, v, np.where(z > 0.1, z, np.nan), cols, size)


def birdseye_view(xyz: np.ndarray, rgb: np.ndarray, size=(600, 600), max_range: float | None = None):
    """Top-down view: x to the right, forward (z) up the picture, the highest point of each cell on top."""
    pts, cols = _points(xyz, rgb)
    if not len(pts):
        return np.full(size + (3,), 24, np.uint8)
    reach = max_range or float(np.percentile(pts[:, 2], 98))
    scale = (size[0] - 20) / max(reach, 1e-6)
    u = size[1] / 2 + pts[:, 0] * scale
    v = size[0] - 10 - pts[:, 2] * scale
    return splat(u, v, pts[:, 1], cols, size)


def write_cloud_views(xyz: np.ndarray, rgb: np.ndarray, out: Path) -> list[Path]:
    """``cloud_perspective.png`` and ``cloud_birdseye.png`` of an h×w×3 cloud coloured by h×w×3 RGB."""
    paths = [out / "cloud_perspective.png", out / "cloud_birdseye.png"]
    cv2.imwrite(str(paths[0]), perspective_view(xyz, rgb))
    cv2.imwrite(str(paths[1]), birdseye_view(xyz, rgb))
    return paths
