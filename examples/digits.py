"""Shared by the examples: scikit-learn's real 8x8 digits and a small CNN trained on them.

No download: ``load_digits`` ships with scikit-learn. Not an example itself.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset


class Net(nn.Module):
    """A user's CNN: BatchNorm, a residual connection, a flatten into a linear classifier."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.bn3 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.bn2(self.conv2(h)))
        h = torch.relu(self.bn3(self.conv3(h)))
        return self.fc(torch.flatten(h, 1))


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``: 1,400 / 397 digits, inputs (N, 1, 8, 8) in [0, 1]."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def trained_net(width: int = 32, epochs: int = 5) -> nn.Module:
    """:class:`Net` trained with Adam on the training digits (a few seconds); in eval mode."""
    torch.manual_seed(0)
    x, y, _, _ = digits()
    model = Net(width)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        for idx in torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in [0, 1]."""
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def datasets() -> tuple[TensorDataset, TensorDataset]:
    """``(train, test)`` datasets of ``(input, target)`` pairs: the ``--data`` of ``inn train``."""
    x_train, y_train, x_test, y_test = digits()
    return TensorDataset(x_train, y_train), TensorDataset(x_test, y_test)
