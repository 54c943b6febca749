"""Losses: known answers, gradcheck in float64, auto-masking, errors on bad input."""
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from md2_ros.core import geometry as G
from md2_ros.core import losses as L


def _texture(b=1, h=32, w=48, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, h // 4, w // 4, generator=g, dtype=dtype)
    return torch.nn.functional.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)


def test_identical_images_zero_error():
    x = _texture()
    assert L.ssim(x, x).abs().max() < 1e-6
    assert L.photometric_error(x, x).abs().max() < 1e-6
    assert L.photometric_error(x, x).shape == (1, 1, 32, 48)


def test_box3_is_the_3x3_average_pool_with_its_gradient():
    """SSIM's separable 3×3 mean (the CPU path) equals avg_pool2d in value and gradient, any memory layout."""
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(L.box3(x), torch.nn.functional.avg_pool2d(x, 3, 1))
    torch.testing.assert_close(L.box3(x.contiguous(memory_format=torch.channels_last)),
                               torch.nn.functional.avg_pool2d(x, 3, 1))
    w = torch.rand(2, 3, 5, 7, dtype=torch.float64)
    g_box, = torch.autograd.grad((L.box3(x) * w).sum(), x)
    g_pool, = torch.autograd.grad((torch.nn.functional.avg_pool2d(x, 3, 1) * w).sum(), x)
    torch.testing.assert_close(g_box, g_pool)


def test_ssim_range_and_pure_l1_variant():
    x, y = _texture(seed=1), _texture(seed=2)
    s = L.ssim(x, y)
    assert s.shape == x.shape and s.min() >= 0 and s.max() <= 1 and s.mean() > 0.05
    torch.testing.assert_close(L.photometric_error(x, y, ssim_weight=0.0), (x - y).abs().mean(1, keepdim=True))
    manual = 0.85 * s.mean(1, keepdim=True) + 0.15 * (x - y).abs().mean(1, keepdim=True)
    torch.testing.assert_close(L.photometric_error(x, y), manual)


def test_constant_disparity_zero_smoothness_and_edges_discount():
    img = _texture()
    assert L.smoothness(torch.full((1, 1, 32, 48), 0.3), img).item() == pytest.approx(0.0, abs=1e-7)
    disp = torch.zeros(1, 1, 32, 48)
    disp[..., 24:] = 1.0  # a disparity edge at column 24
    flat = torch.zeros(1, 3, 32, 48)
    edge = flat.clone()
    edge[..., 24:] = 1.0  # an image edge in the same place
    assert L.smoothness(disp + 0.5, edge) < 0.5 * L.smoothness(disp + 0.5, flat)
    # mean-normalised: scaling the disparity changes nothing
    torch.testing.assert_close(L.smoothness(3 * (disp + 0.5), flat), L.smoothness(disp + 0.5, flat))


def test_gradcheck_losses():
    x = _texture(1, 6, 7, seed=3, dtype=torch.float64).requires_grad_()
    y = _texture(1, 6, 7, seed=4, dtype=torch.float64)
    assert gradcheck(lambda a: L.ssim(a, y), (x,))
    assert gradcheck(lambda a: L.photometric_error(a, y), (x,))
    d = (torch.rand(1, 1, 6, 7, dtype=torch.float64) + 0.1).requires_grad_()
    assert gradcheck(lambda a: L.smoothness(a, y), (d,))


def test_min_reprojection_takes_per_pixel_minimum():
    a = torch.tensor([[[[1.0, 5.0]]]])
    b = torch.tensor([[[[3.0, 2.0]]]])
    loss, mask = L.min_reprojection([a, b])
    torch.testing.assert_close(loss, torch.tensor([[[[1.0, 2.0]]]]))
    assert mask.sum() == 2
    avg, _ = L.min_reprojection([a, b], average=True)
    torch.testing.assert_close(avg, torch.tensor([[[[2.0, 3.5]]]]))


def test_automask_keeps_only_moving_pixels_static_camera():
    """Static camera, one object moves: the un-warped (identity) error is zero on the static
    background, so auto-masking drops it and keeps the pixels where warping helps."""
    bg = _texture(1, 32, 48, seed=5)
    target, source = bg.clone(), bg.clone()
    target[..., 10:20, 10:20] = 0.9   # an object here in the target…
    source[..., 10:20, 30:40] = 0.9   # …is elsewhere in the source
    K, inv_K = torch.eye(4)[None], torch.eye(4)[None]
    ident_err = L.photometric_error(source, target)
    warped_err = ident_err + 0.02  # an imperfect warp (resampling blur) elsewhere…
    warped_err[..., 10:20, 10:20] = 0.0  # …that fixes the moving object
    loss, mask = L.min_reprojection([warped_err], [ident_err], generator=torch.Generator().manual_seed(0))
    assert mask[..., 12:18, 12:18].all()
    static = torch.ones_like(mask, dtype=torch.bool)
    static[..., 8:22, 8:42] = False
    assert mask[static].sum() == 0  # static background: identity error wins (ties broken by noise)
    assert loss.min() >= -1e-4


