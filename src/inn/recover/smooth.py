"""Smoothing the continuous weights of a converted network (the paper's gradient-descent step).

Conversion sets the node values to the discrete weights, so the continuous weights are only as
smooth as the permutation made them. Here the node values are trained at full width to keep the
network's outputs (distillation on calibration data) while a penalty on their differences along
the continuous axes makes them smoother, so that sampling at fewer points loses less.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from inn.convert import IntegralModel
from inn.errors import InnError
from inn.layers import IntegralLayer
from inn.recover.batches import as_batches
from inn.recover.calibration import FitReport, fit_calibration
from inn.recover.settings import FitSettings

__all__ = ["SMOOTHING", "roughness", "roughness_penalty", "smooth_weights"]

SMOOTHING = FitSettings(steps=100, lr=1e-3)  # the defaults of weight smoothing


def roughness(values: Tensor, dims: Iterable[int], order: int = 2) -> Tensor:
    """Mean squared ``order``-th difference along ``dims``, relative to the mean square value."""
    scale = values.detach().pow(2).mean().clamp_min(1e-12)
    total = values.new_zeros(())
    for d in dims:
        if values.shape[d] > order:
            total = total + torch.diff(values, n=order, dim=d).pow(2).mean()
    return total / scale


def _weight_values(imodel: IntegralModel) -> list[tuple[list[int], Tensor]]:
    """The node values of every integral layer's weight, with its continuous axes; not a
    normalisation's scale (one entry per channel: :meth:`IntegralLayer.weight_axes`), whether
    an integral BatchNorm's or that of a norm resized through its own forward."""
    out = []
    for module in imodel.modules():
        if isinstance(module, IntegralLayer):
            axes = module.weight_axes()
            if "weight" in axes:
                out.append((list(axes["weight"]), module.weight_function.values))
    return out


def roughness_penalty(
    imodel: IntegralModel, strength: float, order: int = 2
) -> Callable[[], Tensor]:
    """``penalty()``: ``strength`` x the mean :func:`roughness` of the weights' node values."""
    functions = _weight_values(imodel)

    def penalty() -> Tensor:
        total = sum(roughness(values, dims, order) for dims, values in functions)
        return strength * total / max(len(functions), 1)

    return penalty


def smooth_weights(
    imodel: IntegralModel,
    data: Iterable,
    *,
    strength: float = 0.1,
    order: int = 2,
    settings: FitSettings | None = None,
    **changes: Any,
) -> FitReport:
    """Train the weight node values at full width: distillation + ``strength`` x roughness.

    Only the weights of integral layers change; the widths the model had are restored
    afterwards. The reported losses are distillation + penalty; the best state by that measure is
    kept.

    Args:
        strength: the weight of the penalty: ``strength`` x the mean :func:`roughness`.
        order: the order of the differences in :func:`roughness` (1 or 2).
        settings: the fit (default :data:`SMOOTHING`: 100 steps, lr 1e-3, ``loss="kl"``).
        **changes: fields of ``settings`` to change (``steps=30``).
    """
    settings = (SMOOTHING if settings is None else settings).replace(**changes)
    if strength < 0 or order not in (1, 2):
        raise InnError(f"need strength >= 0 and order in (1, 2), got {strength}, {order}")
    batches = as_batches(data)
    sizes = {g.name: g.size for g in imodel.resizable_groups}
    imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
    with torch.no_grad():
        references = [imodel(x) for x, _ in batches]
    regulariser = roughness_penalty(imodel, strength, order)
    params = [p for _, p in _weight_values(imodel)]
    try:
        return fit_calibration(
            imodel, params, batches, references, settings, desc="smoothing weights",
            regulariser=regulariser,
        )  # fmt: skip
    finally:
        imodel.resize(widths=sizes)
