"""User models written the way much published code is: ``x.view(...)`` on the input and on
intermediates, ``torch.flatten`` / ``reshape``, functional ReLUs and pooling, no global average
pooling. Importable as ``user_models:<factory>`` (tests put this folder on the path)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet(nn.Module):
    """LeNet-5 for 32x32 RGB: conv-relu-pool twice, then a flatten + linear head (no GAP)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, 3, 32, 32)  # old code re-asserts the input shape with view
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc3(F.relu(self.fc2(x)))


class FlatHeadNet(nn.Module):
    """Two conv blocks, then ``torch.flatten`` and ``reshape`` into a linear head."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.block1 = nn.Conv2d(3, 8, 3, padding=1)
        self.block2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8 * 8 * 8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 3, 16, 16)
        x = F.relu(self.block2(F.relu(self.block1(x))))
        return self.head(torch.flatten(x, 1))


class _Shortcut(nn.Module):
    """Option-A shortcut as a lambda layer: subsample and zero-pad channels."""

    def __init__(self, planes: int):
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class _Block(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = _Shortcut(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class OldStyleResNet20(nn.Module):
    """ResNet-20 for CIFAR-10 as the published checkpoint's own code writes it: functional
    ReLUs, ``F.avg_pool2d(out, out.size()[3])`` and ``out.view(out.size(0), -1)``; no ReLU,
    pooling or flatten modules. Its keys match ``../shared/data/cifar10-resnet20``."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[_Block(16, 16) for _ in range(3)])
        self.layer2 = nn.Sequential(_Block(16, 32, 2), _Block(32, 32), _Block(32, 32))
        self.layer3 = nn.Sequential(_Block(32, 64, 2), _Block(64, 64), _Block(64, 64))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def lenet(num_classes: int = 10, seed: int = 0) -> LeNet:
    """A LeNet with seeded random weights (``user_models:lenet(seed=1)``)."""
    torch.manual_seed(seed)
    return LeNet(num_classes)


def flat_head_net(seed: int = 0) -> FlatHeadNet:
    torch.manual_seed(seed)
    return FlatHeadNet()


def resnet20_old_style() -> OldStyleResNet20:
    return OldStyleResNet20()
