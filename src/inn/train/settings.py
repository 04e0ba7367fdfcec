"""How random-width training runs: one settings object, checked where it is made."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from inn.errors import InnError
from inn.recover.losses import distillation_loss
from inn.train.widths import SAMPLINGS, WidthRange, WidthSampler

__all__ = ["AMP", "OPTIMISERS", "TrainSettings"]

OPTIMISERS = ("sgd", "adamw")
CHANNELS = ("resample", "select")
RESAMPLED_SMOOTHNESS = 3.0  # the default roughness penalty where narrow widths resample channels
AMP: dict[str | None, torch.dtype | None] = {
    None: None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def _kl_on_logits(outputs: Tensor, reference: Tensor) -> Tensor:
    """KL(reference || outputs) of the softmaxes over dim 1, summed over it, batch-averaged."""
    return distillation_loss(outputs, reference, None, "kl")


@dataclass(frozen=True)
class TrainSettings:
    """Everything :func:`inn.train.train` does besides the model and the data.

    :func:`~inn.train.train` takes ``settings=`` or single fields as keywords
    (``train(imodel, data, steps=100, lr=0.01)``); :meth:`replace` changes some fields of a
    settings object. Every value is checked here, so a mistake fails before any training.

    Attributes:
        steps, epochs: the length of training, one of them (an epoch is
            ``len(dataset) // batch_size`` steps); ``steps >= 1`` or ``epochs > 0``.
        batch_size: the global batch (split evenly over the processes).
        widths: one width range for every resizable group (fractions ``(low, high)`` in
            (0, 1] or channel counts), ``{group: range}``, or a :class:`WidthSampler` (which
            then brings its own rule and number of random draws).
        sampling: the width-sampling rule (:data:`inn.train.SAMPLINGS`): ``"sandwich"`` (largest +
            smallest + ``num_random`` random widths per step, gradients accumulated, one
            optimiser step), ``"random"`` (the paper's Algorithm 1: one random width per step)
            or ``"fixed"``.
        num_random: random widths per step of the sandwich rule.
        channels: how a narrow width takes its channels: ``"select"`` (default: each group's
            strongest channels, ranked once when training starts and nested, as in slimmable
            networks: :meth:`IntegralModel.nest_channels`; the ranking is saved with the model),
            ``"resample"`` (uniform points, each channel a blend of its neighbours: the integral
            network of the paper), ``None`` (as the model is: resampled after
            :func:`inn.convert`). Selected channels are the default because they train every
            width of every network measured, resampled ones not: the zoo MobileNetV2 converted
            keeps 32-33 % at 50-60 % width and chance at 35 % resampled, 86-91 % selected
            (``results/pipeline-a-mobilenet_v2``); on the zoo ResNet-18 resampling is ahead by
            0.3-2.6 points at 25-60 % width (``results/pipeline-a-cifar_resnet18``).
        distill: in-place distillation: the outputs of the largest width (detached) are the
            target (``teacher_loss``) of the others; needs the sandwich rule (or a ``"fixed"``
            sampler starting at the largest width).
        loss: ``loss(outputs, targets)`` (default cross-entropy).
        teacher: a network (e.g. the discrete one the model was converted from, in eval mode)
            whose outputs every width also learns: ``teacher_loss`` is added to ``loss`` at
            every forward pass (a module is moved to the model's device and put in eval mode).
            Not with ``distill``.
        teacher_loss: ``teacher_loss(outputs, teacher_outputs)``, the term that ``teacher`` (or
            the largest width, with ``distill``) adds. ``None`` (default): the KL divergence of
            the softmaxes over dim 1 (class scores, per pixel for dense outputs) where ``loss``
            is the cross-entropy, else ``loss`` itself with the teacher's outputs as targets
            (an L1 loss for super-resolution learns the teacher's images).
        smoothness: adds ``smoothness`` x the mean roughness (squared second differences along
            the channel axes, :func:`inn.recover.roughness`) of the weights' node values to the
            loss once per step: smoother weight functions lose less when sampled at few points.
            ``None`` (default): :data:`RESAMPLED_SMOOTHNESS` (3) where narrow widths resample
            the channels (without it they do not train from scratch: ``inn-scratch+bn-s0`` of
            ``results/pipeline-a-cifar_resnet18``), 0 where they select them (selected
            channels are never resampled).
        augment: applied to each batch of inputs before the forward passes.
        optimiser: ``"sgd"`` (Nesterov momentum ``momentum``) or ``"adamw"``; ``weight_decay``
            applies to the weights' node values only.
        lr: the peak learning rate, reached after a linear warm-up over the fraction
            ``warmup`` of the steps, then cosine decay to 0.
        clip_norm: clip the gradient norm to this (``None``: no clipping).
        amp: ``"bf16"`` or ``"fp16"`` (CUDA; with a gradient scaler): autocast mixed precision.
        checkpoint: a file: written every ``checkpoint_every`` steps (0: never in between) and
            at the end (by rank 0); if it exists and ``resume``, training continues from it (on
            any number of processes).
        log: a JSON-lines file (rank 0): step, loss, learning rate, samples/s every ``log_every``
            steps (and at the last).
        progress: show a progress bar (rank 0).
        seed: the data order and the width draws of every step depend on it only.
        statistics_batches: at the end, the integral BatchNorms' statistics are measured on
            this many training batches at full width and at every width bucket's uniform
            fraction (1/20 ... 19/20), so that every width needs no data at evaluation (at
            most one epoch of batches).
        ddp: wrap the model in DistributedDataParallel (``None``: when a process group of more
            than one process is initialised).
        num_workers: data loader worker processes.
    """

    # length and batch
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    # widths
    widths: WidthRange | Mapping[str, WidthRange] | WidthSampler = (0.25, 1.0)
    sampling: str = "sandwich"
    num_random: int = 2
    channels: str | None = "select"
    distill: bool = False
    # objective
    loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
    teacher: Callable[[Tensor], Tensor] | None = None
    teacher_loss: Callable[[Tensor, Tensor], Tensor] | None = None
    smoothness: float | None = None
    augment: Callable[[Tensor], Tensor] | None = None
    # optimiser and precision
    optimiser: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.05
    clip_norm: float | None = None
    amp: str | None = None
    # checkpoints and logs
    checkpoint: str | Path | None = None
    checkpoint_every: int = 0
    resume: bool = True
    log: str | Path | None = None
    log_every: int = 10
    progress: bool = True
    # processes, data and reproducibility
    seed: int = 0
    statistics_batches: int = 20
    ddp: bool | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        self._check_length()
        self._check_widths()
        self._check_optimisation()
        counts = {
            "batch_size": (self.batch_size, 1), "log_every": (self.log_every, 1),
            "checkpoint_every": (self.checkpoint_every, 0), "num_workers": (self.num_workers, 0),
            "statistics_batches": (self.statistics_batches, 0),
        }  # fmt: skip
        for name, (value, least) in counts.items():
            if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
                raise InnError(f"{name} must be an int >= {least}, got {value!r}")
        if not callable(self.loss) or any(
            f is not None and not callable(f)
            for f in (self.augment, self.teacher, self.teacher_loss)
        ):
            raise InnError(
                "loss, augment, teacher and teacher_loss must be callables (all but loss may be None)"
            )
        if self.teacher is not None and self.distill:
            raise InnError(
                "teacher= and distill=True both set the targets of the narrow widths: use one"
            )

    def target_loss(self) -> Callable[[Tensor, Tensor], Tensor]:
        """``teacher_loss``, or its default for ``loss`` (see the attributes)."""
        if self.teacher_loss is not None:
            return self.teacher_loss
        if self.loss is F.cross_entropy or isinstance(self.loss, torch.nn.CrossEntropyLoss):
            return _kl_on_logits
        return self.loss

    def _check_length(self) -> None:
        if self.steps is not None and self.epochs is not None:
            raise InnError(
                f"got both steps={self.steps} and epochs={self.epochs}: give the length of "
                "training as one of them (set the other to None)"
            )
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            raise InnError(f"steps must be >= 1, got {self.steps!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise InnError(f"epochs must be > 0 (fractions are fine: 0.5), got {self.epochs!r}")

    def _check_widths(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise InnError(f"unknown width sampling {self.sampling!r}; choose one of {SAMPLINGS}")
        if self.channels is not None and self.channels not in CHANNELS:
            raise InnError(
                f"channels must be one of {CHANNELS} or None (as the model is), got {self.channels!r}"
            )
        if self.num_random < 0:
            raise InnError(f"num_random must be >= 0, got {self.num_random}")
        sampler = self.widths if isinstance(self.widths, WidthSampler) else None
        sampling = sampler.sampling if sampler is not None else self.sampling
        fixed = sampler.fixed if sampler is not None else WidthSampler.fixed
        teacher_first = sampling == "sandwich" or (sampling == "fixed" and fixed[0] == max(fixed))
        if self.distill and not teacher_first:
            raise InnError(
                "distill=True needs sampling='sandwich' or a 'fixed' rule starting at the largest "
                "width (the first width of each step is the teacher)"
            )

    def _check_optimisation(self) -> None:
        if self.optimiser not in OPTIMISERS:
            raise InnError(f"unknown optimiser {self.optimiser!r}; choose one of {OPTIMISERS}")
        if self.amp not in AMP:
            raise InnError(
                f"unknown amp {self.amp!r}; choose one of {[k for k in AMP if k]} or None"
            )
        if not self.lr > 0:
            raise InnError(f"lr must be > 0, got {self.lr!r}")
        smoothness = 0.0 if self.smoothness is None else self.smoothness
        if not (self.momentum >= 0 and self.weight_decay >= 0 and smoothness >= 0):
            raise InnError(
                "momentum, weight_decay and smoothness must be >= 0, got "
                f"{self.momentum!r}, {self.weight_decay!r}, {self.smoothness!r}"
            )
        if not 0 <= self.warmup <= 1:
            raise InnError(f"warmup is a fraction of the steps in [0, 1], got {self.warmup!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise InnError(f"clip_norm must be > 0, got {self.clip_norm!r} (None: no clipping)")

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with ``changes`` to some fields (checked like the constructor's arguments)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InnError(
                f"unknown training settings {unknown}; TrainSettings has {sorted(names)}"
            )
        return dataclasses.replace(self, **changes)
