"""Bias calibration of a plain pruned model: the fair control for partition tuning.

A discretely pruned network has no partition to tune; training its biases and normalisation
parameters on the same calibration data, with the same step budget, is what it can do instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from inn.recover.batches import as_batches
from inn.recover.calibration import FitReport, fit_calibration
from inn.recover.losses import mean_loss
from inn.recover.settings import FitSettings

__all__ = ["BIAS_CALIBRATION", "calibrate_biases"]

# the defaults of bias calibration: a quarter of the images judge the fit (judged on the images
# it fits, MobileNetV2 at 80 % of its parameters kept 96.7 % instead of 97.3 %:
# results/prune-ablation-mobilenet_v2)
BIAS_CALIBRATION = FitSettings(steps=150, lr=0.01, holdout=0.25)


def calibrate_biases(
    pruned: nn.Module,
    reference: nn.Module,
    data: Iterable,
    *,
    settings: FitSettings | None = None,
    **changes: Any,
) -> FitReport:
    """Train only the biases and normalisation parameters of ``pruned`` to match ``reference``
    (the unpruned model) on calibration data, with the same budget as partition tuning.

    Args:
        pruned: the pruned plain module; its biases and normalisation parameters are trained.
        reference: the unpruned module, taking the same inputs as ``pruned``.
        data: calibration batches: ``(inputs, targets)`` or ``inputs``.
        settings: the fit (default :data:`BIAS_CALIBRATION`: 150 steps, lr 0.01,
            ``loss="kl"``, a quarter of each batch held out to judge the fit).
        **changes: fields of ``settings`` to change (``steps=50, loss="mse"``).
    """
    settings = (BIAS_CALIBRATION if settings is None else settings).replace(**changes)
    batches = as_batches(data)
    with torch.no_grad():
        references = (
            [reference(x) for x, _ in batches]
            if settings.loss != "labels"
            else [None] * len(batches)
        )
    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    params = [
        p
        for module in pruned.modules()
        for name, p in module.named_parameters(recurse=False)
        if name == "bias" or isinstance(module, norms)
    ]
    if not params:  # nothing to calibrate: report the loss as it stands
        loss = mean_loss(pruned, batches, references, settings.loss)
        return FitReport(loss, loss, 0, 0.0)
    return fit_calibration(pruned, params, batches, references, settings, desc="calibrating biases")
