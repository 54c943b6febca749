"""``python -m train --config config/train_kitti_mono.yaml [key=value ...] [--resume PATH]``

Single process (CPU or one GPU), or many with
``torchrun --nproc_per_node N -m train --config ...`` (NCCL on GPUs, gloo on CPU).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML training config (see config/train_*.yaml); defaults when omitted")
    p.add_argument("--resume", help="resumable checkpoint (…/checkpoints/last.pt) to continue from exactly")
    p.add_argument("--print-config", action="store_true", help="print the merged config as JSON and exit")
    p.add_argument("overrides", nargs="*", help="key=value overrides, dotted for nested keys (data.path=/kitti)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from .data import build_dataset
    from .trainer import Trainer

    from md2_ros.core.checkpoint import CheckpointError

    from .datasets import BagError

    try:
        dataset = build_dataset(cfg, is_train=True)
        trainer = Trainer(cfg, dataset)
        if args.resume:
            trainer.load(args.resume)
    except (ValueError, OSError, BagError, CheckpointError) as exc:  # bad data, config or checkpoint: say which
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = trainer.train()
    if trainer.dist.is_main:
        summary.pop("losses")
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
