"""Smoothing the continuous weights of a converted network (the paper's gradient-descent step).

Conversion sets the node values to the discrete weights, so the continuous weights are only as
smooth as the permutation made them. Here the node values are trained at full width to keep the
network's outputs (distillation on calibration data) while a penalty on their differences along
the continuous axes makes them smoother, so that sampling at fewer points loses less.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from inn.convert import IntegralModel
from inn.errors import InnError
from inn.layers import IntegralLayer
from inn.loop import FitReport as TuneReport
from inn.loop import as_batches, fit_calibration

__all__ = ["roughness", "roughness_penalty", "smooth_weights"]


def roughness(values: Tensor, dims: Iterable[int], order: int = 2) -> Tensor:
    """Mean squared ``order``-th difference along ``dims``, relative to the mean square value."""
    scale = values.detach().pow(2).mean().clamp_min(1e-12)
    total = values.new_zeros(())
    for d in dims:
        if values.shape[d] > order:
            total = total + torch.diff(values, n=order, dim=d).pow(2).mean()
    return total / scale


def _weight_values(imodel: IntegralModel) -> list[tuple[list[int], Tensor]]:
    """The node values of every integral layer's weight, with its continuous axes."""
    out = []
    for module in imodel.modules():
        if isinstance(module, IntegralLayer) and not module.is_norm and "weight" in module._layouts:
            out.append((list(module._layouts["weight"][0]), module.weight_function.values))
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
    steps: int = 100,
    lr: float = 1e-3,
    loss: str = "kl",
    patience: int = 4,
    eval_every: int = 10,
    progress: bool = False,
) -> TuneReport:
    """Train the weight node values at full width: distillation + ``strength`` x roughness.

    Only the weights of integral layers change; the widths the model had are restored
    afterwards. The reported losses are distillation + penalty; the best state by that measure is
    kept.
    """
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
            imodel, params, batches, references, loss=loss, steps=steps, lr=lr, patience=patience,
            eval_every=eval_every, progress=progress, desc="smoothing weights", regulariser=regulariser,
        )  # fmt: skip
    finally:
        imodel.resize(widths=sizes)
