"""bench/kitti_breakdown.py: the groups on a known scene (a level camera over flat ground with a box on it),
and a run over the KITTI sample whose disjoint groups cover every scored point."""
import numpy as np
import torch

from bench import kitti_breakdown as B
from md2_ros.core.model import DepthModel
from md2_ros.synthetic import make_intrinsics


def _inv_K(h, w):
    K = np.eye(4)
    K[:3, :3] = make_intrinsics(h, w)[:3, :3]
    return torch.tensor(np.linalg.inv(K))[None]


def test_groups_on_a_known_scene():
    h, w = 96, 320
    inv_K = _inv_K(h, w)
    ground = B.ground_ray_depth(inv_K, h, w)[0, 0].numpy()
    below = np.isfinite(ground)
    gt = np.where(below, B.CAMERA_HEIGHT * np.where(below, ground, 1), 50.0)       # road, a far wall above
    gt[60:80, 100:140] = np.minimum(gt[60:80, 100:140], 6.0)                       # a box standing on it
    box = np.zeros_like(below)
    box[60:80, 100:140] = gt[60:80, 100:140] < B.CAMERA_HEIGHT * ground[60:80, 100:140] / 1.1
    groups = B._groups(gt.copy(), gt, inv_K)
    assert (groups["above the horizon"] == ~below).all()
    assert (groups["objects nearer than 10 m"] == box).all() and not groups["objects from 10 m"].any()
    assert (groups["road"] == (below & ~box)).all()
    assert not groups["charged by the ground bound"].any()                          # the truth costs nothing
    hole = gt.copy()
    hole[60:80, 100:140] = 5 * B.CAMERA_HEIGHT * ground[60:80, 100:140]              # the box made a far hole
    charged = B._groups(hole, gt, inv_K)["charged by the ground bound"]
    assert charged[60:80, 100:140].all() and charged.sum() == 20 * 40


def test_breakdown_over_the_sample_covers_every_point(kitti_mini, tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    DepthModel(height=96, width=320).save(path)
    sums, abs_rel, n_all, e_all = B.breakdown(path, kitti_mini)
    disjoint = ("above the horizon", "road", "objects nearer than 10 m", "objects from 10 m")
    assert sum(sums[k][0] for k in disjoint) == n_all > 100_000
    assert np.isclose(sum(sums[k][1] for k in disjoint), e_all) and 0 < abs_rel < 2
