"""Partition tuning (the paper's Pipeline B): at fixed widths, train only where the channels sit.

A resized integral model samples its weights at uniform points. Moving those points (and,
optionally, the biases and normalisation parameters) to minimise a loss on a small calibration
set recovers most of what resizing lost, in minutes and without touching the weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from inn.continuous import Partition
from inn.convert import IntegralModel
from inn.errors import InnError
from inn.layers import IntegralLayer

__all__ = [
    "LOSSES",
    "MAX_LR_CUTS",
    "TuneReport",
    "as_batches",
    "distillation_loss",
    "tune_partition",
]

log = logging.getLogger(__name__)

LOSSES = ("kl", "mse", "labels")
MAX_LR_CUTS = 3  # halvings of the learning rate after stalls before tuning stops
Batch = tuple[Tensor, Tensor | None]


@dataclass(frozen=True)
class TuneReport:
    """Calibration loss before and after (the best state is kept), steps run, seconds."""

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
    output: Tensor, reference: Tensor | None, targets: Tensor | None, kind: str
) -> Tensor:
    """``kl``: KL(teacher || student) on logits; ``mse``: on raw outputs; ``labels``: cross-entropy."""
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


def _full_width_outputs(imodel: IntegralModel, batches: list[Batch]) -> list[Tensor]:
    with imodel.widths_kept(), torch.no_grad():  # keeps points placed before tuning
        imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
        return [imodel(x) for x, _ in batches]


def _evaluate(
    model: nn.Module, batches: list[Batch], references: list[Tensor | None], kind: str
) -> float:
    with torch.no_grad():
        losses = [
            distillation_loss(model(x), ref, y, kind).item()
            for (x, y), ref in zip(batches, references, strict=True)
        ]
    return sum(losses) / len(losses)


def fit(
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
) -> TuneReport:
    """Adam on ``params`` only, cycling over ``batches``, with ``model`` in eval mode; keeps the
    state with the lowest calibration loss. After ``patience`` evaluations without improvement
    it returns to the best state with half the learning rate, and stops when that happened
    ``MAX_LR_CUTS`` times. Every other parameter is frozen meanwhile; all ``requires_grad`` flags and the
    train/eval mode are restored afterwards.

    ``regulariser()``, if given, is added to the loss, in training and in the calibration loss
    that picks the best state."""
    with _training_only(model, params):
        start = time.perf_counter()

        def calibration_loss() -> float:
            extra = 0.0
            if regulariser is not None:
                with torch.no_grad():
                    extra = float(regulariser())
            return _evaluate(model, batches, references, loss) + extra

        best_loss = first = calibration_loss()
        best_state = [p.detach().clone() for p in params]

        def optimiser_for(rate: float, remaining: int) -> tuple[torch.optim.Optimizer, Any]:
            optimiser = torch.optim.Adam(params, lr=rate)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(remaining, 1))
            return optimiser, cosine

        optimiser, schedule = optimiser_for(lr, steps)
        stale, cuts, step = 0, 0, -1
        bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
        for step in bar:
            (x, y), ref = batches[step % len(batches)], references[step % len(batches)]
            optimiser.zero_grad(set_to_none=True)
            objective = distillation_loss(model(x), ref, y, loss)
            if regulariser is not None:
                objective = objective + regulariser()
            objective.backward()
            optimiser.step()
            schedule.step()
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                current = calibration_loss()
                bar.set_postfix(loss=f"{current:.4f}")
                if current < best_loss - 1e-6 * abs(best_loss):
                    best_loss, stale = current, 0
                    best_state = [p.detach().clone() for p in params]
                    continue
                stale += 1
                if stale < patience:
                    continue
                if cuts == MAX_LR_CUTS:
                    break
                # No progress: go back to the best state with half the learning rate. A rate
                # that overshoots from the first step would otherwise end tuning with nothing.
                cuts, stale = cuts + 1, 0
                with torch.no_grad():
                    for p, best in zip(params, best_state, strict=True):
                        p.copy_(best)
                optimiser, schedule = optimiser_for(lr / 2**cuts, steps - step - 1)
        with torch.no_grad():
            for p, best in zip(params, best_state, strict=True):
                p.copy_(best)
        return TuneReport(first, best_loss, step + 1, time.perf_counter() - start)


@contextmanager
def _training_only(model: nn.Module, params: list[nn.Parameter]) -> Iterator[None]:
    """Eval mode, gradients for ``params`` only; flags and mode restored on exit."""
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


def tune_partition(
    imodel: IntegralModel,
    data: Iterable,
    *,
    steps: int = 150,
    lr: float = 0.05,
    loss: str = "kl",
    train_biases: bool = False,
    patience: int = 4,
    eval_every: int = 10,
    progress: bool = False,
) -> TuneReport:
    """Pipeline B: train the partition points of the resized groups on calibration data.

    Every resizable group narrower than its full width gets trainable points (strictly increasing
    inside [0, 1] by construction), starting from the uniform points; all other parameters are
    frozen during tuning and their ``requires_grad`` flags are restored afterwards. The model is
    used in eval mode. A later ``resize`` returns the resized groups to uniform points.

    Args:
        imodel: a converted and resized model.
        data: calibration batches: ``(inputs, targets)`` or ``inputs``; a few hundred images.
        loss: ``"kl"`` (default; distillation from the same model at full width, label-free),
            ``"mse"`` (distillation on raw outputs, for regression / super-resolution) or
            ``"labels"`` (cross-entropy with the targets).
        train_biases: also train biases and normalisation parameters (they are then changed).
        patience: evaluations (every ``eval_every`` steps) without improvement before stopping.

    Returns:
        A :class:`TuneReport`; the model keeps the best points found.
    """
    if loss not in LOSSES:
        raise InnError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if steps < 0 or lr <= 0:
        raise InnError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    batches = as_batches(data)
    references: list[Tensor | None] = (
        [None] * len(batches) if loss == "labels" else list(_full_width_outputs(imodel, batches))
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
        value = _evaluate(imodel, batches, references, loss)
        return TuneReport(value, value, 0, 0.0)
    return fit(
        imodel, params, batches, references, loss=loss, steps=steps, lr=lr, patience=patience,
        eval_every=eval_every, progress=progress, desc="tuning partitions",
    )  # fmt: skip


def _narrowed_partitions(imodel: IntegralModel) -> list[Partition]:
    """Partitions of the resizable groups that are narrower than full width (and not 1 point)."""
    return [imodel._partitions[g.name] for g in imodel.resizable_groups if 1 < g.size < g.full_size]
