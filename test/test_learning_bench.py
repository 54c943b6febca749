"""bench/learning.py's scoring plumbing: the camera-height row recovers metres from a relative model
(known answer on exact synthetic depth), the held-out frames carry their intrinsics, and --metric is
refused where there is no odometry."""
import numpy as np
import pytest

from bench import learning as L
from md2_ros.synthetic import CAMERA_HEIGHT, render_sequence, write_kitti_layout


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    root = tmp_path_factory.mktemp("held")
    drives = []
    for seed in (3, 4):
        seq = render_sequence(num_frames=3, height=64, width=192, seed=seed, supersample=1)
        drives.append(write_kitti_layout(seq, root, drive=f"2011_09_26_drive_s{seed:05d}_sync"))
    return L.synthetic_heldout(drives), seq


def test_heldout_frames_carry_the_camera(heldout):
    frames, seq = heldout
    assert len(frames.images) == len(frames.gts) == len(frames.Ks) == 6 and frames.sequences == [3, 3]
    np.testing.assert_allclose(frames.Ks[0], seq.K[:3, :3], rtol=1e-9)


@pytest.mark.parametrize("relative_scale", [0.05, 3.0])
def test_camera_height_row_recovers_metres(heldout, relative_scale):
    frames, _ = heldout
    scorer = L.Scorer(frames, "none")
    # a "model" at half the image size whose depth is the true depth times an unknown factor
    import cv2
    disps = np.stack([cv2.resize(1.0 / (relative_scale * g), (96, 32), interpolation=cv2.INTER_NEAREST)
                      for g in frames.gts])
    row = scorer.camera_height(disps, CAMERA_HEIGHT)
    assert row["frames_fitted"] == 6
    assert row["scale_error_median"] == pytest.approx(1.0, abs=0.03)
    assert row["abs_rel"] < 0.05
    median_scaled = scorer._evaluate(disps, "disp")
    assert row["abs_rel"] == pytest.approx(median_scaled["abs_rel"], abs=0.03)


def test_camera_height_row_says_why_when_no_ground(heldout):
    frames, _ = heldout
    scorer = L.Scorer(frames, "none")
    row = scorer.camera_height(np.full((6, 32, 96), 0.1, np.float32), CAMERA_HEIGHT)  # a wall
    assert row["frames_fitted"] == 0 and "abs_rel" not in row and row["reason"]


def test_metric_needs_odometry(capsys):
    assert L.main(["--kitti", "--metric", "--steps", "1"]) == 2
    assert "--metric needs odometry" in capsys.readouterr().err


def test_ground_prior_row_is_exact_on_a_flat_ground(heldout):
    frames, _ = heldout
    flat = L.Heldout(images=frames.images[:2], Ks=frames.Ks[:2], sequences=[2])
    h, w = frames.gts[0].shape
    K = frames.Ks[0]
    below = np.arange(h)[:, None] - K[1, 2]
    ground = np.where(below > 0, K[1, 1] * CAMERA_HEIGHT / np.maximum(below, 1e-9), 40.0)
    flat.gts = [np.broadcast_to(np.minimum(ground, 40.0), (h, w)).astype(np.float32)] * 2
    row = L.Scorer(flat, "none").ground_prior(CAMERA_HEIGHT)
    assert row["far"] == 40.0 and row["abs_rel"] < 1e-5
    real = L.Scorer(frames, "none").ground_prior(CAMERA_HEIGHT)      # walls and boxes: the prior is not depth
    assert real["abs_rel"] > 0.05
