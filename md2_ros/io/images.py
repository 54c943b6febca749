"""Images from the outside world -> H×W×3 uint8 RGB: files, raw ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage`` messages (rclpy or rosbags objects alike, or just their fields).

The one decoder behind the node, the offline CLI and training. Raw encodings: rgb8, bgr8, rgba8,
bgra8, mono8, mono16, rgb16, bgr16, rgba16, bgra16, 8UC1/8UC3/8UC4/16UC1/16UC3,
bayer_{rggb,bggr,gbrg,grbg}{8,16}, yuv422 (= uyvy), yuv422_yuy2 (= yuyv), nv12, nv21; 16-bit data
keeps its 8 most significant bits. Compressed: JPEG and PNG (what image_transport publishes).

Safety: every size is checked against ``MAX_SIDE``/``MAX_PIXELS`` *before* anything sized by the
message is allocated. A compressed image's size is read from its header the way libjpeg / libpng read
it (0xFF fill bytes and stray bytes before a JPEG marker are skipped), and data whose size cannot be
read is rejected, so a 700-byte JPEG claiming 20000×20000 pixels never reaches the decoder. OpenCV
itself is bounded too (``OPENCV_IO_MAX_IMAGE_PIXELS``, set here unless the user set it).
"""
from __future__ import annotations

import os
import struct

MAX_SIDE = 32768            # pixels per side we accept
MAX_PIXELS = 1 << 25        # 33.5 Mpx (8K UHD fits)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))  # read by OpenCV at its first decode

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from .errors import FormatError  # noqa: E402

__all__ = ["ImageDecodeError", "MAX_SIDE", "MAX_PIXELS", "check_size", "decode_image_msg", "decode_raw",
           "decode_compressed", "compressed_size", "read_image_file", "to_rgb8", "ENCODINGS"]


class ImageDecodeError(FormatError, OSError):
    """An image file or message cannot be decoded; the text names the source and the cause."""


# encoding (lower case) -> (channels, bytes per channel, source order is BGR)
_PLAIN = {
    "rgb8": (3, 1, False), "bgr8": (3, 1, True), "rgba8": (4, 1, False), "bgra8": (4, 1, True),
    "mono8": (1, 1, False), "8uc1": (1, 1, False), "8uc3": (3, 1, True), "8uc4": (4, 1, True),
    "mono16": (1, 2, False), "16uc1": (1, 2, False), "rgb16": (3, 2, False), "bgr16": (3, 2, True),
    "rgba16": (4, 2, False), "bgra16": (4, 2, True), "16uc3": (3, 2, True),
}
# ROS Bayer pattern names -> OpenCV codes (OpenCV names the pattern from the second row; as cv_bridge)
_BAYER = {"bayer_rggb": cv2.COLOR_BayerBG2RGB, "bayer_bggr": cv2.COLOR_BayerRG2RGB,
          "bayer_gbrg": cv2.COLOR_BayerGR2RGB, "bayer_grbg": cv2.COLOR_BayerGB2RGB}
