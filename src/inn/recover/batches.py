"""Calibration data: any iterable of ``(inputs, targets)`` or ``inputs`` batches, materialised."""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from inn.errors import InnError

__all__ = ["Batch", "as_batches"]

Batch = tuple[Tensor, Tensor | None]  # inputs, targets (None: label-free)


def as_batches(data: Iterable) -> list[Batch]:
    """Materialise an iterable of ``(inputs, targets)`` or ``inputs`` batches."""
    batches: list[Batch] = []
    for item in data:
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
