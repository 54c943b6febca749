"""DDP on CPU: ``torchrun --nproc_per_node 2 -m train ...`` (gloo) runs 3 steps; both ranks end with the
same weights (DDP broadcast rank 0's initial weights -- each rank seeds its own -- and averaged the
gradients) after seeing different samples, and only rank 0 writes checkpoints."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from md2_ros.core.checkpoint import load_state

ROOT = Path(__file__).resolve().parents[2]

# Runs the real CLI (train.__main__.main) under torchrun; after training, each rank writes the hashes
# of its weights and the dataset indices it trained on.
RUNNER = r"""
import hashlib, json, os, sys
import torch
import train.trainer as T

out_dir = sys.argv[1]
seen = []
step, train = T.Trainer.step, T.Trainer.train

def recording_step(self, batch):
    seen.extend(int(i) for i in batch["index"])
    return step(self, batch)

def hashing_train(self):
    summary = train(self)
    def sha(v):
        return hashlib.sha1(v.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    hashes = {k: sha(v) for k, v in self.nets.state_dict().items()}
    params = {k: sha(v) for k, v in self.nets.named_parameters()}
    with open(os.path.join(out_dir, f"rank{self.dist.rank}.json"), "w") as f:
        json.dump({"hashes": hashes, "params": params, "seen": seen, "world": self.dist.world_size, "steps": summary["steps"],
                   "ddp": type(self.model).__name__}, f)
    return summary

T.Trainer.step, T.Trainer.train = recording_step, hashing_train
from train.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def _torchrun():
    exe = Path(sys.executable).parent / "torchrun"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.parametrize("extra", [[], ["scales=[0,2]", "pose_model_type=shared"]],
                         ids=["paper", "scale-subset-shared-pose"])   # unused heads need find_unused_parameters
def test_torchrun_two_ranks_gloo_identical_weights(kitti_mini, tmp_path, extra):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    log_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = _torchrun() + ["--standalone", "--nproc_per_node", "2", str(runner), str(tmp_path),
                         "height=64", "width=96", "batch_size=2", "max_steps=3", "device=cpu", "progress=false",
                         "save_every=2", "data.num_workers=0", f"data.path={kitti_mini}", "data.split=all",
                         f"log_dir={log_dir}", *extra]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["world"] == 2 and r["steps"] == 3 and r["ddp"] == "DistributedDataParallel"
        assert len(r["seen"]) == 3 * 2
    p0, p1 = ranks[0]["params"], ranks[1]["params"]
    assert len(p0) > 90 and p0 == p1, [k for k in p0 if p0[k] != p1.get(k)]
    # BatchNorm running statistics are rank-local after the last forward (DDP broadcasts rank 0's at the
    # start of each forward); checkpoints and the exported model come from rank 0
    assert set(ranks[0]["seen"]) != set(ranks[1]["seen"])     # a DistributedSampler-like split
    # only rank 0 printed the summary and wrote the checkpoint / exported model, holding the same weights
    assert out.stdout.count('"steps": 3') == 1
    state = load_state(log_dir / "checkpoints" / "last.pt")
    assert state["step"] == 3
    saved = {k: hashlib.sha1(v.contiguous().numpy().tobytes()).hexdigest() for k, v in state["nets"].items()}
    assert saved == ranks[0]["hashes"]
    assert (log_dir / "depth.safetensors").is_file()
