"""The DepthNode in-process with an injected fake model: lifecycle, parameter validation,
the message handler under ~200 fuzzed messages. Fast: no subprocess, no network model."""
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from md2_ros.ros import conversions as cv
from md2_ros.ros.conversions import ConversionError
from md2_ros.io.intrinsics import match_scale
from md2_ros.ros.conversions import camera_info_from_kitti
from live_node import offline_node
from ros_helpers import header

K_FULL = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.0027]])


class FakeModel:
    """Depth = 1 + R/25.5 (so 1..11 m), at the image size; counts calls."""
    height, width, metric, device = 64, 192, False, "cpu"

    def __init__(self):
        self.calls = 0

    def predict_batch(self, images):
        self.calls += 1
        return [1.0 + img[..., 0].astype(np.float32) / 25.5 for img in images]


@pytest.fixture(scope="module")
def node():
    yield from offline_node(FakeModel())


def outputs(node):
    return {k: p.msgs for k, p in node._pubs[""].items()}


def clear(node):
    for p in node._pubs[""].values():
        p.msgs.clear()


def good_frame(sec, w=40, h=12, frame_id="cam"):
    rgb = np.random.default_rng(sec).integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = cv.numpy_to_image(rgb, "rgb8", header(sec, 0, frame_id))
    return msg, rgb


def serve(node, msg):
    clear(node)
    node.cameras[0].offer(msg)
    node.process_pending()
    return outputs(node)


def test_lifecycle_cycles(node):
    node.trigger_activate()
    assert node.active and node._worker.is_alive() and len(node._subs) == 2
    node.trigger_deactivate()
    assert not node.active and node._worker is None and node._subs == []


def test_handler_known_answer_and_header_identity(node):
    node.cameras[0].on_camera_info(camera_info_from_kitti(K_FULL, 40, 12, "cam"))
    msg, rgb = good_frame(7)
    out = serve(node, msg)
    (depth,) = out["depth"]
    assert depth.header is msg.header and depth.encoding == "32FC1"
    np.testing.assert_allclose(cv.image_to_numpy(depth), 1.0 + rgb[..., 0] / 25.5, rtol=1e-6)
    assert out["depth_info"][0].header is msg.header and out["points"][0].header is msg.header
    assert out["colored"][0].encoding == "bgr8"
    xyz, colours = cv.cloud_to_numpy(out["points"][0])
    np.testing.assert_array_equal(colours, rgb)


@pytest.mark.parametrize("name, value, match", [
    ("depth_scale", -1.0, "depth_scale"),
    ("colormap", "nope", "colormap"),
    ("cloud_max_range", 0.01, "cloud_min_range < cloud_max_range"),
    ("max_depth", 0.01, "cloud_min_range < cloud_max_range"),   # the deprecated alias is checked the same way
    ("cloud_stride", 100, ""),          # outside the descriptor's IntegerRange: rclpy's own reason
    ("model_path", "/x", "read-only"),
    ("device", "cpu", "read-only"),
    ("output_resolution", "half", "output_resolution"),
])
def test_invalid_runtime_changes_rejected_with_reason(node, name, value, match):
    before = dict(node.values)
    (result,) = node.set_parameters([Parameter(name, value=value)])
    assert not result.successful and match in result.reason and result.reason
    assert node.values == before


def test_deprecated_cloud_clipping_aliases_still_apply(node):
    """min_depth / max_depth were the node's cloud clipping; they now only forward to cloud_*_range."""
    (result,) = node.set_parameters([Parameter("max_depth", value=50.0)])
    assert result.successful and node.settings.cloud_max_range == 50.0 and node.values["cloud_max_range"] == 50.0
    (result,) = node.set_parameters([Parameter("cloud_max_range", value=100.0)])
    assert result.successful and node.settings.cloud_max_range == 100.0


