"""Calibration data as batches, whether given as batches or as a dataset of samples."""

from __future__ import annotations

from collections.abc import Iterable

from torch.utils.data import DataLoader, Dataset, IterableDataset

__all__ = ["DATASET_BATCH_SIZE", "batched"]

DATASET_BATCH_SIZE = 64
"""Samples per batch when calibration data is given as a map-style dataset."""


def batched(data: Iterable) -> Iterable:
    """``data`` as an iterable of batches: a map-style :class:`torch.utils.data.Dataset` (its
    items are single samples, e.g. ``(image, label)``) in batches of
    :data:`DATASET_BATCH_SIZE`, in order; anything else (a ``DataLoader``, a list of batches)
    as it is."""
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        return DataLoader(data, batch_size=DATASET_BATCH_SIZE)
    return data