_BAYER.update({k + n: v for k, v in list(_BAYER.items()) for n in ("8", "16")})
_YUV = {"yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV, "yuyv": cv2.COLOR_YUV2RGB_YUYV}
_NV = {"nv12": cv2.COLOR_YUV2RGB_NV12, "nv21": cv2.COLOR_YUV2RGB_NV21}
ENCODINGS = tuple(sorted(set(_PLAIN) | {k for k in _BAYER if k[-1].isdigit()} | set(_YUV) | set(_NV)))


def check_size(width: int, height: int, what: str = "image") -> None:
    """Reject zero, negative or absurd sizes (see MAX_SIDE, MAX_PIXELS) with ImageDecodeError."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{what} has zero size {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageDecodeError(f"{what} size {width}x{height} exceeds the limit "
                               f"({MAX_SIDE} per side, {MAX_PIXELS} pixels)")


def as_bytes(data) -> np.ndarray:
    """Zero-copy uint8 view of a message's ``data`` (array.array, bytes, numpy, list)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.astype(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data), dtype=np.uint8)
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def to_rgb8(image: np.ndarray, source: str = "image", bgr: bool = True) -> np.ndarray:
    """Grey / BGR / BGRA (``bgr=True``, OpenCV order) or RGB / RGBA, 8 or 16 bit -> H×W×3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"{source}: unsupported pixel type {image.dtype} (need 8 or 16 bit)")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)
    raise ImageDecodeError(f"{source}: unsupported channel count {image.shape[2]}")


def _rows(data: np.ndarray, width: int, height: int, step: int, row_bytes: int, rows: int, what: str):
    """The pixel bytes as rows×row_bytes uint8 (row padding dropped). ``data`` may lack the last row's
    padding but nothing else."""
    if step < row_bytes:
        raise ImageDecodeError(f"{what}: step {step} < width·bytes_per_pixel = {row_bytes}")
    lo, hi = step * (rows - 1) + row_bytes, step * rows
    if not lo <= data.size <= hi:
        raise ImageDecodeError(f"{what}: data length {data.size} does not fit {width}x{height} with step {step} "
                               f"(need {lo}..{hi} bytes: {'too short' if data.size < lo else 'too long'})")
    if data.size < hi:
        data = np.concatenate([data, np.zeros(hi - data.size, np.uint8)])
    return data.reshape(rows, step)[:, :row_bytes]


def _unsupported(encoding: str, source: str) -> ImageDecodeError:
    hint = " (a depth or float image, not a camera image)" if encoding.lower() in ("32fc1", "16uc1d") else ""
    return ImageDecodeError(f"{source}: unsupported image encoding {encoding!r}{hint}; supported: "
                            f"{', '.join(ENCODINGS)}")


def decode_raw(encoding: str, width: int, height: int, step: int, data, is_bigendian: bool = False,
               source: str = "image") -> np.ndarray:
    """The fields of a raw ``sensor_msgs/Image`` -> H×W×3 uint8 RGB; ImageDecodeError naming the cause."""
    enc, width, height, step = str(encoding).lower(), int(width), int(height), int(step)
    if enc not in ENCODINGS:
        raise _unsupported(encoding, source)
    check_size(width, height, f"{source} ({encoding})")
    data, what = as_bytes(data), f"{source} ({width}x{height} {encoding})"
    if enc in _NV:
        if height % 2:
            raise ImageDecodeError(f"{what}: {enc} needs an even height")
        rows = _rows(data, width, height, step or width, width, height * 3 // 2, what)
        return cv2.cvtColor(np.ascontiguousarray(rows), _NV[enc])
    channels, size, bgr = _PLAIN.get(enc, (2 if enc in _YUV else 1, 2 if enc.endswith("16") else 1, False))
    rows = np.ascontiguousarray(_rows(data, width, height, step, width * channels * size, height, what))
    if size == 2:
        rows = rows.view(">u2" if is_bigendian else "<u2").astype(np.uint16)
    pixels = rows.reshape(height, width, channels)
    if enc in _YUV:
        return cv2.cvtColor(pixels, _YUV[enc])
    if enc in _BAYER:
        mosaic = (pixels[..., 0] >> 8).astype(np.uint8) if size == 2 else pixels[..., 0]
        return cv2.cvtColor(np.ascontiguousarray(mosaic), _BAYER[enc])
    return to_rgb8(pixels, source=source, bgr=bgr)


# ----------------------------------------------------------------------------------------- compressed
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _next_marker(buf: bytes, i: int) -> tuple[int, int] | None:
    """(marker, index after it) of the first marker at or after ``i``, as libjpeg's next_marker finds it:
    stray bytes are skipped, then any number of 0xFF fill bytes; FF 00 is not a marker."""
    n = len(buf)
    while True:
        while i < n and buf[i] != 0xFF:
            i += 1
        while i < n and buf[i] == 0xFF:
            i += 1
        if i >= n:
            return None
        if buf[i] != 0x00:
            return buf[i], i + 1
        i += 1


def jpeg_size(buf: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG frame header (SOFn), walking the segments as libjpeg does;
    None if there is none before the scan or the data ends."""
    if buf[:2] != b"\xff\xd8":
        return None
    i = 2
    while (found := _next_marker(buf, i)) is not None:
        marker, i = found
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:          # no length field
            continue
        if marker in (0xD8, 0xD9, 0xDA) or i + 2 > len(buf):   # SOI again, EOI or scan before a frame
            return None
        if marker in _SOF:
            if i + 7 > len(buf):
                return None
            h, w = struct.unpack(">HH", buf[i + 3:i + 7])
            return w, h
        seg_len = struct.unpack(">H", buf[i:i + 2])[0]
        if seg_len < 2:
            return None
        i += seg_len
    return None


def compressed_size(data: bytes, source: str = "compressed image") -> tuple[str, int, int]:
    """(kind, width, height) from a PNG or JPEG header without decoding; ImageDecodeError if the data is
    neither or its size cannot be read."""
    if data[:8] == _PNG_MAGIC:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageDecodeError(f"{source}: PNG without an IHDR header")
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:3] == b"\xff\xd8\xff":
        size = jpeg_size(data)
        if size is None:
            raise ImageDecodeError(f"{source}: corrupt or truncated jpeg data ({len(data)} bytes): "
                                   "no frame header (SOF) before the scan")
        return ("jpeg",) + size
    raise ImageDecodeError(f"{source}: data is neither JPEG nor PNG")


