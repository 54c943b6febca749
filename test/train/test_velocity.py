"""Velocity supervision: odometry tracks, the bag -> odometry -> dataset -> loss -> metric checkpoint path
on a bag written from synthetic frames, and a brief training whose translation scale is right only with it."""
import numpy as np
import pytest
import torch

from md2_ros.core.model import DepthModel
from md2_ros.synthetic import render_sequence
from train.config import load_config
from train.data import build_dataset
from train.odometry import OdometryTrack, pair_distances, read_bag_track
from train.sequence_bag import PERIOD_NS, T0_NS, write_sequence_bag
from train.trainer import Trainer

SPEED = 0.5   # metres per frame of the synthetic camera


@pytest.fixture(scope="module")
def seq():
    return render_sequence(12, 64, 192, seed=2, speed=SPEED, supersample=1)


@pytest.fixture(scope="module")
def bag(seq, tmp_path_factory):
    path = tmp_path_factory.mktemp("vel") / "synth.mcap"
    stamps = T0_NS + np.arange(len(seq.images)) * PERIOD_NS
    write_sequence_bag(path, seq.images, seq.K, stamps, np.asarray(seq.poses))
    return path


def test_track_integrates_speed_and_refuses_gaps():
    t = np.array([0, 1, 2, 3, 10]) * 1_000_000_000                # a 7 s hole between 3 and 10
    track = OdometryTrack.from_speeds(t, [1.0, 1.0, 3.0, 3.0, 3.0])
    assert track.distance(0, 1_000_000_000) is None                             # samples 1 s apart > 0.5 s
    assert track.distance(0, 1_000_000_000, max_gap=1.5) == pytest.approx(1.0)
    assert track.distance(2_500_000_000, 500_000_000, 1.5) == pytest.approx(track.path[2] + 1.5 - 0.5)  # any order
    assert track.distance(1_000_000_000, 2_000_000_000, 1.5) == pytest.approx(2.0)   # trapezoid of 1 and 3 m/s
    assert track.distance(2_000_000_000, 4_000_000_000, max_gap=1.5) is None    # inside the hole
    assert track.distance(-1, 1_000_000_000, 1.5) is None                           # before the first sample
    d, skipped = pair_distances(track, [0, 3_000_000_000], {1: [1_000_000_000, 9_000_000_000]}, max_gap=1.5)
    assert skipped == 1 and d[1][0] == pytest.approx(1.0) and np.isnan(d[1][1])
    with pytest.raises(ValueError, match="increase"):
        OdometryTrack([0, 0], [0.0, 1.0])


def test_bag_odometry_track_matches_the_poses(bag, seq):
    track = read_bag_track(bag)
    assert track.source.endswith(":/odom") and len(track.stamps) == len(seq.poses)
    steps = [track.distance(track.stamps[i], track.stamps[i + 1]) for i in range(len(seq.poses) - 1)]
    np.testing.assert_allclose(steps, SPEED, rtol=1e-6)
    with pytest.raises(ValueError, match="no nav_msgs/msg/Odometry"):
        read_bag_track(bag, "/nope")


def _cfg(bag, tmp_path, velocity_weight, steps, lr=1e-4):
    return load_config(None, [
        "data.kind=rosbag", f"data.path={bag}", "data.num_workers=0", "data.static_threshold=0", "height=64",
        "width=192", "batch_size=4", f"max_steps={steps}", "num_epochs=1000", f"learning_rate={lr}",
        f"log_dir={tmp_path}", "save_every=0", "epoch_checkpoints=false", "image_every=0", "device=cpu",
        "progress=false", f"velocity_weight={velocity_weight}", "num_layers=18", "seed=0"])


def test_bag_to_loss_to_metric_checkpoint(bag, tmp_path):
    cfg = _cfg(bag, tmp_path, 0.05, 1)
    ds = build_dataset(cfg)
    assert len(ds) == 10 and "pair without odometry" not in ds.skipped
    sample = ds[0]
    assert sample[("odom_dist", -1)].item() == pytest.approx(SPEED, rel=1e-5)
    assert sample[("odom_dist", 1)].item() == pytest.approx(SPEED, rel=1e-5)
    trainer = Trainer(cfg, ds)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    result = trainer.step(batch)
    assert not result["skipped"] and result["losses"]["velocity_pairs"] == 8
    assert torch.isfinite(result["losses"]["velocity"]) and result["losses"]["velocity"] >= 0
    unit = result["losses"]["metres_per_unit"]
    norms = [result["outputs"][("cam_T_cam", 0, f)][:, :3, 3].norm(dim=1) for f in (-1, 1)]
    assert float(torch.median(torch.cat(norms)).detach() * unit) == pytest.approx(SPEED, rel=0.05)   # first batch sets u
    path = trainer.export(tmp_path / "depth.safetensors")
    model = DepthModel.load(path, device="cpu")
    assert model.metric and model.scale_source == "odometry" and model.depth_scale == pytest.approx(unit)


