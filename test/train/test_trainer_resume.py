"""Resume is exact: N steps + save + a fresh Trainer that loads = an uninterrupted run of N+1 steps
(same next loss, bit-identical weights and optimizer), in-process and through ``python -m train --resume``.
And ``kill -9`` during a checkpoint save leaves the previous checkpoint loadable."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from md2_ros.core.checkpoint import load_state
from train.config import load_config
from train.data import build_dataset
from train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
H, W = 64, 96
SUBSET = 6          # samples: with batch 2 an epoch is 3 steps


def _cfg(data, log_dir, steps, workers, *extra):
    return load_config(None, [
        f"height={H}", f"width={W}", "batch_size=2", f"max_steps={steps}", "num_epochs=5", "seed=3",
        "scheduler_step_size=1", "device=cpu", "progress=false", "save_every=0", "log_every=1", "image_every=2",
        f"log_dir={log_dir}", f"data.num_workers={workers}", f"data.path={data}", "data.split=all", *extra])


class _First(torch.utils.data.Subset):
    def __init__(self, cfg):
        super().__init__(build_dataset(cfg, is_train=True), list(range(SUBSET)))   # augmented: RNG matters


def _run(cfg, resume=None):
    trainer = Trainer(cfg, _First(cfg))
    if resume:
        trainer.load(resume)
    summary = trainer.train()
    return trainer, summary


def _assert_same_state(a: Trainer, b: Trainer):
    sa, sb = a.nets.state_dict(), b.nets.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs after resume"
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for i in oa:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(oa[i][k]), torch.as_tensor(ob[i][k])), f"optimizer {i}.{k}"
    assert a.scheduler.state_dict() == b.scheduler.state_dict()
    assert (a.step_count, a.epoch, a.pos_in_epoch) == (b.step_count, b.epoch, b.pos_in_epoch)


# resuming at an epoch end steps the LR scheduler before this process's first optimizer.step(): harmless
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("n, workers", [(4, 0), (3, 2)], ids=["mid-epoch-0-workers", "epoch-end-2-workers"])
def test_resume_equals_uninterrupted_run(kitti_mini, tmp_path, n, workers):
    full, full_summary = _run(_cfg(kitti_mini, tmp_path / "full", n + 1, workers))
    part, part_summary = _run(_cfg(kitti_mini, tmp_path / "part", n, workers))
    assert part_summary["losses"] == full_summary["losses"][:n]
    ckpt = tmp_path / "part" / "checkpoints" / "last.pt"
    assert load_state(ckpt)["step"] == n
    resumed, summary = _run(_cfg(kitti_mini, tmp_path / "part", n + 1, workers), resume=ckpt)
    assert summary["losses"] == [full_summary["losses"][n]], "the next step's loss differs after resume"
    _assert_same_state(resumed, full)
    assert resumed.scheduler.get_last_lr() == full.scheduler.get_last_lr()
    # TensorBoard scalars and images were written; the exported model loads
    assert list((tmp_path / "full" / "tb").glob("events.out.tfevents.*"))
    from md2_ros.core.model import DepthModel
    model = DepthModel.load(tmp_path / "full" / "depth.safetensors", device="cpu")
    assert (model.height, model.width) == (H, W)
    sd = model.state_dict()
    for k, v in full.nets.depth.state_dict().items():
        assert torch.equal(sd[k], v), k


def test_cli_resume(kitti_mini, tmp_path):
    """``python -m train --resume`` continues where the first command stopped: the same final weights as
    one uninterrupted command."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    common = [f"height={H}", f"width={W}", "batch_size=2", "num_epochs=1", "seed=1", "device=cpu",
              "progress=false", "save_every=0", "data.num_workers=0", f"data.path={kitti_mini}", "data.split=all",
              "pose_model_type=posecnn"]

    def cli(log_dir, steps, *extra):
        out = subprocess.run([sys.executable, "-m", "train", *common, f"log_dir={log_dir}", f"max_steps={steps}",
                              *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout[out.stdout.index("{"):])

    assert cli(tmp_path / "a", 3)["steps"] == 3
    cli(tmp_path / "b", 2)
    summary = cli(tmp_path / "b", 3, "--resume", str(tmp_path / "b" / "checkpoints" / "last.pt"))
    assert summary["steps"] == 3
    a = load_state(tmp_path / "a" / "checkpoints" / "last.pt")["nets"]
    b = load_state(tmp_path / "b" / "checkpoints" / "last.pt")["nets"]
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after CLI resume"


# ------------------------------------------------------------------------------------------ kill -9
SAVER = r"""
import sys, torch
from train.config import load_config
from train.trainer import Trainer
torch.set_num_threads(1)
cfg = load_config(None, ["height=64", "width=64", "device=cpu", "log_dir=" + sys.argv[1],
                         "pose_model_type=posecnn"])
t = Trainer(cfg, None)
if len(sys.argv) > 2:
    t.load(sys.argv[2])
while True:
    t.step_count += 1
    with torch.no_grad():
        next(t.nets.parameters()).fill_(t.step_count)      # the weights say which save this is
    print("saving", t.step_count, flush=True)
    t.save()
    print("saved", t.step_count, flush=True)
"""


def test_kill_9_during_save_keeps_previous_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    ckpt = tmp_path / "checkpoints" / "last.pt"
    rng = random.Random(0)
    resume = []
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), *resume], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
        saved = start = load_state(ckpt)["step"] if resume else 0
        try:
            t0 = time.monotonic()
            while True:           # wait for two complete saves, then kill at a random moment of the next
                line = proc.stdout.readline()
                assert line, "saver exited early"
                kind, step = line.split()
                if kind == "saved":
                    saved = int(step)
                if kind == "saving" and saved >= start + 2:
                    time.sleep(rng.uniform(0.0, 0.3))
                    break
                assert time.monotonic() - t0 < 60
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            for line in proc.stdout:          # what it printed before it died
                kind, step = line.split()
                if kind == "saved":
                    saved = int(step)
            proc.stdout.close()
        state = load_state(ckpt)      # always loadable: the old file, or the new one if the rename happened
        assert state["step"] in (saved, saved + 1), (state["step"], saved)
        assert next(iter(state["nets"].values())).flatten()[0] == state["step"]
        assert state["step"] > start      # the resumed saver continued from the previous checkpoint
        stray = [p.name for p in ckpt.parent.iterdir() if p != ckpt]
        assert all(n.startswith(".last.pt.") and n.endswith(".tmp") for n in stray), stray
        resume = [str(ckpt)]
