"""sensor_msgs <-> numpy without cv_bridge or sensor_msgs_py.

Every function validates its message *before* allocating anything sized by
the message: a header claiming 100000×100000 pixels with 10 bytes of data is
rejected by comparing ``len(data)`` with ``step·height`` (plain Python ints),
never by trying to build the array. All failures raise :class:`ConversionError`
(a ``ValueError``) whose text names the cause; the node catches that one type.

Arrays are H×W (one channel) or H×W×C, native byte order. Colour images for the
network are H×W×3 uint8 **RGB**. Depth is H×W float32 metres, NaN = invalid.
"""
from __future__ import annotations

import array
import copy
import sys

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField

from ..io import clouds
from ..io import depth as depth_pictures
from ..io import images
from ..io.errors import FormatError
from ..io.intrinsics import binned_matrices, scale_intrinsics
from ..io.images import MAX_PIXELS, MAX_SIDE  # noqa: F401  (re-exported for callers)

# encodings of numeric arrays (depth out, tests); camera images are decoded by io.images
# encoding -> (numpy dtype char, channels)
ENCODINGS = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1),
}
_NATIVE_BIG = sys.byteorder == "big"


ConversionError = FormatError  # a message that cannot be converted; io's errors are this type too


# ---------------------------------------------------------------------------
# Image -> numpy
# ---------------------------------------------------------------------------
def bytes_per_pixel(encoding: str) -> int:
    """Bytes per pixel of a supported ``encoding``; ConversionError otherwise."""
    if encoding not in ENCODINGS:
        hint = " (debayer it first, e.g. image_proc)" if encoding.startswith("bayer") else ""
        raise ConversionError(f"unsupported image encoding {encoding!r}{hint}; supported: {sorted(ENCODINGS)}")
    char, channels = ENCODINGS[encoding]
    return int(char[1]) * channels


check_size = images.check_size


def image_to_numpy(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> H×W or H×W×C array (native byte order).

    Handles row padding (``step > width·bpp``) and ``is_bigendian``. The result
    may share memory with ``msg.data``; copy it before writing.
    """
    bpp = bytes_per_pixel(msg.encoding)
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    check_size(width, height)
    if step < width * bpp:
        raise ConversionError(f"step {step} < width·bytes_per_pixel = {width}·{bpp} for {msg.encoding}")
    n = len(msg.data)
    if n != step * height:
        raise ConversionError(f"data length {n} != step·height = {step}·{height} = {step * height}")
    char, channels = ENCODINGS[msg.encoding]
    rows = images.as_bytes(msg.data).reshape(height, step)[:, :width * bpp]
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype(order + char) if char != "u1" else np.dtype(np.uint8)
    arr = np.ascontiguousarray(rows).view(dtype) if step != width * bpp else rows.view(dtype)
    if dtype.byteorder not in ("=", "|") and (dtype.byteorder == ">") != _NATIVE_BIG:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr.reshape(height, width, channels) if channels > 1 else arr.reshape(height, width)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Any Image the io decoder supports -> contiguous H×W×3 uint8 RGB for the network
    (:func:`md2_ros.io.images.decode_image_msg`), raising ConversionError."""
    return images.decode_image_msg(msg, "sensor_msgs/msg/Image")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """CompressedImage (JPEG or PNG) -> H×W×3 uint8 RGB; header size checked before decoding."""
    return images.decode_image_msg(msg, "sensor_msgs/msg/CompressedImage")


# ---------------------------------------------------------------------------
# numpy -> Image
# ---------------------------------------------------------------------------
def _to_array_b(arr: np.ndarray) -> array.array:
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(arr)).cast("B"))
    return out


def numpy_to_image(arr: np.ndarray, encoding: str, header=None) -> Image:
    """H×W or H×W×C array -> sensor_msgs/Image (dense rows, native byte order).

    ``header`` is used as given (not copied): outputs keep the input stamp and frame_id.
    """
    bytes_per_pixel(encoding)
    char, channels = ENCODINGS[encoding]
    arr = np.asarray(arr)
    want = (2 if channels == 1 else 3)
    if arr.ndim != want or (channels > 1 and arr.shape[2] != channels):
        want_shape = "H×W" if channels == 1 else f"H×W×{channels}"
        raise ConversionError(f"{encoding} needs shape {want_shape}, got {arr.shape}")
    if arr.dtype.kind != np.dtype(char).kind or arr.dtype.itemsize != np.dtype(char).itemsize:
        raise ConversionError(f"{encoding} needs dtype {np.dtype(char)}, got {arr.dtype}")
    height, width = arr.shape[:2]
    check_size(width, height)
    arr = arr.astype(np.dtype(char).newbyteorder("="), copy=False)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=_NATIVE_BIG,
                step=width * arr.dtype.itemsize * channels)
    if header is not None:
        msg.header = header
    msg.data = _to_array_b(arr)
    return msg


