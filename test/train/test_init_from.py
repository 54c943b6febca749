"""``init_from`` (train/init_from.py): a new run starts from an earlier run's weights (depth + pose) or from a
depth model (depth only), at another input size if need be; networks of another shape and files that are not
checkpoints are refused with the file named."""
import pytest
import torch

from md2_ros.core.checkpoint import CheckpointError
from tiny_data import make_folder, train_args
from train.config import load_config
from train.data import build_dataset
from train.trainer import Trainer


def _trainer(data, log_dir, *extra, steps=2):
    cfg = load_config(None, train_args(data, log_dir, f"max_steps={steps}", *extra))
    return Trainer(cfg, build_dataset(cfg, is_train=True))


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    root = tmp_path_factory.mktemp("init_from")
    data = make_folder(root / "frames")
    run = _trainer(data, root / "run")
    run.train()
    return data, run, root / "run"


def _same(a: dict, b: dict, prefix: str) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def test_training_checkpoint_gives_depth_and_pose(earlier, tmp_path):
    data, run, run_dir = earlier
    fresh = _trainer(data, tmp_path, f"init_from={run_dir / 'checkpoints' / 'last.pt'}", "learning_rate=3e-4")
    done, new = run.nets.state_dict(), fresh.nets.state_dict()
    assert _same(done, new, "depth.") and _same(done, new, "pose.")
    assert fresh.step_count == 0                 # weights only: a new schedule, unlike --resume
    before = {k: v.clone() for k, v in new.items()}
    fresh.train()                                # and it trains on from there
    assert not _same(before, fresh.nets.state_dict(), "depth.")


def test_depth_model_gives_depth_only(earlier, tmp_path):
    data, run, run_dir = earlier
    scratch = _trainer(data, tmp_path / "a").nets.state_dict()
    fresh = _trainer(data, tmp_path / "b", f"init_from={run_dir / 'depth.safetensors'}").nets.state_dict()
    assert _same(run.nets.state_dict(), fresh, "depth.")
    assert _same(scratch, fresh, "pose.")        # the pose net keeps its (seeded) initialisation
    assert not _same(scratch, fresh, "depth.")


def test_other_input_size_fits(earlier, tmp_path):
    data, run, run_dir = earlier
    fresh = _trainer(data, tmp_path, f"init_from={run_dir / 'depth.safetensors'}", "height=96", "width=96")
    assert _same(run.nets.state_dict(), fresh.nets.state_dict(), "depth.")


def test_other_network_shape_refused(earlier, tmp_path):
    data, _, run_dir = earlier
    with pytest.raises(CheckpointError, match=r"init_from: .*last\.pt holds networks of another shape"):
        _trainer(data, tmp_path, f"init_from={run_dir / 'checkpoints' / 'last.pt'}", "num_layers=34")


@pytest.mark.parametrize("content", [None, b"not a checkpoint", "state"])
def test_missing_or_foreign_file_refused(tmp_path, content):
    data = make_folder(tmp_path / "frames", n=4)
    path = tmp_path / "weights.pt"
    if content == "state":
        torch.save({"model": {}}, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="weights.pt"):
        _trainer(data, tmp_path / "run", f"init_from={path}")
