"""Known-answer and fuzz tests for md2_ros.ros.conversions (no rclpy graph needed)."""
import math
import struct
import tracemalloc

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image, PointField

from md2_ros.ros import conversions as cv
from md2_ros.ros.conversions import ConversionError

RNG = np.random.default_rng(0)


def make_image(arr, encoding, pad=0, bigendian=False):
    """Image with ``pad`` extra bytes per row, data in the requested byte order (built by hand)."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    swapped = arr.astype(arr.dtype.newbyteorder(">" if bigendian else "<"))
    row = swapped.reshape(h, -1).view(np.uint8)
    padded = np.concatenate([row, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, is_bigendian=bigendian, step=padded.shape[1],
                 data=padded.tobytes())


CASES = {
    "rgb8": RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (3, 5, 4), dtype=np.uint8),
    "bgra8": RNG.integers(0, 256, (3, 5, 4), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (3, 5), dtype=np.uint8),
    "mono16": RNG.integers(0, 65536, (3, 5), dtype=np.uint16),
    "16UC1": RNG.integers(0, 65536, (3, 5), dtype=np.uint16),
    "32FC1": RNG.normal(size=(3, 5)).astype(np.float32),
}


@pytest.mark.parametrize("encoding", sorted(CASES))
@pytest.mark.parametrize("pad", [0, 7])
@pytest.mark.parametrize("bigendian", [False, True])
def test_image_to_numpy_round_trip(encoding, pad, bigendian):
    arr = CASES[encoding]
    out = cv.image_to_numpy(make_image(arr, encoding, pad, bigendian))
    assert out.dtype == arr.dtype.newbyteorder("=") and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    back = cv.numpy_to_image(out, encoding)
    assert back.step == arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    np.testing.assert_array_equal(cv.image_to_numpy(back), arr)


def test_image_to_rgb_known_answers():
    rgb = CASES["rgb8"]
    np.testing.assert_array_equal(cv.image_to_rgb(make_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(cv.image_to_rgb(make_image(rgb[..., ::-1], "bgr8")), rgb)
    bgra = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(cv.image_to_rgb(make_image(bgra, "bgra8", pad=3)), rgb)
    m16 = np.array([[0x1234, 0xFF00]], np.uint16)
    out = cv.image_to_rgb(make_image(m16, "mono16", bigendian=True))
    assert out.shape == (1, 2, 3) and out[0, 0].tolist() == [0x12] * 3 and out[0, 1].tolist() == [0xFF] * 3


@pytest.mark.parametrize("msg, match", [
    (Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16)), "unsupported image encoding '32FC1'"),
    (Image(height=2, width=4, encoding="rgb8", step=11, data=bytes(22)), "step 11 < width"),
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11)), "data length 11 .*too short"),
    (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(13)), "data length 13 .*too long"),
    (Image(), "unsupported image encoding ''"),
    (Image(encoding="rgb8"), "zero size 0x0"),
    (Image(height=0, width=0, encoding="mono8", step=0, data=b""), "zero size"),
    (Image(height=100000, width=100000, encoding="rgb8", step=300000, data=bytes(10)), "exceeds the limit"),
    (Image(height=5000, width=5000, encoding="rgb8", step=15000, data=bytes(10)), "data length 10 .*too short"),
])
def test_bad_images_raise_conversion_error(msg, match):
    with pytest.raises(ConversionError, match=match):
        cv.image_to_rgb(msg)


def test_absurd_header_allocates_nothing():
    msg = Image(height=30000, width=30000, encoding="32FC1", step=120000, data=bytes(16))
    tracemalloc.start()
    with pytest.raises(ConversionError):
        cv.image_to_numpy(msg)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20


def _encode(ext, rgb):
    ok, buf = cv2.imencode(ext, rgb[..., ::-1])
    assert ok
    return buf.tobytes()


def test_compressed_decode_png_exact_and_jpeg_close():  # the decoder itself: test/io/test_images.py
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    png = cv.compressed_to_rgb(CompressedImage(format="png", data=_encode(".png", rgb)))
    np.testing.assert_array_equal(png, rgb)
    smooth = cv2.GaussianBlur(rgb, (9, 9), 3)
    jpg = cv.compressed_to_rgb(CompressedImage(format="rgb8; jpeg compressed bgr8", data=_encode(".jpg", smooth)))
    assert jpg.shape == rgb.shape and np.abs(jpg.astype(int) - smooth).mean() < 4


def test_truncated_jpeg_and_huge_jpeg_header():
    rgb = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    data = _encode(".jpg", rgb)
    with pytest.raises(ConversionError, match="corrupt"):
        cv.compressed_to_rgb(CompressedImage(format="jpeg", data=data[: len(data) // 2]))
    i = data.index(b"\xff\xc0")
    huge = data[:i + 5] + struct.pack(">HH", 60000, 60000) + data[i + 9:]
    with pytest.raises(ConversionError, match="exceeds the limit"):
        cv.compressed_to_rgb(CompressedImage(format="jpeg", data=huge))


def reference_cloud_bytes(depth, K, rgb):
    """Independent per-point struct packing: what create_cloud produces for x, y, z, rgb float32 fields."""
    fx, fy, cx, cy = K[0][0], K[1][1], K[0][2], K[1][2]
    out = b""
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = float(depth[v, u])
            if not math.isfinite(z) or z <= 0:
                x = y = z = float("nan")
            else:
                x, y = (u - cx) * z / fx, (v - cy) * z / fy
            r, g, b = (int(c) for c in rgb[v, u])
            out += struct.pack("<fff", x, y, z) + struct.pack("<I", (r << 16) | (g << 8) | b)
    return out


def test_cloud_layout_matches_create_cloud_reference():
    depth = RNG.uniform(1, 50, (4, 6)).astype(np.float32)
    depth[1, 2] = np.nan
    depth[3, 0] = 0.0
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    K = [[50.0, 0, 2.5], [0, 40.0, 1.5], [0, 0, 1]]
    hdr = cv.numpy_to_image(np.zeros((1, 1), np.uint8), "mono8").header
    hdr.frame_id = "cam"
    msg = cv.depth_to_cloud(depth, np.array(K), hdr, rgb, min_range=1e-6)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (4, 6, 16, 96)
    assert msg.is_dense is False and msg.is_bigendian is False and msg.header.frame_id == "cam"
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == \
        [("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1),
         ("rgb", 12, PointField.FLOAT32, 1)]
    ref = np.frombuffer(reference_cloud_bytes(depth, K, rgb), np.uint8)
    got = np.frombuffer(bytes(msg.data), np.uint8)
    assert got.shape == ref.shape
    # compare as floats (NaN == NaN) and as colour bits
    gf, rf = got.view("<f4").reshape(-1, 4), ref.view("<f4").reshape(-1, 4)
    np.testing.assert_allclose(gf[:, :3], rf[:, :3], rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(got.view("<u4").reshape(-1, 4)[:, 3], ref.view("<u4").reshape(-1, 4)[:, 3])
    xyz, colours = cv.cloud_to_numpy(msg)
    np.testing.assert_array_equal(colours, rgb)
    assert np.isnan(xyz[1, 2]).all() and np.isnan(xyz[3, 0]).all()


def test_cloud_stride_range_and_reprojection():
    depth = RNG.uniform(1, 80, (30, 41)).astype(np.float32)
    K = np.array([[70.0, 0, 20.3], [0, 65.0, 14.1], [0, 0, 1]])
    msg = cv.depth_to_cloud(depth, K, stride=4, min_range=5.0, max_range=60.0)
    assert (msg.height, msg.width) == (8, 11)
    xyz, _ = cv.cloud_to_numpy(msg)
    d = depth[::4, ::4]
    invalid = (d < 5) | (d > 60)
    assert np.isnan(xyz[invalid]).all() and np.isfinite(xyz[~invalid]).all()
    vs, us = np.nonzero(~invalid)
    p = xyz[vs, us]
    np.testing.assert_allclose(p[:, 0] / p[:, 2] * 70.0 + 20.3, us * 4, atol=1e-3)
    np.testing.assert_allclose(p[:, 1] / p[:, 2] * 65.0 + 14.1, vs * 4, atol=1e-3)
    np.testing.assert_allclose(p[:, 2], d[~invalid])
    with pytest.raises(ConversionError, match="invalid intrinsics"):
        cv.depth_to_cloud(depth, np.zeros((3, 3)))


def test_depth_image_and_colorize():
    depth = np.array([[1.0, 2.0, np.nan], [4.0, -1.0, 8.0]], np.float32)
    msg = cv.depth_to_image(depth)
    assert msg.encoding == "32FC1" and (msg.width, msg.height, msg.step) == (3, 2, 12)
    np.testing.assert_array_equal(cv.image_to_numpy(msg), depth)
    bgr = cv.colorize_depth(depth, "jet")
    assert bgr.shape == (2, 3, 3) and bgr.dtype == np.uint8
    assert (bgr[0, 2] == 0).all() and (bgr[1, 1] == 0).all() and bgr[0, 0].any()
    assert (cv.colorize_depth(np.full((2, 2), np.nan, np.float32)) == 0).all()
    with pytest.raises(ConversionError, match="unknown colormap"):
        cv.colorize_depth(depth, "nope")


ENC_CHOICES = sorted(cv.ENCODINGS) + ["bayer_grbg8", "8UC3", "", "rgb16", "32FC3"]


@st.composite
def random_images(draw):
    enc = draw(st.sampled_from(ENC_CHOICES))
    bpp = cv.bytes_per_pixel(enc) if enc in cv.ENCODINGS else 3
    side = st.one_of(st.integers(0, 9), st.sampled_from([100000, 2 ** 32 - 1]))
    w, h = draw(side), draw(side)
    step = draw(st.one_of(st.just(min(w * bpp, 2 ** 32 - 1)), st.integers(0, 64), st.just(2 ** 32 - 1)))
    n = draw(st.one_of(st.just(step * h), st.integers(0, 300)))
    n = n if n <= 4096 else draw(st.integers(0, 300))
    data = draw(st.binary(min_size=n, max_size=n))
    return Image(height=h, width=w, encoding=enc, step=step, is_bigendian=draw(st.booleans()), data=data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_images())
def test_fuzz_images_convert_or_raise_conversion_error(msg):
    try:
        rgb = cv.image_to_rgb(msg)
    except ConversionError:
        return
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8
    assert msg.step * (msg.height - 1) < len(msg.data) <= msg.height * msg.step
