"""Pose decoder: ResNet features of a frame pair -> axis-angle and translation.

Layout of the official ``pose.pth``: ``net.0`` 1×1 squeeze (C→256), ``net.1`` and
``net.2`` 3×3 (256→256, zero padding), ``net.3`` 1×1 (256→6·F). ReLU after the
first three; the output is averaged over H and W and scaled by 0.01.
"""
from __future__ import annotations

import torch
from torch import nn


class PoseDecoder(nn.Module):
    """``forward(features) -> (axisangle, translation)``, each B×F×1×3 (F = ``num_frames_to_predict_for``)."""

    def __init__(self, num_ch_enc: list[int], num_input_features: int = 1, num_frames_to_predict_for: int = 2):
        super().__init__()
        self.num_input_features = num_input_features
        self.num_frames = num_frames_to_predict_for
        self.net = nn.ModuleList([
            nn.Conv2d(num_ch_enc[-1], 256, 1),
            nn.Conv2d(num_input_features * 256, 256, 3, 1, 1),
            nn.Conv2d(256, 256, 3, 1, 1),
            nn.Conv2d(256, 6 * num_frames_to_predict_for, 1),
        ])
        self.relu = nn.ReLU()

    def forward(self, input_features: list[list[torch.Tensor]]):
        if len(input_features) != self.num_input_features:
            raise ValueError(f"expected {self.num_input_features} feature lists, got {len(input_features)}")
        x = torch.cat([self.relu(self.net[0](f[-1])) for f in input_features], 1)
        x = self.relu(self.net[1](x))
        x = self.relu(self.net[2](x))
        x = self.net[3](x).mean(3).mean(2)
        x = 0.01 * x.view(-1, self.num_frames, 1, 6)
        return x[..., :3], x[..., 3:]
