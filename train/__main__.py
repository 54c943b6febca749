"""``python -m train --config config/train_kitti_mono.yaml [key=value ...] [--resume PATH]``

Single process (CPU or one GPU), or many with
``torchrun --nproc_per_node N -m train --config ...`` (NCCL on GPUs, gloo on CPU).

example:
  python -m train --config config/train_bag.yaml data.path=robot.mcap data.image_topic=/camera/image_raw

exit status: 0 trained; 2 the arguments, config, data or checkpoint cannot be used at start-up (the
message names it); 1 a failure while training (disk full, a bad frame found mid-epoch, out of memory).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
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


def one_line(exc: BaseException) -> str:
    """The error as one line. A DataLoader worker's error arrives wrapped with its traceback in the
    message: keep only its last line (``ValueError: <the dataset's message>``)."""
    text = str(exc) or type(exc).__name__
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    return " ".join(text.split())


def _fail(exc: BaseException, code: int) -> int:
    print(f"error: {one_line(exc)}", file=sys.stderr)
    return code


def _setup(cfg, resume: str | None):
    """Dataset, Trainer, the log_dir lock (rank 0) and the resumed state; usage errors raise."""
    from .data import build_dataset
    from .rundir import claim_log_dir
    from .trainer import Trainer

    # before the data (decoding a bag can take minutes): a busy or unwritable log_dir fails at once;
    # under torchrun only rank 0 (RANK, as init_distributed reads it) writes there
    lock = claim_log_dir(cfg.log_dir) if int(os.environ.get("RANK", "0")) == 0 else None
    dataset = build_dataset(cfg, is_train=True)
    trainer = Trainer(cfg, dataset)
    trainer.check_train_set()
    if resume:
        trainer.load(resume)
    return trainer, lock


def main(argv: list[str] | None = None) -> int:
    """Exit 0 done, 1 a runtime failure during training (disk full, unreadable frame...), 2 a usage error
    (config, data, log_dir, checkpoint) - each one line on stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        return _fail(exc, 2)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    import torch
    from md2_ros.core.checkpoint import CheckpointError

    from .datasets import BagError

    try:
        trainer, _lock = _setup(cfg, args.resume)
    except (ValueError, OSError, BagError, CheckpointError) as exc:  # bad data, config or checkpoint: say which
        return _fail(exc, 2)
    try:
        summary = trainer.train()
    except KeyboardInterrupt:
        print("interrupted: resume from the last checkpoint with --resume", file=sys.stderr)
        return 130
    except (OSError, ValueError, BagError, CheckpointError, torch.OutOfMemoryError) as exc:
        return _fail(exc, 1)  # disk full, a bad frame found mid-epoch, out of memory...
    if trainer.dist.is_main:
        summary.pop("losses")
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
