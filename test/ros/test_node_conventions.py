"""ROS conventions over real topics (node in-process with a fake model, test harness in its own context):
one image transport per camera, depth/image_rect + depth/camera_info siblings and deprecated aliases,
latched and late CameraInfo, frame ids with a leading '/', diagnostics in every lifecycle state,
sim-time clock jumps, and a corrupt JPEG on the compressed transport."""
import cv2
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from live_node import LiveNode
from md2_ros.ros import conversions as cv
from md2_ros.ros.conversions import camera_info_from_kitti
from md2_ros.ros.topics import LATCHED_QOS
from ros_helpers import Harness, header

K_FULL = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.0027]])
W, H = 48, 16
ALL = ("depth", "depth/camera_info", "depth_colored", "points")


def frame(sec, frame_id="cam"):
    rgb = np.random.default_rng(sec).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return cv.numpy_to_image(rgb, "rgb8", header(sec, 7, frame_id)), rgb


def png(msg, rgb):
    return CompressedImage(header=msg.header, format="png", data=cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())


def info(frame_id="cam"):
    return camera_info_from_kitti(K_FULL, W, H, frame_id, W / 1242, H / 375)


@pytest.fixture
def live(request):
    """(LiveNode, Harness) with node parameters from ``@pytest.mark.parametrize('live', [{...}], indirect=True)``."""
    params = getattr(request, "param", {})
    node = LiveNode(**params)
    harness = Harness(name="md2_conventions_harness", info_seen=lambda cam, msg: next(
        c for c in node.node.cameras if c.name == cam)._info == msg)
    kind = "compressed" if node.node.transport == "compressed" else "image"
    try:
        assert harness.wait_connected(timeout=20.0, kind=kind), "node and harness did not connect"
        msg, rgb = frame(1)
        harness.warm_up(png(msg, rgb) if kind == "compressed" else msg, kind=kind)
        node.model.calls = 0                         # tests count only their own frames
        node.model.images.clear()
        yield node, harness
    finally:
        harness.close()
        node.close()


@pytest.mark.parametrize("live", [{"image_transport": "raw"}, {"image_transport": "compressed"}], indirect=True,
                         ids=["raw", "compressed"])
def test_camera_publishing_raw_and_compressed_gets_one_output_per_frame(live):
    node, h = live
    transport = node.node.transport
    for sec in range(100, 106):
        msg, rgb = frame(sec)
        h.publish_info(info())
        h.pub[""]["image"].publish(msg)              # image_transport publishes both when both have subscribers
        h.pub[""]["compressed"].publish(png(msg, rgb))
        assert h.wait(lambda: h.output("depth", msg.header) is not None, 10.0), sec
        h.wait(lambda: False, 0.2)                   # room for a duplicate to show up
    depth_stamps = [k[0] for k in h.got[("", "depth")]]
    assert sorted(depth_stamps) == list(range(100, 106))          # exactly one depth per frame
    assert node.model.calls == 6
    subs = {t: n for t, n in [(s, node.node.count_subscribers(s)) for s in ("/image_raw", "/image_raw/compressed")]}
    assert subs == {"/image_raw": int(transport == "raw"), "/image_raw/compressed": int(transport == "compressed")}


def test_output_topics_are_depth_image_rect_and_siblings_with_deprecated_aliases(live):
    node, h = live
    topics = dict(h.node.get_topic_names_and_types())
    for name, typ in (("/depth_node/depth/image_rect", "sensor_msgs/msg/Image"),
                      ("/depth_node/depth/camera_info", "sensor_msgs/msg/CameraInfo"),
                      ("/depth_node/depth/colorized", "sensor_msgs/msg/Image"),
                      ("/depth_node/depth/points", "sensor_msgs/msg/PointCloud2")):
        assert topics.get(name) == [typ], (name, topics.get(name))
    old = []
    h.node.create_subscription(Image, "/depth_node/depth", old.append, 10)       # a 0.1 user
    assert h.wait(lambda: node.node.count_subscribers("/depth_node/depth") > 0, 10.0)
    msg, _ = frame(200)
    out = h.send(msg, info(), wait_for=ALL)
    assert all(out[k] is not None for k in ALL), {k: out[k] is not None for k in ALL}
    assert h.wait(lambda: len(old) == 1, 10.0) and old[0].header.stamp.sec == 200
    assert bytes(old[0].data) == bytes(out["depth"].data)
    ci = out["depth/camera_info"]
    assert (ci.width, ci.height) == (W, H) and not np.any(ci.d) and np.allclose(np.reshape(ci.r, (3, 3)), np.eye(3))
    np.testing.assert_allclose(np.reshape(ci.k, (3, 3)), np.reshape(ci.p, (3, 4))[:, :3])


