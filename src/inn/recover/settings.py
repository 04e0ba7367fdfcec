"""How every recovery routine fits on calibration data: one settings object."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from inn.errors import InnError
from inn.recover.losses import LOSSES

__all__ = ["FitSettings"]


@dataclass(frozen=True)
class FitSettings:
    """The fit of a recovery routine (:func:`inn.recover.fit_calibration`): Adam with a cosine
    schedule, early stopping on the calibration loss, the best state kept.

    Each routine has its own defaults (``TUNING``, ``SMOOTHING``, ``BIAS_CALIBRATION`` in
    :mod:`inn.recover`) and takes ``settings=`` or single fields as keywords
    (``tune_partition(imodel, data, steps=50)``).

    Attributes:
        steps: optimiser steps at most, ``>= 0``.
        lr: Adam's learning rate, ``> 0``; halved after each stall.
        loss: ``"kl"`` (distillation from reference outputs, label-free), ``"mse"``
            (distillation on raw outputs: regression, super-resolution) or ``"labels"``
            (cross-entropy with the targets).
        patience: evaluations without improvement before the best state is restored and the
            rate halved (:class:`inn.loop.EarlyStopping`).
        eval_every: steps between evaluations of the calibration loss.
        holdout: fraction of each calibration batch held out of the fit, in ``[0, 1)``: early
            stopping and the state kept are judged on those samples, so a fit that only
            memorises the calibration images ends where it started. ``0``: judged on the
            samples fitted.
        progress: show a progress bar.
    """

    steps: int
    lr: float
    loss: str = "kl"
    patience: int = 4
    eval_every: int = 10
    holdout: float = 0.0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InnError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.steps < 0 or self.lr <= 0:
            raise InnError(f"need steps >= 0 and lr > 0, got steps={self.steps}, lr={self.lr}")
        if self.patience < 1 or self.eval_every < 1:
            raise InnError(
                f"need patience >= 1 and eval_every >= 1, got {self.patience}, {self.eval_every}"
            )
        if not 0 <= self.holdout < 1:
            raise InnError(f"need 0 <= holdout < 1, got holdout={self.holdout}")

    def replace(self, **changes: Any) -> FitSettings:
        """A copy with ``changes`` to some fields (checked like the constructor's arguments)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InnError(f"unknown fit settings {unknown}; FitSettings has {sorted(names)}")
        return dataclasses.replace(self, **changes)
