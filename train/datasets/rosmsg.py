"""sensor_msgs (as deserialised by `rosbags`) -> numpy, without ROS.

`decode_image_msg` turns ``sensor_msgs/msg/Image`` (all common encodings: rgb8, bgr8, rgba8, bgra8,
mono8, mono16, rgb16, bgr16, rgba16, bgra16, 8UC1/8UC3/8UC4/16UC1, bayer_{rggb,bggr,gbrg,grbg}8/16,
yuv422 (UYVY), yuv422_yuy2 / yuyv, nv21, nv12) or ``sensor_msgs/msg/CompressedImage`` (JPEG, PNG, ...)
into H x W x 3 uint8 RGB; 16-bit data keeps its 8 most significant bits. `camera_model` reads a
``sensor_msgs/msg/CameraInfo``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from md2_ros.sources import IMAGE_TYPES, INFO_TYPE  # one definition for the CLI and training

from .base import ImageDecodeError, to_rgb8

__all__ = ["IMAGE_TYPES", "INFO_TYPE", "stamp_ns", "decode_image_msg", "CameraModel", "camera_model"]


ZERO_DISTORTION = 1e-5

# encoding -> (channels, dtype, cv2 conversion to RGB or None, source channel order is BGR)
_PLAIN = {
    "rgb8": (3, np.uint8, False), "bgr8": (3, np.uint8, True), "rgba8": (4, np.uint8, False),
    "bgra8": (4, np.uint8, True), "mono8": (1, np.uint8, False), "8uc1": (1, np.uint8, False),
    "8uc3": (3, np.uint8, True), "8uc4": (4, np.uint8, True), "mono16": (1, np.uint16, False),
    "16uc1": (1, np.uint16, False), "rgb16": (3, np.uint16, False), "bgr16": (3, np.uint16, True),
    "rgba16": (4, np.uint16, False), "bgra16": (4, np.uint16, True), "16uc3": (3, np.uint16, True),
}
# ROS Bayer pattern names -> OpenCV codes (OpenCV names the pattern from the second row; as cv_bridge)
_BAYER = {"bayer_rggb": cv2.COLOR_BayerBG2RGB, "bayer_bggr": cv2.COLOR_BayerRG2RGB,
          "bayer_gbrg": cv2.COLOR_BayerGR2RGB, "bayer_grbg": cv2.COLOR_BayerGB2RGB}
_YUV = {"yuv422": (2, cv2.COLOR_YUV2RGB_UYVY), "uyvy": (2, cv2.COLOR_YUV2RGB_UYVY),
        "yuv422_yuy2": (2, cv2.COLOR_YUV2RGB_YUYV), "yuyv": (2, cv2.COLOR_YUV2RGB_YUYV)}


def stamp_ns(header) -> int:
    """Header stamp in integer nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _rows(msg, bytes_per_pixel: int, source: str) -> np.ndarray:
    """Raw Image data as H x (W * bytes_per_pixel) uint8, dropping row padding (``step``)."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    need = w * bytes_per_pixel
    if h == 0 or w == 0:
        raise ImageDecodeError(f"{source}: empty image ({w}x{h})")
    if step < need or data.size < step * (h - 1) + need:
        raise ImageDecodeError(f"{source}: data too short for {w}x{h} {msg.encoding} "
                               f"(step {step}, {data.size} bytes)")
    if data.size < step * h:
        data = np.concatenate([data, np.zeros(step * h - data.size, np.uint8)])
    return data[: step * h].reshape(h, step)[:, :need]


def decode_image_msg(msg, msgtype: str, source: str = "image") -> np.ndarray:
    """Decode an Image or CompressedImage message to H x W x 3 uint8 RGB; `ImageDecodeError` if impossible."""
    if msgtype.endswith("CompressedImage"):
        fmt = str(getattr(msg, "format", "")).lower()
        if "compresseddepth" in fmt:
            raise ImageDecodeError(f"{source}: compressedDepth images are not colour images")
        image = cv2.imdecode(np.asarray(msg.data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ImageDecodeError(f"{source}: cannot decode CompressedImage (format {msg.format!r})")
        return to_rgb8(image, source=source, bgr=True)
    enc = str(msg.encoding).lower()
    h, w = int(msg.height), int(msg.width)
    if enc in _PLAIN:
        ch, dtype, bgr = _PLAIN[enc]
        size = np.dtype(dtype).itemsize
        rows = _rows(msg, ch * size, source)
        if size == 2:
            rows = np.ascontiguousarray(rows).view(">u2" if msg.is_bigendian else "<u2").astype(np.uint16)
        return to_rgb8(np.ascontiguousarray(rows).reshape(h, w, ch), source=source, bgr=bgr)
    for prefix, code in _BAYER.items():
        if enc in (prefix + "8", prefix + "16"):
            size = 2 if enc.endswith("16") else 1
            rows = np.ascontiguousarray(_rows(msg, size, source))
            if size == 2:
                rows = (rows.view(">u2" if msg.is_bigendian else "<u2") >> 8).astype(np.uint8)
            return cv2.cvtColor(rows.reshape(h, w), code)
    if enc in _YUV:
        bpp, code = _YUV[enc]
        return cv2.cvtColor(np.ascontiguousarray(_rows(msg, bpp, source)).reshape(h, w, 2), code)
    if enc in ("nv21", "nv12"):
        if h % 2:
            raise ImageDecodeError(f"{source}: {enc} needs an even height, got {h}")
        step = int(msg.step) or w
        data = np.asarray(msg.data, dtype=np.uint8)
        if data.size < step * h * 3 // 2:
            raise ImageDecodeError(f"{source}: data too short for {w}x{h} {enc}")
        yuv = data[: step * h * 3 // 2].reshape(h * 3 // 2, step)[:, :w]
        return cv2.cvtColor(np.ascontiguousarray(yuv),
                            cv2.COLOR_YUV2RGB_NV21 if enc == "nv21" else cv2.COLOR_YUV2RGB_NV12)
    raise ImageDecodeError(f"{source}: unsupported image encoding {msg.encoding!r} "
                           "(need a colour or mono image, e.g. rgb8, bgr8, mono8, bayer_rggb8, yuv422)")


@dataclass
class CameraModel:
    """Calibration from a CameraInfo message (all pixels of ``width`` x ``height``)."""

    width: int
    height: int
    K: np.ndarray            # 3x3
    P: np.ndarray            # 3x4
    R: np.ndarray            # 3x3
    D: np.ndarray            # distortion coefficients
    distortion_model: str

    @property
    def has_distortion(self) -> bool:
        return bool(self.D.size and np.abs(self.D).max() > ZERO_DISTORTION)

    @property
    def has_P(self) -> bool:
        return bool(self.P[0, 0] > 0 and self.P[1, 1] > 0)

    @property
    def is_rectified(self) -> bool:
        """Zero distortion and identity rectification rotation: images need no remapping."""
        return not self.has_distortion and bool(np.allclose(self.R, np.eye(3), atol=1e-6) or not self.R.any())

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "K": self.K.tolist(), "P": self.P.tolist(),
                "R": self.R.tolist(), "D": self.D.tolist(), "distortion_model": self.distortion_model}


def camera_model(msg, source: str = "camera_info") -> CameraModel:
    """CameraInfo -> `CameraModel`; ValueError naming ``source`` if K is unset."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{source}: CameraInfo K is not set (fx={K[0, 0]}, fy={K[1, 1]}); calibrate the camera")
    return CameraModel(int(msg.width), int(msg.height), K, np.asarray(msg.p, dtype=np.float64).reshape(3, 4),
                       np.asarray(msg.r, dtype=np.float64).reshape(3, 3), np.asarray(msg.d, dtype=np.float64),
                       str(msg.distortion_model))
