"""Random-width training of an integral model (the paper's Algorithm 1 and the sandwich rule).

Every step resizes the model to the widths its :class:`WidthSampler` draws for that step, runs
the forward and backward pass at each, and takes one optimiser step on the node values, so one
set of continuous weights learns to work when sampled at any width of the ranges.

On one process or many: launched by ``torchrun``, with ``torch.distributed`` initialised, the
model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, the data are sharded
by a :class:`~torch.utils.data.distributed.DistributedSampler` and every rank draws the same
widths (they depend on the seed and the step only).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from inn.convert import IntegralModel
from inn.errors import InnError
from inn.loop import fit
from inn.recover.smooth import roughness_penalty
from inn.recover.statistics import (
    narrow_statistics_layers,
    reestimate_full_width_batchnorm,
    reestimate_width_statistics,
    tracked_norms,
)
from inn.train.checkpoint import load_checkpoint, save_checkpoint
from inn.train.settings import AMP, RESAMPLED_SMOOTHNESS, TrainSettings
from inn.train.widths import WidthSampler

__all__ = ["TrainReport", "train"]


@dataclass
class TrainReport:
    """What :func:`train` did: steps run in this call (``start`` .. ``steps``), seconds,
    samples per second (all processes), the last step's loss and the logged history."""

    start: int
    steps: int
    seconds: float
    samples_per_s: float
    last_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)


def _distributed(ddp: bool | None) -> tuple[int, int]:
    """``(rank, world size)`` of this process; checks that DDP, if asked for, can run."""
    ready = dist.is_available() and dist.is_initialized()
    if ddp and not ready:
        raise InnError(
            "ddp=True needs an initialised process group: launch with `torchrun --nproc_per_node "
            "N ...` and call torch.distributed.init_process_group() before inn.train.train "
            "(or pass ddp=None to train on one process)"
        )
    if ddp is False or not ready:
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def _optimiser(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """Weight decay on the node values of weights (two or more axes) only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": rest, "weight_decay": 0},
    ]
    if settings.optimiser == "sgd":
        momentum = settings.momentum
        return torch.optim.SGD(groups, lr=settings.lr, momentum=momentum, nesterov=momentum > 0)
    return torch.optim.AdamW(groups, lr=settings.lr)  # the settings allow only these two


def _schedule(optimiser: torch.optim.Optimizer, steps: int, warmup: float):
    """Linear warm-up over ``warmup`` of the steps, then cosine decay to 0 (per step)."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


class _Shards:
    """Batches of step ``i`` for this rank: epoch ``i // per_epoch`` of a seeded permutation,
    global batch ``i % per_epoch``, of which this rank takes every ``world``-th sample (the
    global batch is the same on any number of processes)."""

    def __init__(
        self, dataset: Dataset, batch_size: int, rank: int, world: int, seed: int, workers: int
    ) -> None:
        if batch_size % world:
            raise InnError(
                f"batch_size {batch_size} (the global batch) must be divisible by the "
                f"{world} processes"
            )
        self.dataset, self.local, self.workers = dataset, batch_size // world, workers
        self.per_epoch = len(dataset) // batch_size
        if self.per_epoch == 0:
            raise InnError(
                f"the dataset has {len(dataset)} samples, fewer than batch_size {batch_size}"
            )
        self.sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed
        )

    def batches(self, start: int):
        """Yield ``(step, (inputs, targets))`` from step ``start`` on, forever."""
        step = start
        while True:
            epoch, offset = divmod(step, self.per_epoch)
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)[offset * self.local : self.per_epoch * self.local]
            loader = DataLoader(
                self.dataset, batch_size=self.local, sampler=indices, num_workers=self.workers
            )
            for batch in loader:
                yield step, batch
                step += 1


