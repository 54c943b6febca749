"""End-to-end: the depth node in a subprocess (raw image transport; the compressed transport is in
test_node_conventions.py) (python -m md2_ros.ros.run, real rclpy, a small
random checkpoint) fed real KITTI frames and bad messages over real topics. One node per module."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from md2_ros.ros import conversions as cv
from ros_helpers import Harness, NodeProcess, header, kitti_camera_info, kitti_frame, write_params

LIFECYCLE_CALL = Path(__file__).with_name("lifecycle_call.py")

W, H = 248, 75          # KITTI 1242×375 / 5 (approximately): small and fast
FRAME = "camera2_optical"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, small_model_path, kitti_mini):
    tmp = tmp_path_factory.mktemp("e2e")
    params = write_params(tmp / "depth.yaml", small_model_path, diagnostics_period=0.2,
                          torch_threads=1, backend="eager")   # auto's choice is tested in test_node_backend.py
    proc = NodeProcess(params, log_path=tmp / "node.log")
    harness = Harness()
    try:
        if not harness.wait_connected(timeout=60):
            pytest.fail(f"depth node did not come up; log:\n{proc.stop()}")
        harness.warm_up(frame_msg(kitti_mini, 0, 1)[0])
        yield harness, proc, kitti_mini
    finally:
        harness.close()
        log = proc.stop()
        print(log)
    assert proc.proc.returncode == 0, log
    assert "Traceback" not in log, log


def frame_msg(kitti_mini, index, sec, size=(W, H), encoding="rgb8"):
    rgb = kitti_frame(kitti_mini, index, size)
    arr = rgb if encoding == "rgb8" else rgb[..., ::-1]
    return cv.numpy_to_image(np.ascontiguousarray(arr), encoding, header(sec, 123456789, FRAME)), rgb


def info_for(kitti_mini, w=W, h=H):
    return kitti_camera_info(kitti_mini, w, h, FRAME)


ALL = ("depth", "depth/camera_info", "depth_colored", "points")


def check_cloud(out, rgb, min_depth=0.1, max_depth=100.0):
    """Cloud points re-project onto their pixels through the published intrinsics; NaN where invalid."""
    depth = cv.image_to_numpy(out["depth"])
    P = np.asarray(out["depth/camera_info"].p).reshape(3, 4)
    xyz, colours = cv.cloud_to_numpy(out["points"])
    cloud = out["points"]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (depth.shape[0], depth.shape[1], 16,
                                                                             16 * depth.shape[1])
    assert cloud.is_dense is False
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth >= min_depth) & (depth <= max_depth)
    assert np.isnan(xyz[~valid]).all()
    vs, us = np.nonzero(valid)
    p = xyz[vs, us]
    np.testing.assert_allclose(P[0, 0] * p[:, 0] / p[:, 2] + P[0, 2], us, atol=2e-3)
    np.testing.assert_allclose(P[1, 1] * p[:, 1] / p[:, 2] + P[1, 2], vs, atol=2e-3)
    np.testing.assert_allclose(p[:, 2], depth[valid], rtol=1e-6)
    np.testing.assert_array_equal(colours, rgb)
    return valid


def test_kitti_frames_outputs(e2e):
    h, _, kitti = e2e
    info = info_for(kitti)
    for i, index in enumerate((0, 20, 40)):
        msg, rgb = frame_msg(kitti, index, 1000 + i, encoding="bgr8")
        out = h.send(msg, info, wait_for=ALL)
        assert all(out[k] is not None for k in ALL), {k: out[k] is not None for k in ALL}
        for k in ALL:    # identical header: stamp and frame_id copied, never now()
            assert (out[k].header.stamp.sec, out[k].header.stamp.nanosec, out[k].header.frame_id) == \
                (1000 + i, 123456789, FRAME)
        d, c = out["depth"], out["depth_colored"]
        assert (d.encoding, d.width, d.height) == ("32FC1", W, H)
        assert (c.encoding, c.width, c.height) == ("bgr8", W, H)
        ci = out["depth/camera_info"]
        assert (ci.width, ci.height) == (W, H)
        np.testing.assert_allclose(ci.k, info.k)
        np.testing.assert_allclose(ci.p, info.p)
        depth = cv.image_to_numpy(d)
        assert np.isfinite(depth).all() and (depth > 0).all()
        check_cloud(out, rgb)


def set_params(h, *params):
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(h.node, "/depth_node")
    assert client.wait_for_services(timeout_sec=30.0)     # service discovery can lag on a busy machine
    fut = client.set_parameters(list(params))
    assert h.wait(fut.done, 10.0)
    return fut.result().results


def test_parameters_validated_over_the_graph_and_max_depth_masks_cloud(e2e):
    h, _, kitti = e2e
    (r,) = set_params(h, Parameter("max_depth", value=-1.0))
    assert not r.successful and r.reason
    (r,) = set_params(h, Parameter("model_path", value="/elsewhere.safetensors"))
    assert not r.successful and "read-only" in r.reason.lower()
    (r,) = set_params(h, Parameter("colormap", value="no_such_map"))
    assert not r.successful and "colormap" in r.reason
    info = info_for(kitti)
    msg, rgb = frame_msg(kitti, 5, 2000)
    depth = cv.image_to_numpy(h.send(msg, info)["depth"])
    cut = float(np.median(depth))
    (r,) = set_params(h, Parameter("max_depth", value=cut))
    assert r.successful, r.reason
    try:
        msg, rgb = frame_msg(kitti, 5, 2001)
        out = h.send(msg, info, wait_for=ALL)
        valid = check_cloud(out, rgb, max_depth=cut)
        assert 0.3 < valid.mean() < 0.7          # about half the pixels are beyond the median
    finally:
        set_params(h, Parameter("max_depth", value=100.0))


def rejected_total(h):
    _, values = h.latest_status("depth_node")
    return int(values.get("rejected", 0)), values.get("last_error", "")


def expect_rejected(h, msg, match, kind="image"):
    before, _ = rejected_total(h)
    h.pub[""][kind].publish(msg)
    assert h.wait(lambda: rejected_total(h)[0] > before, 10.0), f"not rejected: {match}"
    assert match in rejected_total(h)[1]


def expect_served(h, kitti, sec):
    msg, _ = frame_msg(kitti, 7, sec)
    assert h.send(msg, info_for(kitti))["depth"] is not None, "node stopped serving good frames"


BAD = [
    ("float_image", lambda: Image(header=header(1, 0, FRAME), height=4, width=4, encoding="32FC1", step=16,
                                  data=bytes(64)), "unsupported image encoding '32FC1'"),
    ("step_too_small", lambda: Image(header=header(1, 0, FRAME), height=4, width=4, encoding="rgb8", step=8,
                                     data=bytes(32)), "step 8 < width"),
    ("short_data", lambda: Image(header=header(1, 0, FRAME), height=4, width=4, encoding="rgb8", step=12,
                                 data=bytes(47)), "data length 47"),
    ("long_data", lambda: Image(header=header(1, 0, FRAME), height=4, width=4, encoding="rgb8", step=12,
                                data=bytes(49)), "data length 49"),
    ("empty", lambda: Image(header=header(1, 0, FRAME)), "unsupported image encoding ''"),
    ("zero_by_zero", lambda: Image(header=header(1, 0, FRAME), encoding="rgb8"), "zero size 0x0"),
    ("huge_header", lambda: Image(header=header(1, 0, FRAME), height=100000, width=100000, encoding="rgb8",
                                  step=300000, data=bytes(10)), "exceeds the limit"),
]


@pytest.mark.parametrize("name, make, match", BAD, ids=[b[0] for b in BAD])
def test_bad_image_rejected_then_next_good_frame_served(e2e, name, make, match):
    h, proc, kitti = e2e
    expect_rejected(h, make(), match)
    assert proc.alive()
    expect_served(h, kitti, 3000 + BAD.index(next(b for b in BAD if b[0] == name)))


def no_output(h, kind, hdr, wait=0.5):
    h.wait(lambda: False, wait)
    return h.output(kind, hdr) is None


def test_odd_but_valid_inputs_publish_depth(e2e):
    h, proc, kitti = e2e
    info = info_for(kitti)
    # big-endian mono16 (a grey KITTI frame scaled to 16 bits)
    grey = cv2.cvtColor(kitti_frame(kitti, 11, (W, H)), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
    big = grey.astype(">u2").view(np.uint8).reshape(H, W * 2)
    msg = Image(header=header(5000, 0, FRAME), height=H, width=W, encoding="mono16", is_bigendian=True,
                step=2 * W, data=big.tobytes())
    assert h.send(msg, info)["depth"] is not None
    # all-black rgb8, and a raw Bayer mosaic (decoded like training decodes it): still images, depth is published
    for msg in (cv.numpy_to_image(np.zeros((H, W, 3), np.uint8), "rgb8", header(5001, 0, FRAME)),
                Image(header=header(5002, 0, FRAME), height=H, width=W, encoding="bayer_rggb8", step=W,
                      data=bytes(H * W))):
        out = h.send(msg, info)
        assert out["depth"] is not None and out["depth"].width == W
    # stamps going backwards: processed, output carries the (older) input stamp
    msg, _ = frame_msg(kitti, 12, 10)
    assert h.send(msg, info)["depth"].header.stamp.sec == 10
    assert h.wait(lambda: "went backwards" in proc.log(), 10.0)
    assert proc.alive()


def test_camera_info_problems_skip_cloud_only(e2e):
    h, proc, kitti = e2e
    zero = info_for(kitti)
    zero.k = np.zeros(9)
    msg, _ = frame_msg(kitti, 13, 6000)
    out = h.send(msg, zero, wait_for=("depth",))
    assert out["depth"] is not None
    assert no_output(h, "points", msg.header) and no_output(h, "depth/camera_info", msg.header, 0.0)
    assert h.wait(lambda: "K all zero" in h.latest_status("depth_node")[1].get("camera_info", ""), 10.0)
    other = info_for(kitti, 640, 480)           # another size, not a resize of this image
    msg, _ = frame_msg(kitti, 14, 6001)
    assert h.send(msg, other)["depth"] is not None and no_output(h, "points", msg.header)
    # resolution change mid-stream: same-aspect resize -> intrinsics scaled; other aspect -> no cloud
    msg, rgb = frame_msg(kitti, 15, 6002, size=(310, 94))
    out = h.send(msg, info_for(kitti), wait_for=ALL)
    assert (out["depth"].width, out["depth"].height) == (310, 94)
    check_cloud(out, rgb)
    msg, _ = frame_msg(kitti, 16, 6003, size=(200, 100))
    assert h.send(msg)["depth"].height == 100 and no_output(h, "points", msg.header)
    msg, rgb = frame_msg(kitti, 16, 6004, size=(200, 100))
    out = h.send(msg, info_for(kitti, 200, 100), wait_for=ALL)     # matching info arrives: cloud is back
    check_cloud(out, rgb)
    assert proc.alive()


def test_random_messages_over_topics_then_good_frame(e2e):
    h, proc, kitti = e2e
    rng = np.random.default_rng(1)
    encodings = sorted(cv.ENCODINGS) + ["bayer_bggr8", "yuv422", ""]
    for i in range(25):
        enc = encodings[rng.integers(len(encodings))]
        w, hh, step = (int(x) for x in rng.choice([0, 1, 3, 7, 100000, 2 ** 32 - 1], 3))
        n = int(rng.integers(0, 200))
        h.pub[""]["image"].publish(Image(header=header(7000 + i, 0, FRAME), width=w, height=hh, step=step,
                                         encoding=enc, is_bigendian=bool(rng.integers(2)),
                                         data=rng.integers(0, 256, n, dtype=np.uint8).tobytes()))
        h.wait(lambda: False, 0.02)
    expect_served(h, kitti, 7500)
    assert proc.alive()


def test_diagnostics_report_rates_and_drops(e2e):
    h, _, kitti = e2e
    expect_rejected(h, BAD[0][1](), BAD[0][2])
    for sec in (8000, 8001, 8002):
        expect_served(h, kitti, sec)
    assert h.wait(lambda: int(h.latest_status("depth_node")[1].get("processed", 0)) >= 3, 10.0)
    st, values = h.latest_status("depth_node")
    assert st is not None and st.hardware_id and "depth_node" in st.name
    for key in ("input_rate_hz", "output_rate_hz", "inference_ms", "processing_ms", "dropped_stale", "rejected",
                "received", "camera_info"):
        assert key in values
    assert int(values["rejected"]) >= 1 and int(values["received"]) >= int(values["processed"]) >= 3


def test_lifecycle_services_report_and_change_the_state(e2e):
    """Over the wire, from a process of its own (test/ros/lifecycle_call.py, as ``ros2 lifecycle`` would).
    Last in the module: should the node be left inactive, no other test here reads that as its own failure."""
    h = e2e[0]
    from lifecycle_msgs.msg import State, Transition

    def ask(action):
        res = subprocess.run([sys.executable, str(LIFECYCLE_CALL), "/depth_node", str(action)], capture_output=True,
                             text=True, timeout=180)
        assert res.returncode == 0, res.stderr[-2000:]
        return int(res.stdout.split()[-1]), res.stderr[-2000:]

    def state():
        return ask("get")[0]

    def change(transition):
        done, log = ask(transition)
        assert done, f"transition {transition} refused or lost: {log}"
        return True

    assert state() == State.PRIMARY_STATE_ACTIVE
    try:
        assert change(Transition.TRANSITION_DEACTIVATE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        assert h.wait(lambda: h.pub[""]["image"].get_subscription_count() == 0, 10.0)   # images unsubscribed
    finally:
        assert change(Transition.TRANSITION_ACTIVATE)     # the module's other tests need it serving
    assert state() == State.PRIMARY_STATE_ACTIVE
    assert h.wait(lambda: h.pub[""]["image"].get_subscription_count() > 0, 10.0)
