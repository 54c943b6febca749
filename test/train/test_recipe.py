"""The learning recipe's knobs do what they say: depth-normalised warping makes the loss blind to the
global depth scale (so it cannot drift into the sigmoid's saturated end), the per-step LR follows the
warm-up and decay, and the half-size pose input changes the pose but not the batch layout."""
import pytest
import torch

from md2_ros.core.geometry import depth_to_disp
from train.config import load_config
from train.data import build_dataset
from train.networks import Networks
from train.objective import compute_losses
from train.trainer import Trainer

H, W = 64, 96


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from md2_ros.synthetic import render_sequence, write_kitti_layout

    root = tmp_path_factory.mktemp("synth")
    seq = render_sequence(num_frames=4, height=H, width=W, seed=5)
    write_kitti_layout(seq, root)
    return root, seq


def _cfg(root, tmp_path, *overrides):
    return load_config(None, [f"height={H}", f"width={W}", "batch_size=2", f"data.path={root}", "data.split=all",
                              "data.num_workers=0", "device=cpu", "progress=false", f"log_dir={tmp_path}",
                              "image_every=0", "save_every=0", "epoch_checkpoints=false", *overrides])


def _batch(cfg):
    ds = build_dataset(cfg, is_train=False)
    return torch.utils.data.default_collate([ds[0], ds[1]])


def _loss_with_depth(cfg, batch, depth, outputs):
    out = dict(outputs)
    for s in cfg.scales:
        d = torch.nn.functional.interpolate(depth, scale_factor=0.5 ** s, mode="nearest")
        out[("disp", s)] = depth_to_disp(d, cfg.min_depth, cfg.max_depth)
    return compute_losses(cfg, batch, out, generator=torch.Generator().manual_seed(0))["loss"].item()


@pytest.mark.parametrize("normalise", [True, False])
def test_depth_normalisation_makes_the_loss_scale_blind(synth, tmp_path, normalise):
    root, _seq = synth
    cfg = _cfg(root, tmp_path, f"depth_normalization={str(normalise).lower()}")
    batch = _batch(cfg)
    outputs = {}
    for f in (-1, 1):  # a clear forward motion, so that depth matters to the warp
        T = torch.eye(4).repeat(2, 1, 1)
        T[:, 2, 3] = -0.5 * f
        outputs[("cam_T_cam", 0, f)] = T
    depth = 2.0 + 8.0 * torch.rand(2, 1, H, W, generator=torch.Generator().manual_seed(1))
    near, far = _loss_with_depth(cfg, batch, depth, outputs), _loss_with_depth(cfg, batch, 4.0 * depth, outputs)
    if normalise:
        assert far == pytest.approx(near, rel=3e-3)  # smoothness sees disp = affine(1/depth): not exactly blind
    else:
        assert abs(far - near) > 0.05 * near


def test_stereo_is_never_normalised(synth, tmp_path):
    from train.objective import depth_normalised

    root, _seq = synth
    assert depth_normalised(_cfg(root, tmp_path, "depth_normalization=true"))
    assert not depth_normalised(_cfg(root, tmp_path, "depth_normalization=true", "frame_ids=[0,-1,1,s]"))


def test_learning_rate_warms_up_then_decays(synth, tmp_path):
    root, _seq = synth
    cfg = _cfg(root, tmp_path, "learning_rate=1e-3", "warmup_steps=4", "max_steps=8", "lr_decay_at=0.5")
    batch = _batch(cfg)
    trainer = Trainer(cfg, None)
    seen = []
    for _ in range(8):
        trainer.step(batch)
        seen.append(trainer.optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-4, 1e-4, 1e-4, 1e-4])


@pytest.mark.parametrize("decay_at, expected", [(0.5, [1e-3, 1e-4]), (0.0, [1e-5, 1e-5])])
def test_a_step_bounded_decay_replaces_the_epoch_schedule(synth, tmp_path, decay_at, expected):
    """Past 2 × scheduler_step_size epochs (a few hundred steps on a small dataset) the paper's StepLR has cut
    the rate ×0.01; with lr_decay_at the run follows its own step schedule instead."""
    root, _seq = synth
    cfg = _cfg(root, tmp_path, "learning_rate=1e-3", "max_steps=4", f"lr_decay_at={decay_at}")
    batch = _batch(cfg)
    trainer = Trainer(cfg, None)
    trainer.epoch = 2 * cfg.scheduler_step_size + 1
    seen = []
    for _ in range(4):
        trainer.step(batch)
        seen.append(trainer.optimizer.param_groups[0]["lr"])
    assert seen[1:3] == pytest.approx(expected)


def test_half_size_pose_input(synth, tmp_path):
    root, _seq = synth
    batch = _batch(_cfg(root, tmp_path))
    poses = {}
    for k in (0, 1):
        cfg = _cfg(root, tmp_path, f"pose_input_scale={k}")
        torch.manual_seed(0)
        with torch.no_grad():
            out = Networks(cfg)(batch)
        poses[k] = out[("cam_T_cam", 0, 1)]
        assert poses[k].shape == (2, 4, 4)
    assert not torch.allclose(poses[0], poses[1])


@pytest.mark.parametrize("bad", ["lr_decay_at=1.0", "lr_decay_at=-0.1", "warmup_steps=-1", "pose_input_scale=3",
                                 "automask_margin=1.0", "automask_margin=-0.1", "ground_bound_weight=-1",
                                 "ground_bound_tolerance=-0.1"])
def test_bad_recipe_options_are_refused(synth, tmp_path, bad):
    root, _seq = synth
    with pytest.raises(ValueError, match=bad.split("=")[0]):
        _cfg(root, tmp_path, bad)
