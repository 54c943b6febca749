"""``kill -9`` of ``python -m train`` at 20 random moments, each followed by ``--resume``: every
checkpoint left behind loads, every resume starts, and on CPU the final weights equal those of one
uninterrupted run (bit for bit). Checkpoints are written at every step, so kills also land inside
checkpoint and export writes.

The trainings run in forked children of this (already warmed-up) process: a real process killed by a
real SIGKILL, without paying Python + torch start-up 21 times. Logs go to a tmpfs when there is one.
"""
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import torch
from tiny_data import make_folder, train_args

from md2_ros.core.checkpoint import load_state
from md2_ros.core.model import load_model

KILLS = 20
STEPS = 5


def _train(argv):                      # runs in the forked child
    torch.set_num_threads(1)
    from train.__main__ import main
    os._exit(main(argv))


def _start(argv) -> mp.Process:
    proc = mp.get_context("fork").Process(target=_train, args=(argv,))
    proc.start()
    return proc


@pytest.fixture
def fast_dir():
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="md2_kill_", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _finish(args, last: Path) -> None:
    proc = _start(args + (["--resume", str(last)] if last.exists() else []))
    proc.join(120)
    assert proc.exitcode == 0, proc.exitcode


@pytest.mark.slow
def test_kill_9_at_20_random_points_then_resume_equals_uninterrupted(fast_dir, tmp_path):
    data = make_folder(tmp_path / "frames")
    ref_args = train_args(data, fast_dir / "ref", f"max_steps={STEPS}")
    t0 = time.monotonic()
    _finish(ref_args, fast_dir / "ref" / "checkpoints" / "last.pt")
    duration = time.monotonic() - t0

    args = train_args(data, fast_dir / "run", f"max_steps={STEPS}")
    last = fast_dir / "run" / "checkpoints" / "last.pt"
    rng, kills, in_writes, steps_seen = random.Random(20), 0, 0, []
    while kills < KILLS:
        proc = _start(args + (["--resume", str(last)] if last.exists() else []))
        # about two steps' worth of run: kills land in start-up, resume, steps, checkpoint writes and,
        # once the steps are done, in the final save and export of the resumed finished run
        proc.join(rng.uniform(0.0, duration / 4))
        if proc.is_alive():
            proc.kill()
            kills += 1
        proc.join()
        torn = list(last.parent.glob(".last.pt.pid*.tmp")) + list(last.parent.parent.glob(".depth.*.tmp"))
        in_writes += bool(torn)
        assert proc.exitcode in (0, -9), f"a resumed training failed (exit {proc.exitcode})"
        if last.exists():
            steps_seen.append(load_state(last)["step"])          # loads after every kill
            assert steps_seen == sorted(steps_seen), steps_seen
    _finish(args, last)
    assert not list((fast_dir / "run").rglob("*.tmp")), "temp files of killed writes were not cleaned"

    ref, got = load_state(fast_dir / "ref" / "checkpoints" / "last.pt"), load_state(last)
    assert got["step"] == ref["step"] == STEPS
    for k, v in ref["nets"].items():
        assert torch.equal(got["nets"][k], v), f"{k} differs from the uninterrupted run"
    exported, ref_model = load_model(fast_dir / "run" / "depth.safetensors"), load_model(fast_dir / "ref" /
                                                                                           "depth.safetensors")
    for k, v in ref_model.state_dict().items():
        assert torch.equal(exported.state_dict()[k], v), k
    print(f"{kills} kills ({in_writes} inside a checkpoint/export write); checkpoint steps seen after them: "
          f"{steps_seen}")
