"""``python -m train`` meets bad input and faults with one line on stderr and an exit code, never a
traceback: YAML errors, bad numbers, a broken intrinsics file, too little data, an unusable or busy
log_dir, disk full during a save, mixed image sizes, and ``--resume`` with another config."""
import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_data import make_folder, train_args

from md2_ros.core.checkpoint import load_state
from train.__main__ import main
from train.config import load_config
from train.resume import resume_position
from train.rundir import claim_log_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("tiny") / "frames")


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------ config
def test_yaml_syntax_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: [1\nheight: 64\n")
    assert main(["--config", str(bad), "--print-config"]) == 2
    _one_line_error(capsys, "bad.yaml", "YAML syntax error", "line 2")
    assert main(["--print-config", "frame_ids=[0,-1"]) == 2
    _one_line_error(capsys, "frame_ids=[0,-1", "not valid YAML")


@pytest.mark.parametrize("override, words", [
    ("grad_clip=.nan", "grad_clip must be a finite"),
    ("learning_rate=.inf", "learning_rate must be a finite"),
    ("data.max_gap=.inf", "data.max_gap must be a finite"),
    ("disparity_smoothness=-0.001", "disparity_smoothness must be >= 0"),
    ("data.static_threshold=-0.1", "data.static_threshold must be >= 0"),
    ("data.val_fraction=1", "data.val_fraction must be in [0, 1)"),
    ("data.val_fraction=-0.2", "data.val_fraction must be in [0, 1)"),
    ("batch_size=.inf", "batch_size must be an integer"),
    ("num_epochs=.nan", "num_epochs must be an integer"),
])
def test_non_finite_and_out_of_range_numbers_are_refused(override, words, capsys):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_config(None, [override])
    assert main(["--print-config", override]) == 2
    _one_line_error(capsys, words)


def test_valid_edge_values_still_load():
    cfg = load_config(None, ["grad_clip=0", "disparity_smoothness=0", "data.static_threshold=0",
                             "data.val_fraction=0.5"])
    assert cfg.grad_clip == 0 and cfg.data.val_fraction == 0.5


# ------------------------------------------------------------------------------------------ data and log_dir
def test_intrinsics_missing_key_is_one_line(folder, tmp_path, capsys):
    yaml_path = tmp_path / "K.yaml"
    yaml_path.write_text("fx: 50\ncx: 32\ncy: 32\nwidth: 64\nheight: 64\n")
    assert main(train_args(folder, tmp_path / "run", f"data.intrinsics={yaml_path}")) == 2
    _one_line_error(capsys, "K.yaml", "missing 'fy'")


def test_batch_larger_than_dataset_is_one_line(folder, tmp_path, capsys):
    assert main(train_args(folder, tmp_path / "run", "batch_size=64")) == 2
    _one_line_error(capsys, "fewer than one batch of 64", "lower batch_size")


def test_unwritable_log_dir_is_one_line(folder, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(train_args(folder, blocker / "run")) == 2
    _one_line_error(capsys, str(blocker / "run"), "not writable")


def test_second_training_in_the_same_log_dir_is_refused(folder, tmp_path, capsys):
    held = claim_log_dir(tmp_path / "run")
    try:
        assert main(train_args(folder, tmp_path / "run")) == 2
        _one_line_error(capsys, "in use by another training", f"pid {os.getpid()}")
    finally:
        held.close()
    assert not (tmp_path / "run" / "checkpoints").exists(), "the refused run must not write anything"


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from train.rundir import claim_log_dir; "
                               "h = claim_log_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "run")], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=f"in use by another training \\(pid {holder.pid} "):
            claim_log_dir(tmp_path / "run")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    claim_log_dir(tmp_path / "run").close()       # kill -9 released it


def test_startup_removes_temp_files_of_a_killed_save(tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = [ckpts / f".last.pt.pid{dead}.abc123.tmp", ckpts / ".last.pt.k9x2.tmp"]   # new and old naming
    live = ckpts / f".last.pt.pid{os.getpid()}.zz.tmp"                               # a writer still running
    for p in stale + [live]:
        p.write_bytes(b"x" * 1000)
    claim_log_dir(tmp_path / "run").close()
    assert [p.exists() for p in stale] == [False, False] and live.exists()


# ------------------------------------------------------------------------------------------ faults mid-training
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(folder, tmp_path, capsys, monkeypatch):
    """The 2nd checkpoint's fsync fails with ENOSPC (a disk that fills while the file is written)."""
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if ".last.pt.pid" in target:
            calls.append(target)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert main(train_args(folder, tmp_path / "run")) == 1
    _one_line_error(capsys, "No space left on device", str(tmp_path / "run" / "checkpoints" / "last.pt"),
                    "previous file is kept")
    monkeypatch.undo()
    assert load_state(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 1
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["last.pt"], "temp file left"


def test_mixed_image_sizes_name_the_file(folder, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in folder.iterdir():
        (mixed / p.name).write_bytes(p.read_bytes())
    odd = mixed / "frame004.png"
    cv2.imwrite(str(odd), np.zeros((48, 80, 3), np.uint8))
    assert main(train_args(mixed, tmp_path / "run", "data.num_workers=1", "max_steps=20")) == 1
    _one_line_error(capsys, str(odd), "80x48", "frame000.png is 64x64")


# ------------------------------------------------------------------------------------------ --resume
def test_resume_refuses_a_model_change(folder, tmp_path, capsys):
    assert main(train_args(folder, tmp_path / "run", "max_steps=1")) == 0
    capsys.readouterr()
    last = str(tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(train_args(folder, tmp_path / "run", "max_steps=2", "num_layers=34", "--resume", last)) == 2
    _one_line_error(capsys, "another model", "num_layers 18 -> 34")
    assert main(train_args(folder, tmp_path / "run", "max_steps=2", "pose_model_type=shared", "width=96",
                           "--resume", last)) == 2
    _one_line_error(capsys, "pose_model_type 'posecnn' -> 'shared'", "width 64 -> 96")
    assert load_state(last)["step"] == 1, "a refused resume must not touch the checkpoint"


def test_resume_of_a_finished_run_takes_no_extra_step(folder, tmp_path, capsys):
    assert main(train_args(folder, tmp_path / "run", "max_steps=2")) == 0
    last = str(tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(train_args(folder, tmp_path / "run", "max_steps=2", "--resume", last)) == 0
    assert load_state(last)["step"] == 2


def test_resume_translates_the_position_on_data_and_batch_changes(caplog):
    cfg = load_config(None, ["batch_size=4", "data.path=/a"])
    state = {"pos_in_epoch": 3, "epoch": 2, "config": cfg.to_dict(), "train_samples": 100}
    assert resume_position(state, cfg, 100) == 3                                    # unchanged: exact
    with caplog.at_level(logging.WARNING, "md2_ros.train"):
        assert resume_position(state, load_config(None, ["batch_size=8", "data.path=/a"]), 100) == 1
        assert "batch_size 4 -> 8" in caplog.text and "after sample 12" in caplog.text
        assert resume_position(state, load_config(None, ["batch_size=4", "data.path=/b"]), 100) == 0
        assert resume_position(state, cfg, 60) == 0                                 # the same path, other data
        assert "epoch 2 restarts" in caplog.text
