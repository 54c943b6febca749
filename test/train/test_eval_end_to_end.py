"""End to end on kitti_mini: export velodyne GT for the 20 scans, then evaluate predictions with the CLI."""
import json

import numpy as np
import pytest

from train import evaluate_depth, export_gt_depth
from train.metrics import METRIC_NAMES

REPORT_KEYS = {"metrics", "num_images", "num_skipped", "median_scaling", "scale_factor", "ratio_mean", "ratio_std",
               "ratio_median", "ratio_rel_std", "split", "config", "median_scaled", "unscaled", "scale_error_median",
               "scale_error_mean", "num_no_scale", "unscaled_num_images", "scale_source"}
CONFIG_KEYS = {"gt", "pred", "checkpoint", "pred_type", "eval_stereo", "post_process", "min_depth", "max_depth",
               "crop", "gt_source", "camera_height", "scale_window"}


@pytest.fixture(scope="module")
def gt_file(kitti_mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "gt.npz"
    assert export_gt_depth.main(["--data_path", str(kitti_mini), "--split", "all", "--out", str(out), "--quiet"]) == 0
    return out


def _check_schema(report, num_images=20):
    assert set(report) == REPORT_KEYS
    assert set(report["config"]) == CONFIG_KEYS
    assert set(report["metrics"]) == set(METRIC_NAMES)
    assert all(isinstance(v, float) and np.isfinite(v) for v in report["metrics"].values())
    assert report["num_images"] == num_images and report["num_skipped"] == 0
    assert report["split"] == "all" and report["config"]["gt_source"] == "velodyne"
    m = report["metrics"]
    assert 0 <= m["a1"] <= m["a2"] <= m["a3"] <= 1
    assert m["abs_rel"] > 0 and m["rmse"] > 0 and m["rmse_log"] > 0


def test_noisy_gt_prediction(gt_file, tmp_path, capsys):
    """Depth = 2.5 × GT × (1 + 5 % noise), filled with 20 m where there is no GT, as disparities."""
    depths, _, _ = export_gt_depth.load_gt_depths(gt_file)
    rng = np.random.default_rng(0)
    disp = np.stack([1.0 / np.where(d > 0, 2.5 * d * (1 + 0.05 * rng.standard_normal(d.shape)), 20.0)
                     for d in depths]).astype(np.float32)
    np.savez(tmp_path / "pred.npz", disp=disp)
    rc = evaluate_depth.main(["--gt", str(gt_file), "--pred", str(tmp_path / "pred.npz"), "--eval_mono",
                              "--json", str(tmp_path / "m.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Evaluated 20 images" in out and "abs_rel |   sq_rel |" in out
    report = json.loads((tmp_path / "m.json").read_text())
    _check_schema(report)
    m = report["metrics"]
    assert 0.03 < m["abs_rel"] < 0.05 and m["a1"] > 0.99 and m["rmse"] < 2.0   # E|0.05 N| = 0.04
    assert report["median_scaling"] is True and report["ratio_mean"] == pytest.approx(0.4, abs=0.005)
    assert report["ratio_rel_std"] < 0.01

    # the same predictions treated as stereo: ×5.4 and no median scaling -> depth = 13.5 × GT: all wrong
    rc = evaluate_depth.main(["--gt", str(gt_file), "--pred", str(tmp_path / "pred.npz"), "--eval_stereo",
                              "--json", str(tmp_path / "s.json")])
    stereo = json.loads((tmp_path / "s.json").read_text())
    assert rc == 0 and stereo["scale_factor"] == 5.4 and stereo["ratio_mean"] is None
    assert stereo["metrics"]["a3"] < 0.1


def test_random_model_checkpoint(gt_file, kitti_mini, tmp_path):
    """An untrained DepthModel run through the --checkpoint path (with post-processing): sane, poor numbers."""
    import torch

    from md2_ros.core.model import DepthModel

    torch.manual_seed(0)
    DepthModel(num_layers=18, height=64, width=192).save(tmp_path / "model.safetensors")
    rc = evaluate_depth.main(["--gt", str(gt_file), "--checkpoint", str(tmp_path / "model.safetensors"),
                              "--data_path", str(kitti_mini), "--device", "cpu", "--batch_size", "10",
                              "--post_process", "--save_pred", str(tmp_path / "pred.npz"),
                              "--json", str(tmp_path / "m.json")])
    assert rc == 0
    report = json.loads((tmp_path / "m.json").read_text())
    _check_schema(report)
    assert report["config"]["post_process"] is True and report["config"]["checkpoint"].endswith("model.safetensors")
    assert 0.05 < report["metrics"]["abs_rel"] < 2.0 and report["ratio_mean"] > 0
    with np.load(tmp_path / "pred.npz") as z:
        assert z["disp"].shape == z["disp_flip"].shape == (20, 64, 192)
        assert np.all(z["disp"] > 0)

    # the saved predictions give the same numbers through --pred
    rc = evaluate_depth.main(["--gt", str(gt_file), "--pred", str(tmp_path / "pred.npz"), "--post_process",
                              "--json", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert rc == 0 and again["metrics"] == pytest.approx(report["metrics"], rel=1e-9)


def test_checkpoint_needs_data_path(gt_file, capsys):
    assert evaluate_depth.main(["--gt", str(gt_file), "--checkpoint", "x.safetensors"]) == 2   # usage error
    assert "--data_path" in capsys.readouterr().err
