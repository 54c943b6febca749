"""A procedurally textured synthetic driving scene with exact depth, poses and intrinsics.

numpy/OpenCV only (no torch, no ROS), deterministic by seed; about 0.1-0.2 s per 96x320 view on one core
(rendering time grows with pixels x boxes: ~0.7 s per 192x640 view).

The scene (world frame = the first camera's optical frame, REP 103: x right, y down, z forward):

* a ground plane at ``y = +camera_height`` (1.65 m, as KITTI's camera),
* two walls at ``x = wall_left`` and ``x = wall_right``, infinitely tall,
* a back wall at ``z = back_z`` (beyond the last camera position plus 40 m), so **every pixel
  has a finite depth** (there is no sky; the back wall is the far plane),
* a few axis-aligned boxes standing on the ground, away from the camera's path.

Each surface point's colour is a function of its 3-D position and surface only (per-surface colour
x fractal value noise in the surface's own 2-D coordinates x Lambertian shading by the face normal),
so it is the same from every viewpoint: warping one view into another with the true depth and
relative pose reproduces it (up to interpolation, occlusion and a tiny anti-aliasing term). Noise
octaves whose frequency nears the pixel footprint are faded to their mean, and each pixel averages
2x2 sub-rays, which keeps aliasing low.

The camera moves forward ``speed`` metres per frame and yaws as
``yaw(t) = (yaw_rate / w) * sin(w t)`` with ``w = 2 pi / 40`` frames: it turns at ``yaw_rate`` rad per
frame at the start and weaves gently, so long sequences stay inside the corridor.

Depth maps are z along the optical axis (not ray length), metres, float32. Poses are 4x4
camera->world. Intrinsics are KITTI-like: fx = fy = 0.58 W, cx = W / 2, cy = H / 2, pixel centres at
integer coordinates. The optional right camera is the left camera translated +baseline along its x axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

CAMERA_HEIGHT = 1.65
WEAVE_PERIOD = 40.0
_EPS = 1e-6
_LIGHT = np.array([0.3, -0.8, -0.5]) / np.linalg.norm([0.3, -0.8, -0.5])  # towards the light (up, left, back)


@dataclass
class Box:
    """Axis-aligned box in world coordinates: corners ``lo`` < ``hi`` (3,), RGB colour in [0, 1]."""

    lo: np.ndarray
    hi: np.ndarray
    color: np.ndarray


@dataclass
class Scene:
    """Static scene geometry; see the module docstring for the frame conventions."""

    ground_y: float
    wall_left: float
    wall_right: float
    back_z: float
    boxes: list[Box] = field(default_factory=list)
    seed: int = 0


@dataclass
class SyntheticSequence:
    """A rendered sequence. Lists have one entry per frame.

    images: HxWx3 uint8 RGB; depths: HxW float32 metres (z); poses: 4x4 float64 camera->world;
    K: 3x3 float64 pixels; right_images / right_depths: as the left ones, or None without stereo;
    baseline: metres (right camera = left translated +baseline along x).
    """

    images: list[np.ndarray]
    depths: list[np.ndarray]
    poses: list[np.ndarray]
    K: np.ndarray
    right_images: list[np.ndarray] | None
    right_depths: list[np.ndarray] | None
    baseline: float
    scene: Scene | None = None

    @property
    def height(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def width(self) -> int:
        return int(self.images[0].shape[1])


# --------------------------------------------------------------------------- scene and camera

def make_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI-like pinhole intrinsics (3x3 float64, pixels): fx = fy = 0.58 W, principal point at the centre."""
    f = 0.58 * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def make_scene(seed: int = 0, travel: float = 2.5, num_boxes: int = 8) -> Scene:
    """A corridor scene for a camera travelling ``travel`` metres forward from the origin."""
    rng = np.random.default_rng(seed)
    wall_left = -float(rng.uniform(4.5, 6.0))
    wall_right = float(rng.uniform(5.0, 7.0))
    back_z = float(travel + 40.0)
    boxes = []
    for i in range(num_boxes):
        side = -1.0 if i % 2 == 0 else 1.0
        size = rng.uniform([1.0, 1.0, 1.0], [2.5, 3.0, 3.0])
        inner = 1.6  # keep the camera's path (|x| < ~1) clear
        outer = (-wall_left if side < 0 else wall_right) - size[0] - 0.1
        x0 = rng.uniform(inner, max(inner + 0.01, outer))
        z0 = rng.uniform(3.0, min(back_z - 8.0, travel + 20.0))
        lo_x = x0 if side > 0 else -x0 - size[0]
        lo = np.array([lo_x, CAMERA_HEIGHT - size[1], z0])
        boxes.append(Box(lo=lo, hi=lo + size, color=rng.uniform(0.25, 0.95, 3)))
    return Scene(CAMERA_HEIGHT, wall_left, wall_right, back_z, boxes, seed)


