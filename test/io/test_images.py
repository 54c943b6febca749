"""md2_ros.io.images: the one image decoder (files, Image, CompressedImage) and its size guards."""
import struct
import subprocess
import sys
import tracemalloc
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from md2_ros.io import images as I
from md2_ros.io.images import ImageDecodeError, decode_image_msg

RNG = np.random.default_rng(0)


def raw(arr, encoding, pad=0, bigendian=False, data=None, step=None):
    """An Image-like message (fields only, as rclpy and rosbags both have them), built by hand."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    row = arr.astype(arr.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([row, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=bigendian,
                           step=rows.shape[1] if step is None else step,
                           data=rows.tobytes() if data is None else data)


def compressed(data, fmt="jpeg"):
    return SimpleNamespace(format=fmt, data=data)


def encode(ext, rgb):
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return buf.tobytes()


def test_plain_encodings_known_answers():
    rgb = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_image_msg(raw(rgb, "rgb8")), rgb)
    assert np.array_equal(decode_image_msg(raw(rgb[..., ::-1], "bgr8", pad=7)), rgb)
    bgra = np.concatenate([rgb[..., ::-1], np.full((3, 5, 1), 9, np.uint8)], 2)
    assert np.array_equal(decode_image_msg(raw(bgra, "bgra8", pad=3)), rgb)
    assert np.array_equal(decode_image_msg(raw(bgra, "8UC4")), rgb)
    grey = rgb[..., 0]
    assert np.array_equal(decode_image_msg(raw(grey, "mono8")), np.repeat(grey[..., None], 3, 2))
    m16 = np.array([[0x1234, 0xFF00]], np.uint16)
    for big in (False, True):
        out = decode_image_msg(raw(m16, "mono16", bigendian=big))
        assert out.shape == (1, 2, 3) and out[0, 0].tolist() == [0x12] * 3 and out[0, 1].tolist() == [0xFF] * 3
    assert np.array_equal(decode_image_msg(raw(rgb.astype(np.uint16) << 8, "rgb16", bigendian=True)), rgb)


def test_last_row_may_lack_padding_but_nothing_else():
    rgb = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    msg = raw(rgb, "rgb8", pad=2)
    msg.data = msg.data[:-2]
    assert np.array_equal(decode_image_msg(msg), rgb)
    msg.data = msg.data[:-1]
    with pytest.raises(ImageDecodeError, match="too short"):
        decode_image_msg(msg)


def test_bayer_yuv_nv():
    flat = np.zeros((8, 8), np.uint8)  # RGGB mosaic of the colour (200, 100, 50)
    flat[0::2, 0::2], flat[0::2, 1::2], flat[1::2, 0::2], flat[1::2, 1::2] = 200, 100, 100, 50
    out = decode_image_msg(raw(flat, "bayer_rggb8"))
    assert np.abs(out[2:-2, 2:-2].astype(int) - [200, 100, 50]).max() <= 2
    out16 = decode_image_msg(raw(flat.astype(np.uint16) << 8, "bayer_rggb16", bigendian=True))
    assert np.array_equal(out16, out)
    # a flat colour survives every 4:2:2 packing and both 4:2:0 layouts
    colour = np.full((4, 6, 3), (180, 90, 40), np.uint8)
    r, g, b = 180.0, 90.0, 40.0      # BT.601 studio swing, as ROS cameras and OpenCV's YUV2RGB_* use
    y, u, v = (np.full((4, 6), round(c), np.uint8) for c in (16 + 0.257 * r + 0.504 * g + 0.098 * b,
                                                             128 - 0.148 * r - 0.291 * g + 0.439 * b,
                                                             128 + 0.439 * r - 0.368 * g - 0.071 * b))
    uyvy = np.stack([u, y, v, y], -1)[:, ::2].reshape(4, 6, 2)     # U Y0 V Y1 per pixel pair
    yuyv = np.stack([y, u, y, v], -1)[:, ::2].reshape(4, 6, 2)     # Y0 U Y1 V
    for enc, packed in [("yuv422", uyvy), ("uyvy", uyvy), ("yuv422_yuy2", yuyv), ("yuyv", yuyv)]:
        out = decode_image_msg(raw(packed, enc))
        assert out.shape == (4, 6, 3) and np.abs(out.astype(int) - colour).max() <= 3, enc
    nv12 = np.concatenate([y, np.stack([u[::2, ::2], v[::2, ::2]], -1).reshape(2, 6)])
    nv21 = np.concatenate([y, np.stack([v[::2, ::2], u[::2, ::2]], -1).reshape(2, 6)])
    for enc, plane in [("nv12", nv12), ("nv21", nv21)]:
        msg = SimpleNamespace(height=4, width=6, encoding=enc, is_bigendian=0, step=6, data=plane.tobytes())
        assert np.abs(decode_image_msg(msg).astype(int) - colour).max() <= 3, enc


@pytest.mark.parametrize("msg, match", [
    (raw(np.zeros((2, 2), np.float32), "32FC1"), "unsupported image encoding '32FC1' \\(a depth"),
    (SimpleNamespace(height=2, width=4, encoding="rgb8", step=11, data=bytes(22), is_bigendian=0), "step 11 <"),
    (SimpleNamespace(height=2, width=2, encoding="rgb8", step=6, data=bytes(11), is_bigendian=0), "too short"),
    (SimpleNamespace(height=2, width=2, encoding="rgb8", step=6, data=bytes(13), is_bigendian=0), "too long"),
    (SimpleNamespace(height=0, width=0, encoding="mono8", step=0, data=b"", is_bigendian=0), "zero size"),
    (SimpleNamespace(height=3, width=4, encoding="nv12", step=4, data=bytes(18), is_bigendian=0), "even height"),
    (SimpleNamespace(height=100000, width=100000, encoding="rgb8", step=300000, data=bytes(10), is_bigendian=0),
     "exceeds the limit"),
])
def test_bad_raw_images_name_the_cause(msg, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image_msg(msg, "sensor_msgs/msg/Image")


def test_absurd_header_allocates_nothing():
    msg = SimpleNamespace(height=5000, width=5000, encoding="rgb8", step=15000, data=bytes(16), is_bigendian=0)
    tracemalloc.start()
    with pytest.raises(ImageDecodeError, match="too short"):
        decode_image_msg(msg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def test_compressed_png_exact_jpeg_close_16bit_png():
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(decode_image_msg(compressed(encode(".png", rgb), "png")), rgb)
    smooth = cv2.GaussianBlur(rgb, (9, 9), 3)
    jpg = decode_image_msg(compressed(np.frombuffer(encode(".jpg", smooth), np.uint8), "rgb8; jpeg compressed bgr8"))
    assert jpg.shape == rgb.shape and np.abs(jpg.astype(int) - smooth).mean() < 4
    ok, png16 = cv2.imencode(".png", (rgb[..., ::-1].astype(np.uint16) << 8) | 0x7F)
    assert np.array_equal(decode_image_msg(compressed(png16.tobytes(), "png")), rgb)


@pytest.mark.parametrize("data, fmt, match", [
    (b"", "jpeg", "no data"),
    (b"\xff\xd8\xff\xe0" + bytes(200), "jpeg", "corrupt or truncated jpeg"),
    (b"GIF89a" + bytes(50), "gif", "neither JPEG nor PNG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + struct.pack(">II", 100000, 100000) + bytes(20), "png",
     "exceeds the limit"),
    (bytes(12) + b"\x89PNG", "16UC1; compressedDepth png", "compressedDepth"),
])
def test_bad_compressed(data, fmt, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image_msg(compressed(data, fmt))


def _bomb(fill: bytes) -> bytes:
    """A tiny valid JPEG whose frame header claims 20000×20000, with ``fill`` put before the SOF marker."""
    data = encode(".jpg", np.zeros((8, 8, 3), np.uint8))
    i = data.index(b"\xff\xc0")
    return data[:i] + fill + data[i:i + 5] + struct.pack(">HH", 20000, 20000) + data[i + 9:]


@pytest.mark.parametrize("fill", [b"", b"\xff" * 200, b"\x00\x12\x34", b"\xff\x00" * 3])
def test_jpeg_bomb_rejected_before_opencv_decodes(fill, monkeypatch):
    bomb = _bomb(fill)
    assert len(bomb) < 1000 and I.jpeg_size(bomb) == (20000, 20000)   # sized as libjpeg sizes it

    def must_not_decode(*a, **k):
        raise AssertionError("OpenCV was asked to decode a decompression bomb")
    monkeypatch.setattr(I.cv2, "imdecode", must_not_decode)
    with pytest.raises(ImageDecodeError, match="20000x20000 exceeds the limit"):
        decode_image_msg(compressed(bomb))


def test_unsizable_jpeg_rejected(monkeypatch):
    data = encode(".jpg", np.zeros((8, 8, 3), np.uint8))
    i = data.index(b"\xff\xc0")
    no_sof = data[:i] + data[data.index(b"\xff\xda"):]       # the scan comes before any frame header
    assert I.jpeg_size(data) == (8, 8) and I.jpeg_size(no_sof) is None
    monkeypatch.setattr(I.cv2, "imdecode", lambda *a: pytest.fail("decoded an unsizable JPEG"))
    with pytest.raises(ImageDecodeError, match="no frame header"):
        decode_image_msg(compressed(no_sof))


def test_opencv_itself_is_bounded(tmp_path):
    """Importing md2_ros.io.images caps OpenCV's decoder too (OPENCV_IO_MAX_IMAGE_PIXELS)."""
    code = ("import struct, numpy as np; import md2_ros.io.images as I, cv2, os\n"
            "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'])\n"
            "jpg = cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))[1].tobytes(); i = jpg.index(b'\\xff\\xc0')\n"
            "bomb = jpg[:i + 5] + struct.pack('>HH', 7000, 7000) + jpg[i + 9:]\n"
            "try:\n    r = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED); print('decoded', r)\n"
            "except cv2.error as e:\n    print('refused', 'CV_IO_MAX_IMAGE_PIXELS' in str(e))\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == [str(I.MAX_PIXELS), "refused", "True"], out.stderr


def test_read_image_file(tmp_path):
    rgb = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    (tmp_path / "a.png").write_bytes(encode(".png", rgb))
    assert np.array_equal(I.read_image_file(tmp_path / "a.png"), rgb)
    (tmp_path / "t.png").write_bytes(encode(".png", rgb)[:-20])
    with pytest.raises(ImageDecodeError, match="truncated PNG"):
        I.read_image_file(tmp_path / "t.png")
    (tmp_path / "bomb.jpg").write_bytes(_bomb(b"\xff\xff"))
    with pytest.raises(ImageDecodeError, match="bomb.jpg.*exceeds the limit"):
        I.read_image_file(tmp_path / "bomb.jpg")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        I.read_image_file(tmp_path / "missing.png")
