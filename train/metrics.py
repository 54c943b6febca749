"""Depth and pose error metrics (pure numpy, no torch, no I/O).

The depth metrics are the seven numbers of the KITTI Eigen table
(Eigen et al. 2014; the columns every self-supervised depth paper reports):

    abs_rel  = mean(|gt - pred| / gt)
    sq_rel   = mean((gt - pred)^2 / gt)
    rmse     = sqrt(mean((gt - pred)^2))
    rmse_log = sqrt(mean((log gt - log pred)^2))
    a1, a2, a3 = mean(max(gt/pred, pred/gt) < 1.25 ** k), k = 1, 2, 3

All of them are computed over the valid pixels of one image; the Eigen
protocol then averages the per-image values over the test set
(see `train.evaluate_depth`).
"""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def _as_positive_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no valid pixels to score")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be strictly positive (depths in metres); min is {arr.min()}")
    return arr


def compute_errors(gt, pred) -> dict[str, float]:
    """The seven Eigen depth metrics between matching valid depths.

    Args:
        gt: ground-truth depths, any shape, all > 0 (already masked).
        pred: predicted depths, same number of elements, all > 0
            (already scaled and clamped).

    Returns:
        dict with float values for the keys in `METRIC_NAMES`.

    Raises:
        ValueError: empty input, mismatched sizes, non-finite or non-positive values.
    """
    gt = _as_positive_1d("gt", gt)
    pred = _as_positive_1d("pred", pred)
    if gt.shape != pred.shape:
        raise ValueError(f"gt has {gt.size} values but pred has {pred.size}")

    thresh = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_diff = np.log(gt) - np.log(pred)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
    }


def mean_errors(per_image: list[dict[str, float]]) -> dict[str, float]:
    """Average per-image metric dicts (the Eigen protocol's aggregation)."""
    if not per_image:
        raise ValueError("no per-image metrics to average")
    return {k: float(np.mean([m[k] for m in per_image])) for k in METRIC_NAMES}


def compute_ate(gt_xyz, pred_xyz, formula: str = "rmse", align_scale: bool = True) -> float:
    """Absolute trajectory error of one snippet after scale alignment.

    Both trajectories are first shifted so that their first point is the
    origin; the prediction is then scaled by the least-squares factor
    ``s = sum(gt * pred) / sum(pred ** 2)``.

    Args:
        gt_xyz: (N, 3) ground-truth camera positions.
        pred_xyz: (N, 3) predicted camera positions (any scale).
        formula: "rmse" gives ``sqrt(mean_i ||gt_i - s * pred_i||^2)``;
            "official" gives ``sqrt(sum_i ||gt_i - s * pred_i||^2) / N``, the
            expression of the Monodepth2/SfMLearner evaluation code (its
            published odometry numbers use it).
        align_scale: False keeps the prediction's own scale (s = 1): the error a robot sees from a
            metric pose network.

    Returns:
        the ATE in the units of `gt_xyz` (metres for KITTI).
    """
    gt = np.asarray(gt_xyz, dtype=np.float64)
    pred = np.asarray(pred_xyz, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != 3 or gt.shape != pred.shape:
        raise ValueError(f"expected two (N, 3) arrays of equal shape, got {gt.shape} and {pred.shape}")
    if formula not in ("rmse", "official"):
        raise ValueError(f"unknown ATE formula {formula!r}; use 'rmse' or 'official'")
    gt = gt - gt[0]
    pred = pred - pred[0]
    denom = float(np.sum(pred**2))
    scale = (float(np.sum(gt * pred)) / denom if denom > 0 else 0.0) if align_scale else 1.0
    sq = np.sum((gt - scale * pred) ** 2, axis=1)
    if formula == "rmse":
        return float(np.sqrt(np.mean(sq)))
    return float(np.sqrt(np.sum(sq)) / gt.shape[0])
