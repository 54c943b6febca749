"""Rectification of ``image_raw`` with its CameraInfo (D, K, R, P), the way image_proc does it.

The rectified image is the one described by P (P[:, :3] as camera matrix, no distortion, R = I);
a network sees it and the cloud back-projects through P. OpenCV remap tables are built once per
(calibration, image size) and reused until either changes. A calibration without distortion,
with R = I and P[:, :3] = K is the identity: no remap at all (KITTI, synthetic, image_rect inputs).
"""
from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo

from ..io.intrinsics import has_distortion, info_size, projection_matrix
from .conversions import ConversionError, scaled_camera_info

PINHOLE_MODELS = ("plumb_bob", "rational_polynomial")
FISHEYE_MODELS = ("equidistant",)


def _matrices(info: CameraInfo, sx: float, sy: float, width: int, height: int):
    """(K, D, R, P3) for an image ``width``×``height`` that is an (sx, sy) resize of the calibration."""
    scaled = scaled_camera_info(info, info.header, sx, sy, width, height)
    K = np.reshape(scaled.k, (3, 3))
    D = np.asarray(info.d, dtype=np.float64)
    if not (np.isfinite(D).all() and np.isfinite(np.asarray(info.r, dtype=np.float64)).all()):
        raise ConversionError("CameraInfo D or R has non-finite values")
    R = np.reshape(info.r, (3, 3)) if np.any(info.r) else np.eye(3)
    return K, D, R, projection_matrix(info, sx, sy)


def is_identity(info: CameraInfo) -> bool:
    """True when rectification would not move any pixel (no distortion, R = I, P[:, :3] = K)."""
    K, D, R, P3 = _matrices(info, 1.0, 1.0, *info_size(info))
    return not has_distortion(D) and np.allclose(R, np.eye(3)) and np.allclose(P3, K, rtol=1e-9, atol=1e-9)


def rectified_camera_info(info: CameraInfo, header, sx: float, sy: float, width: int, height: int) -> CameraInfo:
    """CameraInfo that describes the rectified image exactly: K = P[:, :3], D = 0, R = I, P kept (scaled)."""
    out = scaled_camera_info(info, header, sx, sy, width, height)
    P = np.reshape(out.p, (3, 4)).copy()
    if not (P[0, 0] > 0 and P[1, 1] > 0):      # P unset: the rectified camera is K
        P[:, :3], P[:, 3] = np.reshape(out.k, (3, 3)), 0.0
    out.p = P.reshape(-1)
    out.k = P[:, :3].reshape(-1)
    out.d = [0.0] * len(info.d)
    out.r = np.eye(3).reshape(-1)
    out.distortion_model = info.distortion_model or "plumb_bob"
    return out


def build_maps(info: CameraInfo, sx: float, sy: float, width: int, height: int):
    """cv2.remap tables (map1, map2) from the ``width``×``height`` raw image to the rectified one."""
    K, D, R, P3 = _matrices(info, sx, sy, width, height)
    model = info.distortion_model
    if model in PINHOLE_MODELS or (not model and not D.size):
        return cv2.initUndistortRectifyMap(K, D, R, P3, (width, height), cv2.CV_16SC2)
    if model in FISHEYE_MODELS:
        if D.size < 4:
            raise ConversionError(f"equidistant CameraInfo needs 4 distortion coefficients, got {D.size}")
        return cv2.fisheye.initUndistortRectifyMap(K, D[:4], R, P3, (width, height), cv2.CV_16SC2)
    raise ConversionError(f"distortion model {model!r} is not supported (plumb_bob, rational_polynomial, "
                          "equidistant); rectify upstream (image_proc) and set rectify:=false")


class Rectifier:
    """Rectifies images of one camera; remap tables cached per (calibration, size)."""

    def __init__(self):
        self._key = None
        self._maps = None
        self.builds = 0          # how many times tables were built (tests, diagnostics)

    @staticmethod
    def _calibration_key(info: CameraInfo, sx: float, sy: float, width: int, height: int) -> tuple:
        return (info.distortion_model, tuple(info.d), tuple(info.k), tuple(info.r), tuple(info.p),
                int(info.binning_x), int(info.binning_y), round(sx, 9), round(sy, 9), width, height)

    def rectify(self, rgb: np.ndarray, info: CameraInfo, sx: float, sy: float) -> np.ndarray:
        """``rgb`` (H×W×3, raw) -> rectified image of the same size; ``info`` already matched (sx, sy)."""
        if is_identity(info):
            return rgb
        height, width = rgb.shape[:2]
        key = self._calibration_key(info, sx, sy, width, height)
        if key != self._key:
            self._maps = build_maps(info, sx, sy, width, height)
            self._key = key
            self.builds += 1
        return cv2.remap(rgb, self._maps[0], self._maps[1], interpolation=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
