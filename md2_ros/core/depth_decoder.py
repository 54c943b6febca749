"""U-Net depth decoder: encoder features -> sigmoid disparity at 4 scales.

Module order matches the official Monodepth2 ``depth.pth`` flat list, so
``self.decoder`` indices 0..9 are the up-convolutions (i, 0) / (i, 1) for
i = 4..0 and 10..13 the disparity heads of scales 0..3.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import Conv3x3, ConvBlock, upsample

NUM_CH_DEC = (16, 32, 64, 128, 256)


class DepthDecoder(nn.Module):
    """``forward(features) -> {("disp", s): B×C×(H/2^s)×(W/2^s)}`` for s in ``scales`` (C = ``num_output_channels``,
    1 for depth; the predictive-mask ablation uses one channel per source frame)."""

    def __init__(self, num_ch_enc: list[int], scales=(0, 1, 2, 3), use_skips: bool = True,
                 num_output_channels: int = 1):
        super().__init__()
        self.num_output_channels = num_output_channels
        self.scales = tuple(scales)
        if not all(0 <= s <= 3 for s in self.scales):
            raise ValueError(f"scales must be within 0..3, got {self.scales}")
        self.use_skips = use_skips
        self.num_ch_enc = list(num_ch_enc)
        layers = []
        for i in range(4, -1, -1):
            cin = self.num_ch_enc[-1] if i == 4 else NUM_CH_DEC[i + 1]
            layers.append(ConvBlock(cin, NUM_CH_DEC[i]))
            cin = NUM_CH_DEC[i] + (self.num_ch_enc[i - 1] if use_skips and i > 0 else 0)
            layers.append(ConvBlock(cin, NUM_CH_DEC[i]))
        # disparity heads are always built for scales 0..3 so the checkpoint layout is fixed
        layers += [Conv3x3(NUM_CH_DEC[s], num_output_channels) for s in range(4)]
        self.decoder = nn.ModuleList(layers)
        self.sigmoid = nn.Sigmoid()

    def forward(self, features: list[torch.Tensor]) -> dict:
        if len(features) != 5:
            raise ValueError(f"expected 5 encoder features, got {len(features)}")
        out = {}
        x = features[-1]
        for n, i in enumerate(range(4, -1, -1)):
            x = upsample(self.decoder[2 * n](x))
            if self.use_skips and i > 0:
                x = torch.cat([x, features[i - 1]], 1)
            x = self.decoder[2 * n + 1](x)
            if i in self.scales:
                out[("disp", i)] = self.sigmoid(self.decoder[10 + i](x))
        return out
