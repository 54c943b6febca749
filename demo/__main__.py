"""The demo: ``make demo`` (= ``python -m demo`` from a checkout) on a fresh machine, CPU only, a few minutes.

data (../shared/data/kitti_mini, else the synthetic scene, or --data) → a ROS 2 bag → a small
model trained self-supervised on that bag (or --checkpoint) → the real rclpy depth node fed
from the bag → colorized depth, a contact sheet, a point cloud, and Eigen-protocol metrics
against ground truth (velodyne for KITTI, exact depth for the synthetic scene).

example:
  python -m demo --synthetic --steps 50 --out out/quick
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

from md2_ros.io.clouds import write_ply
from md2_ros.io.depth import colorize_depth

from . import player, render
from . import steps as S

CAPTION = ("Trained for a few minutes on these same frames (self-supervised: no ground truth is used in "
           "training, but the scored frames are trained on): this shows the pipeline end to end (bag → "
           "training → ROS 2 node → depth, clouds, metrics), not how well the model generalises. Held-out "
           "figures: bench/learning.py (docs/learning.md); real numbers: train on KITTI eigen_zhou, evaluate on eigen.")


def _synth_size(text: str) -> tuple[int, int]:
    try:
        size = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 32:
        raise argparse.ArgumentTypeError(f"--synthetic-size must look like 192x640, got {text!r}")
    return size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a KITTI-raw-layout folder (root, date or drive folder) to use instead of the sample")
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--checkpoint", help="use this depth model instead of training one")
    p.add_argument("--steps", type=int, default=400, help="training steps (default 400)")
    p.add_argument("--height", type=int, default=96, help="network input height, multiple of 32 (default 96)")
    p.add_argument("--width", type=int, default=320, help="network input width, multiple of 32 (default 320)")
    p.add_argument("--batch-size", type=int, default=4, help="training batch size (default 4)")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between the target and its sources (default: 2 for KITTI, whose sample car moves "
                        "slowly; 1 for the synthetic scene, whose camera moves 0.5 m per frame)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--camera-height", type=float, default=1.65,
                   help="metres above the ground for the node's camera-height scale (1.65: KITTI's camera and the "
                        "synthetic scene's; 0 = off, the node then publishes the model's relative depth)")
    p.add_argument("--synthetic", action="store_true", help="use the built-in synthetic scene even if the sample exists")
    p.add_argument("--synthetic-frames", type=int, default=40, help="frames of the synthetic scene (default 40)")
    p.add_argument("--synthetic-size", default="192x640", type=_synth_size,
                   help="HxW of the synthetic frames (default 192x640)")
    return p


def _pictures(drive: Path, results: list, extra: dict, out: Path) -> tuple[list, list, dict]:
    """Colorized depth per frame, the contact sheet, the last cloud (PLY + two views) -> (frames, paths, info)."""
    rgb_paths = sorted(p for p in (drive / "image_02" / "data").iterdir() if p.stem.isdigit())
    frames = [int(p.stem) for p in rgb_paths]
    if len(frames) != len(results):
        raise RuntimeError(f"{len(results)} depth images for {len(frames)} frames")
    col_dir = out / "depth_colored"
    col_dir.mkdir(exist_ok=True)
    rgbs, cols = [], []
    for f, path, (_stamp, depth, colored) in zip(frames, rgb_paths, results):
        col = colored if colored is not None else colorize_depth(depth)
        cv2.imwrite(str(col_dir / f"{f:010d}.png"), col)
        if f % max(1, len(frames) // 6) == 0 and len(rgbs) < 6:
            rgbs.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            cols.append(col)
    render.contact_sheet(rgbs, cols, out / "contact_sheet.png")
    info = {"col_dir": col_dir, "n_pts": 0}
    if "cloud" in extra:
        xyz, rgb = extra["cloud"]
        info["n_pts"] = write_ply(out / "cloud.ply", xyz.reshape(-1, 3), rgb.reshape(-1, 3))
        render.write_cloud_views(xyz, rgb, out)
    return frames, rgb_paths, info


def _metrics(model_path: Path, drive: Path, kind: str, frames: list, rgb_paths: list, results: list,
             extra: dict, out: Path, camera_height: float) -> tuple[dict, dict, list, dict]:
    from train.evaluate_depth import evaluate
    from train.metric_eval import both_tables

    depth_by_frame = {f: r[1] for f, r in zip(frames, results)}
    gt = S.ground_truth(drive, kind, frames)
    keys = sorted(gt)
    crop = "garg" if kind == "kitti" else "none"
    res = evaluate([gt[k] for k in keys], [depth_by_frame[k] for k in keys], pred_type="depth",
                   median_scaling=True, crop=crop)
    metric = both_tables(evaluate, [gt[k] for k in keys], [depth_by_frame[k] for k in keys], pred_type="depth",
                         crop=crop)
    baseline = S.untrained_baseline(model_path, dict(zip(frames, rgb_paths)), keys, gt, crop=crop)
    constant = S.constant_baseline(keys, gt, crop)
    S.write_json(out / "metrics.json", {k: v for k, v in res.items() if k != "per_image"} |
                 {"gt_source": "velodyne" if kind == "kitti" else "exact synthetic depth", "frames": keys,
                  "caption": CAPTION, "stamps_and_frame_id_copied": extra["stamps_ok"],
                  "untrained_same_network": baseline["metrics"], "constant_depth": constant["metrics"], **metric,
                  "scale_source": "camera_height" if camera_height > 0 else "none", "camera_height": camera_height})
    baseline["constant"] = constant["metrics"]
    return res, baseline, keys, metric


def _report(res, baseline, keys, kind, bag, model_path, info, results, extra, out, t_start, metric, height) -> None:
    from train.evaluate_depth import format_table

    print()
    print(f"Eigen-protocol metrics on {len(keys)} frames with ground truth "
          f"({'velodyne, Garg crop' if kind == 'kitti' else 'exact synthetic depth'}, 1e-3 < d < 80 m, "
          f"median scaling; ratio mean {res['ratio_mean']:.2f}, std/mean {res['ratio_rel_std']:.3f}):")
    print(format_table(res["metrics"]))
    print(f"the node's depth as published (no median scaling; scale from the camera height {height:g} m; "
          f"per-frame scale error median(pred)/median(gt): median {metric['scale_error_median']:.3f}):")
    print(format_table(metric["unscaled"]).splitlines()[-1])
    print("the same network with random (untrained) weights, for reference — roughly 'one depth everywhere':")
    print(format_table(baseline["metrics"]).splitlines()[-1])
    print("one depth everywhere (median-scaled), the floor for having learnt any structure:")
    print(format_table(baseline["constant"]).splitlines()[-1])
    print(f"\n{CAPTION}\n")
    print("outputs:")
    print(f"  bag (input)           {bag}")
    print(f"  depth model           {model_path}")
    print(f"  colorized depth       {info['col_dir']}/ ({len(results)} frames, from the node's ~/depth_colored)")
    print(f"  contact sheet         {out / 'contact_sheet.png'}")
    print(f"  point cloud           {out / 'cloud.ply'} ({info['n_pts']} points, last frame's ~/points), views "
          f"{out / 'cloud_perspective.png'}, {out / 'cloud_birdseye.png'}" if info["n_pts"] else
          "  point cloud           (none: no CameraInfo reached the node)")
    print(f"  metrics               {out / 'metrics.json'}")
    print(f"  header stamps/frame_id copied exactly: {extra['stamps_ok']}; total {time.time() - t_start:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """0 ok, 1 a step failed (the message names it), 2 usage error."""
    args = build_parser().parse_args(argv)
    t_start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        drive, kind = S.pick_data(args.data, out, synthetic=args.synthetic, synth_frames=args.synthetic_frames,
                                  synth_size=args.synthetic_size)
        print(f"[demo] data: {drive} ({kind})", flush=True)
        bag = S.make_bag(drive, out)
        model_path = Path(args.checkpoint) if args.checkpoint else \
            S.train_on_bag(bag, out, args.steps, args.height, args.width, args.batch_size, args.device,
                           args.stride or (2 if kind == "kitti" else 1), kind=kind)
        print(f"[demo] running the ROS 2 depth node (rclpy, lifecycle) on the bag with {model_path} …", flush=True)
        results, extra = player.run_node(model_path, bag, args.device, camera_height=args.camera_height)
        frames, rgb_paths, info = _pictures(drive, results, extra, out)
        res, baseline, keys, metric = _metrics(model_path, drive, kind, frames, rgb_paths, results, extra, out,
                                               args.camera_height)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    _report(res, baseline, keys, kind, bag, model_path, info, results, extra, out, t_start, metric, args.camera_height)
    return 0


if __name__ == "__main__":
    sys.exit(main())
