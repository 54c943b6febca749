"""Velocity supervision (PackNet-SfM, Guizilini et al. 2020): metric scale from odometry during training.

For every used (target, source) pair the pose net's translation (network units) is pulled to the distance
the robot travelled between the two image stamps:

    L_vel = velocity_weight · mean_pairs | ‖t_pred‖ − d / u |,     d = ‖v‖·Δt (see :mod:`train.odometry`)

where ``u`` is metres per network unit. Mono training has no unit of its own (the photometric loss is
invariant to scaling depth and translation together), so odometry sets it: ``u`` is one number, set
from the first batch's median ``d / ‖t_pred‖`` and then following the batches' medians (log-space
running average, ``UNIT_RATE``), while the loss trains the pose net's per-pair translation lengths in
those metres. Tracking ``u`` in closed form rather than by gradient makes a short training metric at
once: pulling the network's own outputs from ~0.01 to metres through the 0.01-scaled pose decoder
takes thousands of steps at Monodepth2's learning rate, and the depth network keeps its well-conditioned
``disp_to_depth`` range. The depth model's ``depth_scale`` is ``u``, so the exported checkpoint is
``metric=True, scale_source="odometry"``. With stereo the unit is fixed at ``STEREO_UNIT`` metres by
the baseline and only the loss applies. Pairs whose odometry is unknown (NaN) are left out and counted
by the dataset (``skipped["pair without odometry"]``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .odometry import OdometryTrack, pair_distances, read_bag_track

log = logging.getLogger("md2_ros.train")
KITTI_PERIOD_NS = 100_000_000   # KITTI records at 10 Hz; frames without stamps are this far apart


UNIT_RATE = 0.1   # how fast the metres-per-unit estimate follows the batch median (log space, per step)


def _pair_terms(cfg: TrainConfig, inputs: dict, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(‖t_pred‖ in network units, odometry distance in metres) of the batch's pairs with a known distance."""
    norms, dists = [], []
    for f in cfg.temporal_ids:
        dist = inputs.get(("odom_dist", f))
        if dist is None:
            continue
        t_norm = torch.linalg.norm(outputs[("cam_T_cam", 0, f)][:, :3, 3].float(), dim=1)
        dist = dist.to(t_norm.device).float().reshape(-1)
        ok = torch.isfinite(dist)
        norms.append(t_norm[ok])
        dists.append(dist[ok])
    if not norms:
        raise ValueError("velocity_weight > 0 but the batch has no ('odom_dist', f) entries: "
                         "the dataset has no odometry attached (see train/velocity.py)")
    return torch.cat(norms), torch.cat(dists)


def track_unit(nets, norms: torch.Tensor, dists: torch.Tensor) -> torch.Tensor:
    """Update and return ``nets.metres_per_unit`` from the batch's median ratio distance / ‖t‖ (no gradient).

    The first batch sets it; later ones move its log by ``UNIT_RATE`` towards theirs. The depth model's
    ``depth_scale`` follows, so the exported checkpoint predicts metres.
    """
    with torch.no_grad():
        good = norms > 1e-9
        if good.any():
            log_r = torch.log(torch.median(dists[good] / norms[good]).clamp_min(1e-12))
            log_u = torch.log(nets.metres_per_unit)
            new = log_r if not bool(nets.unit_initialised) else log_u + UNIT_RATE * (log_r - log_u)
            nets.metres_per_unit.copy_(torch.exp(new))
            nets.unit_initialised.fill_(True)
        nets.sync_depth_scale()
    return nets.metres_per_unit.detach()


def add_velocity_term(cfg: TrainConfig, inputs: dict, outputs: dict, losses: dict, nets, active: bool = True) -> None:
    """Add ``velocity_weight · mean |‖t_pred‖ − d / unit|`` (network units) to ``losses["loss"]``; record the term as
    "velocity", the pairs used as "velocity_pairs" and the metres per network unit as "metres_per_unit".

    unit: STEREO_UNIT with stereo (fixed by the baseline), else tracked from the odometry (:func:`track_unit`).
    ``active`` False (before ``velocity_start_step``): the unit is tracked, the term is 0.
    """
    from .objective import STEREO_UNIT

    norms, dists = _pair_terms(cfg, inputs, outputs)
    unit = torch.tensor(STEREO_UNIT) if cfg.use_stereo else track_unit(nets, norms, dists)
    # in network units (d / u), not metres: in metres the gradient on the pose output grows with u (~100
    # for a fresh mono network), freezes the translations at their untrained length and with them the
    # depth at the sigmoid's near end (measured: a flat depth map, held-out abs_rel 0.488 = one depth
    # everywhere after 500 steps); u, tracked in closed form, carries the scale
    err = torch.abs(norms - dists / unit.to(norms.device))
    term = cfg.velocity_weight * err.mean() if err.numel() and active else norms.sum() * 0.0
    losses["loss"] = losses["loss"] + term
    losses["velocity"] = term.detach()
    losses["velocity_pairs"] = int(err.numel())
    losses["metres_per_unit"] = float(unit)


