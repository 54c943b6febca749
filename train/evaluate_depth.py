"""KITTI depth evaluation with the Eigen protocol.

    python -m train.export_gt_depth --data_path KITTI --split eigen --out gt.npz
    python -m train.evaluate_depth --gt gt.npz --checkpoint model.safetensors --data_path KITTI
    python -m train.evaluate_depth --gt gt.npz --pred preds.npz --eval_stereo

Protocol, per image (Eigen et al. 2014, Garg et al. 2016, Godard et al. 2019):

1. optional post-processing at the network resolution: blend the prediction
   with the one for the mirrored image (`post_process_disparity`);
2. resize the prediction bilinearly (``cv2.INTER_LINEAR``) to the GT size;
   disparities are resized *as disparities* and only then inverted
   (depth = 1 / disp);
3. valid pixels: ``min_depth < gt < max_depth`` inside the crop (Garg crop by
   default: rows 0.40810811–0.99189189 of H, cols 0.03594771–0.96405229 of W);
4. multiply by the fixed factor (``--pred_depth_scale_factor``; 5.4 with
   ``--eval_stereo``), then, for mono, by the per-image median ratio
   ``median(gt) / median(pred)``;
5. clamp predictions to ``[min_depth, max_depth]`` and compute the seven metrics
   (`train.metrics.compute_errors`); the table is the mean over images.

Prediction files (``--pred``): ``.npz`` with ``disp`` (N×h×w inverse depth up to
scale, e.g. the first output of ``geometry.disp_to_depth``, or ``1 / depth``; a raw
sigmoid output is *not* that — convert it with ``disp_to_depth`` first) or
``depth`` (N×h×w); for ``--post_process`` also ``disp_flip``: the disparities
predicted for the horizontally mirrored images, left in mirrored coordinates.
A bare ``.npy`` array is read as ``disp``. N and the order match the GT file.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import cv2
import numpy as np

from md2_ros.io.kitti import read_split_file
from train.export_gt_depth import format_entry, load_gt_depths, resolve_split_file
from train.metric_eval import both_tables, camera_height_scales, scale_source_of
from train.metrics import METRIC_NAMES, compute_errors, mean_errors
from train.predict_depth import (image_path, load_predictions, predict_disparities,  # noqa: F401 (re-exported)
                                 predict_from_checkpoint)

GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)   # top, bottom, left, right (fractions)
EIGEN_CROP = (0.3324324, 0.91351351, 0.0359477, 0.96405229)
STEREO_SCALE_FACTOR = 5.4  # KITTI baseline 0.54 m / the 0.1 baseline of stereo training


def crop_mask(height: int, width: int, crop: str = "garg") -> np.ndarray:
    """Boolean H×W mask of the evaluation crop: 'garg', 'eigen' or 'none'.

    Bounds are ``int(fraction * size)``; for 375×1242 the Garg crop is rows
    153:371, cols 44:1197.
    """
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    fractions = {"garg": GARG_CROP, "eigen": EIGEN_CROP}.get(crop)
    if fractions is None:
        raise ValueError(f"unknown crop {crop!r}; use 'garg', 'eigen' or 'none'")
    top, bottom, left, right = fractions
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def post_process_disparity(disp: np.ndarray, disp_flip: np.ndarray) -> np.ndarray:
    """Blend a disparity with the one predicted for the mirrored image (Godard et al.).

    Args:
        disp: (..., h, w) disparity of the image.
        disp_flip: (..., h, w) disparity of the mirrored image, in mirrored
            coordinates (it is flipped back here).

    Returns:
        (..., h, w): the mean of the two, except near the borders: over the
        left 5 % of the width the result comes from the mirrored prediction and
        over the right 5 % from the direct one, with linear ramps over the next
        5 % (the stereo-occlusion artefacts sit on the left edge of each).
        Ramp: ``l = 1 - clip(20 (x - 0.05), 0, 1)`` over x = linspace(0, 1, w),
        ``r = l`` mirrored; ``out = r·disp + l·flip_back + (1 - l - r)·mean``.
    """
    disp = np.asarray(disp, dtype=np.float32)
    back = np.asarray(disp_flip, dtype=np.float32)[..., ::-1]
    if disp.shape != back.shape:
        raise ValueError(f"disp {disp.shape} and disp_flip {back.shape} differ in shape")
    x = np.linspace(0.0, 1.0, disp.shape[-1], dtype=np.float32)
    l_mask = 1.0 - np.clip(20.0 * (x - 0.05), 0.0, 1.0)
    r_mask = l_mask[::-1]
    mean = 0.5 * (disp + back)
    return r_mask * disp + l_mask * back + (1.0 - l_mask - r_mask) * mean


def prediction_to_depth(pred: np.ndarray, height: int, width: int, pred_type: str = "disp") -> np.ndarray:
    """Resize one h×w prediction bilinearly to height×width and return depth (disp is inverted after)."""
    pred = np.asarray(pred, dtype=np.float32)
    if pred.ndim != 2:
        raise ValueError(f"each prediction must be h×w, got {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("prediction contains NaN or inf")
    resized = cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)
    if pred_type == "depth":
        return resized
    if pred_type != "disp":
        raise ValueError(f"pred_type must be 'disp' or 'depth', got {pred_type!r}")
    return 1.0 / np.maximum(resized, 1e-12)


def evaluate(gt_depths, preds, *, pred_type: str = "disp", preds_flip=None, median_scaling: bool = True,
             scale_factor: float = 1.0, min_depth: float = 1e-3, max_depth: float = 80.0,
             crop: str = "garg", frame_scales=None) -> dict:
    """Eigen-protocol metrics of predictions against GT depth maps.

    Args:
        gt_depths: sequence of N H_i×W_i GT depth maps (metres, 0 = none).
        preds: N×h×w array or sequence of h×w disparities (`pred_type` 'disp')
            or depths ('depth').
        preds_flip: disparities of the mirrored images (mirrored coordinates)
            to post-process with; None = no post-processing. Needs 'disp'.
        median_scaling: per-image ``median(gt) / median(pred)`` scaling (mono).
        scale_factor: fixed factor applied to the depths first (5.4 for stereo).
        min_depth, max_depth: GT validity range and prediction clamp.
        crop: 'garg', 'eigen' or 'none'.
        frame_scales: optional per-image factors after ``scale_factor`` (e.g. the camera-height scale);
            an image whose factor is None has no scale and is left out (counted in "num_no_scale").

    Returns:
        {"metrics": {name: mean over images}, "num_images", "num_skipped"
        (images without a valid GT pixel), "median_scaling", "scale_factor",
        "ratio_mean", "ratio_std", "ratio_median", "ratio_rel_std" (None
        without median scaling), "scale_error_median", "scale_error_mean" (of the per-image
        ``median(pred) / median(gt)`` before median scaling: 1 = metric), "num_no_scale",
        "per_image": [metric dicts]}.
    """
    if len(gt_depths) != len(preds):
        raise ValueError(f"{len(gt_depths)} GT maps but {len(preds)} predictions")
    if len(gt_depths) == 0:
        raise ValueError("nothing to evaluate: no GT maps")
    if preds_flip is not None:
        if pred_type != "disp":
            raise ValueError("post-processing needs disparity predictions ('disp')")
        if len(preds_flip) != len(preds):
            raise ValueError(f"{len(preds)} predictions but {len(preds_flip)} mirrored predictions")
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    if not scale_factor > 0:
        raise ValueError(f"scale_factor must be > 0, got {scale_factor}")

    if frame_scales is not None and len(frame_scales) != len(gt_depths):
        raise ValueError(f"{len(gt_depths)} GT maps but {len(frame_scales)} frame scales")
    per_image, ratios, scale_errors, skipped, no_scale = [], [], [], 0, 0
    for i, gt in enumerate(gt_depths):
        frame_scale = 1.0 if frame_scales is None else frame_scales[i]
        if frame_scale is None:
            no_scale += 1
            continue
        gt = np.asarray(gt, dtype=np.float32)
        if gt.ndim != 2:
            raise ValueError(f"GT map {i} must be H×W, got {gt.shape}")
        pred = preds[i] if preds_flip is None else post_process_disparity(preds[i], preds_flip[i])
        depth = prediction_to_depth(pred, gt.shape[0], gt.shape[1], pred_type)
        mask = (gt > min_depth) & (gt < max_depth) & crop_mask(*gt.shape, crop)
        if not mask.any():
            skipped += 1
            continue
        g = gt[mask].astype(np.float64)
        p = depth[mask].astype(np.float64) * scale_factor * frame_scale
        scale_errors.append(float(np.median(p) / np.median(g)))
        if median_scaling:
            ratio = float(np.median(g) / np.median(p))
            ratios.append(ratio)
            p = p * ratio
        per_image.append(compute_errors(g, np.clip(p, min_depth, max_depth)))
    if not per_image and no_scale == len(gt_depths):
        raise ValueError(f"none of the {no_scale} frames has a scale (every per-frame scale is unset, e.g. no "
                         "ground plane was found for --camera_height): no unscaled metrics")
    if not per_image:
        raise ValueError(f"none of the {len(gt_depths)} GT maps has a valid pixel in ({min_depth}, {max_depth}) "
                         f"inside the {crop} crop")

    r = np.asarray(ratios)
    stats = dict(ratio_mean=None, ratio_std=None, ratio_median=None, ratio_rel_std=None)
    if ratios:
        stats = dict(ratio_mean=float(r.mean()), ratio_std=float(r.std()), ratio_median=float(np.median(r)),
                     ratio_rel_std=float(r.std() / r.mean()))
    return {"metrics": mean_errors(per_image), "num_images": len(per_image), "num_skipped": skipped,
            "median_scaling": bool(median_scaling), "scale_factor": float(scale_factor), **stats,
            "scale_error_median": float(np.median(scale_errors)), "scale_error_mean": float(np.mean(scale_errors)),
            "num_no_scale": no_scale, "per_image": per_image}


def format_table(metrics: dict) -> str:
    """The paper's table: a header line and one line of 3-decimal values."""
    head = " | ".join(f"{name:>8}" for name in METRIC_NAMES)
    vals = " | ".join(f"{metrics[name]:8.3f}" for name in METRIC_NAMES)
    return f"{head}\n{vals}"


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m train.evaluate_depth",
        description="Evaluate depth predictions on KITTI with the Eigen protocol (Garg crop, median scaling, "
                    "abs_rel / sq_rel / rmse / rmse_log / a1 / a2 / a3).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m train.evaluate_depth --gt gt_eigen.npz --checkpoint depth.safetensors "
               "--data-path /data/kitti_raw\n\nexit status: 0 ok, 1 an input cannot be used (the message names it), 2 usage error.")
    ap.add_argument("--gt", required=True,
                    help="Ground-truth .npz written by `python -m train.export_gt_depth`.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--pred", help="Predictions .npz with 'disp' (inverse depth, N×h×w) or 'depth' arrays in the "
                                    "GT file's order (plus 'disp_flip' for --post_process), or a .npy of disparities.")
    src.add_argument("--checkpoint", help="DepthModel checkpoint to run over the GT file's frames (needs --data_path).")
    ap.add_argument("--data-path", "--data_path", help="KITTI raw root holding the images, for --checkpoint.")
    ap.add_argument("--split", help="Split name or split file; when given it must list exactly the GT file's frames "
                                    "(a guard against mixing files up). Default: the split stored in the GT file.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--eval-mono", "--eval_mono", action="store_true",
                      help="Mono-trained model: per-image median scaling (the default).")
    mode.add_argument("--eval-stereo", "--eval_stereo", action="store_true",
                      help="Stereo-trained model: no median scaling, depths × --pred_depth_scale_factor (default 5.4).")
    ap.add_argument("--pred-depth-scale-factor", "--pred_depth_scale_factor", type=float, default=None,
                    help="Fixed factor applied to predicted depths before any median scaling (default 5.4 with "
                         "--eval_stereo, else 1; 1 for a checkpoint that carries its own depth_scale).")
    ap.add_argument("--disable-median-scaling", "--disable_median_scaling", "--no-median-scaling", action="store_true",
                    help="Do not rescale each prediction by median(gt)/median(pred) (for metric predictions). "
                         "Both tables are always reported; this picks the headline one.")
    ap.add_argument("--camera-height", "--camera_height", type=float, default=0.0,
                    help="Metres above the ground (KITTI 1.65): scale each prediction so the ground plane fitted in "
                         "its lower band lies at this height (needs --data-path for the intrinsics); 0 = off.")
    ap.add_argument("--ground-band", "--ground_band", type=float, default=0.6,
                    help="Top of the ground band for --camera-height, as a fraction of the height (default 0.6).")
    ap.add_argument("--scale-window", "--scale_window", type=int, default=1,
                    help="Running median over this many frames (file order) of the camera-height scale (default 1: "
                         "each frame on its own).")
    ap.add_argument("--post-process", "--post_process", action="store_true",
                    help="Average each disparity with the mirrored image's, edge-blended as in the Monodepth papers.")
    ap.add_argument("--min-depth", "--min_depth", type=float, default=1e-3,
                    help="GT pixels must be deeper than this; predictions are clamped to it (default 1e-3 m).")
    ap.add_argument("--max-depth", "--max_depth", type=float, default=80.0,
                    help="GT pixels must be shallower than this; predictions are clamped to it (default 80 m).")
    crop = ap.add_mutually_exclusive_group()
    crop.add_argument("--crop", choices=["auto", "garg", "eigen", "none"], default="auto",
                      help="Evaluation crop: garg = rows 0.408–0.992 of H, cols 0.036–0.964 of W; 'auto' (default) "
                           "is garg, or none for improved benchmark GT (as in the published eigen_benchmark numbers).")
    crop.add_argument("--garg-crop", "--garg_crop", dest="crop", action="store_const", const="garg",
                      help="Same as --crop garg (the crop of the published Eigen-split tables).")
    crop.add_argument("--eigen-crop", "--eigen_crop", dest="crop", action="store_const", const="eigen",
                      help="Same as --crop eigen (Eigen et al.'s original crop, rows 0.332–0.914).")
    crop.add_argument("--no-crop", "--no_crop", dest="crop", action="store_const", const="none",
                      help="Same as --crop none: score every valid GT pixel.")
    ap.add_argument("--batch-size", "--batch_size", type=int, default=8, help="Images per forward pass with --checkpoint (default 8).")
    ap.add_argument("--device", default="auto", help="Device for --checkpoint: auto, cpu, cuda or cuda:N (default auto).")
    ap.add_argument("--save-pred", "--save_pred", help="With --checkpoint, also write the predicted disparities to this .npz "
                                        "(reusable with --pred).")
    ap.add_argument("--json", help="Write the metrics, ratio statistics and configuration to this JSON file.")
    return ap


