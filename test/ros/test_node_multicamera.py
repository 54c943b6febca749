"""Two cameras served by one node process and one loaded model, started the pip-only way
(python -m md2_ros.ros.run --params-file config/depth.yaml --cameras cam0 cam1)."""
import numpy as np
import pytest

from md2_ros.ros import conversions as cv
from ros_helpers import ROOT, Harness, NodeProcess, header, kitti_camera_info, kitti_frame

CAMS = ("cam0", "cam1")


@pytest.fixture(scope="module")
def rig(tmp_path_factory, small_model_path, kitti_mini):
    tmp = tmp_path_factory.mktemp("multi")
    proc = NodeProcess(ROOT / "config" / "depth.yaml", "--cameras", *CAMS, "--model-path", str(small_model_path),
                       "--param", "torch_threads:=1", "--param", "diagnostics_period:=0.2",
                       "--param", "backend:=eager",
                       log_path=tmp / "node.log")
    harness = Harness(name="md2_multi_harness", cameras=CAMS, compressed=False)
    try:
        if not all(harness.wait_connected(timeout=60, cam=c) for c in CAMS):
            pytest.fail(f"multi-camera node did not come up; log:\n{proc.stop()}")
        yield harness, proc, kitti_mini
    finally:
        harness.close()
        log = proc.stop()
    assert proc.proc.returncode == 0 and "Traceback" not in log, log


def send_pair(h, kitti, sec, sizes):
    """Publish one frame per camera back to back, then wait for both depths."""
    msgs = {}
    for i, (cam, size) in enumerate(zip(CAMS, sizes)):
        frame_id = f"{cam}_optical"
        h.pub[cam]["camera_info"].publish(kitti_camera_info(kitti, *size, frame_id))
    h.wait(lambda: False, 0.2)                  # the node's executor may take a ready image before its CameraInfo
    for i, (cam, size) in enumerate(zip(CAMS, sizes)):
        rgb = kitti_frame(kitti, 30 + i, size)
        msgs[cam] = (cv.numpy_to_image(rgb, "rgb8", header(sec, i, f"{cam}_optical")), rgb)
        h.pub[cam]["image"].publish(msgs[cam][0])
    h.wait(lambda: all(h.output(k, m.header, cam) is not None for cam, (m, _) in msgs.items()
                       for k in ("depth", "points")), 10.0)
    return msgs


@pytest.mark.parametrize("sizes", [((248, 75), (248, 75)), ((248, 75), (310, 94))], ids=["batched", "two_sizes"])
def test_both_cameras_served_by_one_model(rig, sizes):
    h, proc, kitti = rig
    sec = 100 + int(sizes[1][0])
    msgs = send_pair(h, kitti, sec, sizes)
    for cam, (msg, rgb) in msgs.items():
        depth = h.output("depth", msg.header, cam)
        cloud = h.output("points", msg.header, cam)
        assert depth is not None and cloud is not None, cam
        assert depth.header.frame_id == f"{cam}_optical"
        assert (depth.width, depth.height) == tuple(sizes[CAMS.index(cam)])
        _, colours = cv.cloud_to_numpy(cloud)
        np.testing.assert_array_equal(colours, rgb)
    # outputs never cross cameras
    for cam, (msg, _) in msgs.items():
        other = CAMS[1 - CAMS.index(cam)]
        assert h.output("depth", msg.header, other) is None


def test_one_model_load_and_per_camera_diagnostics(rig):
    h, proc, kitti = rig
    send_pair(h, kitti, 500, ((248, 75), (248, 75)))
    assert proc.log().count("]: model ") == 1
    assert h.wait(lambda: h.latest_status("cam0")[0] is not None and h.latest_status("cam1")[0] is not None, 10.0)
    assert int(h.latest_status("cam1")[1]["processed"]) >= 1
