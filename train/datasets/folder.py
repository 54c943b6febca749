"""An ordered folder of images + a YAML intrinsics file: the simplest custom-data path.

Frames are the image files of one folder (PNG, JPEG, BMP, TIFF, WebP) sorted in natural order
(``img2.png`` before ``img10.png``), taken to be consecutive frames of one camera. Target ``i`` uses
frames ``i + offset * stride``; targets whose neighbours fall outside the folder are skipped and counted.
All images are assumed to come from the same camera at the same size (they are resized to the
training size; the intrinsics are normalised by the size they were given for).

Intrinsics YAML, either of:

* plain: ``fx, fy, cx, cy`` in pixels plus ``width, height`` (the image size they refer to; if absent,
  the size of the first image is used), or ``fx, fy, cx, cy`` as fractions of the size with
  ``normalised: true`` (Monodepth2's KITTI K is ``fx: 0.58, fy: 1.92, cx: 0.5, cy: 0.5``);
* a ROS ``camera_calibration`` file (``image_width``, ``image_height``, ``camera_matrix.data``,
  ``distortion_model``, ``distortion_coefficients.data``).

The images must be undistorted: non-zero distortion coefficients raise an error (undistort first, e.g.
with ``cv2.undistort``), because the photometric loss assumes a pinhole camera.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from md2_ros.depth_io import read_yaml_mapping

from md2_ros.io.images import read_image_file

from .base import RawSample, SequenceDataset, normalise_intrinsics, resize_rgb

__all__ = ["ImageFolderDataset", "load_intrinsics_yaml", "IMAGE_EXTENSIONS", "natural_key"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DISTORTION_TOLERANCE = 1e-5


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically: ``a2`` < ``a10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _num(doc: dict, key: str, path) -> float:
    if key not in doc:
        raise KeyError(f"{path}: missing '{key}' (need fx, fy, cx, cy; see train/datasets/folder.py)")
    try:
        return float(doc[key])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{key}' is not a number: {doc[key]!r}") from None


def load_intrinsics_yaml(path: str | os.PathLike, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an intrinsics YAML (see module docstring) -> 4x4 float64 normalised K.

    image_size: (width, height) the pixel values refer to when the file does not say (plain format).
    """
    path = Path(path)
    doc = read_yaml_mapping(path, "intrinsics file", "fx, fy, cx, cy")
    if "camera_matrix" in doc:  # ROS camera_calibration format
        data = np.asarray(doc["camera_matrix"].get("data", []), dtype=np.float64)
        if data.size != 9:
            raise ValueError(f"{path}: camera_matrix.data must have 9 numbers, has {data.size}")
        dist = np.asarray((doc.get("distortion_coefficients") or {}).get("data", []) or [], dtype=np.float64)
        if dist.size and np.abs(dist).max() > DISTORTION_TOLERANCE:
            raise ValueError(f"{path}: distortion coefficients {dist.tolist()} are not zero; undistort the "
                             "images first (cv2.undistort) and give the new camera matrix with zero distortion")
        size = (int(doc["image_width"]), int(doc["image_height"])) if "image_width" in doc else image_size
        if size is None:
            raise ValueError(f"{path}: no image_width/image_height and no image to take the size from")
        return normalise_intrinsics(data.reshape(3, 3), *size)
    fx, fy, cx, cy = (_num(doc, k, path) for k in ("fx", "fy", "cx", "cy"))
    if doc.get("normalised") or doc.get("normalized"):
        K = np.eye(4)
        K[0, 0], K[1, 1], K[0, 2], K[1, 2] = fx, fy, cx, cy
        return K
    if "width" in doc or "height" in doc:
        size = (int(_num(doc, "width", path)), int(_num(doc, "height", path)))
    elif image_size is not None:
        size = image_size
    else:
        raise ValueError(f"{path}: pixel intrinsics need width and height (or normalised: true)")
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{path}: fx and fy must be positive, got {fx}, {fy}")
    if fx < 4 and fy < 4 and cx <= 1 and cy <= 1:
        raise ValueError(f"{path}: fx={fx} fy={fy} cx={cx} cy={cy} look normalised; add 'normalised: true'")
    return normalise_intrinsics(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), *size)


class ImageFolderDataset(SequenceDataset):
    """Consecutive frames from one folder of images.

    Args:
        folder: the image folder (non-recursive).
        intrinsics_yaml: intrinsics file; default ``<folder>/intrinsics.yaml``.
        frame_ids, height, width, num_scales, is_train: see `SequenceDataset` (no "s": mono only).
        stride: frame id ``k`` is the image ``k * stride`` files away (use >1 for high frame rates).
    Attributes: ``files`` (sorted paths), ``targets`` (indices into files), ``K`` (normalised 4x4), ``skipped``.
    """

    def __init__(self, folder, intrinsics_yaml=None, frame_ids=(0, -1, 1), height=192, width=640, num_scales=4,
                 is_train=True, *, stride: int = 1):
        super().__init__(frame_ids, height, width, num_scales, is_train)
        if "s" in self.frame_ids:
            raise ValueError("ImageFolderDataset is monocular: remove 's' from frame_ids")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.folder}")
        self.files = sorted((p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                            key=lambda p: natural_key(p.name))
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.folder}")
        yaml_path = Path(intrinsics_yaml) if intrinsics_yaml is not None else self.folder / "intrinsics.yaml"
        first = read_image_file(self.files[0])
        self.K = load_intrinsics_yaml(yaml_path, image_size=(first.shape[1], first.shape[0]))
        self.stride = int(stride)
        offsets = [f * self.stride for f in self.int_frame_ids]
        n = len(self.files)
        self.targets = [i for i in range(n) if all(0 <= i + o < n for o in offsets)]
        if len(self.targets) < n:
            self._skip("missing neighbour frame", n - len(self.targets))
        if not self.targets:
            raise ValueError(f"{self.folder}: {n} images are too few for frame_ids {self.frame_ids} "
                             f"with stride {self.stride}")

    def __len__(self) -> int:
        return len(self.targets)

    def sample_frames(self, index: int) -> tuple:
        i = self.targets[index]
        return str(self.folder), i, frozenset(i + f * self.stride for f in self.int_frame_ids)

    def load(self, index: int) -> RawSample:
        i = self.targets[index]
        images = {f: resize_rgb(read_image_file(self.files[i + f * self.stride]), self.width, self.height)
                  for f in self.frame_ids}
        return RawSample(images, self.K)