def _imdecode(buf: np.ndarray):
    """cv2.imdecode, None (not an exception) for data OpenCV refuses, e.g. over its pixel limit."""
    try:
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None


def decode_compressed(data, fmt: str = "", source: str = "image") -> np.ndarray:
    """The fields of a ``sensor_msgs/CompressedImage`` (JPEG or PNG bytes, format string) -> H×W×3 uint8 RGB.

    The size in the header is checked before OpenCV sees the data (no decompression bombs)."""
    if "compresseddepth" in str(fmt).lower():
        raise ImageDecodeError(f"{source}: compressedDepth ({fmt!r}) is a depth image, not a camera image")
    buf = as_bytes(data)
    if not buf.size:
        raise ImageDecodeError(f"{source}: CompressedImage has no data")
    kind, w, h = compressed_size(buf.tobytes(), source)
    check_size(w, h, f"{source} ({kind})")
    image = _imdecode(buf)
    if image is None or image.size == 0:
        raise ImageDecodeError(f"{source}: corrupt or truncated {kind} data ({buf.size} bytes, format {fmt!r})")
    return to_rgb8(image, source=source, bgr=True)


def decode_image_msg(msg, msgtype: str | None = None, source: str = "image") -> np.ndarray:
    """THE image-message decoder: ``sensor_msgs/Image`` or ``CompressedImage`` (rclpy or rosbags) ->
    H×W×3 uint8 RGB. ``msgtype`` (optional) names the type; else it is told by the fields."""
    compressed = msgtype.endswith("CompressedImage") if msgtype else not hasattr(msg, "encoding")
    if compressed:
        return decode_compressed(msg.data, getattr(msg, "format", ""), source)
    return decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.data, bool(msg.is_bigendian), source)


def read_image_file(path) -> np.ndarray:
    """Decode an image file (PNG, JPEG, BMP, ...) to H×W×3 uint8 RGB (grey and 16-bit converted).

    FileNotFoundError if missing; ImageDecodeError naming the file if it is empty, truncated (PNG
    without IEND, JPEG without its end marker), too large (PNG/JPEG header checked first) or undecodable.
    """
    path = str(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    if data.size == 0:
        raise ImageDecodeError(f"image file is empty: {path}")
    head, tail = data[:8].tobytes(), data[-1024:].tobytes()
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise ImageDecodeError(f"truncated PNG (no IEND chunk): {path}")
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise ImageDecodeError(f"truncated JPEG (no end-of-image marker): {path}")
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff")):
        kind, w, h = compressed_size(data.tobytes(), path)
        check_size(w, h, f"{path} ({kind})")
    image = _imdecode(data)
    if image is None:
        raise ImageDecodeError(f"cannot decode image (corrupt or unsupported format): {path}")
    return to_rgb8(image, source=path)
