"""Shared sample building: every dataset yields the same dict of tensors (Monodepth2 layout).

A dataset subclasses `SequenceDataset` and implements ``__len__`` and ``load(index) -> RawSample``:
the frames of one sample already decoded and resized to the training size (uint8 RGB), plus the
normalised intrinsics. `SequenceDataset.__getitem__` then draws the augmentation (only when
``is_train``) and calls `build_sample`, so decoding, resizing and augmentation all run inside
DataLoader workers.

Sample contract (``S = num_scales``, ``h_s = height >> s``, ``w_s = width >> s``):

======================  ===============================  ===========================================
key                     value                            notes
======================  ===============================  ===========================================
("color", f, s)         float32 3 x h_s x w_s in [0, 1]  f in frame_ids (ints, and "s" = stereo partner)
("color_aug", f, s)     float32 3 x h_s x w_s in [0, 1]  after colour jitter (same tensor if none)
("K", s), ("inv_K", s)  float32 4 x 4                    pixels of scale s; K = normalised K x (w_s, h_s)
("odom_dist", f)        float32 scalar                   metres travelled between the target and source f
                                                         (only with odometry attached; NaN = unknown)
"stereo_T"              float32 4 x 4                    only when "s" in frame_ids, see below
"index"                 int                              the dataset index
======================  ===============================  ===========================================

Scale 0 is the frame resized once to ``width x height`` with `cv2.INTER_AREA`; scale s is resized
from scale 0 (an exact 2^s x 2^s box average). All loaders share this path, so a KITTI frame and the
same frame read from a bag give identical tensors.

``stereo_T`` is the rigid transform from the *target* camera (frame 0) to the stereo partner ("s"),
as the trainer uses it (``X_partner = stereo_T @ X_target``): identity rotation and
``T[0, 3] = -B`` when the target is the left camera, ``+B`` when it is the right one, with ``B`` the
baseline in metres (a point is B further left as seen from the camera B to its right). A horizontal
flip mirrors x, so it negates ``T[0, 3]`` (the two cameras swap sides).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Sequence

import cv2
import numpy as np
import torch

from md2_ros.core.geometry import scale_intrinsics  # normalised -> pixels of one scale
from md2_ros.io.intrinsics import normalise_intrinsics  # noqa: F401  (pixels -> normalised, for the loaders)

from .augment import ColorJitterParams, apply_color_jitter, flip_intrinsics, sample_color_jitter, sample_flip

__all__ = ["RawSample", "SequenceDataset", "build_sample", "resize_rgb", "check_frame_ids", "worker_init_fn"]

FrameId = Hashable  # int offsets and the string "s"


@dataclass
class RawSample:
    """What a dataset's ``load`` returns.

    images: {frame id: H x W x 3 uint8 RGB at the training size (height x width)}.
    K: 4 x 4 float normalised intrinsics (first row / image width, second row / image height).
    side: "l" or "r" (which camera the target is; only matters for stereo).
    baseline: stereo baseline in metres (None if the dataset has no stereo).
    """

    images: dict
    K: np.ndarray
    side: str = "l"
    baseline: float | None = None
    extra: dict = field(default_factory=dict)


def check_frame_ids(frame_ids: Sequence) -> tuple:
    """Validate frame ids: 0 first, other ints or "s"; no duplicates. Returns them as a tuple."""
    frame_ids = tuple(frame_ids)
    if not frame_ids or frame_ids[0] != 0 or isinstance(frame_ids[0], bool):
        raise ValueError(f"frame_ids must start with 0 (the target), got {frame_ids!r}")
    for f in frame_ids:
        if not (f == "s" or (isinstance(f, int) and not isinstance(f, bool))):
            raise ValueError(f"frame id {f!r} is neither an int offset nor 's' (stereo partner)")
    if len(set(frame_ids)) != len(frame_ids):
        raise ValueError(f"duplicate frame ids in {frame_ids!r}")
    return frame_ids


def resize_rgb(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize H x W x 3 uint8 to height x width with area averaging (antialiased); no-op if same size."""
    if image.shape[0] == height and image.shape[1] == width:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def build_sample(images: dict, K_norm: np.ndarray, num_scales: int, index: int, *, side: str = "l",
                 baseline: float | None = None, flip: bool = False,
                 jitter: ColorJitterParams | None = None) -> dict:
    """Build the sample dict (see module docstring) from training-size uint8 frames.

    images: {frame id: H x W x 3 uint8}, all the same size, H and W divisible by 2**(num_scales-1).
    flip: mirror every frame horizontally (principal point mirrored, stereo_T negated).
    jitter: one set of colour-jitter parameters applied to every frame and scale (None: no jitter).
    """
    fids = list(images)
    height, width = images[fids[0]].shape[:2]
    sample: dict = {"index": int(index)}
    pyramids = {}
    for f in fids:
        img = images[f]
        if img.shape != (height, width, 3) or img.dtype != np.uint8:
            raise ValueError(f"frame {f!r}: expected {height}x{width}x3 uint8, got {img.shape} {img.dtype}")
        if flip:
            img = img[:, ::-1]
        levels = [np.ascontiguousarray(img)]
        for s in range(1, num_scales):
            levels.append(resize_rgb(levels[0], width >> s, height >> s))
        pyramids[f] = levels
    for s in range(num_scales):
        stack = torch.stack([_to_tensor(pyramids[f][s]) for f in fids])  # F x 3 x h x w
        aug = apply_color_jitter(stack, jitter) if jitter is not None else stack
        for i, f in enumerate(fids):
            sample[("color", f, s)] = stack[i]
            sample[("color_aug", f, s)] = aug[i]
        w_s, h_s = width >> s, height >> s
        K = scale_intrinsics(K_norm, w_s, h_s)
        if flip:
            K = flip_intrinsics(K, w_s)
        sample[("K", s)] = torch.from_numpy(K.astype(np.float32))
        sample[("inv_K", s)] = torch.from_numpy(np.linalg.inv(K).astype(np.float32))
    if "s" in images:
        if baseline is None:
            raise ValueError("stereo frame 's' requested but the dataset has no baseline")
        T = np.eye(4, dtype=np.float32)
        side_sign = -1.0 if side == "l" else 1.0
        T[0, 3] = side_sign * (-1.0 if flip else 1.0) * float(baseline)
        sample["stereo_T"] = torch.from_numpy(T)
    return sample


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one torch thread per worker (the workers are the parallelism).

    It deliberately does not call ``cv2.setNumThreads``: in a *forked* worker whose parent already used
    OpenCV's thread pool that call can deadlock. To limit OpenCV's threads, call ``cv2.setNumThreads(1)``
    in the main process before creating the DataLoader (the workers inherit it).
    """
    torch.set_num_threads(1)


class SequenceDataset(torch.utils.data.Dataset):
    """Base class: validates the common arguments, draws augmentation, builds the sample.

    Subclasses implement ``__len__`` and ``load(index) -> RawSample``. Augmentation (only when
    ``is_train``): colour jitter with p=0.5 and horizontal flip with p=0.5, drawn from torch's RNG
    (so DataLoader worker seeding makes it reproducible), one draw per sample for all its frames.
    """

    def __init__(self, frame_ids=(0, -1, 1), height: int = 192, width: int = 640, num_scales: int = 4,
                 is_train: bool = True):
        self.frame_ids = check_frame_ids(frame_ids)
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        div = 2 ** (num_scales - 1)
        if height <= 0 or width <= 0 or height % div or width % div:
            raise ValueError(f"height and width must be positive multiples of {div} for {num_scales} scales, "
                             f"got {width}x{height}")
        self.height, self.width, self.num_scales = int(height), int(width), int(num_scales)
        self.is_train = bool(is_train)
        self.skipped: dict[str, int] = {}
        self.odometry: dict | None = None   # {frame id: (len,) float32 metres travelled from the target, NaN = unknown}

    @property
    def int_frame_ids(self) -> list[int]:
        return [f for f in self.frame_ids if f != "s"]

    def _skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def load(self, index: int) -> RawSample:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample_frames(self, index: int) -> tuple[Hashable, float, frozenset]:
        """(sequence, position of the target in it, keys of every frame the sample reads), for splitting off
        validation samples that share no image with training ones (see ``train/validation.py``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be split by data.val_fraction; "
                                  "use data.val_path")

    def ground_truth(self, index: int) -> tuple[np.ndarray, str] | None:
        """(H x W depth in metres of the target frame, 0 = no measurement; the evaluation crop), or None."""
        return None

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {type(self).__name__} of length {len(self)}")
        raw = self.load(index)
        flip, jitter = False, None
        if self.is_train:
            jitter = sample_color_jitter()
            flip = sample_flip()
        sample = build_sample(raw.images, raw.K, self.num_scales, index, side=raw.side, baseline=raw.baseline,
                              flip=flip, jitter=jitter)
        for f, dist in (self.odometry or {}).items():   # a flip does not change the distance travelled
            sample[("odom_dist", f)] = torch.tensor(float(dist[index]), dtype=torch.float32)
        return sample