def camera_poses(num_frames: int, speed: float = 0.5, yaw_rate: float = 0.01) -> list[np.ndarray]:
    """Camera->world 4x4 poses (float64): forward motion with a gentle weave, first pose identity."""
    w = 2.0 * math.pi / WEAVE_PERIOD
    amp = yaw_rate / w
    poses, pos = [], np.zeros(3)
    for t in range(num_frames):
        yaw = amp * math.sin(w * t)
        c, s = math.cos(yaw), math.sin(yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
        T[:3, 3] = pos
        poses.append(T)
        pos = pos + speed * np.array([s, 0.0, c])
    return poses


# --------------------------------------------------------------------------- ray casting

def _cast(scene: Scene, origin: np.ndarray, dirs: np.ndarray):
    """Nearest hit along rays ``origin + t * dirs`` (dirs N x 3, world). Returns t (N,), surface id (N,),
    normal axis (N,) and normal sign (N,). Surface ids: 0 ground, 1 left wall, 2 right wall, 3 back, 4+ boxes."""
    n = dirs.shape[0]
    best_t = np.full(n, np.inf)
    sid = np.full(n, -1, np.int64)
    axis = np.zeros(n, np.int64)
    sign = np.ones(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        planes = [(1, scene.ground_y, 0), (0, scene.wall_left, 1), (0, scene.wall_right, 2), (2, scene.back_z, 3)]
        for ax, val, k in planes:
            t = (val - origin[ax]) / dirs[:, ax]
            t = np.where(np.isfinite(t) & (t > _EPS), t, np.inf)
            take = t < best_t
            best_t[take], sid[take], axis[take] = t[take], k, ax
            sign[take] = -np.sign(dirs[take, ax])
        inv = [1.0 / dirs[:, a] for a in range(3)]
        for b, box in enumerate(scene.boxes):  # slab method, one axis at a time (1-D arrays are fast)
            near, far = [], []
            for a in range(3):
                t1 = (box.lo[a] - origin[a]) * inv[a]
                t2 = (box.hi[a] - origin[a]) * inv[a]
                near.append(np.minimum(t1, t2))
                far.append(np.maximum(t1, t2))
            tnear = np.maximum(np.maximum(near[0], near[1]), near[2])
            tfar = np.minimum(np.minimum(far[0], far[1]), far[2])
            take = np.flatnonzero((tfar >= tnear) & (tnear > _EPS) & (tnear < best_t))
            if take.size == 0:
                continue
            ax_b = np.stack([near[0][take], near[1][take], near[2][take]], 1).argmax(1)
            best_t[take], sid[take], axis[take] = tnear[take], 4 + b, ax_b
            sign[take] = -np.sign(dirs[take, ax_b])
    return best_t, sid, axis, sign


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Deterministic per-lattice-point values in [0, 1) from integer coordinates (uint32 hash)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint32) * np.uint32(0x8DA6B343) ^ iy.astype(np.uint32) * np.uint32(0xD8163841)
        h = h ^ salt.astype(np.uint32) * np.uint32(0xCB1AB31F)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0x5BD1E995)
        h ^= h >> np.uint32(15)
    return (h & np.uint32(0xFFFFFF)).astype(np.float64) / float(0x1000000)


