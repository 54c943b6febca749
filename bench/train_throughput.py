"""Training throughput (samples/s) of the Monodepth2 trainer: mono 640x192, batch 12 by default.

    python bench/train_throughput.py                                   # CPU here; on CUDA every AMP x layout
    python bench/train_throughput.py --device cuda --amp bf16 --channels-last on --steps 50 --warmup 10
    python bench/train_throughput.py --data ../shared/data/kitti_mini --workers 4   # + a DataLoader row
    python bench/train_throughput.py --height 96 --width 320 --batch-size 4 --baseline   # same-run ratio to the pre-round-10 step

Each row times ``Trainer.step`` (forward, loss, backward, Adam) on an in-memory batch of random frames
built with the datasets' own ``build_sample`` (every colour/scale/K key the trainer reads), so data
loading is not measured. With ``--data`` (a KITTI root or drive) two more rows: the DataLoader alone
(decode + resize + augment in ``--workers`` processes) and steps fed by it, as ``python -m train`` runs.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from md2_ros.core import losses  # noqa: E402

from train.config import load_config  # noqa: E402
from train.datasets.base import build_sample  # noqa: E402
from train.trainer import Trainer  # noqa: E402

KITTI_K = np.array([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)


def random_batch(frame_ids, height: int, width: int, batch_size: int, seed: int = 0) -> dict:
    """A collated batch of random frames in the dataset sample layout (4 scales, KITTI-like K)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(batch_size):
        images = {f: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for f in frame_ids}
        samples.append(build_sample(images, KITTI_K, 4, i, baseline=0.54 if "s" in frame_ids else None))
    return torch.utils.data.default_collate(samples)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cfg(args, amp: str, channels_last: bool, extra=()):
    return load_config(None, [f"height={args.height}", f"width={args.width}", f"batch_size={args.batch_size}",
                              f"frame_ids={args.frame_ids}", f"num_layers={args.num_layers}", f"amp={amp}",
                              f"channels_last={str(channels_last).lower()}", f"device={args.device}",
                              "progress=false", "log_dir=/tmp/md2_bench", *extra])


def time_steps(trainer: Trainer, batches, steps: int, warmup: int) -> dict:
    """Run warmup + steps optimizer steps over ``batches`` (an iterator); seconds per step and samples/s."""
    for _ in range(warmup):
        trainer.step(next(batches))
    _sync(trainer.device)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step(next(batches))
    _sync(trainer.device)
    dt = (time.perf_counter() - t0) / steps
    mem = torch.cuda.max_memory_allocated(trainer.device) / 2**30 if trainer.device.type == "cuda" else float("nan")
    return {"s_per_step": dt, "samples_per_s": trainer.cfg.batch_size / dt, "peak_gib": mem,
            "skipped": trainer.skipped_nonfinite}


@contextlib.contextmanager
def baseline_ops(trainer: Trainer):
    """The step as it was before round 10 (docs/learning.md): SSIM's 3x3 mean by ``avg_pool2d`` and Adam's
    per-parameter loop, so ``--baseline`` measures the speed-up in the same run, on the same machine."""
    fast_box, fast_opt = losses.box3, trainer.optimizer
    losses.box3 = lambda x: F.avg_pool2d(x, 3, 1)
    trainer.optimizer = torch.optim.Adam(trainer.nets.parameters(), lr=trainer.cfg.learning_rate, foreach=False)
    try:
        yield
    finally:
        losses.box3, trainer.optimizer = fast_box, fast_opt


