"""The calibration fit every recovery routine runs: a few parameters, a few hundred images.

:func:`fit_calibration` trains only the given parameters of a model in eval mode on calibration
batches against reference outputs (distillation from the full model) or labels, on the one fit
loop (:func:`inn.loop.fit`), and ends with the best state found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inn.loop import Backward, EarlyStopping, Schedule, fit
from inn.recover.batches import Batch, split_holdout
from inn.recover.losses import distillation_loss, mean_loss
from inn.recover.settings import FitSettings

__all__ = ["FitReport", "fit_calibration", "trainable_only"]


@dataclass(frozen=True)
class FitReport:
    """What a recovery routine did: the calibration loss before and after (the best state,
    which the model keeps), the steps run and the seconds taken."""

    loss_before: float
    loss_after: float
    steps: int
    seconds: float


@contextmanager
def trainable_only(model: nn.Module, params: list[nn.Parameter]) -> Iterator[None]:
    """Gradients for ``params`` only, the model in eval mode; the ``requires_grad`` flags and
    the mode are restored on exit."""
    flags = {p: p.requires_grad for p in model.parameters()}
    was_training = model.training
    model.eval()
    for p in flags:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.train(was_training)


def fit_calibration(
    model: nn.Module,
    params: list[nn.Parameter],
    batches: list[Batch],
    references: list[Tensor | None],
    settings: FitSettings,
    *,
    desc: str,
    regulariser: Callable[[], Tensor] | None = None,
) -> FitReport:
    """Adam on ``params`` only, cycling over ``batches`` with ``model`` in eval mode, cosine
    schedule, early stopping on the calibration loss (:class:`~inn.loop.EarlyStopping`); ends
    with the best state. With ``settings.holdout``, the last part of every batch is not fitted:
    the loss that stops the fit and picks the state kept (the start included) is theirs.

    Args:
        references: per batch, the outputs to distil (``None`` each for ``loss="labels"``).
        settings: steps, learning rate, loss, patience, evaluation interval, progress bar.
        desc: the progress bar's label.
        regulariser: ``regulariser()`` is added to the loss, in training and in the calibration
            loss that picks the best state.
    """
    loss, lr = settings.loss, settings.lr
    (batches, references), held = split_holdout(batches, references, settings.holdout)
    judged = held if held[0] else (batches, references)

    def calibration_loss() -> float:
        with torch.no_grad():
            extra = 0.0 if regulariser is None else float(regulariser())
        return mean_loss(model, *judged, loss) + extra

    def optimiser_for(factor: float, remaining: int) -> tuple[torch.optim.Optimizer, Schedule]:
        optimiser = torch.optim.Adam(params, lr=lr * factor)
        return optimiser, torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(remaining, 1)
        )

    def one_step(i: int, backward: Backward) -> float:
        (x, y), ref = batches[i % len(batches)], references[i % len(batches)]
        objective = distillation_loss(model(x), ref, y, loss)
        if regulariser is not None:
            objective = objective + regulariser()
        backward(objective)
        return float(objective.detach())

    with trainable_only(model, params):
        start = time.perf_counter()
        stopping = EarlyStopping(
            params, calibration_loss, every=settings.eval_every, patience=settings.patience
        )
        optimiser, schedule = optimiser_for(1.0, settings.steps)
        done = fit(
            one_step, optimiser, steps=settings.steps, schedule=schedule, stopping=stopping,
            restart=optimiser_for, progress=settings.progress, desc=desc,
        )  # fmt: skip
        stopping.restore()
        return FitReport(stopping.first, stopping.best, done, time.perf_counter() - start)
