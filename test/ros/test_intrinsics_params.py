"""CameraInfo matching/scaling rules and parameter validation (pure functions)."""
import numpy as np
import pytest

from md2_ros.ros import params
from md2_ros.ros.conversions import ConversionError
from md2_ros.io.intrinsics import match_scale, projection_matrix
from md2_ros.ros.conversions import camera_info_from_kitti, scaled_camera_info
from ros_helpers import header, kitti_camera_info

P = np.array([[721.5377, 0, 609.5593, 44.85728], [0, 721.5377, 172.854, 0.2163791], [0, 0, 1, 0.002745884]])


def test_kitti_camera_info(kitti_mini):
    info = kitti_camera_info(kitti_mini, 248, 75)
    assert (info.width, info.height) == (248, 75)
    np.testing.assert_allclose(info.k[[0, 2, 4, 5]], [721.5377 * 248 / 1242, 609.5593 * 248 / 1242,
                                                      721.5377 * 75 / 375, 172.854 * 75 / 375], rtol=1e-6)


def test_match_same_size_and_proportional_resize():
    info = camera_info_from_kitti(P, 1242, 375, "cam")
    assert match_scale(info, "cam", 1242, 375) == (1.0, 1.0)
    sx, sy = match_scale(info, "cam", 248, 75)          # decimated stream, full-size CameraInfo
    assert sx == pytest.approx(248 / 1242) and sy == pytest.approx(0.2)
    K = projection_matrix(info, sx, sy)
    np.testing.assert_allclose(K[0], P[0, :3] * sx)
    np.testing.assert_allclose(K[1], P[1, :3] * sy)


@pytest.mark.parametrize("mutate, match", [
    (lambda i: setattr(i, "k", np.zeros(9)), "K all zero"),
    (lambda i: setattr(i, "width", 0), "zero size"),
    (lambda i: setattr(i.header, "frame_id", "other"), "frame_id 'other'"),
    (lambda i: (setattr(i, "width", 640), setattr(i, "height", 480)), "not a same-aspect resize"),
    (lambda i: setattr(i, "k", np.full(9, np.nan)), "finite"),
    (lambda i: (setattr(i.roi, "width", 10), setattr(i.roi, "height", 10)), "region of interest"),
])
def test_unusable_camera_info(mutate, match):
    info = camera_info_from_kitti(P, 1242, 375, "cam")
    mutate(info)
    with pytest.raises(ConversionError, match=match):
        match_scale(info, "cam", 1242, 375)


def test_binning_and_scaled_info_keeps_header():
    info = camera_info_from_kitti(P, 1242, 374, "cam")
    info.binning_x = info.binning_y = 2
    assert match_scale(info, "cam", 621, 187) == (1.0, 1.0)
    np.testing.assert_allclose(projection_matrix(info)[0], P[0, :3] / 2)
    hdr = header(5, 6, "cam")
    out = scaled_camera_info(info, hdr, 0.5, 0.25, 310, 47)
    assert out.header is hdr and (out.width, out.height, out.binning_x) == (310, 47, 0)
    np.testing.assert_allclose(out.p.reshape(3, 4)[1], P[1] / 2 * 0.25)
    np.testing.assert_allclose(out.k.reshape(3, 3)[0], P[0, :3] / 2 * 0.5)


def test_projection_falls_back_to_k_without_p():
    info = camera_info_from_kitti(P, 1242, 375, "cam")
    info.p = np.zeros(12)
    info.k = np.array([100.0, 0, 50, 0, 90, 40, 0, 0, 1])
    np.testing.assert_allclose(projection_matrix(info, 2, 2), [[200, 0, 100], [0, 180, 80], [0, 0, 1]])


GOOD = {n: s.default for n, s in params.SPECS.items()}
GOOD["cameras"] = []


@pytest.mark.parametrize("change, match", [
    ({"depth_scale": 0.0}, "depth_scale"),
    ({"depth_scale": float("nan")}, "depth_scale"),
    ({"cloud_min_range": 5.0, "cloud_max_range": 4.0}, "cloud_min_range < cloud_max_range"),
    ({"cloud_stride": 0}, "cloud_stride"),
    ({"cloud_stride": 2.0}, "integer"),
    ({"colormap": "rainbowz"}, "colormap"),
    ({"device": "gpu"}, "device"),
    ({"output_resolution": "half"}, "output_resolution"),
    ({"cameras": ["cam0", "cam0"]}, "duplicate"),
    ({"cameras": ["/abs"]}, "not a valid relative"),
    ({"publish_colorized": 1}, "bool"),
])
def test_validate_rejects_with_reason(change, match):
    assert params.validate(GOOD) is None
    reason = params.validate({**GOOD, **change})
    assert reason is not None and match in reason


def test_validate_accepts_good_changes():
    ok = {**GOOD, "depth_scale": 5.4, "cloud_min_range": 1.0, "cloud_max_range": 80.0, "cloud_stride": 4, "colormap": "turbo",
          "device": "cuda:1", "cameras": ["cam0", "rig/left"], "output_resolution": "model"}
    assert params.validate(ok) is None