def depth_to_image(depth: np.ndarray, header=None) -> Image:
    """H×W depth (metres, NaN invalid) -> 32FC1 Image."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ConversionError(f"depth must be H×W, got {depth.shape}")
    return numpy_to_image(depth.astype(np.float32, copy=False), "32FC1", header)


COLORMAPS = depth_pictures.COLORMAPS


def colorize_depth(depth: np.ndarray, colormap: str = "magma") -> np.ndarray:
    """H×W depth -> H×W×3 uint8 **BGR** picture of inverse depth (near = bright), invalid = black.

    Normalised per frame from the smallest disparity to its 95th percentile (robust to a few very
    near pixels); see :func:`md2_ros.io.depth.colorize_depth`.
    """
    try:
        return depth_pictures.colorize_depth(depth, colormap, lo_pct=0.0, hi_pct=95.0)
    except ValueError as e:
        raise ConversionError(str(e)) from None


# ---------------------------------------------------------------------------
# PointCloud2
# ---------------------------------------------------------------------------
def cloud_fields() -> list[PointField]:
    """x, y, z, rgb as FLOAT32 at offsets 0/4/8/12 (rgb = 0x00RRGGBB bits in a float)."""
    return [PointField(name=n, offset=o, datatype=PointField.FLOAT32, count=1) for n, o in clouds.CLOUD_FIELDS]


def depth_to_points(depth: np.ndarray, K: np.ndarray, stride: int = 1, min_range: float = 0.0,
                    max_range: float = float("inf")) -> np.ndarray:
    """:func:`md2_ros.io.clouds.depth_to_points`, raising :class:`ConversionError` on bad input."""
    try:
        return clouds.depth_to_points(depth, K, stride, min_range, max_range)
    except ValueError as e:
        raise ConversionError(str(e)) from None


def depth_to_cloud(depth: np.ndarray, K: np.ndarray, header=None, rgb: np.ndarray | None = None, stride: int = 1,
                   min_range: float = 0.0, max_range: float = float("inf")) -> PointCloud2:
    """Organized PointCloud2 (height h, width w, see :func:`depth_to_points`) with packed colour.

    Byte layout = ``sensor_msgs_py.point_cloud2.create_cloud(header, cloud_fields(), pts)`` for the
    points in row-major order (:func:`md2_ros.io.clouds.pack_cloud`), with height = h, width = w,
    row_step = 16·w, is_dense = False. ``rgb`` (H×W×3 uint8 RGB, same size as depth) is sampled with
    the same stride; without it the colour is 0 (black).
    """
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != np.shape(depth) + (3,) or rgb.dtype != np.uint8:
            raise ConversionError(f"rgb must be {np.shape(depth) + (3,)} uint8, got {rgb.shape} {rgb.dtype}")
    points = depth_to_points(depth, K, stride, min_range, max_range)
    s = max(int(stride), 1)
    h, w = points.shape[:2]
    msg = PointCloud2(height=h, width=w, fields=cloud_fields(), is_bigendian=False, point_step=clouds.POINT_STEP,
                      row_step=clouds.POINT_STEP * w, is_dense=False)
    if header is not None:
        msg.header = header
    msg.data = array.array("B", clouds.pack_cloud(points, None if rgb is None else rgb[::s, ::s]))
    return msg


def cloud_to_numpy(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """Our PointCloud2 layout -> (h×w×3 float32 xyz, h×w×3 uint8 RGB). For tests and tools."""
    names = [(f.name, f.offset, f.datatype) for f in msg.fields]
    if names != [(n, o, PointField.FLOAT32) for n, o in clouds.CLOUD_FIELDS] or msg.point_step != clouds.POINT_STEP:
        raise ConversionError(f"unexpected cloud layout {names}, point_step {msg.point_step}")
    h, w = int(msg.height), int(msg.width)
    if msg.row_step != clouds.POINT_STEP * w:
        raise ConversionError(f"cloud row_step {msg.row_step} != point_step·width")
    try:
        return clouds.unpack_cloud(images.as_bytes(msg.data), h, w, bool(msg.is_bigendian))
    except ValueError as e:
        raise ConversionError(str(e)) from None


# ---------------------------------------------------------------------------
# CameraInfo (the rules are md2_ros.io.intrinsics'; here only messages are built)
# ---------------------------------------------------------------------------
def scaled_camera_info(info: CameraInfo, header, sx: float, sy: float, width: int, height: int) -> CameraInfo:
    """Copy of ``info`` for a ``width``×``height`` image: K and P scaled, binning/ROI cleared,
    D and R unchanged, ``header`` used as given (the depth image's header)."""
    K, P = binned_matrices(info)
    out = CameraInfo()
    out.header = header
    out.width, out.height = int(width), int(height)
    out.distortion_model = info.distortion_model
    out.d = list(info.d)
    out.r = copy.copy(info.r)
    out.k = scale_intrinsics(K, (1, 1), (sx, sy)).reshape(-1)
    out.p = scale_intrinsics(P, (1, 1), (sx, sy)).reshape(-1)
    return out


def camera_info_from_kitti(P_rect: np.ndarray, width: int, height: int, frame_id: str = "camera",
                           sx: float = 1.0, sy: float = 1.0) -> CameraInfo:
    """CameraInfo for a rectified KITTI camera from its 3×4 ``P_rect_0x`` (scaled by sx, sy).

    K = P[:, :3]; D = 0 (rectified), R = I. Used by the tests and the benchmark.
    """
    P = scale_intrinsics(np.reshape(P_rect, (3, 4)), (1, 1), (sx, sy))
    info = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob")
    info.header.frame_id = frame_id
    info.d = [0.0] * 5
    info.k = P[:, :3].reshape(-1)
    info.r = np.eye(3).reshape(-1)
    info.p = P.reshape(-1)
    return info
