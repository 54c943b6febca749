"""Metric evaluation: both tables (median-scaled and unscaled), per-frame scale error, per-frame scales,
and the camera-height scale source end to end through the CLI on a synthetic KITTI-layout drive."""
import json

import numpy as np
import pytest

from md2_ros.synthetic import CAMERA_HEIGHT, render_sequence, write_kitti_layout
from train.evaluate_depth import evaluate, main
from train.export_gt_depth import save_gt_depths
from train.metric_eval import both_tables, scale_source_of


def _gt(n=3, h=40, w=80, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(2.0, 35.0, (h, w)).astype(np.float32) for _ in range(n)]


def test_scale_error_is_median_pred_over_median_gt():
    gt = _gt()
    preds = np.stack([2.0 * g for g in gt])
    for median in (True, False):
        res = evaluate(gt, preds, pred_type="depth", median_scaling=median, crop="none")
        assert res["scale_error_median"] == pytest.approx(2.0, rel=1e-6) and res["num_no_scale"] == 0
    tables = both_tables(evaluate, gt, preds, pred_type="depth", crop="none")
    assert tables["median_scaled"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert tables["unscaled"]["abs_rel"] == pytest.approx(1.0, rel=1e-6)        # |2g - g| / g


def test_frame_scales_apply_per_image_and_none_is_left_out():
    gt = _gt()
    preds = np.stack([gt[0] / 3.0, gt[1] / 5.0, gt[2]])
    res = evaluate(gt, preds, pred_type="depth", median_scaling=False, crop="none", frame_scales=[3.0, 5.0, None])
    assert res["num_images"] == 2 and res["num_no_scale"] == 1
    assert res["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert res["scale_error_median"] == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="frame scales"):
        evaluate(gt, preds, pred_type="depth", frame_scales=[1.0])


def test_no_frame_with_a_scale_leaves_the_unscaled_table_empty():
    gt = _gt()
    preds = np.stack(gt)
    tables = both_tables(evaluate, gt, preds, pred_type="depth", crop="none", frame_scales=[None, None, None])
    assert tables["unscaled"] is None and tables["num_no_scale"] == 3
    assert tables["median_scaled"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)   # median scaling needs no scale


def test_scale_source_words():
    class M:
        metric, scale_source = True, "odometry"
    assert scale_source_of(M()) == "checkpoint:odometry"
    assert scale_source_of(M(), camera_height=1.65) == "camera_height"
    assert scale_source_of(None, stereo=True) == "stereo factor"
    assert scale_source_of(None, factor=2.0) == "fixed factor" and scale_source_of(None) == "none"


def test_cli_camera_height_recovers_metres(tmp_path, capsys):
    """Relative predictions (exact depth / 4.2) of a synthetic drive: with --camera_height 1.65 the unscaled
    table matches the median-scaled one and the per-frame scale error is ~1."""
    seq = render_sequence(3, 96, 320, seed=4, supersample=1)
    drive = write_kitti_layout(seq, tmp_path)
    files = [f"{drive.parent.name}/{drive.name} {i:010d} l" for i in range(3)]
    save_gt_depths(tmp_path / "gt.npz", seq.depths, files, [2, 2, 2], "synthetic", "synthetic")
    np.savez(tmp_path / "pred.npz", disp=np.stack([4.2 / d for d in seq.depths]).astype(np.float32))
    args = ["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "pred.npz"), "--crop", "none",
            "--json", str(tmp_path / "m.json")]
    assert main(args + ["--camera-height", str(CAMERA_HEIGHT), "--data_path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "camera-height scale (1.65 m): 3/3 frames fitted" in out and "scale source: camera_height" in out
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["scale_source"] == "camera_height" and report["num_no_scale"] == 0
    assert report["scale_error_median"] == pytest.approx(1.0, abs=0.03)
    assert report["unscaled"]["abs_rel"] < report["median_scaled"]["abs_rel"] + 0.03
    # without a scale source the unscaled table is the relative prediction's: 4.2x too small
    assert main(args + ["--no-median-scaling"]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["median_scaling"] is False and report["scale_source"] == "none"
    assert report["scale_error_median"] == pytest.approx(1 / 4.2, rel=0.01) and report["metrics"]["abs_rel"] > 0.7
    assert main(args + ["--camera_height", "1.65"]) == 2                         # no --data_path: clear error
    assert "--data_path" in capsys.readouterr().err


def test_pose_ate_with_and_without_scale_alignment():
    from train.evaluate_pose import evaluate_pose, relative_poses
    from train.sequence_bag import velocities  # noqa: F401  (module import check: the bag writer's helpers load)
    poses = np.tile(np.eye(4), (8, 1, 1))
    poses[:, 2, 3] = np.arange(8) * 1.2                      # 1.2 m per frame forward
    gt_rel = relative_poses(poses)
    pred_rel = gt_rel.copy()
    pred_rel[:, :3, 3] *= 0.5                                # right direction, half the length
    res = evaluate_pose(gt_rel, pred_rel)
    assert res["ate_mean"] == pytest.approx(0.0, abs=1e-9)  # alignment hides the scale
    assert res["ate_unaligned_mean"] > 0.5 and res["translation_ratio_median"] == pytest.approx(0.5)