def test_missing_odometry_is_a_clear_error(seq, tmp_path):
    stamps = T0_NS + np.arange(6) * PERIOD_NS
    write_sequence_bag(tmp_path / "noodom.mcap", seq.images[:6], seq.K, stamps, None)
    with pytest.raises(ValueError, match="no odometry topics"):
        build_dataset(_cfg(tmp_path / "noodom.mcap", tmp_path, 0.05, 1))
    with pytest.raises(ValueError, match="velocity_weight"):
        load_config(None, ["velocity_weight=-1"])


def _translation_ratio(trainer, ds):
    """Median over the training pairs of (metres per unit × ‖t_pred‖) / odometry distance."""
    trainer.nets.eval()
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        out = trainer.nets.pose(batch)
    unit = float(getattr(trainer.nets, "metres_per_unit", torch.tensor(1.0)))
    ratios = [unit * out[("cam_T_cam", 0, f)][:, :3, 3].norm(dim=1) / batch[("odom_dist", f)] for f in (-1, 1)]
    return float(torch.median(torch.cat(ratios)))


@pytest.mark.slow
def test_brief_training_gets_translation_scale_only_with_velocity(bag, tmp_path):
    ratios = {}
    for w in (0.5, 0.0):
        cfg = _cfg(bag, tmp_path / str(w), w, 20, lr=2e-4)
        ds = build_dataset(cfg)
        if w == 0:   # the same distances for measuring, without supervising with them
            from train.velocity import attach_odometry
            attach_odometry(cfg, ds)
        trainer = Trainer(cfg, ds)
        trainer.train()
        ratios[w] = _translation_ratio(trainer, ds)
    assert ratios[0.5] == pytest.approx(1.0, abs=0.1)
    assert not 0.9 < ratios[0.0] < 1.1


def test_poses_auto_reads_each_drives_own_poses(tmp_path):
    """data.split=all over several synthetic drives: ``poses_file=auto`` gives every sample its own
    drive's distances; one explicit poses file for several drives is refused."""
    from md2_ros.synthetic import write_kitti_layout

    speeds = {"a": 0.3, "b": 0.7}
    for name, speed in speeds.items():
        seq = render_sequence(4, 64, 64, seed=1, speed=speed, yaw_rate=0.0, supersample=1)
        write_kitti_layout(seq, tmp_path / "root", drive=f"2011_09_26_drive_{name}_sync")
    base = ["data.kind=kitti", f"data.path={tmp_path / 'root'}", "data.split=all", "data.num_workers=0",
            "height=64", "width=64", f"log_dir={tmp_path / 'log'}", "velocity_weight=0.05"]
    ds = build_dataset(load_config(None, [*base, "data.poses_file=auto"]))
    assert len(ds.datasets) == 2
    for part, speed in zip(ds.datasets, speeds.values()):
        for i in range(len(part)):
            assert part[i][("odom_dist", 1)].item() == pytest.approx(speed, rel=1e-5)
            assert part[i][("odom_dist", -1)].item() == pytest.approx(speed, rel=1e-5)
    one = tmp_path / "root" / "2011_09_26" / "2011_09_26_drive_a_sync" / "poses.txt"
    with pytest.raises(ValueError, match="poses_file=auto"):
        build_dataset(load_config(None, [*base, f"data.poses_file={one}"]))


def test_velocity_term_waits_for_its_start_step(bag, tmp_path):
    """Before ``velocity_start_step`` the term is zero but the metres per unit is already tracked; from it on
    the term is in the loss."""
    cfg = _cfg(bag, tmp_path, 0.05, 3)
    cfg.velocity_start_step = 1
    ds = build_dataset(cfg)
    trainer = Trainer(cfg, ds)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    first = trainer.step(batch)["losses"]
    assert float(first["velocity"]) == 0.0 and first["metres_per_unit"] > 0
    second = trainer.step(batch)["losses"]
    assert float(second["velocity"]) > 0
    with pytest.raises(ValueError, match="velocity_start_step"):
        load_config(None, ["velocity_start_step=-1"])