def train(
    model: IntegralModel,
    dataset: Dataset,
    *,
    settings: TrainSettings | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    **changes: Any,
) -> TrainReport:
    """Train ``model``'s continuous weights so that every width of ``settings.widths`` works.

    Args:
        model: a converted model (:func:`inn.convert`; from a trained network or a freshly
            initialised one; ``fold_batchnorm=False`` keeps integral BatchNorms, whose running
            statistics are then tracked at full width and sampled at every other width).
        dataset: a map-style dataset of ``(inputs, targets)``.
        settings: how to train (:class:`TrainSettings`; default ``TrainSettings()``, which
            needs a length: ``steps=...`` or ``epochs=...``).
        callback: ``callback(step, info)`` after every step; ``info`` has ``loss`` and
            ``widths`` (the widths of each forward pass).
        **changes: fields of ``settings`` to change (``steps=100, lr=0.01``).

    Returns:
        A :class:`TrainReport`. The model is left at full width, in eval mode.

    Raises:
        InnError: a bad setting (naming the field), no length of training, a model that is not
            converted, DDP asked for without a process group, a checkpoint of another model.
    """
    settings = (TrainSettings() if settings is None else settings).replace(**changes)
    if settings.steps is None and settings.epochs is None:
        raise InnError("give the length of training as steps=... or epochs=... (one of them)")
    sampler = settings.widths
    if not isinstance(sampler, WidthSampler):
        options = {"sampling": settings.sampling, "num_random": settings.num_random, "seed": settings.seed}
        sampler = WidthSampler.for_model(model, sampler, **options)
    rank, world = _distributed(settings.ddp)
    shards = _Shards(dataset, settings.batch_size, rank, world, settings.seed, settings.num_workers)
    total = settings.steps or max(1, round(settings.epochs * shards.per_epoch))
    device = next(model.parameters()).device
    if settings.amp == "fp16" and device.type != "cuda":
        raise InnError("amp='fp16' needs a CUDA model; use amp='bf16' on the CPU")

    opt = _optimiser(model, settings)
    schedule = _schedule(opt, total, settings.warmup)
    scaler = torch.amp.GradScaler("cuda") if settings.amp == "fp16" else None
    start = 0
    if settings.checkpoint is not None and settings.resume and Path(settings.checkpoint).is_file():
        state = load_checkpoint(settings.checkpoint, model)
        opt.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        sampler = WidthSampler.from_state_dict(state["sampler"])
        start = state["step"]
    if settings.channels is not None:
        _use_channels(model, settings.channels)
    norms = tracked_norms(model)
    folded = model.report.folded_batchnorms if isinstance(model, IntegralModel) else []
    if folded and not norms:
        warnings.warn(
            f"inn.train: the {len(folded)} BatchNorm(s) of this model were "
            "folded at conversion, so it trains without normalisation and no statistics are "
            "tracked per width; from scratch it often stays at chance. Convert with "
            "inn.convert(..., fold_batchnorm=False) to train with integral BatchNorm.",
            stacklevel=2,
        )
    bucketed = narrow_statistics_layers(model)
    for m in bucketed:
        m.set_statistics(None, None)
    for m in norms:
        m.track_statistics = True
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    model.train()
    if isinstance(settings.teacher, nn.Module):
        settings.teacher.to(device).eval()
    dtype = AMP[settings.amp]
    autocast = (
        (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else nullcontext
    )
    history: list[dict[str, Any]] = []
    if settings.log is not None and rank == 0:
        Path(settings.log).parent.mkdir(parents=True, exist_ok=True)
    batches = shards.batches(start)
    current: dict[str, Any] = {}
    smoothness = settings.smoothness
    if smoothness is None:  # a smoother weight function helps resampled channels only
        smoothness = 0.0 if _nested(model) else RESAMPLED_SMOOTHNESS
    penalty = roughness_penalty(model, smoothness) if smoothness > 0 else None
    target_loss = settings.target_loss()

    def one_step(i: int, backward: Callable[[Tensor], None]) -> float:
        _, (x, y) = next(batches)  # the batches of step i: they start at the same step
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if settings.augment is not None:
            x = settings.augment(x)
        draws, uniform = sampler.draw(i), sampler.uniform(i)
        teacher = None
        if settings.teacher is not None:
            with torch.no_grad(), autocast():
                teacher = settings.teacher(x).float()
        losses = []
        for k, draw in enumerate(draws):
            model.resize(widths=draw)
            for m in bucketed:  # statistics per width: recorded in uniform passes only
                m.record_widths = uniform[k]
            last = k == len(draws) - 1
            sync = net.no_sync() if (world > 1 and not last) else nullcontext()
            with sync:
                with autocast():
                    out = net(x)
                    if settings.distill and k > 0:
                        value = target_loss(out.float(), teacher)
                    else:
                        value = settings.loss(out.float(), y)
                    if settings.teacher is not None:
                        value = value + target_loss(out.float(), teacher)
                if settings.distill and k == 0:
                    teacher = out.detach().float()
                objective = value / len(draws)
                if last and penalty is not None:  # in the synchronised backward pass
                    objective = objective + penalty()
                backward(objective)
            losses.append(float(value.detach()))
        current.update(loss=sum(losses) / len(losses), widths=draws)
        return current["loss"]

    def on_step(i: int, value: float) -> None:
        if callback is not None:
            callback(i, current)
        done = i + 1
        if rank == 0 and (done % settings.log_every == 0 or done == total):
            elapsed = time.perf_counter() - tick
            entry = {
                "step": done, "loss": value, "lr": schedule.get_last_lr()[0],
                "samples_per_s": (done - start) * settings.batch_size / max(elapsed, 1e-9),
            }  # fmt: skip
            history.append(entry)
            if settings.log is not None:
                with open(settings.log, "a") as handle:
                    handle.write(json.dumps(entry) + "\n")
        if (
            settings.checkpoint is not None
            and settings.checkpoint_every
            and done % settings.checkpoint_every == 0
        ):
            _save(done)

    def _save(done: int) -> None:
        if rank == 0:
            save_checkpoint(
                settings.checkpoint, model, optimiser=opt.state_dict(), schedule=schedule.state_dict(),
                scaler=scaler.state_dict() if scaler is not None else None, step=done,
                sampler=sampler.state_dict(),
            )  # fmt: skip
        if world > 1:
            dist.barrier()

    tick = time.perf_counter()
    try:
        done = fit(
            one_step, opt, steps=total, start=start, schedule=schedule, scaler=scaler,
            clip_norm=settings.clip_norm, on_step=on_step, progress=settings.progress and rank == 0,
            desc="random-width training", items_per_step=settings.batch_size,
        )  # fmt: skip
    finally:
        for m in norms:
            m.track_statistics = False
        for m in bucketed:
            m.record_widths = True
        model.resize(widths={g.name: g.full_size for g in model.resizable_groups})
    seconds = time.perf_counter() - tick
    if norms and settings.statistics_batches > 0 and done > 0:
        inputs = _first_inputs(shards, total, settings.statistics_batches, device)
        reestimate_full_width_batchnorm(model, inputs)
        if bucketed:
            reestimate_width_statistics(model, inputs)
    if world > 1:  # each rank tracked the statistics of its own shards: rank 0's are kept
        for m in norms:
            for buffer in m.buffers():
                dist.broadcast(buffer, 0)
    if settings.checkpoint is not None and done > 0:
        _save(total)
    model.eval()
    return TrainReport(
        start=start,
        steps=total,
        seconds=seconds,
        samples_per_s=done * settings.batch_size / max(seconds, 1e-9),
        last_loss=current.get("loss", float("nan")),
        history=history,
    )


def _use_channels(model: IntegralModel, channels: str) -> None:
    """Resample or select (nested) the channels of narrow widths; an existing ranking (a model
    trained with selection, a resumed run) is kept."""
    if not isinstance(model, IntegralModel):
        raise InnError(f"channels={channels!r} needs a converted model (inn.convert)")
    nested = _nested(model)
    if channels == "resample" and nested:
        model.nest_channels(nested=False)
    elif channels == "select" and not nested:
        model.nest_channels()


def _nested(model: nn.Module) -> bool:
    """Whether ``model``'s narrow widths select nested channels (:meth:`IntegralModel.nest_channels`)."""
    if not isinstance(model, IntegralModel):
        return False
    return any(model.partition(g.name).order is not None for g in model.resizable_groups)


def _first_inputs(shards: _Shards, step: int, count: int, device: torch.device) -> list[Tensor]:
    """The inputs of ``count`` batches of the epoch after ``step`` (this rank's shards), at most
    one epoch's: a dataset of fewer batches gives each one once (repeats add no statistics)."""
    count = min(count, shards.per_epoch)
    out = []
    for _, (x, _) in shards.batches(step):
        out.append(x.to(device))
        if len(out) == count:
            break
    return out
