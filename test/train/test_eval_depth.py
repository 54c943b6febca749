"""Known-answer tests of the depth metrics and the Eigen protocol (no data files needed)."""
import json
import math

import numpy as np
import pytest

from train.evaluate_depth import crop_mask, evaluate, format_table, main, post_process_disparity, prediction_to_depth
from train.export_gt_depth import save_gt_depths
from train.metrics import METRIC_NAMES, compute_errors, mean_errors

ZERO = {"abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0, "a1": 1.0, "a2": 1.0, "a3": 1.0}


def _sparse_gt(n=3, h=60, w=100, seed=0):
    """Velodyne-like GT: ~30 % of pixels in (2, 70) m (×1.1 stays under 80), the rest 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        d = rng.uniform(2.0, 70.0, (h, w)).astype(np.float32)
        d[rng.random((h, w)) > 0.3] = 0.0
        out.append(d)
    return out


def _assert_metrics(got, expected, tol=1e-6):
    assert set(got) == set(METRIC_NAMES)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=tol), k


# ------------------------------------------------------------------ metrics
def test_hand_computed_metrics():
    gt = np.array([1.0, 2.0, 4.0, 5.0, 1.0])
    pred = np.array([1.2, 3.0, 7.2, 5.0, 3.0])
    # ratios max(gt/pred, pred/gt) = 1.2, 1.5, 1.8, 1, 3
    expected = {
        "abs_rel": (0.2 + 0.5 + 0.8 + 0 + 2) / 5,                       # 0.7
        "sq_rel": (0.04 / 1 + 1 / 2 + 10.24 / 4 + 0 + 4 / 1) / 5,       # 1.42
        "rmse": math.sqrt((0.04 + 1 + 10.24 + 0 + 4) / 5),              # 1.748142
        "rmse_log": math.sqrt(sum(math.log(r) ** 2 for r in (1.2, 1.5, 1.8, 1.0, 3.0)) / 5),  # 0.591622
        "a1": 2 / 5, "a2": 3 / 5, "a3": 4 / 5,
    }
    assert expected["rmse"] == pytest.approx(1.748142, abs=1e-6)
    assert expected["rmse_log"] == pytest.approx(0.591622, abs=1e-6)
    _assert_metrics(compute_errors(gt, pred), expected, tol=1e-12)


def test_metrics_symmetric_threshold_and_identity():
    gt = np.array([2.0, 10.0, 40.0])
    _assert_metrics(compute_errors(gt, gt), ZERO, tol=0)
    # a1 uses max(gt/pred, pred/gt): over- and under-estimates by the same factor count alike
    assert compute_errors(gt, gt * 1.3)["a1"] == compute_errors(gt, gt / 1.3)["a1"] == 0.0
    # thresholds are strict: 5 / 4 = 1.25 exactly is not a hit for a1 but is for a2
    edge = compute_errors([4.0], [5.0])
    assert edge["a1"] == 0.0 and edge["a2"] == 1.0


@pytest.mark.parametrize("gt, pred, match", [
    ([], [], "empty"), ([1.0, 2.0], [1.0], "values"), ([1.0, 0.0], [1.0, 1.0], "positive"),
    ([1.0, np.nan], [1.0, 1.0], "NaN"),
])
def test_metrics_bad_input(gt, pred, match):
    with pytest.raises(ValueError, match=match):
        compute_errors(gt, pred)


def test_mean_errors_is_per_image_mean():
    m = mean_errors([ZERO, {k: 2.0 * v + 1 for k, v in ZERO.items()}])
    assert m["rmse"] == 0.5 and m["a1"] == 2.0


# ------------------------------------------------------------------ crop, post-process, resize
def test_garg_crop_indices_kitti_size():
    m = crop_mask(375, 1242, "garg")
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (153, 371, 44, 1197)
    assert m.sum() == (371 - 153) * (1197 - 44)
    e = crop_mask(375, 1242, "eigen")
    assert np.nonzero(e.any(axis=1))[0][0] == int(0.3324324 * 375) == 124
    assert crop_mask(4, 5, "none").all()
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask(4, 5, "bogus")


def test_post_process_blend_known_array():
    w = 41  # x = linspace(0, 1, 41): step 0.025; l-ramp 1, 1, 1, 0.5, 0 at x = 0 … 0.1
    disp = np.ones((2, w), np.float32)
    flip = np.full((2, w), 3.0, np.float32)
    out = post_process_disparity(disp, flip)
    np.testing.assert_allclose(out[0, :5], [3, 3, 3, 2.5, 2], atol=1e-6)   # left edge from the mirrored one
    np.testing.assert_allclose(out[0, -5:], [2, 1.5, 1, 1, 1], atol=1e-6)  # right edge from the direct one
    np.testing.assert_allclose(out[:, 5:-5], 2.0, atol=1e-6)              # mean elsewhere


def test_post_process_flips_the_mirrored_prediction_back():
    w = 41
    disp = np.zeros((1, w), np.float32)
    mirrored = np.arange(w, dtype=np.float32)[None]  # in mirrored coordinates: back = w-1-j
    out = post_process_disparity(disp, mirrored)
    assert out[0, 0] == pytest.approx(w - 1)   # left edge: the flipped-back value at j = 0
    assert out[0, -1] == pytest.approx(0.0)    # right edge: the direct prediction
    assert out[0, 20] == pytest.approx(0.5 * (w - 1 - 20))
    with pytest.raises(ValueError, match="shape"):
        post_process_disparity(disp, mirrored[:, 1:])


def test_prediction_resized_then_inverted():
    disp = np.array([[0.5, 0.25]], np.float32)  # 1×2 -> 1×4 bilinear (half-pixel centres)
    depth = prediction_to_depth(disp, 1, 4, "disp")
    np.testing.assert_allclose(depth, 1.0 / np.array([[0.5, 0.4375, 0.3125, 0.25]]), rtol=1e-6)
    np.testing.assert_allclose(prediction_to_depth(np.array([[2.0, 4.0]]), 1, 2, "depth"), [[2.0, 4.0]])
    with pytest.raises(ValueError, match="NaN"):
        prediction_to_depth(np.array([[np.nan, 1.0]]), 1, 2)


# ------------------------------------------------------------------ evaluate()
def test_gt_against_itself_is_perfect():
    gt = _sparse_gt()
    res = evaluate(gt, gt, pred_type="depth")
    _assert_metrics(res["metrics"], ZERO)
    assert res["num_images"] == 3 and res["ratio_mean"] == pytest.approx(1.0) and res["ratio_std"] == pytest.approx(0)


@pytest.mark.parametrize("pred_type", ["depth", "disp"])
def test_scaled_gt_with_median_scaling_is_perfect(pred_type):
    gt = _sparse_gt()
    depth = [np.where(g > 0, g * 1.1, 1.0).astype(np.float32) for g in gt]
    preds = depth if pred_type == "depth" else [1.0 / d for d in depth]
    res = evaluate(gt, preds, pred_type=pred_type, median_scaling=True)
    _assert_metrics(res["metrics"], ZERO, tol=1e-5)
    assert res["ratio_mean"] == pytest.approx(1 / 1.1, rel=1e-5)
    # without median scaling the 10 % error is visible: abs_rel = 0.1 exactly
    raw = evaluate(gt, preds, pred_type=pred_type, median_scaling=False)["metrics"]
    assert raw["abs_rel"] == pytest.approx(0.1, rel=1e-4) and raw["a1"] == 1.0


def test_stereo_factor_and_clamp():
    gt = _sparse_gt(n=1)
    pred = [np.where(g > 0, g / 5.4, 1.0).astype(np.float32) for g in gt]
    _assert_metrics(evaluate(gt, pred, pred_type="depth", median_scaling=False, scale_factor=5.4)["metrics"],
                    ZERO, tol=1e-5)
    # predictions beyond max_depth are clamped to it: a prediction of 1000 m scores like 80 m
    far = [np.full_like(g, 1000.0) for g in gt]
    at80 = [np.full_like(g, 80.0) for g in gt]
    a = evaluate(gt, far, pred_type="depth", median_scaling=False)["metrics"]
    b = evaluate(gt, at80, pred_type="depth", median_scaling=False)["metrics"]
    assert a == b


def test_evaluate_masks_outside_range_and_crop():
    gt = np.zeros((100, 100), np.float32)
    gt[60:90, 10:90] = 10.0      # inside the Garg crop
    gt[0:30, :] = 10.0           # above the crop: ignored
    gt[95:, :] = 90.0            # beyond max_depth: ignored
    pred = np.where(gt == 10.0, 10.0, 1.0).astype(np.float32)
    pred[0:30, :] = 1.0          # wrong, but outside the crop
    res = evaluate([gt], [pred], pred_type="depth", median_scaling=False)
    _assert_metrics(res["metrics"], ZERO)
    with pytest.raises(ValueError, match="valid pixel"):
        evaluate([np.zeros((8, 8))], [np.ones((8, 8))], pred_type="depth")


def test_evaluate_bad_input():
    gt = _sparse_gt(n=2)
    with pytest.raises(ValueError, match="2 GT maps but 1"):
        evaluate(gt, gt[:1])
    with pytest.raises(ValueError, match="disparity"):
        evaluate(gt, gt, pred_type="depth", preds_flip=gt)
    with pytest.raises(ValueError, match="min_depth"):
        evaluate(gt, gt, min_depth=90.0)


def test_format_table_three_decimals():
    lines = format_table(dict(ZERO, abs_rel=0.11549)).splitlines()
    assert lines[0].split("|")[0].strip() == "abs_rel" and len(lines[0].split("|")) == 7
    assert lines[1].split("|")[0].strip() == "0.115"


# ------------------------------------------------------------------ CLI on synthetic files
def test_cli_pred_file_json_and_post_process(tmp_path, capsys):
    gt = _sparse_gt(n=2, h=40, w=80)
    save_gt_depths(tmp_path / "gt.npz", gt, ["a/b 0000000000 l", "a/b 0000000001 l"], [2, 2], "synthetic", "test")
    disp = np.stack([np.where(g > 0, 0.5 / np.maximum(g, 1e-3), 0.05) for g in gt]).astype(np.float32)  # depth 2·gt
    np.savez(tmp_path / "pred.npz", disp=disp, disp_flip=disp[..., ::-1])
    rc = main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "pred.npz"), "--post_process",
               "--no_crop", "--json", str(tmp_path / "m.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "abs_rel" in out and "Median scaling ratios" in out and "post-processed" in out
    report = json.loads((tmp_path / "m.json").read_text())
    # mirrored prediction of the mirrored image = the same prediction: post-processing changes nothing
    _assert_metrics(report["metrics"], ZERO, tol=1e-5)
    assert report["ratio_mean"] == pytest.approx(0.5, rel=1e-5)
    assert report["split"] == "synthetic" and report["config"]["post_process"] is True
    assert report["config"]["crop"] == "none"

    assert main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "missing.npz")]) == 1
    assert "prediction file not found" in capsys.readouterr().err
    np.savez(tmp_path / "nopp.npz", disp=disp)
    assert main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "nopp.npz"), "--post_process"]) == 1
    assert "disp_flip" in capsys.readouterr().err


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for opt in ("--gt", "--pred", "--checkpoint", "--data_path", "--split", "--eval_mono", "--eval_stereo",
                "--pred_depth_scale_factor", "--disable_median_scaling", "--post_process", "--min_depth",
                "--max_depth", "--crop", "--garg_crop", "--eigen_crop", "--no_crop", "--json"):
        assert opt in text


@pytest.mark.parametrize("source, crop", [("velodyne", "garg"), ("benchmark", "none")])
def test_cli_auto_crop_follows_gt_source(tmp_path, source, crop):
    gt = _sparse_gt(n=1, h=40, w=80)
    save_gt_depths(tmp_path / "gt.npz", gt, ["a/b 0000000000 l"], [2], "s", source)
    np.savez(tmp_path / "pred.npz", depth=np.stack(gt))
    assert main(["--gt", str(tmp_path / "gt.npz"), "--pred", str(tmp_path / "pred.npz"),
                 "--json", str(tmp_path / "m.json")]) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["config"]["crop"] == crop and report["config"]["pred_type"] == "depth"
