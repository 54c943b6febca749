"""KITTI raw (and KITTI odometry) datasets driven by split files.

KITTI raw layout (``data_path`` is the folder holding the date folders)::

    <data_path>/<date>/calib_cam_to_cam.txt
    <data_path>/<date>/<date>_drive_<n>_sync/image_02/data/0000000000.png   (left, "l")
    <data_path>/<date>/<date>_drive_<n>_sync/image_03/data/0000000000.png   (right, "r")

Split files list one target frame per line: ``<date>/<drive>_sync <frame> <l|r>``. Images may be PNG
or JPEG (detected per frame by listing each image folder once; ``img_ext`` forces one). Intrinsics come
from the calibration of each date: ``P_rect_02`` / ``P_rect_03`` normalised by ``S_rect_0x`` (the raw
image size), then scaled to every training scale — nothing is hard-coded. The stereo baseline
(about 0.54 m) comes from ``P_rect_02`` and ``P_rect_03``.

Frames whose target, neighbours (``frame + offset`` for every int frame id) or stereo partner (for
"s") are missing are skipped when the dataset is built and counted in ``.skipped`` (reason -> count).
A missing calibration file for a drive that is present is an error (a broken set-up, not a gap).
A truncated or corrupt image raises `ImageDecodeError` naming the file when it is loaded (we do not
silently train on a different frame); run ``python -c "..."``-style checks or re-extract the archive.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from md2_ros.io import kitti as kcalib
from md2_ros.io.images import read_image_file
from md2_ros.io.kitti import SIDE_TO_CAM as _SIDE_TO_CAM
from md2_ros.io.intrinsics import normalise_intrinsics
from md2_ros.io.kitti import parse_split_line, read_split_file

from .base import RawSample, SequenceDataset, resize_rgb

__all__ = ["SPLITS_DIR", "KNOWN_SPLITS", "split_file", "read_split", "parse_split_line", "KittiRAWDataset",
           "KittiOdomDataset"]

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
KNOWN_SPLITS = ("eigen_zhou", "eigen_full", "odom", "benchmark", "eigen", "eigen_benchmark")
_IMG_EXTS = (".png", ".jpg", ".jpeg")


def split_file(name_or_path: str | os.PathLike, which: str = "train") -> Path:
    """Resolve a split: a shipped name (``eigen_zhou``...), a folder with ``<which>_files.txt``, or a file.

    ``which`` is "train", "val", "test" or any other stem (``test_files_09``). Gzipped copies
    (``.txt.gz``) are found too. Raises FileNotFoundError naming every path tried.
    """
    stem = which if which.endswith("_files") or which.startswith("test_files") else f"{which}_files"
    p = Path(name_or_path)
    if str(name_or_path) in KNOWN_SPLITS and not p.exists():
        folder = SPLITS_DIR / str(name_or_path)
    elif p.is_file():
        return p
    else:
        folder = p
    tried = [folder / f"{stem}.txt", folder / f"{stem}.txt.gz"]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"split file not found: {tried[0]} (also tried {tried[1].name}; "
                            f"shipped splits: {', '.join(KNOWN_SPLITS)})")


def read_split(name_or_path: str | os.PathLike, which: str = "train") -> list[tuple[str, int, str]]:
    """[(folder, frame, side)] of a split found by `split_file`, read by `md2_ros.io.kitti.read_split_file`."""
    return read_split_file(split_file(name_or_path, which))


class _KittiBase(SequenceDataset):
    """Shared index building for the two KITTI layouts (subclasses define paths and calibration)."""

    frame_digits = 10

    def __init__(self, data_path, filenames, frame_ids=(0, -1, 1), height=192, width=640, num_scales=4,
                 is_train=True, *, img_ext: str | None = None, baseline: float | None = None):
        super().__init__(frame_ids, height, width, num_scales, is_train)
        self.data_path = Path(data_path)
        if not self.data_path.is_dir():
            raise FileNotFoundError(f"KITTI data_path is not a folder: {self.data_path}")
        self.img_ext = None if img_ext is None else "." + img_ext.lstrip(".").lower()
        self._baseline_override = baseline
        self._listing: dict[tuple[str, int], dict[int, str]] = {}
        self._calib: dict[tuple[str, object], object] = {}
        self.samples: list[tuple[str, int, str]] = []
        self._build([parse_split_line(x) if isinstance(x, str) else tuple(x) for x in filenames])

    # -- layout hooks -------------------------------------------------------------------------
    def image_dir(self, folder: str, cam: int) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError

    def calib_dir(self, folder: str) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError

    def raw_size(self, folder: str, cam: int) -> tuple[int, int]:
        return kcalib.load_image_size(self.calib_dir(folder), cam)

    # -- index ---------------------------------------------------------------------------------
    def _frames(self, folder: str, cam: int) -> dict[int, str]:
        key = (folder, cam)
        if key not in self._listing:
            found: dict[int, str] = {}
            d = self.image_dir(folder, cam)
            if d.is_dir():
                for entry in os.scandir(d):
                    stem, ext = os.path.splitext(entry.name)
                    ext = ext.lower()
                    if stem.isdigit() and ext in _IMG_EXTS and (self.img_ext in (None, ext)):
                        if int(stem) not in found or ext == ".png":
                            found[int(stem)] = ext
            self._listing[key] = found
        return self._listing[key]

    def _intrinsics(self, folder: str, cam: int) -> np.ndarray:
        """Normalised 4x4 K of camera ``cam`` for ``folder`` (cached per calibration folder)."""
        key = (str(self.calib_dir(folder)), cam)
        if key not in self._calib:
            P = kcalib.load_cam_intrinsics(self.calib_dir(folder), cam)
            self._calib[key] = normalise_intrinsics(P[:3, :3], *self.raw_size(folder, cam))
        return self._calib[key]

    def _baseline(self, folder: str) -> float | None:
        if "s" not in self.frame_ids:
            return None
        if self._baseline_override is not None:
            return float(self._baseline_override)
        key = (str(self.calib_dir(folder)), "baseline")
        if key not in self._calib:
            self._calib[key] = kcalib.stereo_baseline(self.calib_dir(folder))
        return self._calib[key]

    def _build(self, lines) -> None:
        offsets = self.int_frame_ids
        for folder, frame, side in lines:
            cam = _SIDE_TO_CAM[side]
            own = self._frames(folder, cam)
            if not own:
                self._skip("missing drive or camera folder")
                continue
            if frame not in own:
                self._skip("missing target frame")
                continue
            if any(frame + o not in own for o in offsets):
                self._skip("missing neighbour frame")
                continue
            if "s" in self.frame_ids and frame not in self._frames(folder, 5 - cam):
                self._skip("missing stereo partner")
                continue
            self._intrinsics(folder, cam)  # fail early on a broken calibration
            self._baseline(folder)
            self.samples.append((folder, frame, side))
        if not self.samples:
            raise ValueError(f"no usable frames under {self.data_path} (skipped: {self.skipped}); "
                             "check data_path and that the split's drives are extracted there")

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, folder: str, frame: int, cam: int) -> Path:
        ext = self._frames(folder, cam).get(frame, self.img_ext or ".png")
        return self.image_dir(folder, cam) / f"{frame:0{self.frame_digits}d}{ext}"

    def sample_frames(self, index: int) -> tuple:
        """Both cameras' images of one instant count as one frame (a stereo pair is a near-duplicate)."""
        folder, frame, _ = self.samples[index]
        return folder, frame, frozenset(frame + f for f in self.int_frame_ids)

    def load(self, index: int) -> RawSample:
        folder, frame, side = self.samples[index]
        cam = _SIDE_TO_CAM[side]
        images = {}
        for f in self.frame_ids:
            path = self.image_path(folder, frame, 5 - cam) if f == "s" else self.image_path(folder, frame + f, cam)
            images[f] = resize_rgb(read_image_file(path), self.width, self.height)
        return RawSample(images, self._intrinsics(folder, cam), side, self._baseline(folder))


