"""Layer output classification and reshaping, on synthetic shapes with known answers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explain.layers import _token_grid, classify_output, first_tensor, probe_model, to_nchw


@pytest.mark.parametrize(
    ("length", "input_hw", "expected"),
    [
        (197, (224, 224), (1, (14, 14))),  # ViT-B/16: class token
        (198, (224, 224), (2, (14, 14))),  # DeiT distilled: class + distillation tokens
        (201, (224, 224), (5, (14, 14))),  # class + 4 register tokens
        (49, (224, 224), (0, (7, 7))),  # Swin: patch tokens only
        (1 + 14 * 20, (224, 320), (1, (14, 20))),  # non-square input
        (3, (224, 224), (2, (1, 1))),
    ],
)
def test_token_grid(length, input_hw, expected):
    assert _token_grid(length, input_hw) == expected


def test_token_grid_rejects_sequences_that_are_not_patches():
    assert _token_grid(77, (224, 224)) is None  # e.g. a text sequence


def test_classify_layouts():
    conv = classify_output("c", nn.Conv2d(3, 64, 3), torch.zeros(1, 64, 56, 56), (224, 224), 1, 0)
    assert (conv.kind, conv.layout, conv.grid, conv.channels) == ("spatial", "nchw", (56, 56), 64)
    norm = classify_output("n", nn.LayerNorm(96), torch.zeros(1, 56, 56, 96), (224, 224), 1, 0)
    assert (norm.layout, norm.grid, norm.channels) == ("nhwc", (56, 56), 96)
    vec = classify_output("v", nn.Linear(3, 10), torch.zeros(1, 10), (224, 224), 1, 0)
    assert vec.kind == "vector" and not vec.has_map
    unused = classify_output("u", nn.ReLU(), None, (224, 224), 0, -1)
    assert unused.kind == "unused"


def test_to_nchw_is_exact():
    info = classify_output("t", nn.LayerNorm(4), torch.zeros(1, 1 + 6, 4), (20, 30), 1, 0)
    assert info.grid == (2, 3) and info.prefix_tokens == 1
    tokens = torch.arange(2 * 7 * 4, dtype=torch.float32).reshape(2, 7, 4)
    grid = to_nchw(tokens, info)
    assert grid.shape == (2, 4, 2, 3)
    for row in range(2):
        for col in range(3):
            torch.testing.assert_close(grid[:, :, row, col], tokens[:, 1 + row * 3 + col])


def test_first_tensor_of_structured_outputs():
    t = torch.ones(1)
    assert first_tensor((None, t)) is t
    assert first_tensor({"logits": t}) is t
    assert first_tensor("text") is None


class _Net(nn.Module):
    """conv -> in-place ReLU -> max-pool -> conv -> ReLU -> global pool -> linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def test_probe_picks_last_conv_activation_before_pooling():
    probe = probe_model(_Net().eval(), torch.randn(1, 3, 32, 32))
    # features.4 (in-place ReLU) returns the same tensor as features.3; the later name wins,
    # and the final max-pool (and the container that returns it) is skipped.
    assert probe.default_layer == "features.4"
    by_name = {i.name: i for i in probe.layers}
    assert by_name["features.4"].grid == (16, 16)
    assert by_name["unused"].kind == "unused" and by_name["features.1"].calls == 1
    assert probe.num_outputs == 3


class _NormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: batch norm, an Identity ``drop``, then an in-place ReLU6."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.drop = nn.Identity()
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


def test_identity_inside_a_block_does_not_hide_the_last_map():
    # drop (Identity) returns the tensor that act then modifies in place and returns: all three
    # modules give one tensor. The Identity must neither skip it nor name it.
    model = nn.Sequential()
    model.add_module("conv_head", nn.Conv2d(3, 8, 3, padding=1))
    model.add_module("bn2", _NormAct(8))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(8, 2))
    assert probe_model(model.eval(), torch.randn(1, 3, 16, 16)).default_layer == "bn2"
