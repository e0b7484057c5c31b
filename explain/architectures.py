"""Architectures that are not in torchvision, for loading published weights.

The CIFAR ResNets follow He et al. 2016 (section 4.2): depth ``6n + 2`` (20, 32, 44, 56, 110),
3 stages of ``n`` basic blocks with 16/32/64 channels, "option A" shortcuts (subsample and
zero-pad channels, no parameters), global average pooling and one linear layer. Load with::

    load_model("explain.architectures:cifar_resnet20", weights="resnet20.th",
               labels=CIFAR10_CLASSES, preprocess=CIFAR10_PREPROCESS)
    load_model("explain.architectures:cifar_resnet(depth=56)", weights="resnet56.th", ...)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocess

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_PREPROCESS = Preprocess(input_size=(32, 32), mean=IMAGENET_MEAN, std=IMAGENET_STD)


class PadShortcut(nn.Module):
    """Option-A shortcut: take every other pixel and zero-pad the new channels."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.pad = extra_channels // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut(planes - in_planes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs with ``6n + 2`` layers; ``n = blocks_per_stage``."""

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths, strides, in_planes = (16, 32, 64), (1, 2, 2), 16
        for index, (width, stride) in enumerate(zip(widths, strides, strict=True), start=1):
            blocks = []
            for block in range(blocks_per_stage):
                blocks.append(BasicBlock(in_planes, width, stride if block == 0 else 1))
                in_planes = width
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(self.pool(out), 1))


#: Depths of the paper's CIFAR ResNets (Table 6) and their parameter counts there.
CIFAR_RESNET_DEPTHS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}


def cifar_resnet(depth: int = 20, num_classes: int = 10) -> CifarResNet:
    """A CIFAR ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, or any such depth).

    Raises:
        ValueError: ``depth`` is not of the form ``6n + 2`` with ``n >= 1``.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"A CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, ...), not {depth!r}."
        )
    return CifarResNet(blocks_per_stage=(depth - 2) // 6, num_classes=num_classes)


def cifar_resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (0.27 M parameters)."""
    return cifar_resnet(20, num_classes)


def cifar_resnet32(num_classes: int = 10) -> CifarResNet:
    """ResNet-32 for CIFAR-10 (0.46 M parameters)."""
    return cifar_resnet(32, num_classes)


def cifar_resnet44(num_classes: int = 10) -> CifarResNet:
    """ResNet-44 for CIFAR-10 (0.66 M parameters)."""
    return cifar_resnet(44, num_classes)


def cifar_resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR-10 (0.85 M parameters)."""
    return cifar_resnet(56, num_classes)


def cifar_resnet110(num_classes: int = 10) -> CifarResNet:
    """ResNet-110 for CIFAR-10 (1.7 M parameters)."""
    return cifar_resnet(110, num_classes)
