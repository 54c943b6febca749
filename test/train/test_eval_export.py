"""Velodyne ground-truth export: projection conventions (synthetic) and the real kitti_mini scans."""
import numpy as np
import pytest

from md2_ros.io.kitti import read_split_file as read_split
from train.export_gt_depth import all_scanned_frames, load_gt_depths, main, project_to_depth, resolve_split_file, save_gt_depths

DRIVE = "2011_09_26/2011_09_26_drive_seq78_sync"

# velodyne (x forward, y left, z up) -> pixels with f = 10, cx = 5, cy = 4: depth = x
P_TOY = np.array([[5.0, -10.0, 0.0, 0.0],
                  [4.0, 0.0, -10.0, 0.0],
                  [1.0, 0.0, 0.0, 0.0]])


def test_projection_devkit_pixel_convention_and_nearest_point():
    points = np.array([
        [10.0, 0.0, 0.0, 0.3],     # -> x = 5, y = 4 -> pixel (u, v) = (4, 3): round() - 1
        [5.0, 0.0, 0.0, 0.9],      # same pixel, nearer: wins
        [20.0, 0.0, 0.0, 0.1],     # same pixel, farther: loses
        [-3.0, 0.0, 0.0, 0.5],     # behind the car: dropped
        [10.0, -20.0, 0.0, 0.5],   # x = 25 -> outside the 10-wide image
        [8.0, 0.4, 0.32, 0.5],     # x = 5 - 0.5 = 4.5 -> round 4 (half to even) - 1 = 3; y = 4 - 0.4 = 3.6 -> 3
    ])
    depth = project_to_depth(points, P_TOY, height=8, width=10)
    assert depth.shape == (8, 10) and depth.dtype == np.float32
    expected = np.zeros((8, 10), np.float32)
    expected[3, 4] = 5.0
    expected[3, 3] = 8.0
    np.testing.assert_array_equal(depth, expected)


def test_projection_bad_input():
    with pytest.raises(ValueError, match="3×4"):
        project_to_depth(np.zeros((3, 4)), np.eye(4), 8, 10)
    with pytest.raises(ValueError, match="N, 3"):
        project_to_depth(np.zeros((3, 2)), P_TOY, 8, 10)


def test_npz_roundtrip_without_pickle_and_refuses_object_arrays(tmp_path):
    depths = [np.ones((2, 3), np.float32), np.zeros((4, 5), np.float32)]
    save_gt_depths(tmp_path / "gt.npz", depths, ["a 0000000001 l", "a 0000000002 r"], [2, 3], "x", "velodyne")
    got, files, meta = load_gt_depths(tmp_path / "gt.npz")
    assert [d.shape for d in got] == [(2, 3), (4, 5)] and files[1] == "a 0000000002 r"
    assert meta == {"split": "x", "source": "velodyne", "cams": [2, 3]}
    np.savez(tmp_path / "official.npz", data=np.array([np.ones((2, 3)), np.ones((4, 5))], dtype=object))
    with pytest.raises(ValueError, match="re-export"):
        load_gt_depths(tmp_path / "official.npz")


def test_split_names_resolve():
    """The shipped lists in train/datasets/splits (no shared data needed)."""
    entries = read_split(resolve_split_file("eigen"))
    assert len(entries) == 697 and entries[0] == ("2011_09_26/2011_09_26_drive_0002_sync", 69, "l")
    assert len(read_split(resolve_split_file("eigen_benchmark"))) == 652
    with pytest.raises(FileNotFoundError, match="neither a known split name"):
        resolve_split_file("no_such_split")


@pytest.fixture(scope="module")
def exported(kitti_mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("gt") / "gt_all.npz"
    assert main(["--data_path", str(kitti_mini), "--split", "all", "--out", str(out), "--quiet"]) == 0
    return load_gt_depths(out)


def test_kitti_mini_export_all_scans(exported):
    depths, files, meta = exported
    assert len(depths) == 20
    assert files[0] == f"{DRIVE} 0000000000 l" and files[-1] == f"{DRIVE} 0000000076 l"
    assert meta["split"] == "all" and meta["source"] == "velodyne" and meta["cams"] == [2] * 20
    for d in depths:
        assert d.shape == (375, 1242) and d.dtype == np.float32
        valid = d[d > 0]
        assert 10_000 < valid.size < 20_000
        assert 2.5 < valid.min() < 5.0 and 60.0 < valid.max() < 81.0
        assert np.all(d[:60] == 0)  # the top beam (+6.6° at 3 m here) never reaches the top rows


def test_kitti_mini_split_file_matches_all(kitti_mini, exported, tmp_path, capsys):
    split = tmp_path / "three.txt"
    split.write_text(f"{DRIVE} 8 l\n{DRIVE} 0000000000 l\n{DRIVE} 76 l\n")
    out = tmp_path / "three.npz"
    assert main(["--data_path", str(kitti_mini), "--split", str(split), "--cam", "2", "--out", str(out),
                 "--quiet"]) == 0
    depths, files, _ = load_gt_depths(out)
    assert files == [f"{DRIVE} 0000000008 l", f"{DRIVE} 0000000000 l", f"{DRIVE} 0000000076 l"]
    all_depths = exported[0]
    for d, idx in zip(depths, (2, 0, 19)):
        np.testing.assert_array_equal(d, all_depths[idx])

    split.write_text(f"{DRIVE} 1 l\n")  # frame 1 has no scan
    assert main(["--data_path", str(kitti_mini), "--split", str(split), "--out", str(out), "--quiet"]) == 1
    assert "velodyne scan not found" in capsys.readouterr().err


def test_all_scanned_frames_needs_scans(tmp_path):
    with pytest.raises(FileNotFoundError, match="no velodyne scans"):
        all_scanned_frames(tmp_path)


def test_cli_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for opt in ("--data_path", "--split", "--cam", "--gt_source", "--out", "--quiet"):
        assert opt in text


def test_benchmark_gt_source_reads_uint16_png(tmp_path):
    import cv2

    folder = "2011_09_26/2011_09_26_drive_0002_sync"
    png_dir = tmp_path / folder / "proj_depth" / "groundtruth" / "image_02"
    png_dir.mkdir(parents=True)
    raw = np.zeros((6, 7), np.uint16)
    raw[2, 3] = 256 * 12 + 64  # 12.25 m
    assert cv2.imwrite(str(png_dir / "0000000069.png"), raw)
    split = tmp_path / "split.txt"
    split.write_text(f"{folder} 69 l\n")
    out = tmp_path / "gt.npz"
    assert main(["--data_path", str(tmp_path), "--split", str(split), "--gt_source", "benchmark", "--out", str(out),
                 "--quiet"]) == 0
    depths, files, meta = load_gt_depths(out)
    assert meta["source"] == "benchmark" and files == [f"{folder} 0000000069 l"]
    expected = np.zeros((6, 7), np.float32)
    expected[2, 3] = 12.25
    np.testing.assert_array_equal(depths[0], expected)
