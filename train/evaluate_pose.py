"""KITTI odometry evaluation: ATE on 5-frame snippets (Zhou et al. 2017; Monodepth2 Table 6).

    python -m train.evaluate_pose --pred rel_poses.npy --gt_poses KITTI_ODOM/poses/09.txt

Conventions:

* GT poses: a KITTI odometry ``poses/XX.txt`` file, one line of 12 numbers per
  frame, the row-major 3×4 pose ``P_i`` of camera i in the world (camera 0) frame.
* Relative poses, GT and predicted: ``rel_i = inv(P_i) · P_{i+1}``, the pose of
  camera i+1 in camera i's frame (maps points of frame i+1 into frame i). If
  your network outputs the other direction (frame i -> frame i+1) pass
  ``--invert_pred``.
* A snippet of ``L`` frames (default 5) uses ``L - 1`` consecutive relative
  poses, chained from the identity, so both trajectories start at the origin;
  every full window of the sequence is one snippet (stride 1). The prediction
  is scaled per snippet by ``sum(gt·pred) / sum(pred²)`` on the translations
  and ``ATE = sqrt(mean_i ||gt_i - s·pred_i||²)`` (`train.metrics.compute_ate`;
  ``--formula official`` gives ``sqrt(sum) / L``, the expression of the
  Monodepth2 / SfMLearner code behind the published numbers).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from train.metrics import compute_ate


def read_kitti_poses(path) -> np.ndarray:
    """KITTI odometry poses file -> (N, 4, 4) float64 camera-to-world poses."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"poses file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError as err:
            raise ValueError(f"{path}:{n}: not numbers: {line[:60]!r}") from err
        if len(values) != 12:
            raise ValueError(f"{path}:{n}: expected 12 numbers (a row-major 3×4 pose), got {len(values)}")
        rows.append(values)
    if not rows:
        raise ValueError(f"{path} holds no poses")
    return to_4x4(np.array(rows))


def to_4x4(poses) -> np.ndarray:
    """(N, 12), (N, 3, 4) or (N, 4, 4) poses -> (N, 4, 4) float64."""
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 12:
        p = p.reshape(-1, 3, 4)
    if p.ndim != 3 or p.shape[1:] not in ((3, 4), (4, 4)):
        raise ValueError(f"poses must be N×12, N×3×4 or N×4×4, got {p.shape}")
    out = np.tile(np.eye(4), (p.shape[0], 1, 1))
    out[:, :3, :] = p[:, :3, :]
    return out


def relative_poses(abs_poses) -> np.ndarray:
    """(N, 4, 4) absolute poses -> (N-1, 4, 4) ``inv(P_i) @ P_{i+1}``."""
    p = to_4x4(abs_poses)
    if p.shape[0] < 2:
        raise ValueError("need at least two poses for a relative pose")
    return np.linalg.inv(p[:-1]) @ p[1:]


def snippet_xyz(rel_poses) -> np.ndarray:
    """Chain (k, 4, 4) relative poses from the identity -> (k+1, 3) camera positions."""
    pose = np.eye(4)
    xyz = [pose[:3, 3].copy()]
    for rel in to_4x4(rel_poses):
        pose = pose @ rel
        xyz.append(pose[:3, 3].copy())
    return np.array(xyz)


def snippet_ates(gt_rel, pred_rel, snippet_length: int = 5, formula: str = "rmse",
                 align_scale: bool = True) -> np.ndarray:
    """ATE of every full snippet (stride 1) -> (N - snippet_length + 2,) array.

    Args:
        gt_rel, pred_rel: (N, 4, 4) (or N×12, N×3×4) frame-to-frame poses, same N.
        snippet_length: frames per snippet (>= 2); uses snippet_length - 1 poses.
        formula: 'rmse' or 'official' (see `train.metrics.compute_ate`).
        align_scale: False scores the prediction at its own scale (metric pose networks).
    """
    gt_rel, pred_rel = to_4x4(gt_rel), to_4x4(pred_rel)
    if gt_rel.shape != pred_rel.shape:
        raise ValueError(f"{len(gt_rel)} GT relative poses but {len(pred_rel)} predicted ones")
    if snippet_length < 2:
        raise ValueError(f"snippet_length must be >= 2, got {snippet_length}")
    steps = snippet_length - 1
    if len(gt_rel) < steps:
        raise ValueError(f"{len(gt_rel)} relative poses is too few for one {snippet_length}-frame snippet")
    return np.array([compute_ate(snippet_xyz(gt_rel[i:i + steps]), snippet_xyz(pred_rel[i:i + steps]), formula,
                                 align_scale) for i in range(len(gt_rel) - steps + 1)])


