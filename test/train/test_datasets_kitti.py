"""KITTI raw / odometry datasets, split files and calibration (CPU, small sizes)."""
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from md2_ros.io import kitti as kcalib
from md2_ros.io.images import ImageDecodeError
from train.datasets.kitti import (KNOWN_SPLITS, KittiOdomDataset, KittiRAWDataset, parse_split_line, read_split,
                                  split_file)

DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync"
H, W = 64, 192


@pytest.fixture(scope="module")
def mini(kitti_mini):
    return kitti_mini


def _stereo_copy(src_root, dst_root, frames=range(10, 16), ext=".png"):
    """A tiny KITTI tree with image_02 and a fake image_03 (camera-2 frames shifted 8 px)."""
    date = dst_root / "2011_09_26"
    drive = dst_root / DRIVE
    for cam in (2, 3):
        (drive / f"image_0{cam}" / "data").mkdir(parents=True)
    shutil.copy(src_root / "2011_09_26" / "calib_cam_to_cam.txt", date)
    for f in frames:
        img = cv2.imread(str(src_root / DRIVE / "image_02" / "data" / f"{f:010d}.png"))
        cv2.imwrite(str(drive / "image_02" / "data" / f"{f:010d}{ext}"), img)
        cv2.imwrite(str(drive / "image_03" / "data" / f"{f:010d}{ext}"), np.roll(img, -8, axis=1))
    return drive


def test_shipped_splits_read():
    assert len(read_split("eigen_zhou", "train")) == 39810
    assert len(read_split("eigen_zhou", "val")) == 4424
    assert len(read_split("eigen_full", "train")) == 45200
    assert len(read_split("eigen", "test")) == 697
    assert len(read_split("eigen_benchmark", "test")) == 652
    assert len(read_split("odom", "test_files_09")) > 1000
    assert read_split("eigen_zhou", "train")[0][2] in ("l", "r")
    assert set(KNOWN_SPLITS) <= {p.name for p in split_file("eigen", "test").parents[1].iterdir()}


def test_shipped_splits_match_originals(kitti_splits):
    for name, which in [("eigen_zhou", "train"), ("odom", "val"), ("eigen", "test")]:
        original = (kitti_splits / name / f"{which}_files.txt").read_text().splitlines()
        assert read_split(name, which) == [parse_split_line(line) for line in original if line.strip()]


def test_missing_split_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_files.txt"):
        read_split("eigen_zhou", "test")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope" / "train_files.txt")):
        read_split(tmp_path / "nope", "train")
    with pytest.raises(ValueError, match="bad split line"):
        parse_split_line("2011_09_26/x_sync seven l")


def test_from_folder_shapes_keys_and_intrinsics(mini):
    ds = KittiRAWDataset.from_folder(mini / DRIVE, height=H, width=W, num_scales=4, is_train=False)
    assert len(ds) == 76 and ds.skipped == {"missing neighbour frame": 2}
    s = ds[0]
    assert s["index"] == 0
    P = kcalib.load_cam_intrinsics(mini / "2011_09_26", 2)
    for sc in range(4):
        h, w = H >> sc, W >> sc
        for f in (0, -1, 1):
            for k in ("color", "color_aug"):
                t = s[(k, f, sc)]
                assert t.shape == (3, h, w) and t.dtype == torch.float32
                assert 0 <= t.min() and t.max() <= 1
        K = s[("K", sc)].numpy()
        expect = np.array([[P[0, 0] * w / 1242, 0, P[0, 2] * w / 1242],
                           [0, P[1, 1] * h / 375, P[1, 2] * h / 375], [0, 0, 1]])
        np.testing.assert_allclose(K[:3, :3], expect, rtol=1e-5)
        np.testing.assert_allclose(s[("inv_K", sc)].numpy() @ K, np.eye(4), atol=1e-5)
    assert "stereo_T" not in s
    # target frame 0 of sample 0 is file 1; its -1 neighbour is file 0 (area-resized)
    raw = cv2.cvtColor(cv2.imread(str(mini / DRIVE / "image_02/data/0000000000.png")), cv2.COLOR_BGR2RGB)
    expect0 = cv2.resize(raw, (W, H), interpolation=cv2.INTER_AREA)
    assert torch.equal(s[("color", -1, 0)], torch.from_numpy(expect0).permute(2, 0, 1).float() / 255)
    assert torch.equal(s[("color", 0, 0)], s[("color_aug", 0, 0)])  # no augmentation when not training


