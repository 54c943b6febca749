"""Metric-scale figures (docs/metric.md, bench/RESULTS.md "Metric depth").

    # camera-height scale on the KITTI sample: both tables and the per-frame scale error
    python bench/metric_scale.py depth --checkpoint M.safetensors --data ../shared/data/kitti_mini \
        [--grey] [--camera-height 1.65] [--scale-window 1]
    # pose scale on KITTI odometry snippets: translation ratio and ATE with / without scale alignment
    python bench/metric_scale.py pose --state RUN/checkpoints/last.pt --data ../shared/data/kitti_odom_mini

``--grey`` feeds the frames as grey RGB (for a model trained on KITTI odometry's grey camera).
Prints JSON; nothing here is a test.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def depth_figures(checkpoint, data, grey: bool, camera_height: float, window: int) -> dict:
    from md2_ros.core.model import DepthModel
    from train import export_gt_depth
    from train.evaluate_depth import evaluate, image_path, predict_disparities
    from train.metric_eval import both_tables, camera_height_scales, scale_source_of

    with tempfile.TemporaryDirectory() as tmp:
        gt_file = Path(tmp) / "gt.npz"
        export_gt_depth.main(["--data_path", str(data), "--split", "all", "--out", str(gt_file), "--quiet"])
        gt, files, _ = export_gt_depth.load_gt_depths(gt_file)
    model = DepthModel.load(checkpoint, device="cpu")
    images = []
    for entry in files:
        rgb = cv2.cvtColor(cv2.imread(str(image_path(data, entry))), cv2.COLOR_BGR2RGB)
        images.append(cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) if grey else rgb)
    disp, _ = predict_disparities(model, images)
    scales = None
    if camera_height > 0:
        scales = camera_height_scales(data, files, gt, disp, "disp", None, camera_height, window=window)
    tables = both_tables(evaluate, gt, disp, pred_type="disp", crop="garg", frame_scales=scales)
    return {"checkpoint": str(checkpoint), "frames": len(files), "grey": grey, "camera_height": camera_height,
            "scale_window": window, "scale_source": scale_source_of(model, camera_height),
            "model_depth_scale": model.depth_scale, **tables}


def pose_figures(state, data) -> dict:
    from train.evaluate_pose import evaluate_pose, read_kitti_poses, relative_poses
    from train.predict_poses import load_networks, predict_relative_poses
    from train.sequence_bag import kitti_odometry_sequence

    nets, cfg, unit = load_networks(state)
    out = {"state": str(state), "metres_per_unit": unit, "velocity_weight": cfg.velocity_weight}
    for seq in sorted(p.name for p in (Path(data) / "sequences").iterdir()):
        poses_file = Path(data) / "poses" / f"{seq}.txt"
        load, _, stamps, _ = kitti_odometry_sequence(Path(data) / "sequences" / seq, poses_file,
                                                     size=(cfg.height, cfg.width))
        pred = predict_relative_poses(nets, [load(i) for i in range(len(stamps))], unit)
        out[seq] = evaluate_pose(relative_poses(read_kitti_poses(poses_file)), pred)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("depth")
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--data", required=True, help="KITTI raw root with velodyne scans (kitti_mini)")
    d.add_argument("--grey", action="store_true")
    d.add_argument("--camera-height", type=float, default=1.65)
    d.add_argument("--scale-window", type=int, default=1)
    p = sub.add_parser("pose")
    p.add_argument("--state", required=True)
    p.add_argument("--data", required=True, help="KITTI odometry root (sequences/, poses/)")
    a = ap.parse_args(argv)
    if a.what == "depth":
        res = depth_figures(a.checkpoint, a.data, a.grey, a.camera_height, a.scale_window)
    else:
        res = pose_figures(a.state, a.data)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
