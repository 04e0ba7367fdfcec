"""One call from a trained network to a smaller plain one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from inn.convert import convert
from inn.tune import tune_partition

__all__ = ["prune"]


def prune(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    compression: float | None = None,
    widths: Mapping[str, int] | None = None,
    calib: Iterable | None = None,
    convert_options: Mapping[str, Any] | None = None,
    tune_options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Convert, resize, tune the partitions on ``calib`` (if given) and export.

    Args:
        model: trained network in eval mode (not modified).
        example_inputs: a tensor or tuple of tensors the model accepts.
        compression: fraction of parameters to remove; or ``widths`` per group.
        calib: calibration batches for :func:`inn.tune_partition` (Pipeline B); without it the
            uniform partition is used.

    Returns:
        A plain ``torch.nn.Module`` at the new widths.
    """
    imodel = convert(model, example_inputs, **dict(convert_options or {}))
    imodel.resize(compression, widths=widths)
    if calib is not None:
        tune_partition(imodel, calib, **dict(tune_options or {}))
    return imodel.export()