def time_with_baseline(trainer: Trainer, batch, args) -> tuple[dict, dict]:
    """(baseline, current) timings, alternated ``args.rounds`` times; each the round with the median s/step."""
    runs = {"baseline": [], "current": []}
    for _ in range(args.rounds):
        with baseline_ops(trainer):
            runs["baseline"].append(time_steps(trainer, _forever(batch), args.steps, args.warmup))
        runs["current"].append(time_steps(trainer, _forever(batch), args.steps, args.warmup))
    median = [sorted(r, key=lambda x: x["s_per_step"])[len(r) // 2] for r in runs.values()]
    return median[0], median[1]


def _forever(batch):
    while True:
        yield batch


def _loader_rows(args, device: torch.device) -> list[tuple[str, dict]]:
    from train.data import build_dataset
    from train.distributed import ResumableSampler, SeededDataset

    cfg = _cfg(args, "none", False, [f"data.path={args.data}", "data.split=all", "data.kind=kitti",
                                     f"data.num_workers={args.workers}"])
    trainer = Trainer(cfg, None, device=device)
    dataset = build_dataset(cfg, is_train=True)
    trainer.seeded = SeededDataset(dataset, cfg.seed)
    sampler = ResumableSampler(len(dataset), cfg.seed)

    def batches():   # one loader (persistent workers), re-iterated every epoch as Trainer.train does
        loader, epoch = trainer._loader(sampler), 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = batches()
    for _ in range(args.warmup):
        next(it)
    n = max(args.steps, 3)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    dt = (time.perf_counter() - t0) / n
    rows = [(f"DataLoader only, {args.workers} workers", {"s_per_step": dt, "samples_per_s": cfg.batch_size / dt,
                                                          "peak_gib": float("nan"), "skipped": 0})]
    rows.append((f"step + DataLoader, {args.workers} workers", time_steps(trainer, it, args.steps, args.warmup)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python bench/train_throughput.py --device cpu")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--amp", default="auto",
                    help="none | bf16 | fp16, comma-separated list, or auto (CUDA: none,bf16,fp16; CPU: none)")
    ap.add_argument("--channels-last", nargs="?", const="on", default="auto", choices=["auto", "on", "off", "both"],
                    help="memory format: on, off, both, or auto (CUDA: both; CPU: off)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--height", type=int, default=192)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--num-layers", type=int, default=18)
    ap.add_argument("--frame-ids", default="[0,-1,1]", help="[0,-1,1] (M), [0,s] (S), [0,-1,1,s] (MS)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--data", default="", help="KITTI root or drive: also time the DataLoader (kitti_mini is fine)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers for --data")
    ap.add_argument("--baseline", action="store_true",
                    help="also time the step before round 10 (avg_pool2d SSIM, unfused Adam), alternated in one run")
    ap.add_argument("--rounds", type=int, default=3, help="--baseline: alternations (median reported)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    amps = (["none", "bf16", "fp16"] if cuda else ["none"]) if args.amp == "auto" else args.amp.split(",")
    layouts = {"auto": [False, True] if cuda else [False], "on": [True], "off": [False],
               "both": [False, True]}[args.channels_last]
    if not cuda and amps != ["none"]:
        print("note: AMP is CUDA-only in the trainer; on CPU it is ignored", file=sys.stderr)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"# train throughput: {args.frame_ids} {args.width}x{args.height} batch {args.batch_size} "
          f"ResNet{args.num_layers} on {name}; torch {torch.__version__}; {args.steps} steps after "
          f"{args.warmup} warm-up")
    frame_ids = load_config(None, [f"frame_ids={args.frame_ids}"]).frame_ids
    batch = random_batch(frame_ids, args.height, args.width, args.batch_size)
    rows = []
    for amp in amps:
        for cl in layouts:
            torch.manual_seed(0)
            trainer = Trainer(_cfg(args, amp, cl), None, device=device)
            label = f"amp={amp:<4} channels_last={'on' if cl else 'off'}"
            if args.baseline:
                base, cur = time_with_baseline(trainer, batch, args)
                rows.append((label + " baseline", base))
                rows.append((label + f" ({base['s_per_step'] / cur['s_per_step']:.2f}x)", cur))
            else:
                rows.append((label, time_steps(trainer, _forever(batch), args.steps, args.warmup)))
            print(f"  measured {label}", file=sys.stderr, flush=True)
            del trainer
            if cuda:
                torch.cuda.empty_cache()
    if args.data:
        rows += _loader_rows(args, device)
    print(f"{'configuration':<42} {'s/step':>8} {'samples/s':>10} {'peak GiB':>9}")
    for label, r in rows:
        skipped = f"  ({r['skipped']} non-finite steps skipped)" if r["skipped"] else ""
        peak = "-" if np.isnan(r["peak_gib"]) else f"{r['peak_gib']:.2f}"
        print(f"{label:<42} {r['s_per_step']:>8.3f} {r['samples_per_s']:>10.2f} {peak:>9}{skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
