"""The one optimisation loop below everything in ``inn`` that trains.

Partition tuning, weight smoothing, bias calibration and random-width training all run
:func:`fit`: zero the gradients, let a step function run its forward and backward passes, step
the optimiser (through an AMP gradient scaler where given) and the schedule, evaluate and stop
early where asked, report progress. What differs between them (which parameters, which loss,
how many widths per step) lives in the step function they pass.

:func:`fit_calibration` is the calibration-set flavour (a few hundred images, distillation from
the full model, best state kept) shared by tuning, smoothing and calibration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from inn.errors import InnError
from inn.outputs import output_tensors

__all__ = [
    "LOSSES",
    "MAX_LR_CUTS",
    "Batch",
    "EarlyStopping",
    "FitReport",
    "as_batches",
    "distillation_loss",
    "fit",
    "fit_calibration",
    "mean_loss",
    "trainable_only",
]

LOSSES = ("kl", "mse", "labels")
MAX_LR_CUTS = 3  # halvings of the learning rate after stalls before fitting stops
Batch = tuple[Tensor, Tensor | None]
Backward = Callable[[Tensor], None]
Schedule = torch.optim.lr_scheduler.LRScheduler


@dataclass(frozen=True)
class FitReport:
    """Loss before and after (the best state where one is kept), steps run, seconds."""

    loss_before: float
    loss_after: float
    steps: int
    seconds: float


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


def distillation_loss(
    output: Any, reference: Any, targets: Tensor | None, kind: str
) -> Tensor:
    """``kl``: KL(teacher || student) on logits; ``mse``: on raw outputs; ``labels``: cross-entropy.

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
            F.log_softmax(output, -1),
            F.log_softmax(reference, -1),
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


class EarlyStopping:
    """Evaluates every ``every`` steps and keeps the best state of ``params``.

    After ``patience`` evaluations without improvement the parameters go back to the best
    state and the learning rate is halved; the ``max_cuts + 1``-th stall stops the fit. A rate
    that overshoots from the first step would otherwise end with nothing.
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        evaluate: Callable[[], float],
        *,
        every: int,
        patience: int,
        max_cuts: int | None = None,
    ) -> None:
        self.params, self.evaluate, self.every, self.patience = params, evaluate, every, patience
        self.max_cuts = MAX_LR_CUTS if max_cuts is None else max_cuts
        self.first = self.best = evaluate()
        self.best_state = [p.detach().clone() for p in params]
        self.stale = self.cuts = 0

    def due(self, step: int, steps: int) -> bool:
        return (step + 1) % self.every == 0 or step + 1 == steps

    def check(self) -> str:
        """``"better"``, ``"same"``, ``"cut"`` (best state restored: halve the rate) or ``"stop"``."""
        current = self.evaluate()
        if current < self.best - 1e-6 * abs(self.best):
            self.best, self.stale = current, 0
            self.best_state = [p.detach().clone() for p in self.params]
            return "better"
        self.stale += 1
        if self.stale < self.patience:
            return "same"
        if self.cuts == self.max_cuts:
            return "stop"
        self.cuts, self.stale = self.cuts + 1, 0
        self.restore()
        return "cut"

    def restore(self) -> None:
        with torch.no_grad():
            for p, best in zip(self.params, self.best_state, strict=True):
                p.copy_(best)


def fit(
    step: Callable[[int, Backward], float],
    optimiser: torch.optim.Optimizer,
    *,
    steps: int,
    start: int = 0,
    schedule: Schedule | None = None,
    scaler: torch.amp.GradScaler | None = None,
    clip_norm: float | None = None,
    stopping: EarlyStopping | None = None,
    restart: Callable[[float, int], tuple[torch.optim.Optimizer, Schedule | None]] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = False,
    desc: str = "",
    items_per_step: int | None = None,
) -> int:
    """Run optimisation steps ``start .. steps - 1``; returns the number of steps run.

    Args:
        step: ``step(i, backward) -> loss``: the forward pass(es) of step ``i``, calling
            ``backward(loss)`` on each loss (it applies the AMP scaler); returns the loss to show.
        scaler: a gradient scaler (float16 AMP): the optimiser steps through it.
        clip_norm: clip the gradient norm of the optimiser's parameters to this.
        stopping: evaluated when due; ``"cut"`` calls ``restart(lr_factor, remaining_steps)``
            for a fresh optimiser and schedule, ``"stop"`` ends the fit.
        on_step: ``on_step(i, loss)`` after each step (checkpoints, logs).
        items_per_step: samples per step, for the throughput in the progress bar.
    """
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, leave=False)
    params = [p for group in optimiser.param_groups for p in group["params"]]
    tick, done = time.perf_counter(), 0
    for i in bar:
        optimiser.zero_grad(set_to_none=True)
        if scaler is not None:
            loss = step(i, lambda value: scaler.scale(value).backward())
            if clip_norm is not None:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            scaler.step(optimiser)
            scaler.update()
        else:
            loss = step(i, lambda value: value.backward())
            if clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, clip_norm)
            optimiser.step()
        if schedule is not None:
            schedule.step()
        done += 1
        if on_step is not None:
            on_step(i, loss)
        if progress:
            postfix = {"loss": f"{loss:.4f}"}
            if items_per_step:
                rate = items_per_step * done / max(time.perf_counter() - tick, 1e-9)
                postfix["samples/s"] = f"{rate:.0f}"
            bar.set_postfix(postfix)
        if stopping is not None and stopping.due(i, steps):
            verdict = stopping.check()
            if verdict == "stop":
                break
            if verdict == "cut":
                if restart is None:
                    break
                optimiser, schedule = restart(0.5**stopping.cuts, steps - i - 1)
    bar.close()
    return done


def fit_calibration(
    model: nn.Module,
    params: list[nn.Parameter],
    batches: list[Batch],
    references: list[Tensor | None],
    *,
    loss: str,
    steps: int,
    lr: float,
    patience: int,
    eval_every: int,
    progress: bool,
    desc: str,
    regulariser: Callable[[], Tensor] | None = None,
) -> FitReport:
    """Adam on ``params`` only, cycling over ``batches`` with ``model`` in eval mode, cosine
    schedule, early stopping on the calibration loss (:class:`EarlyStopping`); ends with the
    best state. ``regulariser()``, if given, is added to the loss, in training and in the
    calibration loss that picks the best state."""

    def calibration_loss() -> float:
        with torch.no_grad():
            extra = 0.0 if regulariser is None else float(regulariser())
        return mean_loss(model, batches, references, loss) + extra

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
        stopping = EarlyStopping(params, calibration_loss, every=eval_every, patience=patience)
        optimiser, schedule = optimiser_for(1.0, steps)
        done = fit(
            one_step, optimiser, steps=steps, schedule=schedule, stopping=stopping,
            restart=optimiser_for, progress=progress, desc=desc,
        )  # fmt: skip
        stopping.restore()
        return FitReport(stopping.first, stopping.best, done, time.perf_counter() - start)
