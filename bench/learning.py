"""Does training learn depth? A learning curve against exact ground truth, through the real code path.

    python bench/learning.py --quick --json out.json --plot curve.png     # CPU, 2 cores, <= 15 min
    python bench/learning.py --full  --json full.json --plot full.png     # GPU, 640x192
    python bench/learning.py --kitti --json k.json --plot k.png           # the bundled KITTI sample

Synthetic profiles: training scenes and held-out scenes (never trained on) rendered by
``md2_ros.synthetic`` with different seeds (geometry, textures, speed, turning, box count), written in
the KITTI raw layout, loaded by ``train``'s KITTI dataset, trained by ``train.trainer.Trainer``; every
``--eval-every`` steps the depth model scores the held-out frames (Eigen metrics, median scaling, exact
depth capped at 80 m). At the end the exported checkpoint is loaded back with ``DepthModel.load`` and
scored: the "trained" row. The "untrained" row is the same network at step 0, "constant" predicts one
depth everywhere. ``--kitti`` trains on the sample as the demo does (a ROS 2 bag made from it) and scores
the 20 frames with velodyne scans (Garg crop); self-supervised, so the frames may be trained on.

Exit codes: 0 done, 1 runtime failure, 2 usage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KITTI_SAMPLE = ROOT.parent / "shared" / "data" / "kitti_mini"
# training settings on top of the paper's defaults, per kind of data, as measured (docs/learning.md):
# synthetic - Adam 1e-4, ×0.1 for the last quarter, half-size pose input (a 0.48 s step instead of 0.62 s on
# 2 CPU cores, so more steps fit the budget), and the photometric loss of each scale at that scale's resolution
# (Monodepth v1's multi-scale: the paper's full-resolution form learnt slower here and costs more per step);
# the KITTI sample - Adam 2e-4, the same decay, and the ground bound (nothing below the horizon farther than
# the road there): without it the sample's vehicles that move with the camera become far holes and the curve
# degrades (0.326 at 200 steps -> 0.385 at 1200); with it it starts lower and drifts less (0.291 -> 0.346)
RECIPES = {"synthetic": ["lr_decay_at=0.75", "pose_input_scale=1", "v1_multiscale=true"],
           "kitti": ["learning_rate=2e-4", "lr_decay_at=0.75", "ground_bound_weight=1.0"]}
PROFILES = {
    "quick": dict(height=96, width=320, train_scenes=8, frames=50, heldout_scenes=2, heldout_frames=25,
                  steps=1500, eval_every=250, batch_size=4, recipe="synthetic"),
    "full": dict(height=192, width=640, train_scenes=24, frames=100, heldout_scenes=4, heldout_frames=50,
                 steps=12000, eval_every=1000, batch_size=12, recipe="synthetic"),
    "kitti": dict(height=96, width=320, steps=1200, eval_every=100, batch_size=4, recipe="kitti"),
}
HELDOUT_SEED0 = 10_000
CAMERA_HEIGHT = 1.65   # metres: KITTI's camera, and md2_ros.synthetic's
CURVE_KEYS = ("abs_rel", "rmse", "a1", "scale_ratio")
# --metric: velocity supervision from each scene's poses.txt (docs/metric.md); it needs un-normalised warping
METRIC_SETTINGS = ["velocity_weight=0.5", "data.poses_file=auto", "depth_normalization=false"]


# ----------------------------------------------------------------------------------------------- data

def scene_params(seed: int) -> dict:
    """Per-scene variety drawn from the seed: speed (m/frame), weave (rad/frame), number of boxes.

    Held-out scenes (seed >= HELDOUT_SEED0) draw from the wide range: speed 0.35-0.8, weave up to ±0.02.
    Training scenes draw a moderate one (speed 0.4-0.65, weave 0.005-0.012 either way) - the frame-spacing
    choice a user makes with ``data.stride``; docs/learning.md has the measurement behind it."""
    rng = np.random.default_rng(seed + 7_777)
    if seed >= HELDOUT_SEED0:
        return dict(speed=float(rng.uniform(0.35, 0.8)), yaw_rate=float(rng.uniform(-0.02, 0.02)),
                    num_boxes=int(rng.integers(4, 13)))
    return dict(speed=float(rng.uniform(0.4, 0.65)), yaw_rate=float(rng.uniform(0.005, 0.012) * rng.choice([-1, 1])),
                num_boxes=int(rng.integers(4, 13)))


def _render_one(args) -> str:
    from md2_ros.synthetic import render_sequence, write_kitti_layout

    seed, frames, height, width, root = args
    seq = render_sequence(num_frames=frames, height=height, width=width, seed=seed, **scene_params(seed))
    drive = write_kitti_layout(seq, root, drive=f"2011_09_26_drive_s{seed:05d}_sync")
    return str(drive)


def render_scenes(root: Path, seeds: list[int], frames: int, height: int, width: int, jobs: int) -> list[Path]:
    """Render (or reuse from ``root``) one KITTI-layout drive per seed. Returns the drive folders."""
    todo, drives = [], []
    for seed in seeds:
        drive = root / "2011_09_26" / f"2011_09_26_drive_s{seed:05d}_sync"
        drives.append(drive)
        if not (drive / "poses.txt").exists() or len(list((drive / "gt_depth").glob("*.npy"))) != frames:
            todo.append((seed, frames, height, width, root))
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(_render_one, todo))
    return drives


@dataclass
class Heldout:
    """Scored frames: RGB images, ground-truth depth, the camera's 3×3 K (pixels of each image) and the
    number of frames of each sequence (the camera-height scale is smoothed within a sequence)."""
    images: list = field(default_factory=list)
    gts: list = field(default_factory=list)
    Ks: list = field(default_factory=list)
    sequences: list = field(default_factory=list)


def _camera_K(date_dir: Path) -> np.ndarray:
    from md2_ros.io.kitti import load_cam_intrinsics

    return load_cam_intrinsics(date_dir, 2)[:, :3]


def synthetic_heldout(drives: list[Path]) -> Heldout:
    import cv2

    out = Heldout()
    for drive in drives:
        paths = sorted((drive / "image_02" / "data").glob("*.png"))
        for path in paths:
            out.images.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            out.gts.append(np.load(drive / "gt_depth" / f"{path.stem}.npy"))
        out.Ks += [_camera_K(drive.parent)] * len(paths)
        out.sequences.append(len(paths))
    return out


def kitti_heldout(drive: Path) -> Heldout:
    import cv2

    from train.export_gt_depth import velodyne_depth

    out = Heldout()
    root, folder = drive.parent.parent, f"{drive.parent.name}/{drive.name}"
    for scan in sorted((drive / "velodyne_points" / "data").glob("*.bin")):
        frame = int(scan.stem)
        img = cv2.imread(str(drive / "image_02" / "data" / f"{frame:010d}.png"))
        out.images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        out.gts.append(velodyne_depth(root, folder, frame, 2))
    out.Ks = [_camera_K(drive.parent)] * len(out.images)
    out.sequences = [len(out.images)]
    return out


# ----------------------------------------------------------------------------------------------- scoring

class Scorer:
    """Eigen metrics (median scaling) of a DepthModel on fixed frames with ground truth; with ``unscaled``
    also without median scaling (the model's own depth_scale: metres for a velocity-supervised model);
    :meth:`camera_height` scores the relative model scaled by the camera-height ground fit instead."""

    def __init__(self, frames: Heldout, crop: str, unscaled: bool = False):
        self.frames, self.crop, self.unscaled = frames, crop, unscaled
        self.images, self.gts = frames.images, frames.gts

    def _evaluate(self, preds, pred_type: str, median_scaling: bool = True, frame_scales=None) -> dict:
        from train.evaluate_depth import evaluate

        res = evaluate(self.gts, preds, pred_type=pred_type, median_scaling=median_scaling, crop=self.crop,
                       frame_scales=frame_scales)
        # median(gt) / median(pred): how far the raw depth scale is from metres (drift diagnostic)
        ratio = res["ratio_median"]
        return {**{k: round(float(v), 4) for k, v in res["metrics"].items()},
                "scale_ratio": None if ratio is None else round(float(ratio), 4),
                "scale_error_median": round(float(res["scale_error_median"]), 4)}

    def disparities(self, model) -> np.ndarray:
        import torch

        from train.evaluate_depth import predict_disparities

        was_training = model.training
        model.eval()
        with torch.inference_mode():
            disps, _ = predict_disparities(model, self.images, batch_size=8)
        model.train(was_training)
        return disps

    def model(self, model) -> dict:
        return self.scores(self.disparities(model))

    def scores(self, disps) -> dict:
        """Median-scaled metrics of predicted disparities (+ unscaled ones with ``unscaled``)."""
        scored = self._evaluate(disps, "disp")
        if self.unscaled:
            scored["unscaled"] = {k: v for k, v in self._evaluate(disps, "disp", median_scaling=False).items()
                                  if k in ("abs_rel", "rmse", "a1", "scale_error_median")}
        return scored

    def camera_height(self, disps, height: float, window: int = 15) -> dict:
        """No median scaling: each frame of predicted ``disps`` × the camera-height scale of the node (RANSAC
        ground plane in the lower band, running median over ``window`` accepted frames within a sequence)."""
        from md2_ros.io.intrinsics import scale_intrinsics
        from train.metric_eval import ground_scales

        factors, fits, start = [], [], 0
        for n in self.frames.sequences:
            Ks = [scale_intrinsics(K, img.shape[1::-1], disps[0].shape[::-1])
                  for K, img in zip(self.frames.Ks[start:start + n], self.images[start:start + n])]
            f, fit = ground_scales([1.0 / d for d in disps[start:start + n]], Ks, height, window=window)
            factors += f
            fits += fit
            start += n
        fitted = sum(x.ok for x in fits)
        out = {"camera_height": height, "frames": len(fits), "frames_fitted": fitted,
               "inlier_share_median": round(float(np.median([x.inlier_share for x in fits])), 3)}
        if all(f is None for f in factors):
            return {**out, "reason": next(x.reason for x in fits if not x.ok)}
        scored = self._evaluate(disps, "disp", median_scaling=False, frame_scales=factors)
        return {**out, **{k: scored[k] for k in ("abs_rel", "rmse", "a1", "scale_error_median")}}

    def constant(self) -> dict:
        return self._evaluate([np.ones_like(g) for g in self.gts], "depth")

    def ground_prior(self, height: float, fars=(20.0, 40.0, 80.0)) -> dict:
        """A layout prior, no network: a level camera ``height`` above flat ground - depth fy·h / (v − cy)
        below the horizon, ``far`` above it and beyond - median-scaled; the best of ``fars`` (favours the
        prior). What a model scores that has learnt "lower in the image is nearer" and nothing else."""
        rows = []
        for far in fars:
            preds = []
            for K, img, gt in zip(self.frames.Ks, self.images, self.gts):
                sy = gt.shape[0] / img.shape[0]
                fy, cy = K[1, 1] * sy, K[1, 2] * sy
                below = np.arange(gt.shape[0], dtype=np.float64)[:, None] - cy
                d = np.where(below > 0, fy * height / np.maximum(below, 1e-9), far)
                preds.append(np.broadcast_to(np.minimum(d, far), gt.shape).astype(np.float32))
            rows.append({"far": far, **self._evaluate(preds, "depth")})
        return min(rows, key=lambda r: r["abs_rel"])


# ----------------------------------------------------------------------------------------------- training

def train_config(profile: dict, data_overrides: list[str], log_dir: Path, device: str, extra: list[str]):
    from train.config import load_config

    p = profile
    overrides = [f"height={p['height']}", f"width={p['width']}", f"batch_size={p['batch_size']}",
                 f"max_steps={p['steps']}", "num_epochs=100000", f"log_dir={log_dir}", "save_every=0",
                 "epoch_checkpoints=false", "image_every=0", "progress=false", f"device={device}",
                 "data.num_workers=0", *data_overrides, *RECIPES[p["recipe"]], *extra]
    return load_config(None, overrides)


def _curve_row(scored: dict, **head) -> dict:
    """One point of the curve: ``head`` (step, seconds, loss) + the CURVE_KEYS (+ unscaled abs_rel if scored)."""
    row = {**head, **{k: scored[k] for k in CURVE_KEYS}}
    if "unscaled" in scored:
        row["abs_rel_unscaled"] = scored["unscaled"]["abs_rel"]
    return row


def run_curve(cfg, dataset, scorer: Scorer, eval_every: int) -> dict:
    """Train, scoring every ``eval_every`` steps; returns the JSON-ready result."""
    import torch

    from md2_ros.core.model import DepthModel
    from train.trainer import Trainer

    trainer = Trainer(cfg, dataset)
    untrained = scorer.model(trainer.nets.depth)
    curve = [_curve_row(untrained, step=0, seconds=0.0)]
    t0 = time.time()
    print(f"step {0:6d}  abs_rel {untrained['abs_rel']:.3f}  a1 {untrained['a1']:.3f}  (untrained)", flush=True)

    def hook(tr, result):
        if tr.step_count % eval_every == 0:
            m = scorer.model(tr.nets_for_use.depth)
            row = _curve_row(m, step=tr.step_count, seconds=round(time.time() - t0, 1), loss=round(result["loss"], 5))
            curve.append(row)
            print(f"step {row['step']:6d}  abs_rel {row['abs_rel']:.3f}  a1 {row['a1']:.3f}  "
                  f"loss {row['loss']:.4f}  scale {row['scale_ratio']:.3g}  {row['seconds']:.0f} s", flush=True)

    trainer.step_hooks.append(hook)
    summary = trainer.train()
    seconds = time.time() - t0
    exported = DepthModel.load(summary["exported"], device="cpu")
    torch.set_num_threads(torch.get_num_threads())
    disps = scorer.disparities(exported)   # once, for both rows
    trained = scorer.scores(disps)
    return {"steps": summary["steps"], "train_seconds": round(seconds, 1), "curve": curve,
            "heldout": {"trained": trained, "untrained": untrained, "constant": scorer.constant(),
                        "ground_prior": scorer.ground_prior(CAMERA_HEIGHT),
                        "trained_camera_height": scorer.camera_height(disps, CAMERA_HEIGHT)},
            "checkpoint": summary["exported"]}


def synthetic_setup(profile: dict, cache: Path, jobs: int):
    size = f"{profile['height']}x{profile['width']}"
    root = cache / f"synthetic_{size}_{profile['frames']}f"
    t0 = time.time()
    train_drives = render_scenes(root / "train_moderate", list(range(profile["train_scenes"])), profile["frames"],
                                 profile["height"], profile["width"], jobs)
    held = render_scenes(root / "heldout", [HELDOUT_SEED0 + i for i in range(profile["heldout_scenes"])],
                         profile["heldout_frames"], profile["height"], profile["width"], jobs)
    print(f"[learning] {len(train_drives)} training scenes x {profile['frames']} frames, {len(held)} held-out "
          f"scenes x {profile['heldout_frames']} frames at {size} ({time.time() - t0:.0f} s to render/reuse)",
          flush=True)
    return [f"data.kind=kitti", f"data.path={root / 'train_moderate'}", "data.split=all"], Scorer(synthetic_heldout(held), "none")


def kitti_setup(cache: Path):
    from md2_ros.io.kitti import find_drives
    from train.make_bag import write_kitti_bag

    if not KITTI_SAMPLE.is_dir():
        raise FileNotFoundError(f"--kitti needs the bundled sample at {KITTI_SAMPLE}")
    drive = find_drives(KITTI_SAMPLE)[0]
    bag = cache / "kitti_mini.mcap"
    if not bag.exists():
        write_kitti_bag(drive, bag, compressed=True, overwrite=True)
    data = ["data.kind=rosbag", f"data.path={bag}", "data.image_topic=/camera/image_raw/compressed",
            "data.camera_info_topic=/camera/camera_info", "data.stride=2"]
    return data, Scorer(kitti_heldout(drive), "garg")


# ----------------------------------------------------------------------------------------------- output

def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in result["curve"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    ax.plot(steps, [r["abs_rel"] for r in result["curve"]], "o-", label="trained (held-out)")
    for name, style in (("untrained", "--"), ("constant", ":")):
        ax.axhline(result["heldout"][name]["abs_rel"], linestyle=style, color="grey", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("abs_rel (median-scaled)")
    ax.set_title(f"md2_ros learning curve: {result['profile']} ({result['seconds']:.0f} s)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bench/learning.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    for name in PROFILES:
        which.add_argument(f"--{name}", dest="profile", action="store_const", const=name)
    p.add_argument("--json", type=Path, help="write the result as JSON here")
    p.add_argument("--plot", type=Path, help="write the learning curve as a PNG here")
    p.add_argument("--steps", type=int, help="override the profile's training steps")
    p.add_argument("--eval-every", type=int, help="override the profile's evaluation interval")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--cache", type=Path, default=ROOT / "out" / "learning", help="rendered scenes / bag / runs")
    p.add_argument("--tag", default="", help="name of this run's log folder under --cache (default: the profile)")
    p.add_argument("--jobs", type=int, default=2, help="processes for rendering (default 2)")
    p.add_argument("--metric", action="store_true",
                   help="train with velocity supervision from the scenes' poses (synthetic profiles) and also score "
                        "without median scaling: the metric column")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training-config override on top of the recipe (repeatable), e.g. --set learning_rate=1e-4")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    profile = dict(PROFILES[args.profile])
    profile["steps"] = args.steps or profile["steps"]
    profile["eval_every"] = args.eval_every or profile["eval_every"]
    if profile["steps"] < 1 or profile["eval_every"] < 1:
        print("error: --steps and --eval-every must be positive", file=sys.stderr)
        return 2
    if args.metric and args.profile == "kitti":
        print("error: --metric needs odometry; the KITTI sample has none (use --quick or --full)", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        args.cache.mkdir(parents=True, exist_ok=True)
        if args.profile == "kitti":
            data, scorer = kitti_setup(args.cache)
        else:
            data, scorer = synthetic_setup(profile, args.cache, args.jobs)
        if args.metric:
            # after the recipe; --set still wins. The term starts after a third of the steps (docs/metric.md)
            args.overrides = [*METRIC_SETTINGS, f"velocity_start_step={profile['steps'] // 3}", *args.overrides]
            scorer.unscaled = True
        cfg = train_config(profile, data, args.cache / f"run_{args.tag or args.profile}", args.device, args.overrides)
        from train.data import build_dataset

        dataset = build_dataset(cfg, is_train=True)
        print(f"[learning] {args.profile}: {len(dataset)} training samples, {len(scorer.images)} scored frames, "
              f"{profile['steps']} steps at {cfg.width}x{cfg.height}, batch {cfg.batch_size}", flush=True)
        result = {"profile": args.profile, **run_curve(cfg, dataset, scorer, profile["eval_every"])}
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result["seconds"] = round(time.time() - t0, 1)
    result["config_overrides"] = args.overrides
    h = result["heldout"]
    best = min(r["abs_rel"] for r in result["curve"])
    print(f"\n[learning] {args.profile}: {result['steps']} steps in {result['seconds']:.0f} s; held-out abs_rel: "
          f"trained {h['trained']['abs_rel']:.3f} (a1 {h['trained']['a1']:.3f}), untrained "
          f"{h['untrained']['abs_rel']:.3f}, constant {h['constant']['abs_rel']:.3f}, ground-plane prior "
          f"{h['ground_prior']['abs_rel']:.3f}; best on the curve {best:.3f}")
    c = h["trained_camera_height"]
    if "abs_rel" in c:
        print(f"[learning] camera-height scale ({c['camera_height']} m, no median scaling): abs_rel {c['abs_rel']:.3f} "
              f"(a1 {c['a1']:.3f}), per-frame scale error median {c['scale_error_median']:.3f}, ground fitted on "
              f"{c['frames_fitted']}/{c['frames']} frames")
    else:
        print(f"[learning] camera-height scale: no ground fit on any of {c['frames']} frames ({c['reason']})")
    if "unscaled" in h["trained"]:
        u = h["trained"]["unscaled"]
        print(f"[learning] metric (no median scaling, velocity-supervised scale): abs_rel {u['abs_rel']:.3f} "
              f"(a1 {u['a1']:.3f}) = {u['abs_rel'] / h['trained']['abs_rel']:.2f} x the median-scaled figure")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
