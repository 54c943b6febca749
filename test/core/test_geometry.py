"""Geometry: shapes, float64 gradcheck, known answers, errors on bad input (kornia style)."""
import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from md2_ros.core import geometry as G


def _K(b=1, h=12, w=16, dtype=torch.float64):
    K = torch.tensor([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=dtype)
    K = G.scale_intrinsics(K, w, h)
    return K.expand(b, 4, 4).clone(), torch.linalg.inv(K).expand(b, 4, 4).clone()


def test_disp_to_depth_range_and_inverse():
    disp = torch.tensor([0.0, 0.5, 1.0])
    scaled, depth = G.disp_to_depth(disp, 0.1, 100.0)
    torch.testing.assert_close(depth[[0, 2]], torch.tensor([100.0, 0.1]))
    torch.testing.assert_close(scaled, 1 / depth)
    torch.testing.assert_close(G.depth_to_disp(depth, 0.1, 100.0), disp, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError):
        G.disp_to_depth(disp, 1.0, 0.5)


def test_backproject_shapes_and_known_point():
    K, inv_K = _K(2)
    depth = torch.full((2, 1, 12, 16), 2.0, dtype=torch.float64)
    pts = G.backproject(depth, inv_K)
    assert pts.shape == (2, 4, 12 * 16)
    # the principal point pixel lies on the optical axis
    cx, cy = K[0, 0, 2].item(), K[0, 1, 2].item()
    assert cx == 8.0 and cy == 6.0
    idx = 6 * 16 + 8
    torch.testing.assert_close(pts[0, :, idx], torch.tensor([0, 0, 2.0, 1], dtype=torch.float64))
    torch.testing.assert_close(pts[:, 3], torch.ones(2, 192, dtype=torch.float64))


def test_identity_pose_gives_identity_grid():
    K, inv_K = _K(1)
    depth = torch.rand(1, 1, 12, 16, dtype=torch.float64) * 10 + 0.5
    grid = G.project(G.backproject(depth, inv_K), K, torch.eye(4, dtype=torch.float64)[None], 12, 16)
    assert grid.shape == (1, 12, 16, 2)
    u = (2 * torch.arange(16, dtype=torch.float64) + 1) / 16 - 1
    v = (2 * torch.arange(12, dtype=torch.float64) + 1) / 12 - 1
    torch.testing.assert_close(grid[0, :, :, 0], u.expand(12, 16))
    torch.testing.assert_close(grid[0, :, :, 1], v[:, None].expand(12, 16))
    # and grid_sample with that grid returns the image exactly
    img = torch.rand(1, 3, 12, 16, dtype=torch.float64)
    out = G.warp(img, depth, torch.eye(4, dtype=torch.float64)[None], K, inv_K)
    torch.testing.assert_close(out, img)


def test_rotation_is_orthonormal_and_matches_rodrigues():
    aa = torch.tensor([[[0.0, 0.0, math.pi / 2]]], dtype=torch.float64)
    R = G.rot_from_axisangle(aa)[0, :3, :3]
    torch.testing.assert_close(R, torch.tensor([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64),
                               atol=1e-6, rtol=0)
    aa = torch.randn(5, 1, 3, dtype=torch.float64)
    R = G.rot_from_axisangle(aa)[:, :3, :3]
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(5, dtype=torch.float64))


def test_transformation_invert_is_inverse():
    aa, t = torch.randn(4, 1, 3, dtype=torch.float64) * 0.3, torch.randn(4, 1, 3, dtype=torch.float64)
    T = G.transformation_from_parameters(aa, t)
    Ti = G.transformation_from_parameters(aa, t, invert=True)
    torch.testing.assert_close(T @ Ti, torch.eye(4, dtype=torch.float64).expand(4, 4, 4))
    torch.testing.assert_close(T[:, :3, 3], t[:, 0])


def test_pure_translation_shifts_pixels_by_fx_t_over_z():
    K, inv_K = _K(1)
    depth = torch.full((1, 1, 12, 16), 4.0, dtype=torch.float64)
    T = G.translation_matrix(torch.tensor([[[0.5, 0.0, 0.0]]], dtype=torch.float64))
    grid = G.project(G.backproject(depth, inv_K), K, T, 12, 16)
    du_pixels = (grid[0, 0, 1, 0] - grid[0, 0, 0, 0]) * 16 / 2  # one pixel apart in u
    assert du_pixels.item() == pytest.approx(1.0)
    shift = (grid[0, 5, 5, 0] + 1) * 16 / 2 - 0.5 - 5
    assert shift.item() == pytest.approx(K[0, 0, 0].item() * 0.5 / 4.0)


def test_scale_intrinsics_numpy_torch_and_roundtrip():
    Kn = np.array([[0.58, 0, 0.5], [0, 1.92, 0.5], [0, 0, 1]])
    Kp = G.scale_intrinsics(Kn, 640, 192)
    assert Kp[0, 0] == pytest.approx(371.2) and Kp[1, 2] == pytest.approx(96)
    assert Kn[0, 0] == 0.58  # input untouched
    np.testing.assert_allclose(G.normalise_intrinsics(Kp, 640, 192), Kn)
    Kt = G.scale_intrinsics(torch.tensor(Kn).expand(3, 3, 3), 640, 192)
    assert Kt.shape == (3, 3, 3) and Kt[2, 0, 0].item() == pytest.approx(371.2)
    with pytest.raises(ValueError):
        G.scale_intrinsics(np.eye(2), 1, 1)


def test_gradcheck_backproject_project_transform():
    K, inv_K = _K(1, 4, 5)
    depth = (torch.rand(1, 1, 4, 5, dtype=torch.float64) + 1).requires_grad_()
    aa = (0.1 * torch.randn(1, 1, 3, dtype=torch.float64)).requires_grad_()
    t = (0.1 * torch.randn(1, 1, 3, dtype=torch.float64)).requires_grad_()
    assert gradcheck(lambda d: G.backproject(d, inv_K), (depth,))
    pts = G.backproject(depth.detach(), inv_K).requires_grad_()
    T = G.transformation_from_parameters(aa.detach(), t.detach())
    assert gradcheck(lambda p: G.project(p, K, T, 4, 5), (pts,))
    assert gradcheck(lambda a, b: G.transformation_from_parameters(a, b), (aa, t))
    assert gradcheck(lambda a, b: G.transformation_from_parameters(a, b, invert=True), (aa, t))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_preserved(dtype):
    K, inv_K = _K(1, 6, 8, dtype)
    depth = torch.ones(1, 1, 6, 8, dtype=dtype)
    grid = G.project(G.backproject(depth, inv_K), K, torch.eye(4, dtype=dtype)[None], 6, 8)
    assert grid.dtype == dtype


def test_shape_errors():
    K, inv_K = _K(1)
    with pytest.raises(ValueError, match="depth must be"):
        G.backproject(torch.ones(1, 12, 16), inv_K)
    with pytest.raises(ValueError, match="inv_K must be"):
        G.backproject(torch.ones(1, 1, 12, 16), torch.eye(3)[None])
    with pytest.raises(ValueError, match="points must be"):
        G.project(torch.ones(1, 3, 192), K, K, 12, 16)
    with pytest.raises(ValueError, match="axisangle"):
        G.transformation_from_parameters(torch.ones(1, 3), torch.ones(1, 1, 3))
    with pytest.raises(ValueError, match="source must be"):
        G.warp(torch.ones(1, 3, 5, 5), torch.ones(1, 1, 12, 16), K, K, inv_K)
