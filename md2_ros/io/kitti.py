"""KITTI on disk: calibration files, split files, drive folders, timestamps. The one KITTI reader for
training, evaluation, the synthetic scene, the node's tests and the benches.

KITTI raw keeps one calibration per recording day beside the drives::

    <root>/<date>/calib_cam_to_cam.txt    S_rect_0x, R_rect_00, P_rect_0x (x = 0..3)
    <root>/<date>/calib_velo_to_cam.txt   R (3x3), T (3) : velodyne -> camera 0 (unrectified)
    <root>/<date>/<drive>_sync/image_0x/data/0000000000.png, image_0x/timestamps.txt

Every calibration line is ``key: numbers`` (``calib_time: <date>`` lines are not numbers and are skipped).
KITTI odometry keeps one ``calib.txt`` per sequence with ``P0..P3`` and ``Tr``; `load_cam_intrinsics`
accepts that layout too.

Conventions: ``P_rect_0x`` (3x4) projects points in the *rectified camera-0* frame to pixels of the
rectified image of camera x; ``P[0, 3] = fx * t_x`` where ``t_x`` is camera x's offset from camera 0
along the baseline (metres). Camera 2 is the left colour camera, camera 3 the right one.

Split files list one target frame per line: ``<date>/<drive>_sync <frame> [l|r]`` (side defaults to l).
"""
from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["read_calib_file", "load_cam_intrinsics", "load_rect_rotation", "load_velo_to_cam", "load_image_size",
           "stereo_baseline", "velo_to_image", "parse_split_line", "read_split_file", "find_drives",
           "read_timestamps", "SIDE_TO_CAM"]

SIDE_TO_CAM = {"l": 2, "r": 3}