def test_automask_margin_keeps_only_pixels_that_warping_explains_clearly_better():
    """margin 0 is the paper's rule (warped < identity); margin m keeps a pixel only where warped <
    (1 − m)·identity, so a pixel that a far-depth warp explains about as well as no motion is dropped."""
    ident = torch.full((1, 1, 2, 3), 0.2)
    warped = torch.tensor([[[[0.19, 0.17, 0.15], [0.10, 0.21, 0.0]]]])
    _, paper = L.min_reprojection([warped], [ident], noise=0.0)
    loss, mask = L.min_reprojection([warped], [ident], noise=0.0, margin=0.2)
    assert paper.flatten().tolist() == [1, 1, 1, 1, 0, 1]
    assert mask.flatten().tolist() == [0, 0, 1, 1, 0, 1]            # kept only below 0.16
    torch.testing.assert_close(loss, torch.minimum(warped, ident * 0.8))


def test_true_depth_and_pose_give_near_zero_error_wrong_ones_do_not():
    """Render a target by warping a textured source through a known depth and motion; the
    reprojection error is ~0 at the truth and clearly larger at a wrong depth or pose."""
    h, w = 48, 64
    K = G.scale_intrinsics(torch.tensor([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), w, h)
    K, inv_K = K[None], torch.linalg.inv(K)[None]
    source = _texture(1, h, w, seed=6)
    yy = torch.linspace(0, 1, h)[:, None].expand(h, w)
    depth = (4.0 + 10.0 * (1 - yy))[None, None]  # nearer at the bottom, like a road
    T = G.transformation_from_parameters(torch.tensor([[[0.0, 0.02, 0.0]]]), torch.tensor([[[0.1, 0.0, -0.5]]]))
    target = G.warp(source, depth, T, K, inv_K)
    valid = (slice(None), slice(None), slice(8, -8), slice(8, -8))

    def err(d, pose):
        return L.photometric_error(G.warp(source, d, pose, K, inv_K), target)[valid].mean().item()

    assert err(depth, T) < 1e-6
    assert err(depth * 1.5, T) > 20 * max(err(depth, T), 1e-4)
    T_wrong = G.transformation_from_parameters(torch.tensor([[[0.0, 0.05, 0.0]]]), torch.tensor([[[0.1, 0.0, -0.5]]]))
    assert err(depth, T_wrong) > 20 * max(err(depth, T), 1e-4)


def test_ground_bound_is_zero_on_a_true_scene_and_pulls_in_a_hole_below_the_horizon():
    """A rendered scene (level camera 1.65 m above a ground plane, boxes standing on it) violates nothing, at any
    scale; a far 'hole' below the horizon (a vehicle moving with the camera) costs and is pulled nearer, the
    road band (the camera-height estimate) is pushed out a little, nothing else moves, and the gradient has no
    component along the global depth scale."""
    from md2_ros import synthetic
    seq = synthetic.render_sequence(num_frames=2, height=48, width=160, seed=3)
    depth = torch.tensor(np.stack(seq.depths))[:, None].float()
    inv_K = torch.linalg.inv(torch.tensor(seq.K)).float()[None].expand(2, 3, 3)
    ground = L.ground_ray_depth(inv_K, 48, 160)
    assert torch.isinf(ground[:, :, :24]).all() and torch.isfinite(ground[:, :, 25:]).all()
    road = (depth[:, :, 40:] - 1.65 * ground[:, :, 40:]).abs() < 0.01 * depth[:, :, 40:]   # the ground, 1.65 m down
    assert road.float().mean() > 0.3 and (depth[:, :, 25:] <= 1.65 * ground[:, :, 25:] * 1.001).all()
    for k in (1.0, 0.02, 30.0):
        assert L.ground_bound(depth * k, inv_K).item() == 0.0
    hole = depth.clone()
    hole[:, :, 30:40, 60:100] = 80.0
    hole.requires_grad_(True)
    loss = L.ground_bound(hole, inv_K)
    assert loss.item() > 0.05
    torch.testing.assert_close(L.ground_bound(hole.detach() * 0.01, inv_K), loss.detach())
    loss.backward()
    grad = hole.grad[0, 0]
    assert (grad[30:40, 60:100] > 0).all()
    assert abs((hole.grad * hole.detach()).sum().item()) < 1e-6 * hole.grad.abs().sum().item() * 80
    grad[30:40, 60:100] = 0
    road = (depth[0, 0, 38:] - 1.65 * ground[0, 0, 38:]).abs() < 0.01 * depth[0, 0, 38:]   # band: rows 38-47 of 48
    road[:2, 60:100] = False                                         # the hole's own rows in the band
    box = depth[0, 0, 38:] < 0.75 * 1.65 * ground[0, 0, 38:]        # objects standing in the band, well off the road
    assert (grad[38:][road] < 0).all() and (grad[38:][box] == 0).all() and box.any()   # only the road sets h
    grad[38:] = 0
    assert (grad == 0).all()
    with pytest.raises(ValueError, match="band"):
        L.ground_bound(depth, inv_K, band=(0.9, 0.5))


def test_loss_shape_errors():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="equal shape"):
        L.ssim(x, torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="ssim_weight"):
        L.photometric_error(x, x, ssim_weight=2)
    with pytest.raises(ValueError, match="disp must be"):
        L.smoothness(torch.rand(1, 2, 8, 8), x)
    with pytest.raises(ValueError, match="non-empty"):
        L.min_reprojection([])
    with pytest.raises(ValueError, match="B×1×H×W"):
        L.min_reprojection([torch.rand(1, 1, 8, 8)], [torch.rand(1, 1, 4, 4)])
