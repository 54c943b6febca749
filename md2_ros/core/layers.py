"""Small building blocks shared by the decoders."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Conv3x3(nn.Module):
    """3×3 convolution with reflection padding (keys: ``conv.weight``, ``conv.bias``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU (keys: ``conv.conv.weight``, ``conv.conv.bias``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = Conv3x3(cin, cout)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.conv(x))


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2 upsampling."""
    return F.interpolate(x, scale_factor=2, mode="nearest")
