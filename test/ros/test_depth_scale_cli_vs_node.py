"""One meaning of depth_scale: a factor on top of the checkpoint's own scale, in md2-depth and in the node.

A stereo checkpoint carries depth_scale 5.4; the same image with the same setting (2.0) must give the same
depth from the CLI (--depth-scale 2) and from the node (parameter depth_scale 2.0)."""
import cv2
import numpy as np
import rclpy
import torch
from rclpy.parameter import Parameter

from md2_ros.cli import main as md2_depth
from md2_ros.core.model import DepthModel
from md2_ros.ros import conversions as cv
from md2_ros.ros.depth_node import DepthNode
from ros_helpers import FakePub, header


def node_depth(model, rgb, depth_scale):
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = DepthNode(model=model, context=ctx, parameter_overrides=[
            Parameter("depth_scale", value=depth_scale), Parameter("diagnostics_period", value=60.0),
            Parameter("backend", value="eager")])
        node.trigger_deactivate()      # no worker thread: call the handler here
        node._pubs[""] = {k: FakePub() for k in ("depth", "depth_info", "colored", "points")}
        node.cameras[0].offer(cv.numpy_to_image(rgb, "rgb8", header(1, 0, "cam")))
        node.process_pending()
        (msg,) = node._pubs[""]["depth"].msgs
        node._teardown_active()
        node.destroy_node()
        return cv.image_to_numpy(msg).astype(np.float32)
    finally:
        rclpy.try_shutdown(context=ctx)


def test_stereo_checkpoint_same_depth_from_cli_and_node(tmp_path):
    torch.manual_seed(0)
    model = DepthModel(num_layers=18, height=64, width=192, depth_scale=5.4, metric=True)   # a stereo checkpoint
    ckpt = tmp_path / "stereo.safetensors"
    model.save(ckpt)
    rgb = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (96, 288, 3), dtype=np.uint8), (7, 7), 2)
    cv2.imwrite(str(tmp_path / "frame.png"), rgb[..., ::-1])

    assert md2_depth([str(tmp_path / "frame.png"), "--checkpoint", str(ckpt), "-o", str(tmp_path / "out"),
                      "--formats", "npy", "--depth-scale", "2", "--device", "cpu", "--backend", "eager",
                      "--no-progress"]) == 0
    cli = np.load(tmp_path / "out" / "depth_npy" / "frame.npy")
    node = node_depth(DepthModel.load(ckpt, device="cpu"), rgb, 2.0)

    assert cli.shape == node.shape == (96, 288)
    np.testing.assert_allclose(cli, node, rtol=1e-5)
    unscaled = DepthModel.load(ckpt, device="cpu")
    unscaled.config.depth_scale = 1.0
    np.testing.assert_allclose(cli, 5.4 * 2.0 * unscaled.predict(rgb), rtol=1e-4)   # factor ON TOP of 5.4
