"""Validation during training: config checks, the deterministic leak-free hold-out split, validation at the
right steps, best.safetensors = the model of the best validation metric, and resume keeping that record."""
import json

import numpy as np
import pytest
import torch

from md2_ros.core.model import DepthModel
from md2_ros.synthetic import render_sequence, write_kitti_layout
from train.config import load_config
from train.data import build_dataset
from train.trainer import Trainer
from train.validation import evenly_spaced, sequences, split_tail

H, W = 64, 192


@pytest.fixture(scope="module")
def two_drives(tmp_path_factory):
    """Two synthetic drives (10 and 14 frames) with exact depth, KITTI layout."""
    root = tmp_path_factory.mktemp("val_data")
    for seed, n in ((4, 10), (5, 14)):
        write_kitti_layout(render_sequence(num_frames=n, height=H, width=W, seed=seed), root,
                           drive=f"2011_09_26_drive_000{seed}_sync")
    return root


def _cfg(root, log_dir, *overrides):
    return load_config(None, [f"height={H}", f"width={W}", "batch_size=2", f"data.path={root}", "data.split=all",
                              "data.num_workers=0", "device=cpu", "progress=false", f"log_dir={log_dir}",
                              "log_every=1000", "image_every=0", "save_every=0", "epoch_checkpoints=false",
                              *overrides])


