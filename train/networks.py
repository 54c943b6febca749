"""Build the depth and pose networks a training config asks for."""
from __future__ import annotations

import torch
from torch import nn

from md2_ros.core.depth_decoder import DepthDecoder
from md2_ros.core.geometry import transformation_from_parameters
from md2_ros.core.model import DepthModel
from md2_ros.core.pose_cnn import PoseCNN
from md2_ros.core.pose_decoder import PoseDecoder
from md2_ros.core.resnet import ResnetEncoder

from .config import TrainConfig
from .objective import STEREO_UNIT


def _weights(cfg: TrainConfig):
    return None if cfg.weights_init in ("", "none", None) else cfg.weights_init


class PoseNet(nn.Module):
    """All pose variants behind one call: ``forward(inputs) -> {("cam_T_cam", 0, f): B×4×4}``.

    ``pairs`` feeds (source, target) in temporal order, one pair per source frame, all pairs
    in a single batched forward (DDP-friendly); the transform is inverted for past frames so it
    always maps target-camera points into the source camera.
    """

    def __init__(self, cfg: TrainConfig, depth_encoder: nn.Module | None = None):
        super().__init__()
        self.kind, self.input = cfg.pose_model_type, cfg.pose_model_input
        self.ids = cfg.temporal_ids
        self.input_scale = cfg.pose_input_scale  # 1 = frames at half size: pose is global, 1/4 of the cost
        n_in = 2 if self.input == "pairs" else len(self.ids) + 1
        n_out = 1 if self.input == "pairs" else len(self.ids)
        if self.kind == "separate_resnet":
            self.encoder = ResnetEncoder(cfg.num_layers, n_in, weights_init=_weights(cfg))
            self.decoder = PoseDecoder(self.encoder.num_ch_enc, 1, n_out)
        elif self.kind == "posecnn":
            self.cnn = PoseCNN(n_in)
        else:  # shared: pose decoder on the depth encoder's features of each frame
            if depth_encoder is None:
                raise ValueError("pose_model_type=shared needs the depth encoder")
            self.decoder = PoseDecoder(depth_encoder.num_ch_enc, n_in, n_out)
            self._shared = [depth_encoder]  # not registered: owned by the depth model

    def _run(self, frames: list[torch.Tensor]):
        """frames: list of B×3×H×W -> (axisangle, translation) B×F×1×3."""
        if self.kind == "separate_resnet":
            return self.decoder([self.encoder(torch.cat(frames, 1))])
        if self.kind == "posecnn":
            return self.cnn(torch.cat(frames, 1))
        feats = [self._shared[0](f) for f in frames]
        return self.decoder(feats)

    def forward(self, inputs: dict) -> dict:
        out = {}
        if not self.ids:
            return out
        k = self.input_scale
        if self.input == "all":
            frames = [inputs[("color_aug", f, k)] for f in [0] + self.ids]
            aa, t = self._run(frames)
            for i, f in enumerate(self.ids):
                out[("cam_T_cam", 0, f)] = transformation_from_parameters(aa[:, i], t[:, i])
            return out
        b = inputs[("color_aug", 0, k)].shape[0]
        first, second = [], []
        for f in self.ids:  # temporal order: (past, target) or (target, future)
            pair = (inputs[("color_aug", f, k)], inputs[("color_aug", 0, k)])
            first.append(pair[0] if f < 0 else pair[1])
            second.append(pair[1] if f < 0 else pair[0])
        aa, t = self._run([torch.cat(first, 0), torch.cat(second, 0)])
        for i, f in enumerate(self.ids):
            sl = slice(i * b, (i + 1) * b)
            out[("cam_T_cam", 0, f)] = transformation_from_parameters(aa[sl, 0], t[sl, 0], invert=f < 0)
        return out


class Networks(nn.Module):
    """Depth model + pose net (+ predictive-mask decoder) as one module, for DDP and checkpoints."""

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.cfg = cfg
        # stereo training learns depth in units of STEREO_UNIT metres (see objective.py), so the exported
        # model carries depth_scale=STEREO_UNIT and is metric; a mono model is relative (median scaling)
        # velocity supervision (train/velocity.py) sets the unit to metres (STEREO_UNIT metres with stereo)
        sources = [n for n, on in (("stereo", cfg.use_stereo), ("odometry", cfg.velocity_weight > 0)) if on]
        self.depth = DepthModel(cfg.num_layers, cfg.height, cfg.width, cfg.min_depth, cfg.max_depth,
                                depth_scale=STEREO_UNIT if cfg.use_stereo else 1.0, metric=bool(sources),
                                scales=tuple(range(4)), weights_init=_weights(cfg), scale_source="+".join(sources))
        self.pose = PoseNet(cfg, self.depth.encoder) if cfg.temporal_ids else None
        if cfg.velocity_weight > 0 and not cfg.use_stereo:   # metres per network unit, from odometry
            self.register_buffer("metres_per_unit", torch.tensor(1.0))
            self.register_buffer("unit_initialised", torch.tensor(False))
        self.mask_decoder = None
        if cfg.predictive_mask:
            self.mask_decoder = DepthDecoder(self.depth.encoder.num_ch_enc, tuple(range(4)),
                                             num_output_channels=len(cfg.frame_ids) - 1)

    def sync_depth_scale(self) -> None:
        """Give the depth model the metres per unit learnt from odometry (no-op otherwise)."""
        if hasattr(self, "metres_per_unit"):
            self.depth.config.depth_scale = float(self.metres_per_unit)

    def forward(self, inputs: dict) -> dict:
        feats = self.depth.encoder(inputs[("color_aug", 0, 0)])
        outputs = dict(self.depth.decoder(feats))
        if self.mask_decoder is not None:
            for k, v in self.mask_decoder(feats).items():
                outputs[("predictive_mask", k[1])] = v
        if self.pose is not None:
            outputs.update(self.pose(inputs))
        return outputs
