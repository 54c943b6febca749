"""Where a model's error on the bundled KITTI sample sits: velodyne points split by what they hit.

    python bench/kitti_breakdown.py out/demo/train/depth.safetensors [--data ../shared/data/kitti_mini]

Each velodyne point of the 20 scanned frames (Garg crop, < 80 m, per-image median scaling as in the Eigen
protocol) is put in one group: above the horizon; the road (true depth within 10 % of where the ray meets
the ground 1.65 m below a level camera); objects standing nearer than the road, below or from 10 m. The
table gives each group's share of the points, its abs_rel, its share of the total error and the median of
predicted / true depth (> 1: too far). It also counts points the ground bound of training would charge
(predicted beyond 1.1 × the road depth of their row, the camera height in network units taken from the
lowest fifth of the rows as the loss takes it). Pooled over points, so the total differs a little from the
per-image mean of the Eigen table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from md2_ros.core.losses import ground_log_excess, ground_ray_depth  # noqa: E402
from md2_ros.core.model import DepthModel  # noqa: E402
from md2_ros.io.kitti import load_cam_intrinsics  # noqa: E402
from train.evaluate_depth import crop_mask  # noqa: E402
from train.export_gt_depth import all_scanned_frames, velodyne_depth  # noqa: E402

CAMERA_HEIGHT = 1.65


def _inv_K(calib_dir: Path) -> torch.Tensor:
    K = np.eye(4)
    K[:3, :3] = load_cam_intrinsics(calib_dir)[:, :3]
    return torch.tensor(np.linalg.inv(K), dtype=torch.float64)[None]


def _groups(pred: np.ndarray, gt: np.ndarray, inv_K: torch.Tensor) -> dict:
    h, w = pred.shape
    ground = ground_ray_depth(inv_K, h, w)[0, 0].numpy()   # where each ray meets the ground 1 unit below
    below = np.isfinite(ground)
    safe_ground = np.where(below, ground, 1.0)
    road = below & (np.abs(np.log(np.maximum(gt, 1e-6)) - np.log(CAMERA_HEIGHT * safe_ground)) < np.log(1.1))
    log_excess, counted = ground_log_excess(torch.from_numpy(pred.astype(np.float64))[None, None], inv_K)
    charged = (counted & (log_excess > np.log(1.1)))[0, 0].numpy()     # as the bound's default tolerance
    objects = below & ~road
    return {"above the horizon": ~below, "road": road, "objects nearer than 10 m": objects & (gt < 10),
            "objects from 10 m": objects & (gt >= 10), "charged by the ground bound": charged}


def breakdown(checkpoint: Path, data: Path) -> tuple[dict, float, float, float]:
    """{group: [points, summed abs error, pred/gt ratios]}, pooled abs_rel, points, summed abs error."""
    model = DepthModel.load(checkpoint, device="cpu")
    frames = all_scanned_frames(data)
    sums: dict = {}
    total_n = total_err = 0.0
    for folder, frame, _ in frames:
        calib = data / folder.split("/")[0]
        image = cv2.imread(str(data / folder / "image_02" / "data" / f"{frame:010d}.png"), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read frame {frame} of {data / folder}")
        gt = velodyne_depth(data, folder, frame)
        h, w = gt.shape
        pred = cv2.resize(model.predict(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)), (w, h), interpolation=cv2.INTER_LINEAR)
        valid = (gt > 1e-3) & (gt < 80) & crop_mask(h, w, "garg")
        scaled = pred * np.median(gt[valid]) / np.median(pred[valid])
        err = np.where(valid, np.abs(scaled - gt) / np.where(valid, gt, 1.0), 0.0)
        total_n, total_err = total_n + valid.sum(), total_err + err.sum()
        for name, sel in _groups(pred, gt, _inv_K(calib)).items():
            sel = sel & valid
            group = sums.setdefault(name, [0, 0.0, []])
            group[0] += sel.sum()
            group[1] += err[sel].sum()
            group[2].append(scaled[sel] / gt[sel])
    for group in sums.values():
        group[2] = np.concatenate(group[2])
    return sums, total_err / max(total_n, 1), total_n, total_err


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kitti_mini")
    args = p.parse_args(argv)
    if not args.data.is_dir():
        print(f"no KITTI sample at {args.data} (--data)", file=sys.stderr)
        return 2
    sums, abs_rel, n_all, e_all = breakdown(args.checkpoint, args.data)
    print(f"{args.checkpoint}: pooled abs_rel {abs_rel:.3f} over {int(n_all)} velodyne points")
    print(f"{'group':30s} {'points':>7s} {'abs_rel':>8s} {'error':>7s} {'pred/gt':>8s}")
    for name, (n, e, ratios) in sums.items():
        med = float(np.median(ratios)) if ratios.size else float("nan")
        print(f"{name:30s} {n / n_all:7.2f} {e / max(n, 1):8.3f} {e / e_all:7.2f} {med:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