class KittiRAWDataset(_KittiBase):
    """KITTI raw frames listed by a split.

    Args:
        data_path: folder holding the ``<date>/`` folders.
        filenames: split lines ``"<date>/<drive>_sync <frame> <l|r>"`` (e.g. from `read_split`) or tuples.
        frame_ids, height, width, num_scales, is_train: see `SequenceDataset`.
        img_ext: force "png" or "jpg" (default: whichever exists, PNG preferred).
        baseline: stereo baseline in metres overriding the calibration (e.g. 0.1 for the paper's units).
    Attributes: ``samples`` [(folder, frame, side)], ``skipped`` {reason: count}.
    """

    def image_dir(self, folder: str, cam: int) -> Path:
        return self.data_path / folder / f"image_0{cam}" / "data"

    def calib_dir(self, folder: str) -> Path:
        return self.data_path / Path(folder).parent

    def ground_truth(self, index: int) -> tuple[np.ndarray, str] | None:
        """Exact depth (``<drive>/gt_depth/<frame>.npy``, synthetic drives; no crop) or the velodyne scan
        projected into the target camera (Garg crop); None without either."""
        folder, frame, side = self.samples[index]
        drive = self.data_path / folder
        exact = drive / "gt_depth" / f"{frame:010d}.npy"
        if side == "l" and exact.is_file():
            return np.load(exact).astype(np.float32), "none"
        if (drive / "velodyne_points" / "data" / f"{frame:010d}.bin").is_file():
            from ..export_gt_depth import velodyne_depth

            return velodyne_depth(self.data_path, folder, frame, _SIDE_TO_CAM[side]), "garg"
        return None

    @classmethod
    def from_split(cls, data_path, split: str, which: str = "train", **kwargs) -> "KittiRAWDataset":
        """Dataset over a shipped or custom split (see `read_split`)."""
        return cls(data_path, read_split(split, which), **kwargs)

    @classmethod
    def from_folder(cls, drive_dir, cam: int = 2, **kwargs) -> "KittiRAWDataset":
        """Dataset over every frame of one drive folder (``<date>/<drive>_sync``), no split file needed.

        Frames at the ends (whose neighbours do not exist) are skipped and counted as usual.
        """
        drive_dir = Path(drive_dir).resolve()
        if cam not in (2, 3):
            raise ValueError(f"cam must be 2 (left) or 3 (right), got {cam}")
        img_dir = drive_dir / f"image_0{cam}" / "data"
        if not img_dir.is_dir():
            raise FileNotFoundError(f"no image folder {img_dir}")
        frames = sorted({int(p.stem) for p in img_dir.iterdir() if p.stem.isdigit() and p.suffix.lower() in _IMG_EXTS})
        if not frames:
            raise FileNotFoundError(f"no PNG/JPEG frames in {img_dir}")
        folder = f"{drive_dir.parent.name}/{drive_dir.name}"
        side = "l" if cam == 2 else "r"
        return cls(drive_dir.parent.parent, [(folder, f, side) for f in frames], **kwargs)


class KittiOdomDataset(_KittiBase):
    """KITTI odometry sequences (``<data_path>/sequences/<NN>/image_2/000000.png``, ``calib.txt``)
    listed by the ``odom`` split (lines ``<sequence> <frame> <l|r>``). Same arguments as `KittiRAWDataset`."""

    frame_digits = 6

    def image_dir(self, folder: str, cam: int) -> Path:
        return self.data_path / "sequences" / f"{int(folder):02d}" / f"image_{cam}"

    def calib_dir(self, folder: str) -> Path:
        return self.data_path / "sequences" / f"{int(folder):02d}"

    def raw_size(self, folder: str, cam: int) -> tuple[int, int]:
        frames = self._frames(folder, cam)
        first = min(frames)
        h, w = read_image_file(self.image_dir(folder, cam) / f"{first:06d}{frames[first]}").shape[:2]
        return w, h