def test_split_lines_skip_and_count(mini):
    lines = [f"{DRIVE} 10 l", f"{DRIVE} 0 l", f"{DRIVE} 77 l", f"{DRIVE} 500 l", "2011_09_26/nodrive_sync 3 l",
             f"{DRIVE} 20 r"]
    ds = KittiRAWDataset(mini, lines, frame_ids=(0, -2, 2), height=H, width=W, is_train=False)
    assert [x[1] for x in ds.samples] == [10]
    assert ds.skipped == {"missing neighbour frame": 2, "missing target frame": 1,
                          "missing drive or camera folder": 2}
    with pytest.raises(ValueError, match="no usable frames"):
        KittiRAWDataset(mini, [f"{DRIVE} 0 l"], height=H, width=W)


def test_stereo_partner_baseline_and_jpeg(mini, tmp_path):
    _stereo_copy(mini, tmp_path, ext=".jpg")
    os.remove(tmp_path / DRIVE / "image_03" / "data" / "0000000014.jpg")
    lines = [f"{DRIVE} {f} {side}" for f in (11, 12, 13, 14) for side in "lr"]
    ds = KittiRAWDataset(tmp_path, lines, frame_ids=(0, -1, 1, "s"), height=H, width=W, is_train=False)
    # frame 14: left target lacks its partner; right target (image_03 missing) is gone; 13 r lacks neighbour 14
    assert ds.skipped == {"missing stereo partner": 1, "missing target frame": 1, "missing neighbour frame": 1}
    assert len(ds) == 5
    B = kcalib.stereo_baseline(tmp_path / "2011_09_26")
    left = ds[ds.samples.index((DRIVE, 12, "l"))]
    right = ds[ds.samples.index((DRIVE, 12, "r"))]
    assert left["stereo_T"][0, 3].item() == pytest.approx(-B) and right["stereo_T"][0, 3].item() == pytest.approx(B)
    assert torch.equal(left[("color", 0, 0)], right[("color", "s", 0)])
    assert torch.equal(left[("color", "s", 0)], right[("color", 0, 0)])
    assert KittiRAWDataset(tmp_path, lines[:2], frame_ids=(0, "s"), baseline=0.1, height=H,
                           width=W)[0]["stereo_T"][0, 3].abs().item() == pytest.approx(0.1)


def test_truncated_png_raises_naming_file(mini, tmp_path):
    _stereo_copy(mini, tmp_path, frames=range(3))
    bad = tmp_path / DRIVE / "image_02" / "data" / "0000000002.png"
    bad.write_bytes(bad.read_bytes()[:5000])
    ds = KittiRAWDataset.from_folder(tmp_path / DRIVE, height=H, width=W, is_train=False)
    with pytest.raises(ImageDecodeError, match="0000000002.png"):
        ds[0]
    bad.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty"):
        ds[0]


def test_odometry_layout(mini, tmp_path):
    seq = tmp_path / "sequences" / "09"
    (seq / "image_2").mkdir(parents=True)
    for f in range(3):
        shutil.copy(mini / DRIVE / "image_02" / "data" / f"{f:010d}.png", seq / "image_2" / f"{f:06d}.png")
    P = kcalib.load_cam_intrinsics(mini / "2011_09_26", 2).reshape(-1)
    (seq / "calib.txt").write_text("P2: " + " ".join(f"{v:e}" for v in P) + "\n")
    ds = KittiOdomDataset(tmp_path, ["9 1 l", "9 2 l"], height=H, width=W, is_train=False)
    assert len(ds) == 1 and ds.skipped == {"missing neighbour frame": 1}
    assert ds[0][("K", 0)][0, 0].item() == pytest.approx(P[0] * W / 1242, rel=1e-5)
