"""The calibration losses: distillation from reference outputs, or cross-entropy with labels."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inn.errors import InnError
from inn.outputs import output_tensors
from inn.recover.batches import Batch

__all__ = ["LOSSES", "distillation_loss", "mean_loss"]

LOSSES = ("kl", "mse", "labels")


def distillation_loss(output: Any, reference: Any, targets: Tensor | None, kind: str) -> Tensor:
    """``kl``: KL(teacher || student) of the softmaxes over dim 1 (the classes; per pixel for
    dense outputs); ``mse``: on raw outputs; ``labels``: cross-entropy.

    A model with several outputs (a tuple: a detector's scores and boxes) is compared output by
    output with the MSE (``kl`` needs logits, which such outputs need not be); ``labels`` reads
    its first output."""
    if not isinstance(output, Tensor):
        outputs = output_tensors(output)
        if kind == "labels":
            return distillation_loss(outputs[0], None, targets, kind)
        references = output_tensors(reference)
        return sum(F.mse_loss(o, r) for o, r in zip(outputs, references, strict=True))
    if kind == "labels":
        if targets is None:
            raise InnError("loss='labels' needs (inputs, targets) batches; use loss='kl' or 'mse'")
        return F.cross_entropy(output, targets)
    if kind == "kl":
        return F.kl_div(
            F.log_softmax(output, 1),
            F.log_softmax(reference, 1),
            log_target=True,
            reduction="batchmean",
        )
    if kind == "mse":
        return F.mse_loss(output, reference)
    raise InnError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def mean_loss(
    model: nn.Module, batches: list[Batch], references: list[Tensor | None], kind: str
) -> float:
    """The mean :func:`distillation_loss` of ``model`` over ``batches``, without gradients."""
    with torch.no_grad():
        losses = [
            distillation_loss(model(x), ref, y, kind).item()
            for (x, y), ref in zip(batches, references, strict=True)
        ]
    return sum(losses) / len(losses)
