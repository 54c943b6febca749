"""Training config (YAML + key=value overrides, typed, validated) and broken training input through
build_dataset / the CLI: every error names the key or the file."""
import json
from pathlib import Path

import pytest

from train.__main__ import main
from train.config import DataConfig, TrainConfig, load_config, parse_overrides
from train.data import build_dataset

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "config").glob("train_*.yaml"))


# ------------------------------------------------------------------------------------------ YAML + overrides
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.height % 32 == 0 and cfg.width % 32 == 0 and cfg.frame_ids[0] == 0
    assert cfg.data.kind in ("kitti", "rosbag", "folder") and cfg.data.path


def test_shipped_configs_cover_m_s_ms_bag_and_folder():
    cfgs = {p.name: load_config(p) for p in CONFIGS}
    modes = {(c.data.kind, c.use_stereo, bool(c.temporal_ids)) for c in cfgs.values()}
    assert {("kitti", False, True), ("kitti", True, False), ("kitti", True, True),
            ("rosbag", False, True), ("folder", False, True)} <= modes
    mono = cfgs["train_kitti_mono.yaml"]   # the paper's settings
    assert (mono.num_layers, mono.height, mono.width, mono.batch_size, mono.learning_rate, mono.num_epochs,
            mono.scheduler_step_size, mono.disparity_smoothness, mono.scales) == \
        (18, 192, 640, 12, 1e-4, 20, 15, 1e-3, [0, 1, 2, 3])


def test_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.frame_ids, c.scales, c.min_depth, c.max_depth, c.batch_size, c.learning_rate) == \
        ([0, -1, 1], [0, 1, 2, 3], 0.1, 100.0, 12, 1e-4)
    assert (c.pose_model_type, c.pose_model_input, c.weights_init) == ("separate_resnet", "pairs", "none")
    assert not any([c.avg_reprojection, c.disable_automasking, c.predictive_mask, c.no_ssim, c.v1_multiscale,
                    c.automask_margin, c.ground_bound_weight])


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 4\nlearning_rate: 1e-4\nframe_ids: [0, -1, 1]\n"
                    "data:\n  kind: rosbag\n  path: a.mcap\n  num_workers: 3\n")
    cfg = load_config(path, ["batch_size=6", "data.path=/x/b.db3", "frame_ids=[0,-1,1,s]", "amp=bf16",
                             "no_ssim=true", "learning_rate=2e-4", "min_depth=1"])
    assert cfg.batch_size == 6 and cfg.data.num_workers == 3 and cfg.data.kind == "rosbag"
    assert cfg.data.path == "/x/b.db3" and cfg.amp == "bf16" and cfg.no_ssim is True
    assert cfg.learning_rate == 2e-4 and isinstance(cfg.learning_rate, float)   # "1e-4" is a str in YAML 1.1
    assert cfg.min_depth == 1.0 and isinstance(cfg.min_depth, float)
    assert cfg.frame_ids == [0, -1, 1, "s"] and cfg.use_stereo and cfg.temporal_ids == [-1, 1]
    assert isinstance(cfg.data, DataConfig)


def test_parse_overrides_nests_dotted_keys():
    assert parse_overrides(["a=1", "data.path=x", "data.split=", "l=[0, s]"]) == \
        {"a": 1, "data": {"path": "x", "split": ""}, "l": [0, "s"]}