def evaluate_pose(gt_rel, pred_rel, snippet_length: int = 5, formula: str = "rmse") -> dict:
    """{"ate_mean", "ate_std" (scale-aligned per snippet), "ate_unaligned_mean", "ate_unaligned_std" (the
    prediction's own scale), "translation_ratio_median" (median ‖t_pred‖ / ‖t_gt‖ over frame pairs),
    "num_snippets", "snippet_length", "formula"} over all snippets."""
    ates = snippet_ates(gt_rel, pred_rel, snippet_length, formula)
    raw = snippet_ates(gt_rel, pred_rel, snippet_length, formula, align_scale=False)
    gt_len = np.linalg.norm(to_4x4(gt_rel)[:, :3, 3], axis=1)
    pred_len = np.linalg.norm(to_4x4(pred_rel)[:, :3, 3], axis=1)
    moving = gt_len > 1e-6
    ratio = float(np.median(pred_len[moving] / gt_len[moving])) if moving.any() else float("nan")
    return {"ate_mean": float(ates.mean()), "ate_std": float(ates.std()), "ate_unaligned_mean": float(raw.mean()),
            "ate_unaligned_std": float(raw.std()), "translation_ratio_median": ratio, "num_snippets": int(ates.size),
            "snippet_length": int(snippet_length), "formula": formula}


def load_pred_poses(path) -> np.ndarray:
    """Predicted poses from .npy / .npz (key 'poses', else the only array) / .txt (12 numbers a line)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file not found: {path}")
    if path.suffix == ".txt":
        return read_kitti_poses(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "poses" in z.files:
                return to_4x4(z["poses"])
            if len(z.files) == 1:
                return to_4x4(z[z.files[0]])
            raise ValueError(f"{path}: expected a 'poses' array, found {z.files}")
    return to_4x4(np.load(path, allow_pickle=False))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m train.evaluate_pose",
                                 description="KITTI odometry ATE on short snippets with per-snippet scale alignment.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python -m train.evaluate_pose --pred poses_09.npy "
                                        "--gt-poses /data/kitti_odom/poses/09.txt\n\nexit status: 0 ok, 1 an input cannot be used (the message names it), 2 usage error.")
    ap.add_argument("--pred", required=True,
                    help="Predicted poses (.npy/.npz 'poses' N×4×4, N×3×4 or N×12, or a .txt of 12 numbers a line): "
                         "frame-to-frame poses inv(P_i)·P_{i+1}, one per consecutive frame pair.")
    ap.add_argument("--gt-poses", "--gt_poses", required=True, help="KITTI odometry GT poses file (poses/XX.txt).")
    ap.add_argument("--pred-absolute", "--pred_absolute", action="store_true",
                    help="--pred holds absolute camera-to-world poses (one per frame), not relative ones.")
    ap.add_argument("--invert-pred", "--invert_pred", action="store_true",
                    help="Invert each predicted relative pose (for networks that output frame i -> frame i+1).")
    ap.add_argument("--snippet-length", "--snippet_length", type=int, default=5, help="Frames per snippet (default 5).")
    ap.add_argument("--formula", choices=["rmse", "official"], default="rmse",
                    help="'rmse' = sqrt(mean squared error) per snippet (default); 'official' = sqrt(sum)/N as in the "
                         "Monodepth2/SfMLearner code, to compare with their published numbers.")
    ap.add_argument("--json", help="Write {ate_mean, ate_std, num_snippets, ...} to this JSON file.")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        gt_rel = relative_poses(read_kitti_poses(args.gt_poses))
        pred = load_pred_poses(args.pred)
        pred_rel = relative_poses(pred) if args.pred_absolute else pred
        if args.invert_pred:
            pred_rel = np.linalg.inv(pred_rel)
        result = evaluate_pose(gt_rel, pred_rel, args.snippet_length, args.formula)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Trajectory error ({result['num_snippets']} snippets of {args.snippet_length} frames, {args.formula}): "
          f"{result['ate_mean']:0.3f}, std: {result['ate_std']:0.3f} (scale-aligned); without scale alignment "
          f"{result['ate_unaligned_mean']:0.3f}, std: {result['ate_unaligned_std']:0.3f}; "
          f"median |t_pred| / |t_gt|: {result['translation_ratio_median']:.3f}")
    if args.json:
        out = pathlib.Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**result, "gt_poses": str(args.gt_poses), "pred": str(args.pred)}, indent=2) + "\n")
        print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