def _check_split(split: str, files: list[str]) -> None:
    if split == "all" or not files:
        return
    expected = [format_entry(*e) for e in read_split_file(resolve_split_file(split))]
    if expected != files:
        raise ValueError(f"split {split!r} lists {len(expected)} frames that do not match the GT file's "
                         f"{len(files)} frames (first GT frame: {files[0]!r}); export GT for this split")


def run(args) -> dict:
    """Evaluate per parsed CLI `args` -> the JSON report dict (also printed as a table)."""
    gt_depths, files, meta = load_gt_depths(args.gt)
    split = args.split or meta.get("split", "unknown")
    if args.split:
        _check_split(args.split, files)
    stereo = args.eval_stereo
    factor = args.pred_depth_scale_factor
    model = None
    if args.checkpoint:
        if not args.data_path:
            raise ValueError("--checkpoint needs --data_path (the KITTI raw root with the images)")
        if not files:
            raise ValueError(f"{args.gt} has no 'files' list: cannot tell which images to predict")
        preds, preds_flip, model = predict_from_checkpoint(args.checkpoint, args.data_path, files, args.batch_size,
                                                           args.post_process, args.device)
        kind = "disp"
        if factor is None and model.depth_scale != 1.0:
            print(f"checkpoint carries depth_scale={model.depth_scale:g} (already applied): fixed factor 1")
            factor = 1.0
        if args.save_pred:
            extra = {} if preds_flip is None else {"disp_flip": preds_flip}
            np.savez_compressed(args.save_pred, disp=preds, **extra)
    else:
        preds, kind, preds_flip = load_predictions(args.pred)
        if args.post_process and preds_flip is None:
            raise ValueError(f"--post_process needs a 'disp_flip' array in {args.pred}")
        if not args.post_process:
            preds_flip = None
    if factor is None:
        factor = STEREO_SCALE_FACTOR if stereo else 1.0
    median = not (stereo or args.disable_median_scaling)
    if args.crop == "auto":
        args.crop = "none" if meta.get("source") == "benchmark" else "garg"
    frame_scales = None
    if args.camera_height > 0:
        frame_scales = camera_height_scales(args.data_path, files, gt_depths, preds, kind, preds_flip,
                                            args.camera_height, args.ground_band, args.scale_window)
    common = dict(pred_type=kind, preds_flip=preds_flip, scale_factor=factor, min_depth=args.min_depth,
                  max_depth=args.max_depth, crop=args.crop, frame_scales=frame_scales)
    result = evaluate(gt_depths, preds, median_scaling=median, **{**common, "frame_scales": None if median
                                                                    else frame_scales})
    tables = both_tables(evaluate, gt_depths, preds, **common)

    print(f"Evaluated {result['num_images']} images ({split}, {kind} predictions"
          f"{', post-processed' if preds_flip is not None else ''}, {args.crop} crop, "
          f"{args.min_depth:g} < gt < {args.max_depth:g} m, fixed factor {factor:g})")
    if result["num_skipped"]:
        print(f"  {result['num_skipped']} images skipped: no valid GT pixel")
    if median:
        print(f"  Median scaling ratios | median: {result['ratio_median']:0.3f} | mean: {result['ratio_mean']:0.3f}"
              f" | std/mean: {result['ratio_rel_std']:0.3f}")
    print(format_table(result["metrics"]))
    source = scale_source_of(model, args.camera_height, stereo, factor)
    other = "unscaled" if median else "median_scaled"
    if tables["unscaled"] is None:
        print(f"  without median scaling: no frame has a scale ({source}); no unscaled table")
    else:
        print(f"  {'without' if median else 'with'} median scaling (scale source: {source}; per-frame scale error "
              f"median(pred)/median(gt): median {tables['scale_error_median']:.3f}"
              f"{', %d frames without a scale' % tables['num_no_scale'] if tables['num_no_scale'] else ''}):")
        print(format_table(tables[other]).splitlines()[-1])

    report = {k: result[k] for k in ("metrics", "num_images", "num_skipped", "median_scaling", "scale_factor",
                                     "ratio_mean", "ratio_std", "ratio_median", "ratio_rel_std")}
    report["split"] = split
    report.update(tables, scale_source=source)
    report["config"] = {"gt": str(args.gt), "pred": args.pred, "checkpoint": args.checkpoint,
                        "pred_type": kind, "eval_stereo": bool(stereo), "post_process": preds_flip is not None,
                        "min_depth": args.min_depth, "max_depth": args.max_depth, "crop": args.crop,
                        "gt_source": meta.get("source"), "camera_height": args.camera_height,
                        "scale_window": args.scale_window}
    if args.json:
        out = pathlib.Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"  metrics written to {out}")
    return report


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.checkpoint or args.camera_height > 0) and not args.data_path:   # a usage error: exit 2
        print(f"{parser.prog}: error: {'--checkpoint' if args.checkpoint else '--camera-height'} needs --data-path "
              "(--data_path): the KITTI raw root with the images and calibration", file=sys.stderr)
        return 2
    try:
        run(args)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
