"""CameraInfo checks, matching to an image, and scaling to the depth image size.

Rules (documented in the README):

* A CameraInfo is usable when K has finite fx, fy > 0, its size is non-zero, it has
  no ROI (or a full-image ROI). ``binning_x/y`` > 1 are applied (size and K divided).
* It matches an image when the frame_id is identical and the size is equal, or the
  image is a resize of the calibrated size with the same aspect ratio within
  ``ASPECT_TOLERANCE`` (e.g. a decimated stream with a full-resolution CameraInfo):
  K and P are then scaled by the width and height ratios.
* The cloud uses the rectified projection P[:, :3] when P is set (fx > 0), else K:
  that is the matrix for the rectified image a depth network normally sees.
* Scaling to another size multiplies the first row by sx and the second by sy
  (the image_proc resize convention, same as ``core.geometry.scale_intrinsics``).
"""
from __future__ import annotations

import copy

import numpy as np
from sensor_msgs.msg import CameraInfo

from .conversions import ConversionError, check_size

ASPECT_TOLERANCE = 0.01


def _scale_rows(m: np.ndarray, sx: float, sy: float) -> np.ndarray:
    m = np.array(m, dtype=np.float64, copy=True)
    m[0] *= sx
    m[1] *= sy
    return m


def info_size(info: CameraInfo) -> tuple[int, int]:
    """Effective (width, height) of a CameraInfo after binning."""
    bx, by = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    return int(info.width) // bx, int(info.height) // by


def check_camera_info(info: CameraInfo) -> None:
    """Raise ConversionError naming the problem if ``info`` cannot be used."""
    K = np.asarray(info.k, dtype=np.float64)
    if K.shape != (9,) or not np.isfinite(K).all():
        raise ConversionError("CameraInfo K is not 9 finite numbers")
    if not (K[0] > 0 and K[4] > 0):
        raise ConversionError(f"CameraInfo K has fx={K[0]}, fy={K[4]} (K all zero = uncalibrated camera)")
    w, h = info_size(info)
    check_size(w, h, "CameraInfo")
    roi = info.roi
    if int(roi.width) or int(roi.height):
        roi_box = (int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height))
        if roi_box != (0, 0, int(info.width), int(info.height)):
            raise ConversionError("CameraInfo with a region of interest is not supported")
    P = np.asarray(info.p, dtype=np.float64)
    if P.shape != (12,) or not np.isfinite(P).all():
        raise ConversionError("CameraInfo P is not 12 finite numbers")


def _binned(info: CameraInfo) -> tuple[np.ndarray, np.ndarray]:
    bx, by = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    K = _scale_rows(np.reshape(info.k, (3, 3)), 1.0 / bx, 1.0 / by)
    P = _scale_rows(np.reshape(info.p, (3, 4)), 1.0 / bx, 1.0 / by)
    return K, P


def match_scale(info: CameraInfo, frame_id: str, width: int, height: int) -> tuple[float, float]:
    """(sx, sy) mapping ``info`` pixels to a ``width``×``height`` image with ``frame_id``.

    Raises ConversionError when the CameraInfo is unusable or does not describe that image.
    """
    check_camera_info(info)
    if info.header.frame_id != frame_id:
        raise ConversionError(f"CameraInfo frame_id {info.header.frame_id!r} != image frame_id {frame_id!r}")
    w, h = info_size(info)
    if (w, h) == (width, height):
        return 1.0, 1.0
    sx, sy = width / w, height / h
    if abs(sx - sy) > ASPECT_TOLERANCE * max(sx, sy):
        raise ConversionError(f"CameraInfo size {w}x{h} does not match image {width}x{height} "
                              "(not a same-aspect resize)")
    return sx, sy


def projection_matrix(info: CameraInfo, sx: float = 1.0, sy: float = 1.0) -> np.ndarray:
    """3×3 pixel intrinsics for the cloud: P[:, :3] if P is set, else K; scaled by (sx, sy)."""
    K, P = _binned(info)
    M = P[:, :3] if P[0, 0] > 0 and P[1, 1] > 0 else K
    return _scale_rows(M, sx, sy)


def scaled_camera_info(info: CameraInfo, header, sx: float, sy: float, width: int, height: int) -> CameraInfo:
    """Copy of ``info`` for a ``width``×``height`` image: K and P scaled, binning/ROI cleared,
    D and R unchanged, ``header`` used as given (the depth image's header)."""
    K, P = _binned(info)
    out = CameraInfo()
    out.header = header
    out.width, out.height = int(width), int(height)
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = copy.copy(info.r)
    out.k = _scale_rows(K, sx, sy).reshape(-1)
    out.p = _scale_rows(P, sx, sy).reshape(-1)
    return out


def camera_info_from_kitti(P_rect: np.ndarray, width: int, height: int, frame_id: str = "camera",
                           sx: float = 1.0, sy: float = 1.0) -> CameraInfo:
    """CameraInfo for a rectified KITTI camera from its 3×4 ``P_rect_0x`` (scaled by sx, sy).

    K = P[:, :3]; D = 0 (rectified), R = I. Used by the tests and the benchmark.
    """
    P = _scale_rows(np.asarray(P_rect, dtype=np.float64).reshape(3, 4), sx, sy)
    info = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob")
    info.header.frame_id = frame_id
    info.d = [0.0] * 5
    info.k = P[:, :3].reshape(-1)
    info.r = np.eye(3).reshape(-1)
    info.p = P.reshape(-1)
    return info


