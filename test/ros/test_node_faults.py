"""Faults around the messages: out of memory in inference or decoding (caught, logged, next frame
served) and no Fast DDS profile left in the temporary directory by the node process."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from md2_ros.ros import conversions as cv
from md2_ros.ros import pipeline
from md2_ros.ros.depth_node import is_out_of_memory
from md2_ros.ros.conversions import camera_info_from_kitti
from live_node import offline_node
from ros_helpers import ROOT, header

K_FULL = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.0027]])


class GreedyModel:
    """Runs out of memory on images larger than ``limit`` pixels, like a GPU on a huge input."""
    height, width, metric, device = 64, 192, True, "cpu"

    def __init__(self, limit=64 * 64, error=torch.OutOfMemoryError):
        self.limit, self.error, self.calls = limit, error, 0

    def predict_batch(self, images):
        self.calls += 1
        if images[0].shape[0] * images[0].shape[1] > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 20.00 GiB")
        return [np.full(img.shape[:2], 2.0, np.float32) for img in images]


@pytest.fixture
def node():
    yield from offline_node(GreedyModel())


def serve(node, w, h, sec):
    for p in node._pubs[""].values():
        p.msgs.clear()
    node.cameras[0].on_camera_info(camera_info_from_kitti(K_FULL, w, h, "cam", w / 1242, h / 375))
    node.cameras[0].offer(cv.numpy_to_image(np.zeros((h, w, 3), np.uint8), "rgb8", header(sec, 0, "cam")))
    return node.process_pending()


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError, RuntimeError])
def test_out_of_memory_in_inference_drops_the_frame_and_the_next_is_served(node, error):
    node.model.error = error
    stats = node.cameras[0].stats
    assert serve(node, 4000, 1000, 1) == 0                      # a huge frame: the model runs out of memory
    assert stats.rejected == 1 and "out of memory" in stats.last_error and "4000x1000" in stats.last_error
    assert "frame dropped, node keeps running" in stats.last_error
    assert serve(node, 48, 16, 2) == 1 and len(node._pubs[""]["depth"].msgs) == 1
    assert node._pubs[""]["depth"].msgs[0].header.stamp.sec == 2


def test_out_of_memory_while_decoding_is_a_rejected_frame(node, monkeypatch):
    def no_memory(msg):
        raise MemoryError()
    monkeypatch.setattr(pipeline.cv, "image_to_rgb", no_memory)
    assert serve(node, 48, 16, 3) == 0
    assert node.cameras[0].stats.rejected == 1 and "out of memory" in node.cameras[0].stats.last_error
    monkeypatch.undo()
    assert serve(node, 48, 16, 4) == 1


def test_out_of_memory_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("x")) and is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("bad"))


def test_node_process_leaves_no_fastdds_profile_in_tmp(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT), "ROS_LOG_DIR": str(tmp_path / "log"), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    proc = subprocess.run([sys.executable, "-m", "md2_ros.ros.run", "--params-file", str(ROOT / "config/depth.yaml"),
                           "--model-path", "/nonexistent.safetensors"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1 and "cannot load model" in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("md2_fastdds_*")), list(tmp_path.iterdir())
