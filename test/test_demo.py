"""The README's main job (``make demo`` = ``python -m demo``) end to end, at toy size.

Synthetic scene, a few training steps, the real rclpy node on the bag, metrics. The full-size run
(kitti_mini, hundreds of steps) is what `make demo` does; this checks every stage is wired.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_end_to_end_on_synthetic_scene(tmp_path):
    pytest.importorskip("rclpy", reason="the demo's node step needs the ROS 2 wheels (pip install -e '.[ros]')")
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(150 + os.getpid() % 50),
               OMP_NUM_THREADS="2")
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "demo", "--synthetic", "--synthetic-frames", "8", "--synthetic-size",
           "96x320", "--steps", "3", "--height", "64", "--width", "192", "--batch-size", "2", "--device", "cpu",
           "--out", str(out)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "abs_rel" in r.stdout and "not how well the model" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 8 and metrics["gt_source"] == "exact synthetic depth"
    assert metrics["stamps_and_frame_id_copied"] is True
    assert 0 <= metrics["metrics"]["abs_rel"] < 5 and 0 <= metrics["metrics"]["a1"] <= 1
    assert metrics["scale_source"] == "camera_height" and metrics["scale_error_median"] > 0    # metric depth report
    assert set(metrics["unscaled"]) == set(metrics["median_scaled"])
    assert set(metrics["constant_depth"]) == set(metrics["untrained_same_network"])                  # the floor row
    assert len(list((out / "depth_colored").glob("*.png"))) == 8
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100
    assert (out / "cloud.ply").read_bytes().startswith(b"ply")
    for name in ("cloud_perspective.png", "cloud_birdseye.png"):   # the last cloud, rendered in camera colours
        view = cv2.imread(str(out / name))
        assert view is not None and (view != 24).any(axis=2).mean() > 0.02, name
    assert (out / "train" / "depth.safetensors").exists()
