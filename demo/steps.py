"""The demo's data, training and evaluation steps, each a small function (the flow is in ``demo/__main__.py``)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from bench.learning import RECIPES as BENCH_RECIPES

SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kitti_mini"


def pick_data(data: str | None, out: Path, synthetic: bool = False, synth_frames: int = 40,
              synth_size: tuple = (192, 640)) -> tuple[Path, str]:
    """-> (KITTI drive folder, "kitti" | "synthetic"). ``--data`` wins, then ../shared's sample, then
    the synthetic scene (also when ``synthetic`` is set)."""
    from md2_ros.io.kitti import find_drives

    if data and not synthetic:
        root = Path(data).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"--data {root}: no such folder")
        return find_drives(root)[0], "kitti"
    if SHARED_SAMPLE.is_dir() and not synthetic:
        return find_drives(SHARED_SAMPLE)[0], "kitti"
    from md2_ros.synthetic import render_sequence, write_kitti_layout

    print(f"[demo] {'synthetic requested' if synthetic else f'{SHARED_SAMPLE} not found'}: rendering the built-in synthetic scene "
          f"({synth_frames} frames {synth_size[1]}x{synth_size[0]}) …", flush=True)
    seq = render_sequence(num_frames=synth_frames, height=synth_size[0], width=synth_size[1], seed=0)
    return write_kitti_layout(seq, out / "synthetic"), "synthetic"


def make_bag(drive: Path, out: Path) -> Path:
    """The drive as a ROS 2 bag (CompressedImage PNG + CameraInfo), like a robot would record it."""
    from train.make_bag import write_kitti_bag

    bag = out / "camera.mcap"
    info = write_kitti_bag(drive, bag, compressed=True, overwrite=True)
    print(f"[demo] bag: {bag} {info['topics']}", flush=True)
    return bag


# training settings on top of the paper's defaults (docs/learning.md): on synthetic scenes those of
# bench/learning.py's synthetic profiles; on the KITTI sample plain Adam 2e-4 plus the ground bound (a car's
# level camera: nothing below the horizon is farther than the road there), which pulls in the vehicles that
# move with the camera (round 7's demo: 0.305 against 0.353 without, one seed each) and gives the model a road plane the node's
# camera-height scale can fit
RECIPES = {"synthetic": tuple(BENCH_RECIPES["synthetic"]), "kitti": ("learning_rate=2e-4", "lr_decay_at=0.75",
                                                                "ground_bound_weight=1.0")}


def train_on_bag(bag: Path, out: Path, steps: int, height: int, width: int, batch: int, device: str,
                 stride: int = 2, kind: str = "kitti") -> Path:
    """Self-supervised monocular training on the bag for a bounded number of steps."""
    from train.config import load_config
    from train.data import build_dataset
    from train.trainer import Trainer

    cfg = load_config(None, [f"data.kind=rosbag", f"data.path={bag}", "data.image_topic=/camera/image_raw/compressed",
                             "data.camera_info_topic=/camera/camera_info", "data.num_workers=0",
                             f"height={height}", f"width={width}", f"batch_size={batch}", f"max_steps={steps}", f"data.stride={stride}",
                             *RECIPES[kind], "num_epochs=1000", f"log_dir={out / 'train'}",
                             "save_every=0", "epoch_checkpoints=false", "image_every=0", f"device={device}"])
    dataset = build_dataset(cfg, is_train=True)
    print(f"[demo] training {steps} steps at {width}x{height}, batch {batch}, on {len(dataset)} triplets "
          f"(static frames filtered: {getattr(dataset, 'stats', {})})", flush=True)
    t0 = time.time()
    summary = Trainer(cfg, dataset).train()
    first = float(np.mean(summary["losses"][:20]))
    last = float(np.mean(summary["losses"][-20:]))
    print(f"[demo] trained in {time.time() - t0:.0f} s: photometric loss {first:.4f} -> {last:.4f} "
          f"(mean of first/last 20 steps)", flush=True)
    return Path(summary["exported"])


def ground_truth(drive: Path, kind: str, frame_ids: list[int]) -> dict:
    """{frame: GT depth} — velodyne (KITTI) for frames that have a scan, exact depth for the synthetic scene."""
    gt = {}
    if kind == "synthetic":
        for f in frame_ids:
            p = drive / "gt_depth" / f"{f:010d}.npy"
            if p.exists():
                gt[f] = np.load(p)
        return gt
    from train.export_gt_depth import velodyne_depth

    root, folder = drive.parent.parent, f"{drive.parent.name}/{drive.name}"
    for f in frame_ids:
        if (drive / "velodyne_points" / "data" / f"{f:010d}.bin").exists():
            gt[f] = velodyne_depth(root, folder, f, 2)
    return gt


def untrained_baseline(model_path: Path, paths: dict, frames: list, gt: dict, crop: str) -> dict:
    """Eigen metrics of the trained model's architecture with random weights (seed 0), as a reference row."""
    import torch

    from md2_ros.core.model import DepthModel
    from train.evaluate_depth import evaluate

    trained = DepthModel.load(model_path, device="cpu")
    torch.manual_seed(0)
    model = DepthModel.from_config(trained.config).setup_inference("cpu")
    preds = []
    for f in frames:
        bgr = cv2.imread(str(paths[f]))
        preds.append(model.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return evaluate([gt[f] for f in frames], preds, pred_type="depth", median_scaling=True, crop=crop)


def constant_baseline(frames: list, gt: dict, crop: str) -> dict:
    """Eigen metrics of one depth everywhere (median scaling makes its value irrelevant): the floor a
    trained model must beat to have learnt any structure."""
    from train.evaluate_depth import evaluate

    return evaluate([gt[f] for f in frames], [np.ones_like(gt[f]) for f in frames], pred_type="depth",
                    median_scaling=True, crop=crop)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, default=float))
