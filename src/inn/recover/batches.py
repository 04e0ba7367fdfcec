"""Calibration data: any iterable of ``(inputs, targets)`` or ``inputs`` batches, or a dataset
of samples, materialised as batches."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import Tensor

from inn.data import batched
from inn.errors import InnError

__all__ = ["Batch", "as_batches", "split_holdout"]

Batch = tuple[Tensor, Tensor | None]  # inputs, targets (None: label-free)


def as_batches(data: Iterable) -> list[Batch]:
    """Materialise an iterable of ``(inputs, targets)`` or ``inputs`` batches (a map-style
    dataset of samples: :func:`inn.data.batched`)."""
    batches: list[Batch] = []
    for item in batched(data):
        if isinstance(item, Tensor):
            batches.append((item, None))
        elif isinstance(item, (list, tuple)) and item and isinstance(item[0], Tensor):
            batches.append(
                (item[0], item[1] if len(item) > 1 and isinstance(item[1], Tensor) else None)
            )
        else:
            raise InnError(
                f"a calibration batch must be a tensor or (inputs, targets), got {type(item).__name__}"
            )
    if not batches:
        raise InnError("the calibration data is empty")
    return batches


def _rows(value: Any, rows: slice) -> Any:
    """``value`` (a tensor, ``None``, or a tuple / list of them: a model's outputs) at ``rows``."""
    if isinstance(value, Tensor):
        return value[rows]
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, rows) for v in value)
    return value


def split_holdout(
    batches: list[Batch], references: list[Any], fraction: float
) -> tuple[tuple[list[Batch], list[Any]], tuple[list[Batch], list[Any]]]:
    """``((fit batches, their references), (held batches, theirs))``: the last ``fraction`` of
    every batch's samples held out, at least one sample and never all of them (a batch of one
    sample is fitted whole). ``fraction = 0`` holds nothing out."""
    fit: tuple[list[Batch], list[Any]] = ([], [])
    held: tuple[list[Batch], list[Any]] = ([], [])
    for (x, y), reference in zip(batches, references, strict=True):
        n = len(x)
        k = min(n - 1, max(1, math.ceil(fraction * n))) if fraction > 0 else 0
        for part, rows in ((fit, slice(0, n - k)), (held, slice(n - k, n))):
            if rows.stop > rows.start:
                part[0].append((x[rows], _rows(y, rows)))
                part[1].append(_rows(reference, rows))
    return fit, held
