"""Known-answer tests of the KITTI odometry snippet ATE on synthetic trajectories."""
import json
import math

import numpy as np
import pytest

from train.evaluate_pose import (evaluate_pose, main, read_kitti_poses, relative_poses, snippet_ates, snippet_xyz,
                                 to_4x4)
from train.metrics import compute_ate


def _rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _trajectory(n=12, seed=0):
    """Camera-to-world poses of a car turning gently while driving forward (z) with some bumps."""
    rng = np.random.default_rng(seed)
    poses = [np.eye(4)]
    for _ in range(n - 1):
        step = np.eye(4)
        step[:3, :3] = _rot_y(rng.uniform(-0.1, 0.1))
        step[:3, 3] = [rng.uniform(-0.1, 0.1), rng.uniform(-0.02, 0.02), rng.uniform(0.5, 1.5)]
        poses.append(poses[-1] @ step)
    return np.stack(poses)


def _forward_rel(n, step=1.0):
    rel = np.tile(np.eye(4), (n, 1, 1))
    rel[:, 2, 3] = step
    return rel


def test_relative_poses_and_chaining_recover_the_trajectory():
    poses = _trajectory()
    rel = relative_poses(poses)
    assert rel.shape == (11, 4, 4)
    np.testing.assert_allclose(poses[0] @ rel[0], poses[1], atol=1e-12)
    np.testing.assert_allclose(snippet_xyz(rel), poses[:, :3, 3], atol=1e-9)  # poses[0] is the identity


def test_gt_against_itself_is_zero():
    rel = relative_poses(_trajectory())
    ates = snippet_ates(rel, rel)
    assert ates.shape == (11 - 4 + 1,)
    np.testing.assert_allclose(ates, 0.0, atol=1e-12)


def test_translation_times_three_is_zero_after_scale_alignment():
    rel = relative_poses(_trajectory())
    pred = rel.copy()
    pred[:, :3, 3] *= 3.0
    unscaled = [np.linalg.norm(snippet_xyz(pred[i:i + 4]) - snippet_xyz(rel[i:i + 4])) for i in range(8)]
    assert min(unscaled) > 1.0  # the trajectories really differ before alignment
    res = evaluate_pose(rel, pred)
    assert res["ate_mean"] == pytest.approx(0.0, abs=1e-9) and res["num_snippets"] == 8


def test_compute_ate_by_hand():
    # gt (0,0,0) -> (1,0,0); pred (0,0,0) -> (1,1,0): scale = 1/2, residual (0.5, -0.5, 0)
    gt = np.array([[0.0, 0, 0], [1, 0, 0]])
    pred = np.array([[0.0, 0, 0], [1, 1, 0]])
    assert compute_ate(gt, pred) == pytest.approx(math.sqrt(0.5 / 2))          # 0.5
    assert compute_ate(gt, pred, "official") == pytest.approx(math.sqrt(0.5) / 2)  # 0.353553
    # a constant offset of the whole prediction is removed by aligning the first frames
    assert compute_ate(gt + 5.0, gt - 2.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="formula"):
        compute_ate(gt, pred, "bogus")
    with pytest.raises(ValueError, match="equal shape"):
        compute_ate(gt, pred[:1])


def test_known_offset_on_a_sequence():
    """GT drives 1 m forward per frame; the prediction's last step also slides sqrt(30) m sideways.

    The one snippet holding that step has gt z = 0..4 and pred x = (0,0,0,0,sqrt 30):
    scale = sum(gt·pred) / sum(pred²) = 30 / 60 = 1/2, residuals² = 0, .25, 1, 2.25, 30/4 + 4
    -> sum 15 -> ATE = sqrt(15 / 5) = sqrt(3). The other 4 snippets are exact.
    """
    gt = _forward_rel(8)
    pred = gt.copy()
    pred[7, 0, 3] = math.sqrt(30.0)
    ates = snippet_ates(gt, pred)
    np.testing.assert_allclose(ates, [0, 0, 0, 0, math.sqrt(3.0)], atol=1e-12)
    res = evaluate_pose(gt, pred)
    assert res["ate_mean"] == pytest.approx(math.sqrt(3.0) / 5)
    assert res["ate_std"] == pytest.approx(np.std([0, 0, 0, 0, math.sqrt(3.0)]))
    official = snippet_ates(gt, pred, formula="official")[-1]
    assert official == pytest.approx(math.sqrt(15.0) / 5)


def test_bad_input():
    rel = _forward_rel(6)
    with pytest.raises(ValueError, match="6 GT relative poses but 5"):
        snippet_ates(rel, rel[:5])
    with pytest.raises(ValueError, match="too few"):
        snippet_ates(rel[:3], rel[:3])
    with pytest.raises(ValueError, match="N×12"):
        to_4x4(np.zeros((3, 5)))


def _write_kitti_poses(path, poses):
    path.write_text("".join(" ".join(f"{v:.12e}" for v in p[:3].reshape(-1)) + "\n" for p in poses))


def test_read_kitti_poses(tmp_path):
    poses = _trajectory(5)
    _write_kitti_poses(tmp_path / "09.txt", poses)
    np.testing.assert_allclose(read_kitti_poses(tmp_path / "09.txt"), poses, atol=1e-10)
    (tmp_path / "bad.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected 12 numbers"):
        read_kitti_poses(tmp_path / "bad.txt")


def test_cli(tmp_path, capsys):
    poses = _trajectory(12, seed=3)
    _write_kitti_poses(tmp_path / "gt.txt", poses)
    rel = relative_poses(poses)
    scaled = rel.copy()
    scaled[:, :3, 3] *= 0.2
    np.save(tmp_path / "pred.npy", scaled)
    assert main(["--pred", str(tmp_path / "pred.npy"), "--gt_poses", str(tmp_path / "gt.txt"),
                 "--json", str(tmp_path / "ate.json")]) == 0
    assert "Trajectory error (8 snippets of 5 frames" in capsys.readouterr().out
    report = json.loads((tmp_path / "ate.json").read_text())
    assert report["ate_mean"] == pytest.approx(0.0, abs=1e-9) and report["num_snippets"] == 8

    # predictions in the opposite direction: wrong unless --invert_pred
    np.save(tmp_path / "inv.npy", np.linalg.inv(rel))
    args = ["--pred", str(tmp_path / "inv.npy"), "--gt_poses", str(tmp_path / "gt.txt"), "--json",
            str(tmp_path / "inv.json")]
    assert main(args) == 0 and json.loads((tmp_path / "inv.json").read_text())["ate_mean"] > 0.1
    assert main(args + ["--invert_pred"]) == 0
    assert json.loads((tmp_path / "inv.json").read_text())["ate_mean"] == pytest.approx(0.0, abs=1e-9)

    # absolute predicted poses
    np.savez(tmp_path / "abs.npz", poses=poses[:, :3, :])
    assert main(["--pred", str(tmp_path / "abs.npz"), "--gt_poses", str(tmp_path / "gt.txt"), "--pred_absolute",
                 "--json", str(tmp_path / "abs.json")]) == 0
    assert json.loads((tmp_path / "abs.json").read_text())["ate_mean"] == pytest.approx(0.0, abs=1e-9)

    assert main(["--pred", str(tmp_path / "nope.npy"), "--gt_poses", str(tmp_path / "gt.txt")]) == 1
    assert "not found" in capsys.readouterr().err