def test_late_camera_info_then_cloud_and_leading_slash_frame_id(live):
    node, h = live
    for sec in (300, 301):                       # images before any CameraInfo: depth only
        msg, _ = frame(sec)
        assert h.send(msg)["depth"] is not None
        assert h.output("points", msg.header) is None
    assert h.wait(lambda: "no CameraInfo" in h.latest_status("depth_node")[1].get("camera_info", ""), 10.0)
    msg, _ = frame(302, frame_id="cam")
    out = h.send(msg, info(frame_id="/cam"), wait_for=ALL)        # ROS 1 style id on the CameraInfo
    assert out["points"] is not None and out["depth/camera_info"] is not None
    assert out["points"].header.frame_id == "cam"                 # outputs keep the image's header
    assert h.wait(lambda: h.latest_status("depth_node")[1].get("camera_info") == "ok", 10.0)


def test_latched_one_shot_camera_info_is_received(live):
    node, h = live
    latched = h.node.create_publisher(CameraInfo, "/camera_info", LATCHED_QOS)
    latched.publish(info())                      # once, as a calibration publisher does
    h.wait(lambda: False, 0.3)
    node.node.cameras[0]._info = None            # forget what the sensor-QoS publisher might have sent
    node.node.trigger_deactivate()
    node.node.trigger_activate()                 # new subscriptions: only the latched sample can deliver it
    assert h.wait(lambda: node.node.cameras[0]._info is not None, 10.0)
    msg, _ = frame(400)
    h.wait(lambda: h.pub[""]["image"].get_subscription_count() > 0, 10.0)
    assert h.send(msg, wait_for=("depth", "points"))["points"] is not None


def test_diagnostics_keep_reporting_the_lifecycle_state_while_inactive(live):
    """Transitions are triggered in-process (the ChangeState service over the wire is covered against the
    subprocess node in test_node_e2e.py): discovering a service between two contexts of this one process
    timed out on the loaded CI machine twice, and this test is about the diagnostics, not discovery."""
    node, h = live
    node.node.trigger_deactivate()
    assert h.wait(lambda: h.latest_status("depth_node")[1].get("lifecycle_state") == "inactive", 10.0)
    n = len(h.diagnostics)
    assert h.wait(lambda: len(h.diagnostics) >= n + 2, 10.0), "diagnostics stopped while inactive"
    st, values = h.latest_status("depth_node")
    assert values["lifecycle_state"] == "inactive" and "inactive" in st.message
    assert h.wait(lambda: h.pub[""]["image"].get_subscription_count() == 0, 10.0)   # inactive: not subscribed
    node.node.trigger_activate()
    assert h.wait(lambda: h.latest_status("depth_node")[1].get("lifecycle_state") == "active", 10.0)


@pytest.mark.parametrize("live", [{"use_sim_time": True}], indirect=True)
def test_sim_time_clock_jumps_back_outputs_keep_input_stamps(live):
    from rosgraph_msgs.msg import Clock
    node, h = live
    clock = h.node.create_publisher(Clock, "/clock", 10)
    n = len(h.diagnostics)
    assert h.wait(lambda: len(h.diagnostics) >= n + 2, 10.0), "diagnostics need no /clock (steady timer)"
    for t, sec in ((100, 1000), (100, 1001), (5, 20), (5, 21), (7000, 7000)):    # bag loop, then a jump ahead
        clock.publish(Clock(clock=header(t).stamp))
        msg, _ = frame(sec)
        out = h.send(msg, info(), wait_for=ALL)
        assert out["depth"] is not None and out["points"] is not None, (t, sec)
        assert out["depth"].header.stamp.sec == sec
    n = len(h.diagnostics)
    assert h.wait(lambda: len(h.diagnostics) >= n + 2, 10.0), "diagnostics stopped after the clock jumps"
    assert h.diagnostics[-1].header.stamp.sec == 7000              # diagnostics are stamped with sim time


@pytest.mark.parametrize("live", [{"image_transport": "compressed"}], indirect=True)
def test_corrupt_jpeg_rejected_and_good_jpeg_served(live):
    node, h = live
    msg, rgb = frame(500)
    data = cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes()
    stats = node.node.cameras[0].stats
    h.pub[""]["compressed"].publish(CompressedImage(header=header(499, 0, "cam"), format="jpeg", data=data[:200]))
    assert h.wait(lambda: stats.rejected == 1, 10.0) and "corrupt" in stats.last_error
    good = CompressedImage(header=header(500, 5, "cam"), format="jpeg", data=data)
    out = h.send(good, info(), kind="compressed", wait_for=("depth", "points"))
    assert out["depth"] is not None and (out["depth"].width, out["depth"].height) == (W, H)
    assert out["points"] is not None and out["points"].header.stamp.nanosec == 5


def test_sensor_qos_camera_info_still_received(live):
    node, h = live
    assert h.pub[""]["camera_info"].qos_profile.reliability == qos_profile_sensor_data.reliability
    msg, _ = frame(600)
    assert h.send(msg, info(), wait_for=("points",))["points"] is not None