def _kitti_stamps(dataset) -> dict:
    """{frame id: (len,) ns} from KITTI frame numbers at 10 Hz (layouts without timestamps)."""
    frames = np.array([frame for _, frame, _ in dataset.samples], dtype=np.int64)
    return {f: (frames + f) * KITTI_PERIOD_NS for f in dataset.int_frame_ids}


def _poses_track(path) -> OdometryTrack:
    """Track of one KITTI-layout drive from its poses file (line i = frame i, 10 Hz)."""
    from .evaluate_pose import read_kitti_poses

    poses = read_kitti_poses(path)
    return OdometryTrack.from_positions(np.arange(len(poses)) * KITTI_PERIOD_NS, poses[:, :3, 3], str(path))


def _poses_distances(cfg: TrainConfig, dataset, stamps: dict) -> tuple[dict, int, str]:
    """Pair distances of a KITTI-layout dataset from poses files: ``data.poses_file`` for a one-drive
    dataset, or "auto" = each drive's own ``<drive>/poses.txt`` (any number of drives)."""
    folders = np.array([folder for folder, _, _ in dataset.samples])
    names = list(dict.fromkeys(folders.tolist()))
    if cfg.data.poses_file != "auto" and len(names) != 1:
        raise ValueError(f"data.poses_file covers one drive, but the dataset spans {len(names)} drives; "
                         "use data.poses_file=auto to read each drive's own poses.txt")
    dists = {f: np.full(len(folders), np.nan, dtype=np.float32) for f in stamps if f != 0}
    skipped, sources = 0, []
    for name in names:
        path = cfg.data.poses_file
        if path == "auto":
            path = Path(dataset.data_path) / name / "poses.txt"
        idx = np.flatnonzero(folders == name)
        track = _poses_track(path)
        part, sk = pair_distances(track, stamps[0][idx], {f: s[idx] for f, s in stamps.items() if f != 0},
                                  cfg.data.odometry_max_gap)
        for f, d in part.items():
            dists[f][idx] = d
        skipped += sk
        sources.append(track.source)
    return dists, skipped, sources[0] if len(sources) == 1 else f"{len(sources)} poses files ({sources[0]}, ...)"


def attach_odometry(cfg: TrainConfig, dataset) -> dict:
    """Give every sample of ``dataset`` its ("odom_dist", f) targets; returns {"pairs", "skipped", "source"}.

    Bags: ``data.odometry_topic`` ("" = the only Odometry/TwistStamped topic). KITTI-layout folders:
    ``data.poses_file`` ("auto" = ``<drive>/poses.txt``, as the synthetic layout writes it).
    """
    from .datasets import RosbagDataset

    if isinstance(dataset, torch.utils.data.ConcatDataset):   # one dataset per drive (data.split=all)
        if cfg.data.poses_file != "auto":
            raise ValueError(f"data.poses_file covers one drive, but the dataset spans {len(dataset.datasets)} "
                             "drives; use data.poses_file=auto to read each drive's own poses.txt")
        parts = [attach_odometry(cfg, part) for part in dataset.datasets]
        return {"pairs": sum(p["pairs"] for p in parts), "skipped": sum(p["skipped"] for p in parts),
                "source": f"{len(parts)} poses files ({parts[0]['source']}, ...)"}
    if isinstance(dataset, RosbagDataset):
        track = read_bag_track(dataset.bag, cfg.data.odometry_topic or None)
        stamps = dataset.frame_stamps()
        dists, skipped = pair_distances(track, stamps[0], {f: s for f, s in stamps.items() if f != 0},
                                        cfg.data.odometry_max_gap)
        source = track.source
    elif hasattr(dataset, "samples") and cfg.data.poses_file:
        dists, skipped, source = _poses_distances(cfg, dataset, _kitti_stamps(dataset))
    else:
        raise ValueError("velocity_weight > 0 needs odometry: a bag with an Odometry/TwistStamped topic "
                         "(data.kind=rosbag) or data.poses_file for a KITTI-layout drive")
    dataset.odometry = dists
    if skipped:
        dataset.skipped["pair without odometry"] = skipped
    pairs = sum(len(d) for d in dists.values())
    log.info("velocity supervision: %d of %d pairs have odometry (%s)", pairs - skipped, pairs, source)
    if skipped == pairs:
        raise ValueError(f"velocity supervision: no image pair is covered by the odometry of {source} "
                         f"(max gap {cfg.data.odometry_max_gap} s)")
    return {"pairs": pairs, "skipped": skipped, "source": source}
