"""md2_ros.io.intrinsics: one scaling rule, one distortion rule, YAML and CameraInfo readers."""
from types import SimpleNamespace

import numpy as np
import pytest

from md2_ros.core import geometry
from md2_ros.io import intrinsics as I
from md2_ros.io.errors import FormatError

K = np.array([[721.5, 0, 609.6], [0, 721.5, 172.9], [0, 0, 1]])


def test_scale_rule_for_K_P_and_normalised():
    half = I.scale_intrinsics(K, (1242, 375), (621, 125))
    np.testing.assert_allclose(half, [[360.75, 0, 304.8], [0, 240.5, 172.9 / 3], [0, 0, 1]])
    P = np.hstack([K, [[44.9], [0.2], [0.003]]])
    np.testing.assert_allclose(I.scale_intrinsics(P, (1242, 375), (621, 125))[:, 3], [22.45, 0.2 / 3, 0.003])
    Kn = I.normalise_intrinsics(K, 1242, 375)             # K of a 1×1 image, 4×4
    assert Kn.shape == (4, 4) and Kn[0, 0] == pytest.approx(721.5 / 1242)
    np.testing.assert_allclose(geometry.scale_intrinsics(Kn, 1242, 375)[:3, :3], K)   # core's step, same rule
    with pytest.raises(I.InvalidIntrinsics, match="positive"):
        I.scale_intrinsics(K, (0, 375), (10, 10))
    with pytest.raises(I.InvalidIntrinsics, match="positive"):
        I.scale_intrinsics(K, (10, 10), (-1, 10))
    with pytest.raises(I.InvalidIntrinsics, match="3×3"):
        I.scale_intrinsics(np.eye(2), (1, 1), (2, 2))


def test_distortion_rule():
    assert not I.has_distortion([]) and not I.has_distortion(None) and not I.has_distortion([0, 1e-6, 0, 0, 0])
    assert I.has_distortion([0, 0, 2e-5, 0, 0]) and I.has_distortion(np.array([-0.3, 0.1, 0, 0, 0]))


def test_yaml_forms(tmp_path):
    y = tmp_path / "k.yaml"
    y.write_text("fx: 500\nfy: 400\ncx: 320\ncy: 120\nwidth: 640\nheight: 240\n")
    K2, size = I.load_intrinsics_file(y)
    assert size == (640, 240) and K2[0, 0] == 500
    y.write_text("fx: 0.58\nfy: 1.92\ncx: 0.5\ncy: 0.5\nnormalised: true\n")
    K2, size = I.load_intrinsics_file(y)
    assert size == (1, 1)
    np.testing.assert_allclose(I.scale_intrinsics(K2, size, (640, 192))[0], [371.2, 0, 320])
    y.write_text("fx: 500\nfy: 400\ncx: 320\ncy: 120\n")
    assert I.load_intrinsics_file(y)[1] is None
    ros = ("image_width: 640\nimage_height: 480\ncamera_matrix:\n  rows: 3\n  cols: 3\n  data: [320, 0, 320, 0, 240, "
           "240, 0, 0, 1]\ndistortion_model: plumb_bob\ndistortion_coefficients:\n  data: [{d}, 0, 0, 0, 0]\n")
    y.write_text(ros.format(d=0))
    K2, size = I.load_intrinsics_file(y)
    assert size == (640, 480) and K2[1, 1] == 240
    y.write_text(ros.format(d=-0.3))
    with pytest.raises(ValueError, match="k.yaml: distortion coefficients .* undistort"):
        I.load_intrinsics_file(y)
    y.write_text("fx: 0\nfy: 400\ncx: 320\ncy: 120\nwidth: 640\nheight: 240\n")
    with pytest.raises(I.InvalidIntrinsics, match="k.yaml: invalid intrinsics fx=0.0"):
        I.load_intrinsics_file(y)
    with pytest.raises(FileNotFoundError, match="intrinsics file not found"):
        I.load_intrinsics_file(tmp_path / "none.yaml")


def _info(k, p=None, w=1242, h=375):
    return SimpleNamespace(k=list(np.ravel(k)), p=list(np.ravel(p if p is not None else np.zeros((3, 4)))),
                           width=w, height=h, binning_x=0, binning_y=0, d=[], r=list(np.eye(3).ravel()),
                           distortion_model="plumb_bob", roi=SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0),
                           header=SimpleNamespace(frame_id="cam"))


def test_camera_info_invalid_is_not_missing():
    np.testing.assert_allclose(I.camera_info_K(_info(K), 621, 125), I.scale_intrinsics(K, (1242, 375), (621, 125)))
    P = np.hstack([K, np.zeros((3, 1))])
    np.testing.assert_allclose(I.camera_info_K(_info(np.zeros(9), P), 1242, 375), K)   # K unset: P's left block
    for bad, why in [(np.full(9, np.nan), "fx=nan"), (np.zeros(9), "fx=0.0")]:
        with pytest.raises(I.InvalidIntrinsics, match=f"/cam/camera_info: CameraInfo: invalid intrinsics {why}"):
            I.camera_info_K(_info(bad), 1242, 375, "/cam/camera_info")
        with pytest.raises(I.InvalidIntrinsics, match="CameraInfo K is invalid"):
            I.camera_model(_info(bad))
        with pytest.raises(FormatError):
            I.check_camera_info(_info(bad))


def test_binning_and_projection_matrix():
    P = np.hstack([K, np.zeros((3, 1))])
    P[:2] *= 1.01
    info = _info(K, P)
    info.binning_x = info.binning_y = 2
    assert I.info_size(info) == (621, 187)
    Kb, Pb = I.binned_matrices(info)
    assert Kb[0, 0] == pytest.approx(721.5 / 2) and Pb[1, 1] == pytest.approx(721.5 * 1.01 / 2)
    M = I.projection_matrix(info, 0.5, 0.5)          # P is set: the rectified matrix is used
    assert M[0, 0] == pytest.approx(721.5 * 1.01 / 4) and M[2, 2] == 1
