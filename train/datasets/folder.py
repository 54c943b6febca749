"""An ordered folder of images + a YAML intrinsics file: the simplest custom-data path.

Frames are the image files of one folder (PNG, JPEG, BMP, TIFF, WebP) sorted in natural order
(``img2.png`` before ``img10.png``), taken to be consecutive frames of one camera. Target ``i`` uses
frames ``i + offset * stride``; targets whose neighbours fall outside the folder are skipped and counted.
All images must come from the same camera at the same size (they are resized to the training size;
the intrinsics are normalised by the size they were given for). An image of another size is an error
naming the file, raised when it is loaded (the intrinsics would be wrong for it, whether it was cropped
or scaled): resize or crop the folder consistently first.

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
from md2_ros.io.images import read_image_file

from md2_ros.io.intrinsics import load_intrinsics_file, normalise_intrinsics

from .base import RawSample, SequenceDataset, resize_rgb

__all__ = ["ImageFolderDataset", "load_intrinsics_yaml", "IMAGE_EXTENSIONS", "natural_key"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers numerically: ``a2`` < ``a10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_intrinsics_yaml(path: str | os.PathLike, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """An intrinsics YAML (read by `md2_ros.io.intrinsics.load_intrinsics_file`) -> 4x4 float64 normalised K.

    image_size: (width, height) the pixel values refer to when the file does not say.
    """
    K, size = load_intrinsics_file(path)
    size = size or image_size
    if size is None:
        raise ValueError(f"{path}: pixel intrinsics need width and height (or normalised: true)")
    return normalise_intrinsics(K, *size)


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
        self.image_shape = first.shape[:2]
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
        images = {f: self._read(self.files[i + f * self.stride]) for f in self.frame_ids}
        return RawSample(images, self.K)

    def _read(self, path: Path) -> np.ndarray:
        image = read_image_file(path)
        if image.shape[:2] != self.image_shape:
            (h, w), (h0, w0) = image.shape[:2], self.image_shape
            raise ValueError(f"{path}: image is {w}x{h} but {self.files[0].name} is {w0}x{h0}; the images of a "
                             "folder dataset must all have the size the intrinsics refer to")
        return resize_rgb(image, self.width, self.height)
