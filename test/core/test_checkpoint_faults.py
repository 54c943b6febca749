"""Checkpoint writes under faults: ``kill -9`` in the middle of exporting a depth model leaves the
previous file loadable (and the next write removes the dead writer's temp file); a full disk raises
an OSError naming the file and keeps the previous one; weights with NaN are refused at load."""
import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from md2_ros.core.checkpoint import CheckpointError, atomic_write_bytes
from md2_ros.core.model import DepthModel, load_model

ROOT = Path(__file__).resolve().parents[2]

EXPORTER = r"""
import sys, torch
from md2_ros.core.model import DepthModel
torch.set_num_threads(1)
model, n = DepthModel(num_layers=18, height=64, width=64), int(sys.argv[2])
while True:
    n += 1
    with torch.no_grad():
        next(model.parameters()).fill_(n)                  # the weights say which export this is
    print("saving", n, flush=True)
    model.save(sys.argv[1])
    print("saved", n, flush=True)
"""


def _export_number(path) -> int:
    return int(next(load_model(path).parameters()).flatten()[0])


def test_kill_9_during_export_keeps_the_previous_model(tmp_path):
    script, target = tmp_path / "exporter.py", tmp_path / "depth.safetensors"
    script.write_text(EXPORTER)
    rng, last = random.Random(7), 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(target), str(last)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
        saved, t0 = last, time.monotonic()
        try:
            for line in proc.stdout:                     # wait for one complete export, then kill in the next
                kind, n = line.split()
                if kind == "saved":
                    saved = int(n)
                elif saved > last:
                    time.sleep(rng.uniform(0.0, 0.2))
                    break
                assert time.monotonic() - t0 < 600
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            saved = max([saved] + [int(n) for kind, n in (ln.split() for ln in proc.stdout) if kind == "saved"])
            proc.stdout.close()
        number = _export_number(target)                  # always loadable
        assert number in (saved, saved + 1), (number, saved)
        last = number
    leftovers = list(tmp_path.glob(".depth.safetensors.*.tmp"))
    DepthModel(num_layers=18, height=64, width=64).save(target)
    assert not any(p.exists() for p in leftovers), "the next write must remove a killed writer's temp file"


def test_disk_full_keeps_the_previous_file_and_names_it(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"old")
    real_fsync = os.fsync

    def fsync(fd):                                       # the disk fills while the new file is flushed
        if ".last.pt.pid" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match=r"cannot write .*last\.pt: No space left on device \(the previous file is kept\)"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"], "the torn temp file was left behind"


def test_nan_weights_are_refused_at_load(tmp_path):
    model = DepthModel(num_layers=18, height=64, width=64)
    with torch.no_grad():
        model.decoder.decoder[10].conv.weight[0, 0, 0, 0] = float("nan")
    model.save(tmp_path / "one_nan.safetensors")
    with pytest.raises(CheckpointError, match=r"one_nan\.safetensors: 1 weight tensor\(s\) hold NaN or inf"):
        load_model(tmp_path / "one_nan.safetensors")
