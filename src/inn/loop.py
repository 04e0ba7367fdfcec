"""The one optimisation loop below everything in ``inn`` that trains.

Partition tuning, weight smoothing, bias calibration (:mod:`inn.recover`) and random-width
training (:mod:`inn.train`) all run :func:`fit`: zero the gradients, let a step function run its
forward and backward passes, step the optimiser (through an AMP gradient scaler where given) and
the schedule, evaluate and stop early where asked (:class:`EarlyStopping`), report progress.
What differs between them (which parameters, which loss, how many widths per step) lives in the
step function they pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["MAX_LR_CUTS", "Backward", "EarlyStopping", "Schedule", "fit"]

MAX_LR_CUTS = 3  # halvings of the learning rate after stalls before fitting stops
Backward = Callable[[Tensor], None]
Schedule = torch.optim.lr_scheduler.LRScheduler


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
