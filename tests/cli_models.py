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


def gray_net(num_classes: int = 10) -> nn.Module:
    """A small CNN with BatchNorm for 1-channel images (``inn train`` tests)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, num_classes),
    )  # fmt: skip


def digit_splits(test_size: int = 300):
    """scikit-learn's 1,797 real 8x8 digits as (train, test) TensorDatasets (``--data``)."""
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import TensorDataset

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    return TensorDataset(x[test_size:], y[test_size:]), TensorDataset(x[:test_size], y[:test_size])
