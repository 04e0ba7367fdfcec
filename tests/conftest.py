"""Shared fixtures: small real data and a small network trained on it."""

import os

import pytest
import torch
from torch import nn

if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: more threads per worker would oversubscribe the CPU (slower)
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _threads_kept():
    """A test that sets torch's thread count (the benchmarks' smoke runs set 2) must not leave
    it to the tests after it in the same worker: two workers at 2 threads on 2 cores thrash."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run several times faster on one thread: more only add their start-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (eval semantics)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                if m.weight is not None:
                    m.weight.copy_(0.5 + torch.rand(n, generator=g))
                    m.bias.copy_(0.2 * torch.randn(n, generator=g))
    return model.eval()


def two_conv_net(first: int = 8, second: int = 6, classes: int = 4) -> nn.Module:
    """conv 3->first, BN, ReLU, conv first->second (no bias), BN, ReLU, pool, linear
    second->classes; seeded, with non-trivial BatchNorms, in eval mode."""
    torch.manual_seed(0)
    return randomise_batchnorm(
        nn.Sequential(
            nn.Conv2d(3, first, 3, padding=1), nn.BatchNorm2d(first), nn.ReLU(),
            nn.Conv2d(first, second, 3, padding=1, bias=False), nn.BatchNorm2d(second), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(second, classes),
        )
    ).eval()  # fmt: skip


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 real 8x8 digits: (x_train, y_train, x_test, y_test), fixed split
    (the examples' loader: the tests and the examples use the same split)."""
    from examples.digits import digits as split_digits

    return split_digits()


@pytest.fixture(scope="session")
def trained_digits_cnn(digits) -> nn.Module:
    """A small CNN with BatchNorm and a residual connection, trained for a few seconds."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 24, 3, padding=1), nn.BatchNorm2d(24)
            self.conv2, self.bn2 = nn.Conv2d(24, 24, 3, padding=1), nn.BatchNorm2d(24)
            self.conv3 = nn.Conv2d(24, 32, 3, stride=2, padding=1)
            self.fc = nn.Linear(32 * 4 * 4, 10)

        def forward(self, x):
            h = torch.relu(self.bn1(self.conv1(x)))
            h = torch.relu(h + self.bn2(self.conv2(h)))
            h = torch.relu(self.conv3(h))
            return self.fc(torch.flatten(h, 1))

    torch.manual_seed(0)
    x, y, _, _ = digits
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for idx in torch.randperm(len(y), generator=torch.Generator().manual_seed(1)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()
