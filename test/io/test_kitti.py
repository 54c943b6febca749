"""md2_ros.io.kitti: the one KITTI calibration parser, split reader and drive finder."""
import gzip

import numpy as np
import pytest

from md2_ros.io import kitti

P2 = np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]])


def test_calibration_of_real_kitti(kitti_mini):
    d = kitti_mini / "2011_09_26"
    calib = kitti.read_calib_file(d / "calib_cam_to_cam.txt")
    np.testing.assert_allclose(calib["P_rect_02"].reshape(3, 4), P2, rtol=1e-6)
    assert calib["S_rect_02"].tolist() == [1242, 375] and "calib_time" not in calib
    np.testing.assert_allclose(kitti.load_cam_intrinsics(d, 2), P2, rtol=1e-6)
    assert kitti.load_image_size(d, 2) == (1242, 375)
    assert kitti.stereo_baseline(d) == pytest.approx((44.85728 + 339.5242) / 721.5377, rel=1e-6)
    assert kitti.load_velo_to_cam(d).shape == (4, 4) and kitti.velo_to_image(d).shape == (3, 4)


def test_calibration_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="calib_cam_to_cam.txt"):
        kitti.load_cam_intrinsics(tmp_path / "missing", 2)
    bad = tmp_path / "calib_cam_to_cam.txt"
    bad.write_text("calib_time: 09-Jan-2012 13:57:47\nP_rect_02: 1 2 3\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt: 'P_rect_02' has 3 numbers, expected 12"):
        kitti.load_cam_intrinsics(tmp_path, 2)
    with pytest.raises(KeyError, match="no 'S_rect_02'"):
        kitti.load_image_size(tmp_path, 2)
    bad.write_text("P_rect_02 1 2 3\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt:1: expected 'key: values'"):
        kitti.read_calib_file(bad)
    with pytest.raises(ValueError, match="0..3"):
        kitti.load_cam_intrinsics(tmp_path, 5)


def test_odometry_calib_layout(tmp_path):
    seq = tmp_path / "sequences" / "00"
    seq.mkdir(parents=True)
    (seq / "calib.txt").write_text("P0: " + " ".join(map(str, P2.reshape(-1))) + "\nP2: "
                                   + " ".join(map(str, (P2 * 2).reshape(-1))) + "\n")
    np.testing.assert_allclose(kitti.load_cam_intrinsics(seq, 2), P2 * 2)


def test_split_file_reading(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("2011_09_26/d_sync 0000000069 l\n\n2011_09_26/d_sync 5 r\n2011_09_26/d_sync 7\n")
    want = [("2011_09_26/d_sync", 69, "l"), ("2011_09_26/d_sync", 5, "r"), ("2011_09_26/d_sync", 7, "l")]
    assert kitti.read_split_file(path) == want
    with gzip.open(tmp_path / "s.txt.gz", "wt") as fh:
        fh.write(path.read_text())
    assert kitti.read_split_file(tmp_path / "s.txt.gz") == want
    path.write_text("a 1 l\nb seven l\n")
    with pytest.raises(ValueError, match=r"s.txt:2: bad split line 'b seven l'"):
        kitti.read_split_file(path)
    path.write_text("a 1 x\n")
    with pytest.raises(ValueError, match="side must be"):
        kitti.read_split_file(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="lists no frames"):
        kitti.read_split_file(path)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        kitti.read_split_file(tmp_path / "nope.txt")


def test_find_drives(tmp_path):
    drives = [tmp_path / "2011_09_26" / f"2011_09_26_drive_000{i}_sync" for i in (2, 1)]
    for d in drives:
        (d / "image_02" / "data").mkdir(parents=True)
    (tmp_path / "2011_09_26" / "not_a_drive").mkdir()
    assert kitti.find_drives(drives[0]) == [drives[0]]                      # a drive
    assert kitti.find_drives(tmp_path / "2011_09_26") == sorted(drives)     # a date folder
    assert kitti.find_drives(tmp_path) == sorted(drives)                    # a KITTI root
    with pytest.raises(FileNotFoundError, match="no KITTI drive folders under"):
        kitti.find_drives(tmp_path / "2011_09_26" / "not_a_drive")
    with pytest.raises(FileNotFoundError, match="not found"):
        kitti.find_drives(tmp_path / "absent")


def test_timestamps(tmp_path):
    (tmp_path / "t.txt").write_text("2011-09-26 13:02:25.964389445\n2011-09-26 13:02:26.0\n")
    a, b = kitti.read_timestamps(tmp_path / "t.txt")
    assert a % 10**9 == 964389445 and b - a == 35610555