@pytest.mark.parametrize("overrides, words", [
    (["foo=1"], ["unknown option", "'foo'"]),
    (["data.foo=1"], ["unknown option", "'data.foo'"]),
    (["batch_size=abc"], ["batch_size", "integer"]),
    (["batch_size=2.5"], ["batch_size", "integer"]),
    (["channels_last=maybe"], ["channels_last", "true/false"]),
    (["learning_rate=fast"], ["learning_rate", "number"]),
    (["data=3"], ["data", "mapping"]),
    (["frame_ids=5"], ["frame_ids", "list"]),
    (["frame_ids=[0,x]"], ["frame_ids", "'x'"]),
    (["frame_ids=[1,0]"], ["frame_ids", "start with 0"]),
    (["frame_ids=[0]"], ["frame_ids"]),
    (["height=100"], ["height", "32"]),
    (["height=32"], ["height", "64"]),
    (["num_layers=20"], ["num_layers"]),
    (["scales=[0,4]"], ["scales"]),
    (["pose_model_type=flow"], ["pose_model_type"]),
    (["pose_model_input=three"], ["pose_model_input"]),
    (["amp=fp8"], ["amp"]),
    (["data.kind=zip"], ["data.kind"]),
    (["min_depth=0"], ["min_depth"]),
    (["data.num_workers=-1"], ["data.num_workers"]),
    (["max_steps=-3"], ["max_steps"]),
    (["scheduler_step_size=0"], ["scheduler_step_size"]),
    (["batch_size"], ["batch_size", "key=value"]),
])
def test_bad_overrides_name_the_key(overrides, words):
    with pytest.raises(ValueError) as err:
        load_config(None, overrides)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_bad_yaml_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("batch_size: 4\ndata:\n  pth: x\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*'data\.pth'"):
        load_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*mapping"):
        load_config(path)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_cli_print_config_and_errors(tmp_path, capsys):
    assert main(["--config", str(CONFIGS[0]), "--print-config", "batch_size=3", "data.num_workers=1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["batch_size"] == 3 and printed["data"]["num_workers"] == 1
    assert main(["--print-config", "bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ broken input
def _cfg(*overrides):
    return load_config(None, ["height=64", "width=96", *overrides])


def test_empty_data_path():
    with pytest.raises(ValueError, match="data.path"):
        build_dataset(_cfg())


def test_missing_split_file_is_named(kitti_mini, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "train_files.txt")):
        build_dataset(_cfg(f"data.path={kitti_mini}", f"data.split={tmp_path}"))
    with pytest.raises(FileNotFoundError, match="no_such_split.*train_files.txt"):
        build_dataset(_cfg(f"data.path={kitti_mini}", "data.split=no_such_split"))


def test_empty_folders_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"no images.*{empty}"):
        build_dataset(_cfg("data.kind=folder", f"data.path={empty}"))
    with pytest.raises(FileNotFoundError, match=f"no KITTI drive folders.*{empty}"):
        build_dataset(_cfg("data.kind=kitti", "data.split=all", f"data.path={empty}"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        build_dataset(_cfg("data.kind=kitti", "data.split=all", f"data.path={tmp_path / 'nope'}"))
    with pytest.raises(FileNotFoundError, match="x.mcap"):
        build_dataset(_cfg("data.kind=rosbag", f"data.path={tmp_path / 'x.mcap'}"))


def test_cli_reports_broken_input_without_traceback(tmp_path, capsys):
    empty = tmp_path / "frames"
    empty.mkdir()
    assert main(["data.kind=folder", f"data.path={empty}", "height=64", "width=96"]) == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "Traceback" not in err


def test_cli_reports_broken_bag_without_traceback(tmp_path, capsys):
    bag = tmp_path / "broken.mcap"
    bag.write_bytes(b"\x89MCAP0\r\n truncated")
    assert main(["data.kind=rosbag", f"data.path={bag}", "height=64", "width=96"]) == 2
    assert "broken.mcap" in capsys.readouterr().err


def test_cli_reports_bad_resume_file(kitti_mini, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    assert main(["--resume", str(missing), f"data.path={kitti_mini}", "data.split=all", "height=64", "width=96",
                 f"log_dir={tmp_path}", "device=cpu", "progress=false"]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_too_small_dataset_is_a_clear_error(kitti_mini, tmp_path):
    import torch

    from train.trainer import Trainer

    cfg = _cfg(f"data.path={kitti_mini}", "data.split=all", "batch_size=4", "device=cpu",
               f"log_dir={tmp_path}", "progress=false")
    ds = torch.utils.data.Subset(build_dataset(cfg), [0, 1])
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(cfg, ds).train()


def test_weights_init_missing_file_is_named(tmp_path):
    from train.networks import Networks

    with pytest.raises((FileNotFoundError, ValueError), match="nope.pth"):
        Networks(_cfg(f"weights_init={tmp_path / 'nope.pth'}"))


def test_target_motion_only_for_bags(tmp_path):
    with pytest.raises(ValueError, match="target_motion spaces the sources of rosbag data only"):
        load_config(None, [f"data.path={tmp_path}", "data.kind=kitti", "data.target_motion=0.05"])
    cfg = load_config(None, [f"data.path={tmp_path}", "data.kind=rosbag", "data.target_motion=0.05"])
    assert cfg.data.target_motion == 0.05 and cfg.data.max_stride == 8
