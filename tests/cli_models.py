"""Tiny models for the command-line tests (``module:callable`` targets)."""

from torch import nn


def tiny(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, num_classes),
    )  # fmt: skip


def prelu_net(num_classes: int = 10) -> nn.Module:
    """Channel-wise PReLUs (no rule: probed) and a channel-mixing Softmax2d."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.PReLU(8), nn.Conv2d(8, 8, 3), nn.PReLU(), nn.Conv2d(8, 6, 1),
        nn.Softmax2d(), nn.Conv2d(6, num_classes, 1),
    )  # fmt: skip
