"""Accuracy columns for bench/model_latency.py: each backend's depth on the bundled KITTI frames, compared with
eager fp32 (abs_rel vs eager) and with the velodyne ground truth (Eigen protocol: Garg crop, 1e-3..80 m,
median scaling) through train/evaluate_depth.py and train/export_gt_depth.py."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kitti_mini"


def load_eval_set(data_path, limit: int = 20) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(RGB uint8 frame, velodyne GT depth)] for up to ``limit`` frames that have a scan; [] without data."""
    from train.export_gt_depth import all_scanned_frames, velodyne_depth
    data_path = Path(data_path)
    if not data_path.is_dir():
        return []
    out = []
    for folder, frame, _ in all_scanned_frames(data_path)[:limit]:
        png = data_path / folder / "image_02" / "data" / f"{frame:010d}.png"
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {png}")
        out.append((np.ascontiguousarray(bgr[..., ::-1]), velodyne_depth(data_path, folder, frame)))
    return out


def predict_all(predict_batch, eval_set) -> list[np.ndarray]:
    return [predict_batch([rgb])[0] for rgb, _ in eval_set]


def accuracy(depths, ref_depths, eval_set) -> dict:
    """abs_rel vs eager fp32 (mean over frames of mean |d − d_eager| / d_eager) and Eigen abs_rel vs velodyne."""
    from train.evaluate_depth import evaluate
    vs_eager = float(np.mean([np.mean(np.abs(d - r) / np.maximum(r, 1e-6)) for d, r in zip(depths, ref_depths)]))
    eigen = evaluate([gt for _, gt in eval_set], depths, pred_type="depth", median_scaling=True)
    return {"abs_rel_vs_eager": vs_eager, "eigen_abs_rel": float(eigen["metrics"]["abs_rel"])}
