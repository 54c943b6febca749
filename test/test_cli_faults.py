"""md2-depth never writes silently wrong output or loses data: --depth-scale inf/NaN/<=0 and NaN
checkpoints are refused, a bad file of a folder is skipped and counted, a truncated video says how far
it got, --bag-out writes <out>.partial and renames it only on success (a kill -9 leaves the partial, a
rerun says so), and the CameraInfo after the last image reaches the output bag."""
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_cli import env, run_cli, write_png  # noqa: F401 (env is a fixture)

from md2_ros.cli import main
from md2_ros.core.checkpoint import CheckpointError
from md2_ros.core.model import load_model

rosbags = pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INFO, IMAGE = "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/Image"


@pytest.mark.parametrize("value", ["inf", "-1", "nan", "0", "abc"])
def test_depth_scale_must_be_finite_and_positive(env, tmp_path, capsys, value):
    image = write_png(tmp_path / "a.png", env["seq"].images[0])
    with pytest.raises(SystemExit) as exc:
        run_cli(env, image, "-o", tmp_path / "out", "--depth-scale", value)
    assert exc.value.code == 2
    assert "--depth-scale" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_all_nan_checkpoint_is_refused(env, tmp_path, capsys):
    model = load_model(env["ckpt"])
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    model.save(tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_model(tmp_path / "nan.safetensors")
    image = write_png(tmp_path / "a.png", env["seq"].images[0])
    rc = main([str(image), "--checkpoint", str(tmp_path / "nan.safetensors"), "-o", str(tmp_path / "out"),
               "--device", "cpu", "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "nan.safetensors" in err and "NaN" in err
    assert not list((tmp_path / "out").rglob("*.npy"))


def test_one_unreadable_image_in_a_folder_is_skipped_and_counted(env, tmp_path, capsys, caplog):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, rgb in enumerate(env["seq"].images[:3]):
        write_png(folder / f"f{i}.png", rgb)
    (folder / "f1b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with caplog.at_level(logging.WARNING):
        assert run_cli(env, folder, "-o", tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "3 frame(s)" in out and "(1 unreadable, skipped)" in out
    assert "f1b.png skipped" in caplog.text
    assert sorted(p.stem for p in (tmp_path / "out" / "depth_npy").glob("*.npy")) == ["f0", "f1", "f2"]


def test_truncated_video_warns_with_the_frame_reached(env, tmp_path, caplog):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 64))
    for i in range(8):
        writer.write(cv2.cvtColor(env["seq"].images[i % 4], cv2.COLOR_RGB2BGR))
    writer.release()
    data = video.read_bytes()
    video.write_bytes(data[:len(data) // 2])
    with caplog.at_level(logging.WARNING):
        assert run_cli(env, video, "-o", tmp_path / "out") == 0
    done = len(list((tmp_path / "out" / "depth_npy").glob("*.npy")))
    assert 0 < done < 8
    assert f"decoding stopped at frame {done} of the 8" in caplog.text


def _bag_with_trailing_info(path, seq):
    """3 images, each after its CameraInfo, then one more CameraInfo after the last image."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    T = ts.types
    h, w = seq.images[0].shape[:2]
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)

    def header(t):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9),
                                        frame_id="cam")

    def info(t):
        P = np.hstack([seq.K, np.zeros((3, 1))])
        return T[INFO](header=header(t), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
                       k=seq.K.reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12), binning_x=0, binning_y=0, roi=roi)

    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as wr:
        c_info = wr.add_connection("/cam/camera_info", INFO, typestore=ts)
        c_img = wr.add_connection("/cam/image_raw", IMAGE, typestore=ts)
        for i in range(3):
            t = 10**18 + i * 10**8
            wr.write(c_info, t, ts.serialize_cdr(info(t), INFO))
            img = T[IMAGE](header=header(t), height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
                           data=seq.images[i].reshape(-1))
            wr.write(c_img, t + 1000, ts.serialize_cdr(img, IMAGE))
        wr.write(c_info, 10**18 + 3 * 10**8, ts.serialize_cdr(info(10**18 + 3 * 10**8), INFO))
    return path


def test_bag_out_keeps_the_last_camera_info_and_leaves_no_partial(env, tmp_path):
    bag = _bag_with_trailing_info(tmp_path / "in", env["seq"])
    assert run_cli(env, bag, "-o", tmp_path / "out", "--bag-out", tmp_path / "res.mcap") == 0
    assert not (tmp_path / "res.partial").exists()
    with AnyReader([tmp_path / "res"], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        counts = {t: i.msgcount for t, i in reader.topics.items()}
    assert counts["/cam/camera_info"] == 4 and counts["/cam/image_raw"] == 3 and counts["/md2/depth"] == 3


def test_failed_run_keeps_its_bag_as_partial(env, tmp_path, monkeypatch):
    from md2_ros.core.backends.base import Backend

    calls = []

    def failing(self, images):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return [np.ones(im.shape[:2], np.float32) for im in images]

    monkeypatch.setattr(Backend, "predict_batch", failing)
    bag = _bag_with_trailing_info(tmp_path / "in", env["seq"])
    assert run_cli(env, bag, "-o", tmp_path / "out", "--bag-out", tmp_path / "res", "--batch-size", 1) == 1
    assert not (tmp_path / "res").exists()
    with AnyReader([tmp_path / "res.partial" / "res"]) as reader:      # closed cleanly: readable
        assert {t: i.msgcount for t, i in reader.topics.items()}["/md2/depth"] == 1


def test_kill_9_during_bag_out_leaves_a_partial_that_a_rerun_names(env, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(40):
        write_png(folder / f"f{i:03d}.png", env["seq"].images[i % 4])
    cmd = [sys.executable, "-m", "md2_ros.cli", str(folder), "--checkpoint", env["ckpt"], "--device", "cpu",
           "--no-progress", "--backend", "eager", "--batch-size", "1", "-o", str(tmp_path / "out"), "--bag-out", str(tmp_path / "res")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mcap = tmp_path / "res.partial" / "res" / "res.mcap"
    try:
        t0 = time.monotonic()
        while not (mcap.exists() and len(list((tmp_path / "out" / "depth_npy").glob("*.npy"))) >= 2):
            assert proc.poll() is None, "md2-depth ended before it could be killed"
            assert time.monotonic() - t0 < 600
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "res").exists(), "a killed run must not leave a bag under the final name"
    rc = main(cmd[3:])
    err = capsys.readouterr().err
    assert rc == 1 and "res.partial is left from an interrupted run" in err and "mcap recover" in err