@pytest.mark.parametrize("override, message", [
    ("data.val_fraction=-0.1", "val_fraction must be in [0, 1)"),
    ("data.val_fraction=1.0", "val_fraction must be in [0, 1)"),
    ("data.val_fraction=abc", "val_fraction must be a number"),
    ("val_every=-1", "val_every must be >= 0"),
    ("data.val_max_samples=-3", "val_max_samples must be >= 0"),
])
def test_bad_validation_settings_are_rejected(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        load_config(None, [override])


def test_val_every_needs_validation_data_and_one_source_only():
    with pytest.raises(ValueError, match="val_every=5 needs validation data"):
        load_config(None, ["val_every=5", "data.kind=rosbag"])
    with pytest.raises(ValueError, match="either data.val_fraction or data.val_path"):
        load_config(None, ["data.val_fraction=0.2", "data.val_path=/x"])
    load_config(None, ["val_every=5"])  # KITTI on a named split: its val_files.txt


def test_split_holds_out_the_tail_of_each_sequence_without_shared_frames(two_drives, tmp_path):
    ds = build_dataset(_cfg(two_drives, tmp_path), is_train=False)
    assert len(ds) == 8 + 12  # frames with both neighbours
    train, val, dropped = split_tail(ds, 0.25)
    assert (train, val, dropped) == split_tail(ds, 0.25)  # deterministic
    assert not set(train) & set(val) and len(train) + len(val) + dropped == len(ds)
    seqs = sequences(ds)
    assert len(seqs) == 2
    for samples in seqs.values():
        order = [i for _, i, _ in samples]
        n_val = round(0.25 * len(samples))  # 2 of 8, 3 of 12
        assert sorted(set(order) & set(val)) == sorted(order[-n_val:])
    frames = {i: f for samples in seqs.values() for _, i, f in samples}
    val_frames = set().union(*(frames[i] for i in val))
    assert not any(frames[i] & val_frames for i in train), "a training sample reads a validation frame"
    assert dropped == 2 * 2  # per drive: the two samples before the tail share the boundary frames


def test_split_of_a_bag_holds_out_its_last_stamps(two_drives, tmp_path):
    from train.make_bag import write_kitti_bag

    bag = tmp_path / "drive.mcap"
    write_kitti_bag(two_drives / "2011_09_26" / "2011_09_26_drive_0005_sync", bag)
    ds = build_dataset(_cfg(bag, tmp_path, "data.kind=rosbag", "data.static_threshold=0"), is_train=False)
    assert len(ds) == 12
    train, val, dropped = split_tail(ds, 0.25)
    assert val == sorted(range(12), key=lambda i: ds.stamps[i])[-3:] and dropped == 2
    rows = lambda idx: {r for i in idx for r in ds.sample_frames(i)[2]}  # noqa: E731
    assert not rows(train) & rows(val)


def test_split_rejects_fractions_that_hold_out_nothing_or_everything(two_drives, tmp_path):
    ds = build_dataset(_cfg(two_drives, tmp_path), is_train=False)
    with pytest.raises(ValueError, match="holds out no sample"):
        split_tail(ds, 0.01)
    with pytest.raises(ValueError, match="leaves no training sample"):
        split_tail(ds, 0.9)


def test_evenly_spaced_subset(two_drives, tmp_path):
    ds = build_dataset(_cfg(two_drives, tmp_path), is_train=False)
    sub = evenly_spaced(ds, 5)
    assert list(sub.indices) == [0, 5, 10, 14, 19]
    assert evenly_spaced(ds, 0) is ds and evenly_spaced(ds, 100) is ds


@pytest.fixture(scope="module")
def trained(two_drives, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("val_run")
    cfg = _cfg(two_drives, log_dir, "val_every=2", "max_steps=3", "data.val_fraction=0.25")
    trainer = Trainer(cfg, build_dataset(cfg, is_train=True))
    return cfg, trainer, trainer.train()


def test_trainer_validates_every_val_every_steps_and_at_the_end(trained):
    cfg, trainer, summary = trained
    assert len(trainer.train_set) == 20 - 5 - 4 and len(trainer.validator.dataset) == 5
    assert [h["step"] for h in summary["validation"]] == [2, 3]
    for h in summary["validation"]:
        assert np.isfinite(h["loss"]) and 0 < h["abs_rel"] < 2 and 0 <= h["a1"] <= 1 and h["rmse"] > 0
    assert not trainer.validator.dataset.dataset.datasets[0].is_train  # no augmentation on validation
    events = list((cfg_dir := trainer.log_dir / "tb").glob("events.*"))
    if events:  # tensorboard installed
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(cfg_dir))
        acc.Reload()
        assert {"val/loss", "val/abs_rel", "val/rmse", "val/a1"} <= set(acc.Tags()["scalars"])
        assert [e.step for e in acc.Scalars("val/abs_rel")] == [2, 3]


def test_best_model_is_the_one_with_the_lowest_validation_abs_rel(trained):
    cfg, trainer, summary = trained
    best = json.loads((trainer.log_dir / "best.json").read_text())
    history = summary["validation"]
    assert best["metric"] == "abs_rel"  # the synthetic drives have exact depth
    lowest = min(history, key=lambda h: h["abs_rel"])
    assert best["step"] == lowest["step"] and best["value"] == pytest.approx(lowest["abs_rel"])
    # re-evaluating the saved best model reproduces its metric
    trainer.nets.depth.load_state_dict(DepthModel.load(trainer.log_dir / "best.safetensors").state_dict())
    again = trainer.validator.evaluate(trainer.nets)
    assert again["abs_rel"] == pytest.approx(best["value"], rel=1e-5)
    assert (trainer.log_dir / "depth.safetensors").is_file()


def test_resume_keeps_the_validation_record(trained):
    cfg, trainer, _ = trained
    resumed = Trainer(cfg, build_dataset(cfg, is_train=True))
    resumed.load(trainer.log_dir / "checkpoints" / "last.pt")
    assert resumed.validator.best == trainer.validator.best
    assert resumed.validator.history == trainer.validator.history


def test_without_ground_truth_the_photometric_loss_picks_the_best_model(two_drives, tmp_path):
    """An image folder has no depth: validation on a second dataset (data.val_path) judges by val/loss."""
    import cv2

    folders = []
    for name, frames in (("train", range(0, 6)), ("val", range(6, 10))):
        folder = tmp_path / name
        folder.mkdir()
        for i in frames:
            src = two_drives / "2011_09_26" / "2011_09_26_drive_0004_sync" / "image_02" / "data" / f"{i:010d}.png"
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.imread(str(src)))
        (folder / "intrinsics.yaml").write_text(f"fx: {0.58 * W}\nfy: {0.58 * W}\ncx: {W / 2}\ncy: {H / 2}\n"
                                                f"width: {W}\nheight: {H}\n")
        folders.append(folder)
    cfg = _cfg(folders[0], tmp_path / "run", "data.kind=folder", f"data.val_path={folders[1]}", "val_every=1",
               "max_steps=2")
    trainer = Trainer(cfg, build_dataset(cfg, is_train=True))
    assert len(trainer.train_set) == 4 and len(trainer.validator.dataset) == 2
    history = trainer.train()["validation"]
    assert [h["step"] for h in history] == [1, 2] and set(history[0]) == {"step", "loss"}
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["metric"] == "loss" and best["value"] == pytest.approx(min(h["loss"] for h in history))


def test_kitti_velodyne_ground_truth(kitti_mini):
    cfg = load_config(None, [f"height={H}", f"width={W}", f"data.path={kitti_mini}", "data.split=all"])
    ds = build_dataset(cfg, is_train=False)
    with_scan = [i for i, (_, frame, _) in enumerate(ds.samples) if frame % 4 == 0]
    depth, crop = ds.ground_truth(with_scan[0])
    assert crop == "garg" and depth.shape == (375, 1242) and (depth > 0).mean() > 0.01
    assert ds.ground_truth(next(i for i, (_, f, _) in enumerate(ds.samples) if f % 4)) is None