def test_valid_runtime_change_applies_to_next_frame(node):
    node.cameras[0].on_camera_info(camera_info_from_kitti(K_FULL, 40, 12, "cam"))
    (result,) = node.set_parameters([Parameter("depth_scale", value=2.0)])
    assert result.successful and node.settings.depth_scale == 2.0
    node.set_parameters([Parameter("output_resolution", value="model"), Parameter("cloud_stride", value=2)])
    msg, rgb = good_frame(8)
    out = serve(node, msg)
    depth = cv.image_to_numpy(out["depth"][0])
    assert depth.shape == (64, 192)
    small = cv2.resize(rgb, (192, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(depth, 2.0 * (1.0 + small[..., 0] / 25.5), rtol=1e-6)
    info = out["depth_info"][0]
    assert (info.width, info.height) == (192, 64)
    np.testing.assert_allclose(info.k[0], 721.5 * 192 / 40)
    assert (out["points"][0].height, out["points"][0].width) == (32, 96)
    node.set_parameters([Parameter("depth_scale", value=1.0), Parameter("output_resolution", value="input"),
                         Parameter("cloud_stride", value=1)])


def test_no_camera_info_still_publishes_depth(node):
    node.cameras[0]._info = None
    msg, _ = good_frame(9)
    out = serve(node, msg)
    assert len(out["depth"]) == 1 and out["points"] == [] and out["depth_info"] == []
    assert "no CameraInfo" in node.cameras[0].stats.camera_info_state


def test_latest_frame_only_counts_drops(node):
    stats = node.cameras[0].stats
    dropped, calls = stats.dropped, node.model.calls
    clear(node)
    for s in range(20, 25):
        node.cameras[0].offer(good_frame(s)[0])
    node.process_pending()
    assert stats.dropped == dropped + 4 and node.model.calls == calls + 1
    assert [m.header.stamp.sec for m in outputs(node)["depth"]] == [24]


# ---------------------------------------------------------------------------- fuzz
@st.composite
def any_image(draw):
    kind = draw(st.sampled_from(["valid", "valid", "garbage", "png", "bytes"]))
    hdr = header(draw(st.integers(0, 2 ** 31 - 1)), draw(st.integers(0, 999_999_999)),
                 draw(st.sampled_from(["cam", "other", ""])))
    if kind == "valid":
        enc = draw(st.sampled_from(sorted(cv.ENCODINGS)))
        char, ch = cv.ENCODINGS[enc]
        w, h = draw(st.integers(1, 24)), draw(st.integers(1, 12))
        shape = (h, w) if ch == 1 else (h, w, ch)
        if char == "f4":
            arr = np.array(draw(st.lists(st.floats(width=32), min_size=h * w, max_size=h * w)), np.float32)
        else:
            arr = np.frombuffer(draw(st.binary(min_size=h * w * ch * int(char[1]),
                                               max_size=h * w * ch * int(char[1]))), np.dtype(char))
        pad, big = draw(st.integers(0, 5)), draw(st.booleans())
        arr = arr.reshape(shape).astype(np.dtype(char).newbyteorder(">" if big else "<"))
        rows = np.concatenate([arr.reshape(h, -1).view(np.uint8), np.zeros((h, pad), np.uint8)], axis=1)
        return Image(header=hdr, height=h, width=w, encoding=enc, is_bigendian=big, step=rows.shape[1],
                     data=rows.tobytes())
    if kind == "garbage":
        w, h, step = (draw(st.sampled_from([0, 1, 3, 100000, 2 ** 32 - 1])) for _ in range(3))
        return Image(header=hdr, height=h, width=w, step=step, encoding=draw(st.sampled_from(["rgb8", "bayer_rggb8",
                     "mono16", "x"])), data=draw(st.binary(max_size=64)))
    if kind == "png":
        rgb = np.zeros((draw(st.integers(1, 10)), draw(st.integers(1, 10)), 3), np.uint8)
        data = cv2.imencode(".png", rgb)[1].tobytes()
        cut = draw(st.integers(0, len(data)))
        return CompressedImage(header=hdr, format="png", data=data[:cut] if draw(st.booleans()) else data)
    return CompressedImage(header=hdr, format="jpeg", data=b"\xff\xd8\xff" + draw(st.binary(max_size=64)))


@st.composite
def any_info(draw):
    w, h = draw(st.integers(0, 30)), draw(st.integers(0, 30))
    info = camera_info_from_kitti(K_FULL, w, h, draw(st.sampled_from(["cam", "other"])), w / 1242, h / 375)
    if draw(st.booleans()):
        info.k = np.array(draw(st.lists(st.one_of(st.floats(-10, 1e4), st.just(float("nan"))), min_size=9, max_size=9)))
    return info


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(msg=any_image(), info=st.one_of(st.none(), any_info(), st.just("match")))
def test_fuzz_handler_never_raises(node, msg, info):
    cam = node.cameras[0]
    if info == "match":   # a CameraInfo describing exactly this image (whatever its validity)
        info = camera_info_from_kitti(K_FULL, getattr(msg, "width", 8), getattr(msg, "height", 8),
                                      msg.header.frame_id)
    cam._info = info
    rejected = cam.stats.rejected
    out = serve(node, msg)
    if not out["depth"]:
        assert cam.stats.rejected == rejected + 1 and cam.stats.last_error
        return
    depth = out["depth"][0]
    assert depth.header is msg.header and depth.encoding == "32FC1"
    try:
        usable = info is not None and match_scale(info, msg.header.frame_id, depth.width, depth.height)
    except ConversionError:
        usable = False
    assert bool(out["points"]) == bool(usable) == bool(out["depth_info"])
    event(f"cloud published: {bool(usable)}")
    if usable:
        assert (out["points"][0].height, out["points"][0].width) == (depth.height, depth.width)
    # the next good frame is still served
    good, _ = good_frame(3)
    assert len(serve(node, good)["depth"]) == 1


def test_run_batch_groups_same_size_frames():
    from md2_ros.ros.pipeline import Prepared, run_batch
    sizes = [(4, 6), (5, 7), (4, 6)]
    items = [(None, Prepared(header(i), np.full(s + (3,), i * 50, np.uint8), s[::-1])) for i, s in enumerate(sizes)]
    batches = []

    def predict_batch(images):
        batches.append(len(images))
        return [np.full(im.shape[:2], float(im[0, 0, 0])) for im in images]
    depths = run_batch(items, predict_batch, None)
    assert sorted(batches) == [1, 2]
    assert [d.shape for d in depths] == sizes and [d[0, 0] for d in depths] == [0, 50, 100]
