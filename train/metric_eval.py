"""Metric evaluation: depth metrics with *and* without median scaling, and where the scale came from.

A robot never has ``median(gt)``; the standard mono protocol rescales every image by it and so hides
the scale. Here every evaluation reports both tables plus the per-frame scale error
``median(pred_used) / median(gt)`` (= ``scale_used / (median(gt) / median(pred))``; 1 is perfect) of
the prediction as a robot would use it: × the checkpoint's own scale (metric checkpoints), × a fixed
factor, or × the camera-height scale fitted per frame (:mod:`md2_ros.core.ground_scale`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from md2_ros.core.ground_scale import GroundParams, ScaleSmoother, estimate_ground_scale


def kitti_intrinsics(data_path, entries: list[str], shapes: list[tuple], pred_shape: tuple) -> list[np.ndarray]:
    """3×3 K in pixels of a ``pred_shape`` (h, w) prediction for each KITTI raw entry ``"<folder> <frame> <l|r>"``.

    ``shapes`` are the (H, W) sizes of the original images (the GT maps' sizes).
    """
    from md2_ros.io.kitti import load_cam_intrinsics

    out, cache = [], {}
    for entry, (H, W) in zip(entries, shapes):
        folder, _, rest = entry.partition(" ")
        cam = 3 if rest.split()[-1:] == ["r"] else 2
        date_dir = Path(data_path) / Path(folder).parts[0]
        if (date_dir, cam) not in cache:
            cache[(date_dir, cam)] = load_cam_intrinsics(date_dir, cam)[:, :3]
        K = cache[(date_dir, cam)].copy()
        K[0] *= pred_shape[1] / W
        K[1] *= pred_shape[0] / H
        out.append(K)
    return out


def ground_scales(depths, Ks, camera_height: float, band_top: float = 0.6, window: int = 1):
    """Per-frame camera-height factors for relative ``depths`` (in the order given), smoothed by a running
    median over ``window`` accepted frames (1 = each frame on its own). Returns (factors with None where no
    scale is known yet, the per-frame GroundFits)."""
    params = GroundParams(band=(band_top, 1.0))
    smoother = ScaleSmoother(window)
    factors, fits = [], []
    for depth, K in zip(depths, Ks):
        fit = estimate_ground_scale(np.asarray(depth, np.float64), K, camera_height, params)
        fits.append(fit)
        factors.append(smoother.update(fit))
    return factors, fits


def camera_height_scales(data_path, files, gt_depths, preds, kind, preds_flip, camera_height: float,
                         band_top: float = 0.6, window: int = 1):
    """Per-frame camera-height factors of KITTI predictions (disparities or depths, optionally with the
    mirrored ones for post-processing), printed with a one-line summary."""
    from train.evaluate_depth import post_process_disparity

    if not data_path or not files:
        raise ValueError("--camera_height needs --data_path (KITTI calibration for the intrinsics) and a GT file "
                         "listing its frames")
    if preds_flip is not None:
        preds = [post_process_disparity(p, f) for p, f in zip(preds, preds_flip)]
    depths = [np.asarray(p, np.float64) if kind == "depth" else 1.0 / np.maximum(p, 1e-12) for p in preds]
    Ks = kitti_intrinsics(data_path, files, [np.shape(g) for g in gt_depths], depths[0].shape)
    factors, fits = ground_scales(depths, Ks, camera_height, band_top, window)
    failed = [f.reason for f in fits if not f.ok]
    print(f"  camera-height scale ({camera_height:g} m): {len(fits) - len(failed)}/{len(fits)} frames fitted"
          + (f"; first failure: {failed[0]}" if failed else ""))
    return factors


def both_tables(evaluate, gt_depths, preds, **kwargs) -> dict:
    """Run ``evaluate`` with and without median scaling on the same predictions (and per-frame scales).

    Returns {"median_scaled": metrics (every frame), "unscaled": metrics of the frames with a scale (None when
    no frame has one), "scale_error_median", "scale_error_mean", "num_no_scale", "unscaled_num_images"}.
    """
    kwargs = {k: v for k, v in kwargs.items() if k != "median_scaling"}
    scales = kwargs.pop("frame_scales", None)
    med = evaluate(gt_depths, preds, median_scaling=True, **kwargs)     # needs no scale: every frame
    if scales is not None and all(s is None for s in scales):
        return {"median_scaled": med["metrics"], "unscaled": None, "scale_error_median": None,
                "scale_error_mean": None, "num_no_scale": len(scales), "unscaled_num_images": 0}
    raw = evaluate(gt_depths, preds, median_scaling=False, frame_scales=scales, **kwargs)
    return {"median_scaled": med["metrics"], "unscaled": raw["metrics"],
            "scale_error_median": raw["scale_error_median"], "scale_error_mean": raw["scale_error_mean"],
            "num_no_scale": raw["num_no_scale"], "unscaled_num_images": raw["num_images"]}


def scale_source_of(model=None, camera_height: float = 0.0, stereo: bool = False, factor=None) -> str:
    """Where the scale of the unscaled table comes from, in words used by the node's diagnostics."""
    if camera_height > 0:
        return "camera_height"
    if model is not None and model.metric:
        return f"checkpoint:{getattr(model, 'scale_source', '') or 'metric'}"
    if stereo:
        return "stereo factor"
    if factor not in (None, 1.0):
        return "fixed factor"
    return "none"
