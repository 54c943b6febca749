"""A known camera motion and known depth give near-zero photometric loss through the *training* code path.

Synthetic frames with exact depth and poses (``md2_ros.synthetic``) are rendered at 144×480, written as a
KITTI-layout drive, loaded by the real dataset class at the training size 96×320 (so the intrinsics must be
rescaled by the loader) and collated as the trainer does. The true depth goes in as the network's disparity
(``depth_to_disp``) and the true relative poses as ``("cam_T_cam", 0, f)``, either directly or produced by
``train.networks.PoseNet`` from a stand-in regressor that returns the true motion of each temporal pair.
The loss must be near zero and several times below the loss of a wrong pose, depth, stereo unit or
intrinsics: a sign or direction error anywhere on that path fails here.
"""
import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from md2_ros.core.geometry import depth_to_disp
from md2_ros.synthetic import render_sequence, render_view, write_kitti_layout
from train.config import load_config
from train.data import build_dataset
from train.datasets.base import build_sample
from train.networks import PoseNet
from train.objective import STEREO_UNIT, compute_losses

RAW_H, RAW_W = 144, 480   # rendered size
H, W = 96, 320            # training size
FLIP = np.diag([-1.0, 1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """4 stereo frames as a KITTI drive, the dataset over it and the true depth at the training size."""
    seq = render_sequence(num_frames=4, height=RAW_H, width=RAW_W, seed=1, stereo=True)
    root = tmp_path_factory.mktemp("known_motion")
    write_kitti_layout(seq, root)
    cfg = _cfg(root)
    ds = build_dataset(cfg, is_train=False)
    targets = [frame for _, frame, _ in ds.samples]
    assert targets == [1, 2]
    K = seq.K.copy()  # the rendering camera, rescaled to the training size
    K[0] *= W / RAW_W
    K[1] *= H / RAW_H
    depth = torch.stack([torch.from_numpy(render_view(seq.scene, seq.poses[t], K, H, W)[1])[None] for t in targets])
    return seq, cfg, ds, targets, K, depth


def _cfg(root, *overrides):
    return load_config(None, [f"height={H}", f"width={W}", "batch_size=2", "frame_ids=[0,-1,1]", f"data.path={root}",
                              "data.split=all", "data.num_workers=0", "device=cpu", "disparity_smoothness=0",
                              *overrides])


def _batch(ds, flip=False):
    samples = []
    for i in range(len(ds)):
        raw = ds.load(i)
        samples.append(build_sample(raw.images, raw.K, ds.num_scales, i, side=raw.side, baseline=raw.baseline,
                                    flip=flip))
    return torch.utils.data.default_collate(samples)


def _true_T(seq, target, f, flip=False, unit=1.0):
    """Target-camera points -> source-camera points (the trainer's ``("cam_T_cam", 0, f)``)."""
    T = np.linalg.inv(seq.poses[target + f]) @ seq.poses[target]
    T[:3, 3] /= unit
    return FLIP @ T @ FLIP if flip else T


def _outputs(cfg, depth, poses: dict) -> dict:
    """Network-like outputs: the disparity of ``depth`` at 4 scales and the given transforms."""
    disp = depth_to_disp(depth, cfg.min_depth, cfg.max_depth)
    out = {("disp", s): F.interpolate(disp, scale_factor=0.5 ** s, mode="area") if s else disp for s in range(4)}
    out.update({("cam_T_cam", 0, f): torch.as_tensor(np.stack(T), dtype=torch.float32) for f, T in poses.items()})
    return out


def _loss(cfg, batch, outputs) -> tuple[float, float]:
    """(total loss, fraction of pixels the auto-mask keeps at scale 0)."""
    losses = compute_losses(cfg, batch, outputs, generator=torch.Generator().manual_seed(0))
    return losses["loss"].item(), outputs[("automask", 0)].mean().item()


def _temporal(seq, targets, flip=False, unit=1.0, transform=lambda T: T):
    return {f: [transform(_true_T(seq, t, f, flip, unit)) for t in targets] for f in (-1, 1)}


def test_loader_scales_intrinsics_to_the_training_size(scene):
    seq, _, ds, _, K, _ = scene
    batch = _batch(ds)
    for s in range(4):
        expected = K.copy()
        expected[:2] /= 2 ** s
        np.testing.assert_allclose(batch[("K", s)][0, :3, :3].numpy(), expected, rtol=1e-5)
        np.testing.assert_allclose(batch[("inv_K", s)][0].numpy() @ batch[("K", s)][0].numpy(), np.eye(4), atol=1e-5)
    assert batch[("color", 0, 0)].shape == (2, 3, H, W)


def test_true_motion_and_depth_give_near_zero_loss_and_wrong_ones_do_not(scene):
    seq, cfg, ds, targets, _, depth = scene
    batch = _batch(ds)
    true, kept = _loss(cfg, batch, _outputs(cfg, depth, _temporal(seq, targets)))
    assert true < 0.01, f"true depth and motion leave a photometric loss of {true:.4f}"
    assert kept > 0.9, f"the auto-mask drops {1 - kept:.0%} of pixels under the true motion"
    wrong = {
        "inverted pose": _outputs(cfg, depth, _temporal(seq, targets, transform=np.linalg.inv)),
        "no motion": _outputs(cfg, depth, {f: [np.eye(4)] * 2 for f in (-1, 1)}),
        "depth x 1.5": _outputs(cfg, depth * 1.5, _temporal(seq, targets)),
        "depth x 0.67": _outputs(cfg, depth / 1.5, _temporal(seq, targets)),
    }
    for name, outputs in wrong.items():
        bad, _ = _loss(cfg, batch, outputs)
        assert true < 0.25 * bad, f"{name}: loss {bad:.4f} is not well above the true one {true:.4f}"
    raw_K = dict(batch)  # intrinsics of the rendered size, not rescaled to the training size
    for s in range(4):
        K = batch[("K", s)].clone()
        K[:, 0, :3] *= RAW_W / W
        K[:, 1, :3] *= RAW_H / H
        raw_K[("K", s)], raw_K[("inv_K", s)] = K, torch.linalg.inv(K)
    bad, _ = _loss(cfg, raw_K, _outputs(cfg, depth, _temporal(seq, targets)))
    assert true < 0.25 * bad, f"unscaled intrinsics: loss {bad:.4f} is not well above {true:.4f}"


def test_horizontal_flip_keeps_the_true_motion_consistent(scene):
    """A flipped sample (the augmentation) mirrors images and K: the mirrored depth and motion still fit."""
    seq, cfg, ds, targets, _, depth = scene
    batch = _batch(ds, flip=True)
    true, kept = _loss(cfg, batch, _outputs(cfg, depth.flip(-1), _temporal(seq, targets, flip=True)))
    unmirrored, _ = _loss(cfg, batch, _outputs(cfg, depth.flip(-1), _temporal(seq, targets)))
    assert true < 0.01 and kept > 0.9
    assert true < 0.25 * unmirrored


@pytest.mark.parametrize("flip", [False, True])
def test_stereo_partner_with_depth_in_stereo_units(scene, flip):
    """``stereo_T`` (from the calibration) and STEREO_UNIT: depth in units of STEREO_UNIT metres fits."""
    seq, cfg, ds, targets, _, depth = scene
    stereo = dataclasses.replace(cfg, frame_ids=[0, -1, 1, "s"])
    ds_s = build_dataset(stereo, is_train=False)
    batch = _batch(ds_s, flip=flip)
    d = depth.flip(-1) if flip else depth
    poses = _temporal(seq, targets, flip=flip, unit=STEREO_UNIT)
    true, kept = _loss(stereo, batch, _outputs(stereo, d / STEREO_UNIT, poses))
    metres, _ = _loss(stereo, batch, _outputs(stereo, d, poses))
    assert true < 0.01 and kept > 0.9
    assert true < 0.25 * metres


class _TrueMotion:
    """Stands in for the pose regressor: for each (first, second) pair of frames it returns the motion that
    maps points of the *first* camera into the *second* one (one fixed meaning for every pair, as a network
    would learn). The frames are identified by comparing the input images with the batch's."""

    def __init__(self, seq, batch, targets, frame_ids):
        self.seq = seq
        self.lookup = [(batch[("color_aug", f, 0)][b], targets[b] + f) for b in range(len(targets)) for f in frame_ids]

    def frame(self, image):
        hits = [n for ref, n in self.lookup if torch.equal(ref, image)]
        assert hits, "pose net got an image that is not a frame of the batch"
        return hits[0]

    def __call__(self, frames):
        first, second = frames
        aa, t = [], []
        for a, b in zip(first, second):
            T = np.linalg.inv(self.seq.poses[self.frame(b)]) @ self.seq.poses[self.frame(a)]
            aa.append(cv2.Rodrigues(T[:3, :3])[0].reshape(1, 1, 3))
            t.append(T[:3, 3].reshape(1, 1, 3))
        as_t = lambda x: torch.as_tensor(np.stack(x), dtype=torch.float32)
        return as_t(aa), as_t(t)


def test_pose_net_convention_matches_the_objective(scene, monkeypatch):
    """networks.PoseNet feeds pairs in temporal order and inverts past frames: one consistent pair motion
    must come out as the true target->source transform for both a past and a future source."""
    seq, cfg, ds, targets, _, depth = scene
    batch = _batch(ds)
    pose_cfg = dataclasses.replace(cfg, pose_model_type="posecnn")
    net = PoseNet(pose_cfg)
    monkeypatch.setattr(net, "_run", _TrueMotion(seq, batch, targets, cfg.frame_ids))
    with torch.no_grad():
        poses = net(batch)
    for f in (-1, 1):
        expected = torch.as_tensor(np.stack([_true_T(seq, t, f) for t in targets]), dtype=torch.float32)
        torch.testing.assert_close(poses[("cam_T_cam", 0, f)], expected, atol=1e-4, rtol=1e-4)
    outputs = _outputs(cfg, depth, {})
    outputs.update(poses)
    loss, kept = _loss(cfg, batch, outputs)
    assert loss < 0.01 and kept > 0.9


def test_ground_bound_costs_nothing_at_the_truth_and_charges_a_far_hole(scene):
    """Through the training objective: with ground_bound_weight the true depth and motion score what they score
    without it (the rendered scene stands on its ground plane; only scale 3's 8x-averaged disparity, upsampled,
    crosses the bound anywhere, by < 1 % of the loss), and a far 'vehicle' below the horizon costs clearly more
    with it than without."""
    seq, cfg, ds, targets, _, depth = scene
    bound = _cfg(cfg.data.path, "ground_bound_weight=1")
    batch = _batch(ds)
    poses = _temporal(seq, targets)
    plain, _ = _loss(cfg, batch, _outputs(cfg, depth, poses))
    with_bound, _ = _loss(bound, batch, _outputs(bound, depth, poses))
    assert plain <= with_bound < 1.01 * plain
    hole = depth.clone()
    hole[:, :, 60:80, 120:200] = 80.0
    plain_hole, _ = _loss(cfg, batch, _outputs(cfg, hole, poses))
    bound_hole, _ = _loss(bound, batch, _outputs(bound, hole, poses))
    assert bound_hole > plain_hole + 0.05
