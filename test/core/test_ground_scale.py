"""Camera-height scale: the ground fit recovers an unknown factor on exact synthetic depth, rejects
scenes without ground with a reason, and the smoother ignores failures."""
import math

import numpy as np
import pytest

from md2_ros.core.ground_scale import (GroundFit, GroundParams, ScaleSmoother, band_points,
                                       estimate_ground_scale)
from md2_ros.synthetic import CAMERA_HEIGHT, render_sequence


@pytest.fixture(scope="module")
def seq():
    return render_sequence(4, 96, 320, seed=3, supersample=1, yaw_rate=0.03)


@pytest.mark.parametrize("factor", [0.137, 1.0, 7.3, 42.0])
def test_recovers_unknown_scale_within_3_percent(seq, factor):
    for depth in seq.depths:
        fit = estimate_ground_scale(depth / factor, seq.K, CAMERA_HEIGHT)
        assert fit.ok, fit.reason
        assert fit.scale == pytest.approx(factor, rel=0.03)
        assert fit.tilt_deg < 2 and fit.inlier_share > 0.3


def test_noisy_depth_still_within_3_percent(seq):
    rng = np.random.default_rng(0)
    depth = seq.depths[1] / 3.0 * np.exp(rng.normal(0, 0.03, seq.depths[1].shape))
    depth[rng.random(depth.shape) < 0.05] = np.nan            # holes
    fit = estimate_ground_scale(depth, seq.K, CAMERA_HEIGHT)
    assert fit.ok and fit.scale == pytest.approx(3.0, rel=0.03)


def test_pitched_camera_within_limit(seq):
    """A camera pitched 5° down sees a plane tilted 5° from its y axis: accepted, same scale."""
    h, w = 96, 320
    pitch = math.radians(5)
    K = seq.K
    v, u = np.mgrid[0:h, 0:w].astype(float)
    ray = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    normal = np.array([0.0, math.cos(pitch), -math.sin(pitch)])   # ground normal in the pitched camera frame
    with np.errstate(divide="ignore"):
        depth = CAMERA_HEIGHT / (ray @ normal)
    depth[depth <= 0] = np.nan
    fit = estimate_ground_scale(depth / 2.5, K, CAMERA_HEIGHT)
    assert fit.ok and fit.scale == pytest.approx(2.5, rel=0.01) and fit.tilt_deg == pytest.approx(5, abs=0.5)
    strict = estimate_ground_scale(depth / 2.5, K, CAMERA_HEIGHT, GroundParams(max_tilt_deg=3))
    assert not strict.ok and "tilted" in strict.reason


def test_no_ground_leaves_scale_unset_with_reason(seq):
    wall = np.full((96, 320), 6.0, np.float32)                   # a wall filling the view
    fit = estimate_ground_scale(wall, seq.K, CAMERA_HEIGHT)
    assert not fit.ok and fit.scale is None and "horizontal" in fit.reason
    clutter = np.random.default_rng(1).uniform(1, 50, (96, 320))  # depth with no plane at all
    fit = estimate_ground_scale(clutter, seq.K, CAMERA_HEIGHT)
    assert not fit.ok and "no ground visible" in fit.reason
    empty = np.full((96, 320), np.nan)
    fit = estimate_ground_scale(empty, seq.K, CAMERA_HEIGHT)
    assert not fit.ok and "valid depth pixels" in fit.reason


def test_ceiling_is_not_ground(seq):
    """A plane above the camera (negative y) is horizontal but is not the ground."""
    flipped = seq.depths[0][::-1].copy()                          # ground now in the upper rows
    fit = estimate_ground_scale(flipped, seq.K, CAMERA_HEIGHT, GroundParams(band=(0.0, 0.4)))
    assert not fit.ok


def test_band_points_and_bad_input(seq):
    pts = band_points(seq.depths[0], seq.K, (0.5, 1.0))
    assert pts.shape == (48 * 320, 3) and np.all(pts[:, 2] > 0)
    with pytest.raises(ValueError, match="H×W"):
        estimate_ground_scale(np.zeros((2, 3, 4)), seq.K, 1.65)
    with pytest.raises(ValueError, match="camera_height"):
        estimate_ground_scale(seq.depths[0], seq.K, 0.0)
    with pytest.raises(ValueError, match="fx"):
        estimate_ground_scale(seq.depths[0], np.zeros((3, 3)), 1.65)
    with pytest.raises(ValueError, match="band"):
        GroundParams(band=(0.9, 0.5))


def test_smoother_median_and_failures():
    s = ScaleSmoother(window=3)
    assert s.update(GroundFit(None, 0.0, "no ground")) is None and s.rejected_in_a_row == 1
    assert s.update(GroundFit(2.0, 0.5)) == 2.0
    assert s.update(GroundFit(100.0, 0.5)) == pytest.approx(51.0)
    assert s.update(GroundFit(2.2, 0.5)) == pytest.approx(2.2)   # median rejects the outlier
    assert s.update(GroundFit(None, 0.1, "x")) == pytest.approx(2.2) and s.rejected == 2
    s.update(GroundFit(2.1, 0.5))
    s.update(GroundFit(2.1, 0.5))
    assert s.value == pytest.approx(2.1)                          # the window forgot 100 and 2.2
    s.resize(1)
    assert s.value == pytest.approx(2.1)
    with pytest.raises(ValueError):
        ScaleSmoother(0)
