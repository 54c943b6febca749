"""The small 'posecnn' pose network (7 strided convolutions), an option of the paper."""
from __future__ import annotations

import torch
from torch import nn

from .resnet import IMAGENET_MEAN, IMAGENET_STD


class PoseCNN(nn.Module):
    """``forward(B×3n×H×W in [0,1]) -> (axisangle, translation)``, each B×(n−1)×1×3, ×0.01."""

    def __init__(self, num_input_frames: int = 2):
        super().__init__()
        if num_input_frames < 2:
            raise ValueError("PoseCNN needs at least 2 input frames")
        self.num_input_frames = num_input_frames
        chans = [3 * num_input_frames, 16, 32, 64, 128, 256, 256, 256]
        kernels = [7, 5, 3, 3, 3, 3, 3]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], k, 2, k // 2) for i, k in enumerate(kernels))
        self.pose_conv = nn.Conv2d(256, 6 * (num_input_frames - 1), 1)
        self.relu = nn.ReLU(True)

    def forward(self, x: torch.Tensor):
        if x.dim() != 4 or x.shape[1] != 3 * self.num_input_frames:
            raise ValueError(f"expected B×{3 * self.num_input_frames}×H×W, got {tuple(x.shape)}")
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        for conv in self.convs:
            x = self.relu(conv(x))
        x = self.pose_conv(x).mean(3).mean(2)
        x = 0.01 * x.view(-1, self.num_input_frames - 1, 1, 6)
        return x[..., :3], x[..., 3:]
