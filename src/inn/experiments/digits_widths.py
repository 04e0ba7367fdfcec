"""Foundation demo: one trained CNN, its layers made integral, sampled at several widths.

A small CNN is trained on scikit-learn's 1,797 real 8x8 handwritten digits (fixed split, seeded),
its convolutions are replaced by integral layers that share one partition per hidden channel
axis, and the network is sampled at fewer channels with no fine-tuning. Channels are not
reordered here (that is what conversion adds), so the accuracy shows how far plain resampling
goes on its own.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

import inn

log = logging.getLogger(__name__)

__all__ = ["WidthResult", "run"]


@dataclass(frozen=True)
class WidthResult:
    width_fraction: float
    channels: tuple[int, int]
    parameters: int
    accuracy: float


def _digits(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _cnn(hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(hidden * 4, 10),
    )


def _integral(model: nn.Sequential) -> tuple[nn.Sequential, list[inn.Partition]]:
    conv1, conv2, linear = model[0], model[2], model[6]
    a, b = inn.Partition(conv1.out_channels), inn.Partition(conv2.out_channels)
    layers = [
        inn.IntegralConv2d(conv1, {"out": a}),  # the image's channel stays discrete
        nn.ReLU(),
        inn.IntegralConv2d(conv2, {"out": b, "in": a}),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        inn.IntegralLinear(linear, {"in": b}, in_block=4),  # classes stay discrete
    ]
    return nn.Sequential(*layers).eval(), [a, b]


def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def run(out_dir: Path, *, hidden: int = 32, epochs: int = 15, seed: int = 0) -> list[WidthResult]:
    """Train, make integral, sample at 100/75/50/25 % width; write ``results.json``."""
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = _digits(seed)
    model = _cnn(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    for _ in tqdm(range(epochs), desc="training the digits CNN", unit="epoch"):
        for idx in torch.randperm(len(y_train)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
    log.info("trained in %.1f s", time.perf_counter() - start)
    model.eval()
    imodel, partitions = _integral(model)
    assert abs(_accuracy(imodel, x_test, y_test) - _accuracy(model, x_test, y_test)) < 1e-6
    results = []
    for fraction in tqdm((1.0, 0.75, 0.5, 0.25), desc="sampling widths"):
        for p in partitions:
            p.resize(max(1, round(fraction * p.full_size)))
        plain = nn.Sequential(
            *(m.to_discrete() if isinstance(m, inn.IntegralLayer) else m for m in imodel)
        )
        results.append(
            WidthResult(
                fraction,
                tuple(p.size for p in partitions),
                sum(t.numel() for t in plain.parameters()),
                _accuracy(plain, x_test, y_test),
            )
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results
