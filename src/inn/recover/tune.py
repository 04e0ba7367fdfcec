"""Partition tuning (the paper's Pipeline B): at fixed widths, train only where the channels sit.

A resized integral model samples its weights at uniform points. Moving those points (and,
optionally, the biases and normalisation parameters) to minimise a loss on a small calibration
set recovers most of what resizing lost, in minutes and without touching the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from inn.continuous import Partition
from inn.convert import IntegralModel
from inn.layers import IntegralLayer
from inn.recover.batches import Batch, as_batches
from inn.recover.calibration import FitReport, fit_calibration
from inn.recover.losses import mean_loss
from inn.recover.settings import FitSettings

__all__ = ["TUNING", "tune_partition"]

log = logging.getLogger(__name__)

TUNING = FitSettings(steps=150, lr=0.05)  # the defaults of partition tuning


def _full_width_outputs(imodel: IntegralModel, batches: list[Batch]) -> list[Tensor]:
    with imodel.widths_kept(), torch.no_grad():  # keeps points placed before tuning
        imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
        return [imodel(x) for x, _ in batches]


def tune_partition(
    imodel: IntegralModel,
    data: Iterable,
    *,
    settings: FitSettings | None = None,
    train_biases: bool = False,
    **changes: Any,
) -> FitReport:
    """Pipeline B: train the partition points of the resized groups on calibration data.

    Every resizable group narrower than its full width gets trainable points (strictly increasing
    inside [0, 1] by construction), starting from the uniform points; all other parameters are
    frozen during tuning and their ``requires_grad`` flags are restored afterwards. The model is
    used in eval mode. A later ``resize`` returns the resized groups to uniform points.

    Args:
        imodel: a converted and resized model.
        data: calibration batches: ``(inputs, targets)`` or ``inputs``; a few hundred images.
        settings: the fit (default :data:`TUNING`: 150 steps, lr 0.05, ``loss="kl"``:
            distillation from the same model at full width, label-free).
        train_biases: also train biases and normalisation parameters (they are then changed).
        **changes: fields of ``settings`` to change (``steps=50, loss="mse"``).

    Returns:
        A :class:`FitReport`; the model keeps the best points found.
    """
    settings = (TUNING if settings is None else settings).replace(**changes)
    batches = as_batches(data)
    references: list[Tensor | None] = (
        [None] * len(batches)
        if settings.loss == "labels"
        else list(_full_width_outputs(imodel, batches))
    )
    params: list[nn.Parameter] = []
    for part in {id(p): p for p in _narrowed_partitions(imodel)}.values():
        logits = part.make_trainable(like=next(imodel.parameters(), None)).logits
        logits.requires_grad_(False)  # trained below, frozen again afterwards
        params.append(logits)
    if train_biases:
        for module in imodel.modules():
            if isinstance(module, IntegralLayer):
                for name in ("bias", "weight") if module.is_norm else ("bias",):
                    function = getattr(module, f"{name}_function", None)
                    if function is not None:
                        params.append(function.values)
    if not params:
        log.info("tune_partition: nothing to tune (every group at full width)")
        value = mean_loss(imodel, batches, references, settings.loss)
        return FitReport(value, value, 0, 0.0)
    return fit_calibration(imodel, params, batches, references, settings, desc="tuning partitions")


def _narrowed_partitions(imodel: IntegralModel) -> list[Partition]:
    """Partitions of the resizable groups that are narrower than full width (and not 1 point)."""
    return [imodel.partition(g.name) for g in imodel.resizable_groups if 1 < g.size < g.full_size]