def read_calib_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Parse a KITTI calibration file into ``{key: float64 1-D array}``.

    Lines whose values are not all numbers (``calib_time: 09-Jan-2012 ...``) are skipped.
    Raises FileNotFoundError naming the file if it is missing, ValueError naming file and line
    if a line has no ``:``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI calibration file not found: {path}")
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if ":" not in line:
            raise ValueError(f"{path}:{lineno}: expected 'key: values', got {line[:60]!r}")
        key, value = line.split(":", 1)
        try:
            out[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. calib_time
    return out


def _cam_to_cam_file(calib_dir: str | os.PathLike) -> Path:
    calib_dir = Path(calib_dir)
    return calib_dir if calib_dir.is_file() else calib_dir / "calib_cam_to_cam.txt"


def _get(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib:
        raise KeyError(f"{path}: no '{key}' entry (keys: {sorted(calib)[:12]}...)")
    value = calib[key]
    if value.size != size:
        raise ValueError(f"{path}: '{key}' has {value.size} numbers, expected {size}")
    return value


def load_cam_intrinsics(calib_dir: str | os.PathLike, cam: int = 2) -> np.ndarray:
    """Rectified projection matrix of camera ``cam`` (0..3): 3x4 float64, pixels of the raw image size.

    ``calib_dir`` is the date folder holding ``calib_cam_to_cam.txt`` (KITTI raw; key ``P_rect_0{cam}``),
    that file itself, or a KITTI-odometry sequence folder holding ``calib.txt`` (key ``P{cam}``).
    """
    if cam not in (0, 1, 2, 3):
        raise ValueError(f"KITTI camera index must be 0..3, got {cam}")
    calib_dir = Path(calib_dir)
    odom = calib_dir / "calib.txt"
    if calib_dir.is_dir() and not (calib_dir / "calib_cam_to_cam.txt").exists() and odom.exists():
        return _get(read_calib_file(odom), f"P{cam}", 12, odom).reshape(3, 4)
    path = _cam_to_cam_file(calib_dir)
    return _get(read_calib_file(path), f"P_rect_0{cam}", 12, path).reshape(3, 4)


def load_image_size(calib_dir: str | os.PathLike, cam: int = 2) -> tuple[int, int]:
    """``(width, height)`` of the rectified images of camera ``cam`` (``S_rect_0{cam}``), KITTI raw only."""
    path = _cam_to_cam_file(calib_dir)
    w, h = _get(read_calib_file(path), f"S_rect_0{cam}", 2, path)
    return int(round(w)), int(round(h))


def load_rect_rotation(calib_dir: str | os.PathLike) -> np.ndarray:
    """``R_rect_00`` as a 4x4 float64 homogeneous matrix (camera 0 -> rectified camera 0)."""
    path = _cam_to_cam_file(calib_dir)
    R = np.eye(4)
    R[:3, :3] = _get(read_calib_file(path), "R_rect_00", 9, path).reshape(3, 3)
    return R


def load_velo_to_cam(calib_dir: str | os.PathLike) -> np.ndarray:
    """Velodyne -> (unrectified) camera 0 as a 4x4 float64 rigid transform from ``calib_velo_to_cam.txt``."""
    calib_dir = Path(calib_dir)
    path = calib_dir if calib_dir.is_file() else calib_dir / "calib_velo_to_cam.txt"
    calib = read_calib_file(path)
    T = np.eye(4)
    T[:3, :3] = _get(calib, "R", 9, path).reshape(3, 3)
    T[:3, 3] = _get(calib, "T", 3, path)
    return T


def velo_to_image(calib_dir: str | os.PathLike, cam: int = 2) -> np.ndarray:
    """3x4 matrix ``P_rect_0{cam} @ R_rect_00 @ T_velo_to_cam`` mapping homogeneous velodyne points to
    homogeneous pixels ``(u*z, v*z, z)`` of camera ``cam``; ``z`` is the depth along the optical axis
    of camera ``cam`` up to P's small z translation (KITTI's own convention, as used for Eigen GT)."""
    return load_cam_intrinsics(calib_dir, cam) @ load_rect_rotation(calib_dir) @ load_velo_to_cam(calib_dir)


def stereo_baseline(calib_dir: str | os.PathLike, left: int = 2, right: int = 3) -> float:
    """Distance in metres between the rectified cameras ``left`` and ``right`` (about 0.54 m for 2/3):
    ``(P_left[0,3] - P_right[0,3]) / fx``. Positive when ``right`` really is right of ``left``."""
    P_l = load_cam_intrinsics(calib_dir, left)
    P_r = load_cam_intrinsics(calib_dir, right)
    return float((P_l[0, 3] - P_r[0, 3]) / P_l[0, 0])


# ----------------------------------------------------------------------------------------- splits
def parse_split_line(line: str) -> tuple[str, int, str]:
    """``"<folder> <frame> [l|r]"`` -> (folder, frame, side); side defaults to "l"; ValueError otherwise."""
    parts = line.split()
    if len(parts) not in (2, 3) or not re.fullmatch(r"-?\d+", parts[1]):
        raise ValueError(f"bad split line {line!r}: expected '<folder> <frame index> [l|r]'")
    side = parts[2] if len(parts) == 3 else "l"
    if side not in SIDE_TO_CAM:
        raise ValueError(f"bad split line {line!r}: side must be 'l' or 'r'")
    return parts[0], int(parts[1]), side


def read_split_file(path: str | os.PathLike) -> list[tuple[str, int, str]]:
    """THE split reader: a split file (``.txt`` or ``.txt.gz``) -> [(folder, frame, side)] in file order.

    FileNotFoundError naming the file if missing; ValueError naming file and line for a bad line or an
    empty split."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    entries = []
    with opener(path, "rt") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    entries.append(parse_split_line(line.strip()))
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: {exc}") from None
    if not entries:
        raise ValueError(f"split file {path} lists no frames")
    return entries


# ----------------------------------------------------------------------------------------- drives
def _is_drive(path: Path) -> bool:
    return any(p.is_dir() for p in path.glob("image_0[0-3]"))


def find_drives(path: str | os.PathLike) -> list[Path]:
    """THE drive discovery: ``path`` itself if it is a drive (has ``image_0x``), else the drives of a date
    folder (``<date>/<drive>``), else those of a KITTI root (``<root>/<date>/<drive>``); sorted.
    FileNotFoundError naming ``path`` when there are none."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"KITTI folder not found: {path}")
    if _is_drive(path):
        return [path]
    for pattern in ("*", "*/*"):
        drives = sorted(p for p in path.glob(pattern) if p.is_dir() and _is_drive(p))
        if drives:
            return drives
    raise FileNotFoundError(f"no KITTI drive folders under {path} (a drive has image_02/ or image_03/; "
                            "expected <root>/<date>/<drive>_sync)")


def read_timestamps(path: str | os.PathLike) -> list[int]:
    """KITTI ``timestamps.txt`` (``2011-09-26 13:02:25.964389445`` per line) -> ns since the epoch (as UTC)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        day_time, _, frac = line.strip().partition(".")
        secs = dt.datetime.strptime(day_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp()
        out.append(int(secs) * 1_000_000_000 + int((frac + "000000000")[:9]))
    return out
