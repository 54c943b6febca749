"""ImageFolderDataset and intrinsics YAML formats."""
import shutil

import numpy as np
import pytest
import torch

from md2_ros.io import kitti as kcalib
from train.datasets.folder import ImageFolderDataset, load_intrinsics_yaml, natural_key
from train.datasets.kitti import KittiRAWDataset

DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync"
H, W = 32, 96


@pytest.fixture()
def folder(kitti_mini, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for f in range(12):  # names that sort wrongly as strings: frame2 < frame10
        shutil.copy(kitti_mini / DRIVE / "image_02" / "data" / f"{f:010d}.png", d / f"frame{f}.png")
    P = kcalib.load_cam_intrinsics(kitti_mini / "2011_09_26", 2)
    (d / "intrinsics.yaml").write_text(f"fx: {P[0, 0]}\nfy: {P[1, 1]}\ncx: {P[0, 2]}\ncy: {P[1, 2]}\n")
    return d


def test_matches_kitti_loader(folder, kitti_mini):
    ds = ImageFolderDataset(folder, height=H, width=W, is_train=False, frame_ids=(0, -1, 1))
    assert [p.name for p in ds.files[:3]] == ["frame0.png", "frame1.png", "frame2.png"]
    assert len(ds) == 10 and ds.skipped == {"missing neighbour frame": 2}
    kitti = KittiRAWDataset(kitti_mini, [f"{DRIVE} 10 l"], height=H, width=W, is_train=False)
    a, b = ds[9], kitti[0]
    for key in a:
        if key != "index":
            torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-6)


def test_stride_and_errors(folder, tmp_path):
    ds = ImageFolderDataset(folder, frame_ids=(0, -1, 1), stride=3, height=H, width=W, is_train=False)
    assert ds.targets == list(range(3, 9))
    with pytest.raises(ValueError, match="monocular"):
        ImageFolderDataset(folder, frame_ids=(0, "s"), height=H, width=W)
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(tmp_path, tmp_path / "x.yaml", height=H, width=W)
    with pytest.raises(FileNotFoundError, match="k.yaml"):
        ImageFolderDataset(folder, tmp_path / "k.yaml", height=H, width=W)


def test_intrinsics_yaml_formats(tmp_path):
    y = tmp_path / "k.yaml"
    y.write_text("fx: 0.58\nfy: 1.92\ncx: 0.5\ncy: 0.5\nnormalised: true\n")
    np.testing.assert_allclose(load_intrinsics_yaml(y)[:2, :3], [[0.58, 0, 0.5], [0, 1.92, 0.5]])
    y.write_text("fx: 500\nfy: 400\ncx: 320\ncy: 120\nwidth: 640\nheight: 240\n")
    np.testing.assert_allclose(load_intrinsics_yaml(y)[:2, :3], [[500 / 640, 0, 0.5], [0, 400 / 240, 0.5]])
    y.write_text("fx: 500\nfy: 400\ncx: 320\ncy: 120\n")
    np.testing.assert_allclose(load_intrinsics_yaml(y, image_size=(1000, 200))[0, 0], 0.5)
    with pytest.raises(ValueError, match="need width and height"):
        load_intrinsics_yaml(y)
    y.write_text("fx: 0.58\nfy: 1.92\ncx: 0.5\ncy: 0.5\n")
    with pytest.raises(ValueError, match="look normalised"):
        load_intrinsics_yaml(y, image_size=(640, 192))
    y.write_text("fx: 500\nfy: 400\n")
    with pytest.raises(ValueError, match="missing 'cx'"):  # ValueError: one line from python -m train
        load_intrinsics_yaml(y)
    ros = ("image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [320, 0, 320, 0, 240, "
           "240, 0, 0, 1]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  data: [{d}, 0, 0, 0, 0]\n")
    y.write_text(ros.format(d=0))
    np.testing.assert_allclose(load_intrinsics_yaml(y)[:2, :3], [[0.5, 0, 0.5], [0, 0.5, 0.5]])
    y.write_text(ros.format(d=-0.3))
    with pytest.raises(ValueError, match="undistort"):
        load_intrinsics_yaml(y)
    assert sorted(["a10", "a2", "b1"], key=natural_key) == ["a2", "a10", "b1"]
