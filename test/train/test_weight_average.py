"""``ema_decay``: the moving average of the weights (train/weight_average.py) — known answers, BatchNorm's
statistics, and through the Trainer: validation and export use the average, and resume restores it exactly."""
import pytest
import torch

from tiny_data import make_folder, train_args
from train.config import load_config
from train.data import build_dataset
from train.trainer import Trainer
from train.weight_average import WeightAverage


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.bn = torch.nn.BatchNorm1d(2)


def test_known_answer_with_the_ramp():
    live = Tiny()
    avg = WeightAverage(live, decay=0.9)
    with torch.no_grad():
        live.w.fill_(1.0)
    avg.update(live)                       # decay min(0.9, 2/11): the average moves 9/11 of the way
    assert torch.allclose(avg.module.w, torch.full((3,), 9 / 11))
    with torch.no_grad():
        live.w.fill_(2.0)
    avg.update(live)                       # min(0.9, 3/12) = 0.25
    assert torch.allclose(avg.module.w, torch.full((3,), 9 / 11 + 0.75 * (2 - 9 / 11)))
    for _ in range(200):
        avg.update(live)
    assert avg.current_decay() == 0.9      # the ramp ends at the configured decay
    assert torch.allclose(avg.module.w, live.w)
    assert not avg.module.w.requires_grad and not avg.module.training


def test_batchnorm_statistics_averaged_counters_copied():
    live = Tiny()
    avg = WeightAverage(live, decay=0.5)
    live.train()
    live.bn(torch.tensor([[10.0, -10.0], [12.0, -12.0]]))   # running_mean moves 0.1 of the way to (11, -11)
    avg.update(live)
    d = avg.current_decay()
    assert torch.allclose(avg.module.bn.running_mean, (1 - d) * live.bn.running_mean)
    assert int(avg.module.bn.num_batches_tracked) == int(live.bn.num_batches_tracked) == 1


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_decay_outside_the_open_interval_refused(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(Tiny(), decay)


@pytest.mark.parametrize("value", ["1.0", "-0.5"])
def test_config_refuses_bad_decay(tmp_path, value):
    with pytest.raises(ValueError, match="ema_decay"):
        load_config(None, [f"ema_decay={value}", f"data.path={tmp_path}"])


def _train(data, log_dir, steps, resume=None):
    cfg = load_config(None, train_args(data, log_dir, f"max_steps={steps}", "ema_decay=0.9"))
    trainer = Trainer(cfg, build_dataset(cfg, is_train=True))
    if resume:
        trainer.load(resume)
    trainer.train()
    return trainer


def test_trainer_exports_the_average_and_resume_restores_it(tmp_path):
    from md2_ros.core.model import DepthModel

    data = make_folder(tmp_path / "frames")
    full = _train(data, tmp_path / "full", 3)
    exported = DepthModel.load(tmp_path / "full" / "depth.safetensors", device="cpu").state_dict()
    averaged, live = full.average.module.depth.state_dict(), full.nets.depth.state_dict()
    assert all(torch.equal(exported[k], v) for k, v in averaged.items())
    assert any(not torch.equal(exported[k], v) for k, v in live.items() if v.is_floating_point())
    assert full.nets_for_use is full.average.module
    _train(data, tmp_path / "part", 2)
    resumed = _train(data, tmp_path / "part", 3, resume=tmp_path / "part" / "checkpoints" / "last.pt")
    assert resumed.average.updates == full.average.updates == 3
    for k, v in full.average.module.state_dict().items():
        assert torch.equal(resumed.average.module.state_dict()[k], v), f"{k} differs after resume"
