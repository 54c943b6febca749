"""python -m train.make_bag: topics, CameraInfo, stamps, file layouts."""
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from md2_ros.io import kitti as kcalib
from train.datasets.rosbag import RosbagDataset
from md2_ros.io.kitti import read_timestamps
from train.make_bag import camera_info_matrices, main, write_kitti_bag

DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync"
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _read(path):
    with AnyReader([path]) as r:
        msgs = [(c.topic, t, r.deserialize(raw, c.msgtype)) for c, t, raw in r.messages(connections=r.connections)]
        return {c.topic: c.msgtype for c in r.connections}, msgs


def test_cli_writes_mcap_with_camera_info(kitti_mini, tmp_path):
    out = tmp_path / "a.mcap"
    proc = subprocess.run([sys.executable, "-m", "train.make_bag", str(kitti_mini / DRIVE), str(out), "--frames",
                           "0:3", "--rate", "5", "--topic-prefix", "/kitti/cam"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "3 frames" in proc.stdout and out.is_file()
    topics, msgs = _read(out)
    assert topics == {"/kitti/cam/image_raw": "sensor_msgs/msg/Image",
                      "/kitti/cam/camera_info": "sensor_msgs/msg/CameraInfo"}
    infos = [m for t, _, m in msgs if t.endswith("camera_info")]
    images = [(stamp, m) for topic, stamp, m in msgs if topic.endswith("image_raw")]
    assert len(infos) == len(images) == 3
    P = kcalib.load_cam_intrinsics(kitti_mini / "2011_09_26", 2)
    info = infos[0]
    assert (info.width, info.height, info.distortion_model) == (1242, 375, "plumb_bob")
    np.testing.assert_allclose(info.k.reshape(3, 3), P[:3, :3])
    np.testing.assert_allclose(info.p.reshape(3, 4)[:, 3], 0)
    assert not info.d.any()
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in images]
    assert np.diff(stamps).tolist() == [200_000_000, 200_000_000]  # frame index / 5 Hz
    assert [t for t, _ in images] == stamps  # bag time = header stamp
    assert images[0][1].encoding == "rgb8" and images[0][1].step == 1242 * 3


def test_db3_folder_compressed_stereo_and_timestamps(kitti_mini, tmp_path):
    src = tmp_path / "kitti" / DRIVE
    for cam in (2, 3):
        (src / f"image_0{cam}" / "data").mkdir(parents=True)
        for f in range(2):
            shutil.copy(kitti_mini / DRIVE / "image_02" / "data" / f"{f:010d}.png", src / f"image_0{cam}" / "data")
        (src / f"image_0{cam}" / "timestamps.txt").write_text(
            "2011-09-26 13:02:25.964389445\n2011-09-26 13:02:26.0743\n")
    shutil.copy(kitti_mini / "2011_09_26" / "calib_cam_to_cam.txt", tmp_path / "kitti" / "2011_09_26")
    info = write_kitti_bag(tmp_path / "kitti" / "2011_09_26", tmp_path / "bagdir", storage="sqlite3",
                           compressed=True, stereo=True)
    assert info["frames"] == 2 and (tmp_path / "bagdir" / "metadata.yaml").exists()
    topics, msgs = _read(tmp_path / "bagdir")
    assert set(topics) == {"/camera/left/image_raw/compressed", "/camera/left/camera_info",
                           "/camera/right/image_raw/compressed", "/camera/right/camera_info"}
    right = next(m for t, _, m in msgs if t == "/camera/right/camera_info")
    B = kcalib.stereo_baseline(tmp_path / "kitti" / "2011_09_26")
    assert -right.p[3] / right.p[0] == pytest.approx(B)
    comp = next(m for t, _, m in msgs if t == "/camera/left/image_raw/compressed")
    assert comp.format.startswith("rgb8; png") and bytes(comp.data) == (src / "image_02/data/0000000000.png").read_bytes()
    stamps = sorted({m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, _, m in msgs})
    assert stamps == read_timestamps(src / "image_02" / "timestamps.txt")
    assert stamps[1] - stamps[0] == 109_910_555
    ds = RosbagDataset(tmp_path / "bagdir", "/camera/left/image_raw/compressed", frame_ids=(0, "s"), height=32,
                       width=96, right_image_topic="/camera/right/image_raw/compressed", is_train=False)
    assert len(ds) == 2 and ds.baseline == pytest.approx(B) and (tmp_path / "bagdir.md2index.json").exists()


def test_helpers_and_errors(kitti_mini, tmp_path, capsys):
    K, P = camera_info_matrices(np.array([[700.0, 0, 600, 45], [0, 700, 170, 0.2], [0, 0, 1, 0.003]]),
                                (1200, 360), (600, 180), tx_metres=0.5)
    np.testing.assert_allclose(K, [[350, 0, 300], [0, 350, 85], [0, 0, 1]])
    assert P[0, 3] == -175 and P[1, 3] == 0 and P[2, 3] == 0
    assert main([str(tmp_path / "nothing"), str(tmp_path / "x.mcap")]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "x.mcap").write_bytes(b"")
    assert main([str(kitti_mini / DRIVE), str(tmp_path / "x.mcap")]) == 1
    assert "exists" in capsys.readouterr().err