def _value_noise(u: np.ndarray, v: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Smooth (C1, smoothstep-interpolated) value noise in [0, 1] at 2-D coordinates u, v."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    iu, iv = iu.astype(np.int64), iv.astype(np.int64)
    a, b = _hash01(iu, iv, salt), _hash01(iu + 1, iv, salt)
    c, d = _hash01(iu, iv + 1, salt), _hash01(iu + 1, iv + 1, salt)
    return (a * (1 - su) + b * su) * (1 - sv) + (c * (1 - su) + d * su) * sv


def _surface_colors(scene: Scene) -> np.ndarray:
    """Base RGB colour per surface id (S x 3)."""
    fixed = [[0.55, 0.50, 0.45], [0.75, 0.45, 0.35], [0.40, 0.55, 0.75], [0.70, 0.70, 0.55]]
    return np.array(fixed + [b.color for b in scene.boxes], dtype=np.float64)


def _shade(scene: Scene, points: np.ndarray, sid: np.ndarray, axis: np.ndarray, sign: np.ndarray,
           footprint: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (N x 3) of surface points: colour x fractal noise x Lambertian shading.

    ``footprint`` (N,) is the pixel's size on the surface in metres; octaves finer than ~2 pixels fade out.
    """
    n = points.shape[0]
    rows = np.arange(n)
    uax = np.where(axis == 0, 2, 0)  # first in-plane coordinate
    vax = np.where(axis == 1, 2, 1)  # second in-plane coordinate
    u, v = points[rows, uax], points[rows, vax]
    salt = (sid + 1) * 7919 + scene.seed * 104729
    pattern = np.zeros(n)
    total = 0.0
    for k, freq in enumerate([0.35, 0.9, 2.1, 4.7, 9.5]):
        weight = 0.75 ** k
        cycles_per_px = freq * footprint
        fade = np.clip((0.5 - cycles_per_px) / 0.25, 0.0, 1.0)
        noise = _value_noise(u * freq + 17.3 * k, v * freq - 9.1 * k, salt + k)
        pattern += weight * (0.5 + fade * (noise - 0.5))
        total += weight
    pattern = pattern / total  # in [0, 1], mean 0.5
    pattern = np.clip(0.5 + 1.8 * (pattern - 0.5), 0.0, 1.0)  # more contrast
    # a soft checker of tiles (1.5 m on the ground, 1 m elsewhere), faded like the octaves
    tile = np.where(sid == 0, 1.5, 1.0)
    fade = np.clip((0.5 - footprint / (2.0 * tile)) / 0.25, 0.0, 1.0)
    checker = np.clip(2.5 * np.sin(np.pi * u / tile) * np.sin(np.pi * v / tile), -1.0, 1.0)
    pattern = 0.7 * pattern + 0.3 * (0.5 + 0.5 * fade * checker)
    normal = np.zeros((n, 3))
    normal[rows, axis] = sign
    lambert = 0.45 + 0.55 * np.clip(normal @ _LIGHT, 0.0, 1.0)
    base = _surface_colors(scene)[sid]
    return base * (0.25 + 0.9 * pattern)[:, None] * lambert[:, None]


def render_view(scene: Scene, pose: np.ndarray, K: np.ndarray, height: int, width: int,
                supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Render one view. pose: 4x4 camera->world; K: 3x3 pixels.

    Returns (rgb HxWx3 uint8, depth HxW float32 z in metres at pixel centres).
    """
    if height < 1 or width < 1 or supersample < 1:
        raise ValueError(f"render_view: need height, width, supersample >= 1, got {height}, {width}, {supersample}")
    R, origin = pose[:3, :3], pose[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    pixel_angle = 1.0 / math.sqrt(fx * fy)

    def rays(us, vs):
        d_cam = np.stack([(us - cx) / fx, (vs - cy) / fy, np.ones_like(us)], -1).reshape(-1, 3)
        return d_cam @ R.T  # world directions with camera z component 1, so t = depth z

    # depth at pixel centres
    vv, uu = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    t_c, _, _, _ = _cast(scene, origin, rays(uu, vv))
    depth = t_c.reshape(height, width).astype(np.float32)

    # colour from s x s sub-rays per pixel
    s = supersample
    offs = (np.arange(s) + 0.5) / s - 0.5
    vs = (np.arange(height)[:, None] + offs[None, :]).reshape(-1)
    us = (np.arange(width)[:, None] + offs[None, :]).reshape(-1)
    vv, uu = np.meshgrid(vs, us, indexing="ij")
    d = rays(uu, vv)
    t, sid, axis, sign = _cast(scene, origin, d)
    points = origin + t[:, None] * d
    dnorm = np.linalg.norm(d, axis=1)
    cos_inc = np.abs(d[np.arange(d.shape[0]), axis]) / dnorm
    footprint = t * dnorm * pixel_angle / np.maximum(cos_inc, 0.05)
    rgb = _shade(scene, points, sid, axis, sign, footprint).reshape(height, s, width, s, 3).mean((1, 3))
    image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return image, depth


def render_sequence(num_frames: int = 5, height: int = 96, width: int = 320, seed: int = 0,
                    stereo: bool = False, baseline: float = 0.54, speed: float = 0.5,
                    yaw_rate: float = 0.01, supersample: int = 2, num_boxes: int = 8) -> SyntheticSequence:
    """Render ``num_frames`` views of the synthetic scene (see module docstring). Deterministic by seed."""
    if num_frames < 1:
        raise ValueError(f"render_sequence: num_frames must be >= 1, got {num_frames}")
    if stereo and baseline <= 0:
        raise ValueError(f"render_sequence: stereo needs a positive baseline, got {baseline}")
    scene = make_scene(seed, travel=speed * num_frames, num_boxes=num_boxes)
    K = make_intrinsics(height, width)
    poses = camera_poses(num_frames, speed, yaw_rate)
    images, depths, r_images, r_depths = [], [], [], []
    offset = np.eye(4)
    offset[0, 3] = baseline
    for T in poses:
        img, dep = render_view(scene, T, K, height, width, supersample)
        images.append(img)
        depths.append(dep)
        if stereo:
            img, dep = render_view(scene, T @ offset, K, height, width, supersample)
            r_images.append(img)
            r_depths.append(dep)
    return SyntheticSequence(images, depths, poses, K, r_images if stereo else None,
                             r_depths if stereo else None, float(baseline), scene)


# --------------------------------------------------------------------------- KITTI-like layout

def _fmt(values) -> str:
    return " ".join(f"{float(x):.12e}" for x in np.asarray(values).reshape(-1))


def write_kitti_layout(seq: SyntheticSequence, root, date: str = "2011_09_26",
                       drive: str = "2011_09_26_drive_synth_sync") -> Path:
    """Write ``seq`` as a KITTI-raw-like folder and return the drive folder.

    Layout (``root/date/``):
      * ``calib_cam_to_cam.txt`` — ``S_rect_02/03``, ``R_rect_00`` (identity), ``P_rect_02 = [K | 0]``,
        ``P_rect_03 = [K | (-fx * baseline, 0, 0)]`` (KITTI convention: baseline = (P02[0,3] - P03[0,3]) / fx);
        P_rect_03 is written with the sequence's baseline even without stereo images.
      * ``drive/image_02/data/%010d.png`` (and ``image_03`` with stereo), ``image_02/timestamps.txt`` at 10 Hz,
      * ``drive/gt_depth/%010d.npy`` — exact z-depth (float32 HxW metres) of the left camera,
      * ``drive/poses.txt`` — one camera->world pose per line, 12 numbers (3x4 row-major, KITTI odometry format).
    """
    day = Path(root) / date
    drive_dir = day / drive
    cams = [("image_02", seq.images)] + ([("image_03", seq.right_images)] if seq.right_images else [])
    for cam, images in cams:
        (drive_dir / cam / "data").mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            path = drive_dir / cam / "data" / f"{i:010d}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
                raise OSError(f"write_kitti_layout: could not write {path}")
        start = datetime(2011, 9, 26, 13, 0, 0)
        stamps = [(start + timedelta(seconds=0.1 * i)).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
                  for i in range(len(images))]
        (drive_dir / cam / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    (drive_dir / "gt_depth").mkdir(exist_ok=True)
    for i, dep in enumerate(seq.depths):
        np.save(drive_dir / "gt_depth" / f"{i:010d}.npy", dep.astype(np.float32))
    (drive_dir / "poses.txt").write_text("".join(_fmt(T[:3, :4]) + "\n" for T in seq.poses))

    K = seq.K
    P2 = np.hstack([K, np.zeros((3, 1))])
    P3 = P2.copy()
    P3[0, 3] = -K[0, 0] * seq.baseline
    size = _fmt([seq.width, seq.height])
    lines = [
        "calib_time: synthetic (md2_ros.synthetic)",
        f"S_rect_00: {size}", f"R_rect_00: {_fmt(np.eye(3))}", f"P_rect_00: {_fmt(P2)}",
        f"S_rect_02: {size}", f"R_rect_02: {_fmt(np.eye(3))}", f"P_rect_02: {_fmt(P2)}",
        f"S_rect_03: {size}", f"R_rect_03: {_fmt(np.eye(3))}", f"P_rect_03: {_fmt(P3)}",
    ]
    (day / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    return drive_dir


