"""ShapesNet: a compact residual CNN for the built-in shapes models.

Layout for a 64x64 input with ``width=32`` (stride / channels after each child)::

    stem    conv3x3 s2 + BN + ReLU        32x32 x 32
    layer1  2 residual blocks              32x32 x 32
    layer2  2 residual blocks (first s2)   16x16 x 64
    layer3  2 residual blocks (first s2)    8x8  x 128
    pool    global average pooling          1x1  x 128
    fc      linear                          num_classes

The head is exactly global-average-pooling + one linear layer, so the classic CAM of Zhou et al.
(``fc`` weights applied to ``layer3`` feature maps) is well defined.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity (or 1x1 projection) shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Not in-place: hooks (Grad-CAM) may hold on to the block's input and output tensors.
        return torch.relu(out + self.shortcut(x))


def _layer(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ShapesNet(nn.Module):
    """Small ResNet-style classifier (about 0.7 M parameters at ``width=32``).

    Args:
        num_classes: Number of output logits.
        width: Channels of ``stem``/``layer1``; ``layer2`` and ``layer3`` use 2x and 4x.
        blocks: Residual blocks per layer.

    Input (N, 3, H, W) float normalised images; output (N, num_classes) logits. ``layer3``
    has stride 8 (8x8 maps for 64x64 input).
    """

    def __init__(self, num_classes: int = 6, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        if num_classes < 1 or width < 1 or blocks < 1:
            raise ValueError("num_classes, width and blocks must be positive")
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.layer1 = _layer(width, width, blocks, stride=1)
        self.layer2 = _layer(width, 2 * width, blocks, stride=2)
        self.layer3 = _layer(2 * width, 4 * width, blocks, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.pool(x)
        return self.fc(torch.flatten(x, 1))
