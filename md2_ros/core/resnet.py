"""ResNet18/34/50 encoders with torchvision-identical ``state_dict`` keys.

Written from the ResNet paper (He et al. 2016) so that no torchvision import is
needed; the parameter names (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``,
``layer2.0.downsample.0.weight`` ...) match torchvision's, so ImageNet weights and
the official Monodepth2 ``encoder.pth`` load strictly. The ImageNet head (``fc``)
is not built: it is unused by the depth and pose nets.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = 0.45
IMAGENET_STD = 0.225


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 bottleneck block (ResNet50), stride on the 3×3 as torchvision v1.5."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_SPECS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResnetEncoder(nn.Module):
    """ResNet feature pyramid for depth (1 image) or pose (``num_input_images`` stacked frames).

    Input: B×(3·n)×H×W in [0, 1]; it is normalised inside as (x − 0.45)/0.225.
    Output: list of 5 features at strides 2, 4, 8, 16, 32 with channels ``num_ch_enc``
    ([64, 64, 128, 256, 512], ×4 for the last four in ResNet50).
    """

    def __init__(self, num_layers: int = 18, num_input_images: int = 1, weights_init: str | Path | None = None):
        super().__init__()
        if num_layers not in _SPECS:
            raise ValueError(f"num_layers must be one of {sorted(_SPECS)}, got {num_layers}")
        if num_input_images < 1:
            raise ValueError(f"num_input_images must be >= 1, got {num_input_images}")
        block, counts = _SPECS[num_layers]
        self.num_layers = num_layers
        self.num_input_images = num_input_images
        self.conv1 = nn.Conv2d(3 * num_input_images, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._cin = 64
        self.layer1 = self._make_layer(block, 64, counts[0], 1)
        self.layer2 = self._make_layer(block, 128, counts[1], 2)
        self.layer3 = self._make_layer(block, 256, counts[2], 2)
        self.layer4 = self._make_layer(block, 512, counts[3], 2)
        self.num_ch_enc = [64] + [c * block.expansion for c in (64, 128, 256, 512)]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if weights_init is not None:
            self.load_imagenet(weights_init)

    def _make_layer(self, block, planes: int, count: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._cin, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._cin, planes, stride, downsample)]
        self._cin = planes * block.expansion
        layers += [block(self._cin, planes) for _ in range(1, count)]
        return nn.Sequential(*layers)

    def load_imagenet(self, path_or_state: str | Path | dict) -> None:
        """Load a torchvision-layout ResNet ``state_dict`` (file or dict), strictly.

        ``fc.*`` is dropped; for multi-image encoders ``conv1.weight`` (64×3×7×7) is
        repeated across the input frames and divided by their number.
        """
        if isinstance(path_or_state, (str, Path)):
            path = Path(path_or_state)
            if not path.is_file():
                raise FileNotFoundError(f"weights_init: no such file {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            state = dict(path_or_state)
        if not isinstance(state, dict):
            raise ValueError(f"weights_init {path_or_state}: expected a state_dict, got {type(state).__name__}")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        w = state.get("conv1.weight")
        if w is not None and self.num_input_images > 1 and w.shape[1] == 3:
            state["conv1.weight"] = torch.cat([w] * self.num_input_images, 1) / self.num_input_images
        self.load_state_dict(state, strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3 * self.num_input_images:
            raise ValueError(f"expected B×{3 * self.num_input_images}×H×W input, got {tuple(x.shape)}")
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]
