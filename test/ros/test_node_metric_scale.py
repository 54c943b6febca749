"""The node's scale choice, in-process: camera-height scale on a synthetic ground scene (metres within
3 %, reported in diagnostics), no ground -> scale unset with a WARN and a reason, and metric
checkpoints (stereo-trained, real DepthModel from disk) published in metres with no parameter."""
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.parameter import Parameter

from md2_ros.ros import conversions as cv
from md2_ros.ros.depth_node import DepthNode
from md2_ros.ros.diagnostics import to_status
from md2_ros.ros.conversions import camera_info_from_kitti
from md2_ros.synthetic import CAMERA_HEIGHT, render_sequence
from ros_helpers import FakePub, header

FACTOR = 7.3      # the unknown scale: the fake network predicts true depth / FACTOR


@pytest.fixture(scope="module")
def seq():
    return render_sequence(3, 64, 192, seed=5, supersample=1)


class RelativeModel:
    """A relative-depth 'network': true synthetic depth / FACTOR for the frame whose image it gets."""
    height, width, metric, scale_source, device = 64, 192, False, "", "cpu"

    def __init__(self, seq):
        self.lookup = {img.tobytes(): d for img, d in zip(seq.images, seq.depths)}

    def predict_batch(self, images):
        return [self.lookup.get(img.tobytes(), np.full(img.shape[:2], 6.0, np.float32)) / FACTOR
                for img in images]


def make_node(model, **params):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    overrides = [Parameter("diagnostics_period", value=60.0)] + [Parameter(k, value=v) for k, v in params.items()]
    node = DepthNode(model=model, context=ctx, parameter_overrides=overrides)
    node.trigger_deactivate()
    node._pubs[""] = {k: FakePub() for k in ("depth", "depth_info", "colored", "points")}
    return node, ctx


def close(node, ctx):
    node._teardown_active()
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def serve(node, rgb, sec, K):
    node.cameras[0].on_camera_info(camera_info_from_kitti(np.hstack([K, np.zeros((3, 1))]), rgb.shape[1],
                                                          rgb.shape[0], "cam"))
    for p in node._pubs[""].values():
        p.msgs.clear()
    node.cameras[0].offer(cv.numpy_to_image(rgb, "rgb8", header(sec, 0, "cam")))
    node.process_pending()
    return cv.image_to_numpy(node._pubs[""]["depth"].msgs[0])


def status(node):
    st = to_status("cam", "cam", node.cameras[0].stats.window())
    return st, {kv.key: kv.value for kv in st.values}


def test_camera_height_publishes_metres_and_reports_it(seq):
    node, ctx = make_node(RelativeModel(seq), camera_height=CAMERA_HEIGHT)
    try:
        for i, (rgb, truth) in enumerate(zip(seq.images, seq.depths)):
            depth = serve(node, rgb, i + 1, seq.K)
            assert np.nanmedian(depth / truth) == pytest.approx(1.0, rel=0.03)
        st, values = status(node)
        assert st.level == DiagnosticStatus.OK, st.message
        assert values["scale_source"] == "camera_height" and values["metric"] == "True"
        assert float(values["scale"]) == pytest.approx(FACTOR, rel=0.03)
        assert float(values["ground_inlier_share"]) > 0.3
    finally:
        close(node, ctx)


def test_no_ground_leaves_scale_unset_with_a_reason(seq):
    node, ctx = make_node(RelativeModel(seq), camera_height=CAMERA_HEIGHT)
    try:
        wall = np.full((64, 192, 3), 77, np.uint8)             # unknown image: the model sees a wall at 6/FACTOR
        depth = serve(node, wall, 1, seq.K)
        np.testing.assert_allclose(depth, 6.0 / FACTOR, rtol=1e-6)   # relative depth, not a made-up scale
        st, values = status(node)
        assert st.level == DiagnosticStatus.WARN and "ground scale unset" in st.message
        assert values["scale"] != str(FACTOR) and values["scale_source"] == "none" and values["metric"] == "False"
        assert "horizontal" in values["scale_note"]
        # the ground appears: metres from then on; a later wall frame keeps the smoothed scale
        serve(node, seq.images[0], 2, seq.K)
        depth = serve(node, wall, 3, seq.K)
        np.testing.assert_allclose(depth, 6.0, rtol=0.03)
        _, values = status(node)
        assert values["scale_source"] == "camera_height" and "horizontal" in values["scale_note"]
    finally:
        close(node, ctx)


def test_camera_height_can_be_switched_at_runtime(seq):
    node, ctx = make_node(RelativeModel(seq))
    try:
        depth = serve(node, seq.images[0], 1, seq.K)
        assert np.nanmedian(depth / seq.depths[0]) == pytest.approx(1 / FACTOR, rel=1e-5)
        assert status(node)[1]["scale_source"] == "none"
        (res,) = node.set_parameters([Parameter("camera_height", value=CAMERA_HEIGHT)])
        assert res.successful
        depth = serve(node, seq.images[1], 2, seq.K)
        assert np.nanmedian(depth / seq.depths[1]) == pytest.approx(1.0, rel=0.03)
        (res,) = node.set_parameters([Parameter("camera_height", value=-1.0)])
        assert not res.successful
    finally:
        close(node, ctx)


def test_stereo_checkpoint_publishes_metres_without_parameters(seq, tmp_path):
    """An S-trained model (depth_scale 5.4, metric) saved and loaded from disk: ~/depth = its metres."""
    import torch

    from md2_ros.core.model import DepthModel
    torch.manual_seed(0)
    model = DepthModel(18, 64, 192, depth_scale=5.4, metric=True, scale_source="stereo")
    model.save(tmp_path / "s.safetensors")
    node, ctx = make_node(None, model_path=str(tmp_path / "s.safetensors"), device="cpu",
                          backend="eager")   # exact comparison with predict(): auto may pick bf16 (1e-2 bound)
    try:
        assert node.model.metric and node.model.depth_scale == 5.4
        depth = serve(node, seq.images[0], 1, seq.K)
        np.testing.assert_allclose(depth, node.model.predict(seq.images[0]), rtol=1e-5)
        relative = DepthModel(18, 64, 192)                     # the same weights without the stereo scale
        relative.load_state_dict(model.state_dict())
        np.testing.assert_allclose(depth, 5.4 * relative.setup_inference("cpu").predict(seq.images[0]), rtol=1e-4)
        _, values = status(node)
        assert values["scale_source"] == "checkpoint:stereo" and values["metric"] == "True"
        assert float(values["scale"]) == 1.0
    finally:
        close(node, ctx)
