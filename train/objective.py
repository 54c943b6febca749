"""The Monodepth2 objective, composed from ``md2_ros.core`` losses and geometry.

min-reprojection over sources + auto-masking + full-resolution multi-scale + smoothness,
with every ablation of the paper behind a config flag.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from md2_ros.core.geometry import disp_to_depth, warp
from md2_ros.core.losses import ground_bound, min_reprojection, photometric_error, smoothness

from .config import TrainConfig

# Depth unit of stereo training, in metres: the stereo translation is divided by this (Monodepth2 trains
# with a 0.1 baseline for KITTI's 0.54 m one) and the exported depth model multiplies by it
# (``DepthModel(depth_scale=STEREO_UNIT)``), so it predicts metres. With the raw metric baseline the
# untrained network (disp ~ 0.5, depth ~ 2 * min_depth = 0.2) asks for fx * B / depth ~ 1000 px of
# disparity at 640x192: every warped pixel samples the image border, the photometric gradient is zero
# and S training never starts.
STEREO_UNIT = 5.4


def depth_normalised(cfg: TrainConfig) -> bool:
    """Warp with depth / mean(depth) per image (monocular only; see ``TrainConfig.depth_normalization``)."""
    return cfg.depth_normalization and not cfg.use_stereo


def identity_errors(cfg: TrainConfig, inputs: dict, sources: list, src_scale: int, ssim_weight: float,
                    cache: dict) -> list:
    """Photometric errors of the un-warped sources against the target (auto-masking), one per source.

    They depend only on the images at ``src_scale``: with full-resolution multi-scale every scale uses
    the same ones, so they are computed once per batch (``cache``) instead of once per scale."""
    if src_scale not in cache:
        target = inputs[("color", 0, src_scale)]
        cache[src_scale] = [photometric_error(inputs[("color", f, src_scale)], target, ssim_weight)
                            for f in sources]
    return cache[src_scale]


def compute_losses(cfg: TrainConfig, inputs: dict, outputs: dict, generator: torch.Generator | None = None) -> dict:
    """Return {"loss": scalar, ("loss", s): scalar, ("automask", s): B×1×H×W, ("depth", s): …, ("color", f, s): …}.

    ``outputs`` holds ("disp", s) and ("cam_T_cam", 0, f) from the networks; stereo sources use
    ``inputs["stereo_T"]`` (metres) divided by ``STEREO_UNIT``. Warped images are stored back into
    ``outputs`` for logging.
    """
    ssim_weight = 0.0 if cfg.no_ssim else 0.85
    sources = cfg.frame_ids[1:]
    target_full = inputs[("color", 0, 0)]
    h, w = target_full.shape[2:]
    transforms = {}
    for f in sources:
        if f == "s":
            T = inputs["stereo_T"].float().clone()
            T[:, :3, 3] = T[:, :3, 3] / STEREO_UNIT
        else:
            T = outputs[("cam_T_cam", 0, f)].float()
        transforms[f] = T
    # grid_sample clamps a NaN/inf sampling grid (border padding): the loss stays finite, and its backward
    # then crashes the process (segfault). A non-finite pose, stereo_T or K makes the loss NaN instead,
    # so the trainer skips the step.
    geometry = list(transforms.values()) + [inputs[(k, s)] for k in ("K", "inv_K") for s in set(cfg.scales) | {0}
                                            if (k, s) in inputs]
    finite = torch.stack([torch.isfinite(t).all() for t in geometry]).all()
    normalise = depth_normalised(cfg)
    cache: dict = {}
    losses, total = {}, 0.0
    for s in cfg.scales:
        disp = outputs[("disp", s)].float()
        src_scale = s if cfg.v1_multiscale else 0
        if not cfg.v1_multiscale:
            disp_full = F.interpolate(disp, (h, w), mode="bilinear", align_corners=False)
        else:
            disp_full = disp
        _, depth = disp_to_depth(disp_full, cfg.min_depth, cfg.max_depth)
        outputs[("depth", s)] = depth
        bound = (ground_bound(depth, inputs[("inv_K", src_scale)].float(), tolerance=cfg.ground_bound_tolerance)
                 if cfg.ground_bound_weight else 0.0)
        if normalise:
            depth = depth / depth.mean((2, 3), keepdim=True)
        target = inputs[("color", 0, src_scale)]
        K, inv_K = inputs[("K", src_scale)].float(), inputs[("inv_K", src_scale)].float()
        reproj = []
        for f in sources:
            pred = warp(inputs[("color", f, src_scale)], depth, transforms[f], K, inv_K)
            outputs[("color", f, s)] = pred
            reproj.append(photometric_error(pred, target, ssim_weight))
        ident = [] if cfg.disable_automasking else identity_errors(cfg, inputs, sources, src_scale, ssim_weight,
                                                                    cache)
        mask_loss = 0.0
        if cfg.predictive_mask:
            mask = outputs[("predictive_mask", s)].float()
            if not cfg.v1_multiscale:
                mask = F.interpolate(mask, (h, w), mode="bilinear", align_corners=False)
            reproj = [r * mask[:, i:i + 1] for i, r in enumerate(reproj)]
            mask_loss = 0.2 * F.binary_cross_entropy(mask, torch.ones_like(mask))
        per_pixel, automask = min_reprojection(reproj, ident or None, average=cfg.avg_reprojection,
                                               generator=generator, margin=cfg.automask_margin)
        outputs[("automask", s)] = automask
        loss = per_pixel.mean() + mask_loss
        smooth = smoothness(disp, inputs[("color", 0, s)])
        loss = loss + cfg.disparity_smoothness * smooth / (2 ** s) + cfg.ground_bound_weight * bound
        losses[("loss", s)] = loss
        total = total + loss
    total = total / len(cfg.scales)
    losses["loss"] = torch.where(finite, total, torch.full_like(total, float("nan")))
    return losses
