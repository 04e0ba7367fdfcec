"""One call from a trained network to a smaller plain one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from inn.budget import Budget
from inn.convert import convert
from inn.tune import tune_partition

__all__ = ["TUNE_DEFAULTS", "prune"]

TUNE_DEFAULTS: dict[str, Any] = {"train_biases": True}


def prune(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    compression: float | None = None,
    widths: Mapping[str, int] | None = None,
    budget: Budget | Mapping[str, float] | None = None,
    calib: Iterable | None = None,
    convert_options: Mapping[str, Any] | None = None,
    resize_options: Mapping[str, Any] | None = None,
    tune_options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Convert, resize, tune the partitions on ``calib`` (if given) and export.

    The defaults are the best combination measured (README, "Pruning to a budget"): widths per
    group allocated by the output change each group causes on ``calib`` (data-free without
    it), then partition tuning that also trains the biases, stopping when the loss stalls.

    Args:
        model: trained network in eval mode (not modified).
        example_inputs: a tensor or tuple of tensors the model accepts.
        compression: fraction of parameters to remove; or ``widths`` per group; or a
            ``budget`` in parameters, MACs or latency (see :meth:`IntegralModel.plan`).
        calib: calibration batches: sensitivity of the groups and :func:`inn.tune_partition`
            (Pipeline B); without it, data-free widths and the uniform partition.
        resize_options, tune_options: passed to :meth:`IntegralModel.resize` and
            :func:`inn.tune_partition` (e.g. ``{"round_to": 8}``, ``{"steps": 50}``).

    Returns:
        A plain ``torch.nn.Module`` at the new widths.
    """
    imodel = convert(model, example_inputs, **dict(convert_options or {}))
    resize = dict(resize_options or {})
    if widths is None:
        resize.setdefault("data", calib)
    imodel.resize(compression, widths=widths, budget=budget, **resize)
    if calib is not None:
        tune_partition(imodel, calib, **{**TUNE_DEFAULTS, **dict(tune_options or {})})
    return imodel.export()
