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
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from inn.convert import IntegralModel
from inn.errors import InnError
from inn.loop import fit
from inn.recover.smooth import roughness_penalty
from inn.recover.statistics import reestimate_full_width_batchnorm, tracked_norms
from inn.train.checkpoint import load_checkpoint, save_checkpoint
from inn.train.widths import WidthRange, WidthSampler

__all__ = ["TrainReport", "train"]

OPTIMISERS = ("sgd", "adamw")
AMP = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def _optimiser(model: nn.Module, kind: str, lr: float, momentum: float, weight_decay: float):
    """Weight decay on the node values of weights (two or more axes) only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise InnError(f"unknown optimiser {kind!r}; choose one of {OPTIMISERS}")


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
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 64,
    widths: WidthRange | Mapping[str, WidthRange] | WidthSampler = (0.25, 1.0),
    rule: str = "sandwich",
    num_random: int = 2,
    distill: bool = False,
    smoothness: float = 0.0,
    loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    optimiser: str = "sgd",
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup: float = 0.05,
    amp: str | None = None,
    clip_norm: float | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
    log: str | Path | None = None,
    log_every: int = 10,
    seed: int = 0,
    statistics_batches: int = 20,
    ddp: bool | None = None,
    num_workers: int = 0,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> TrainReport:
    """Train ``model``'s continuous weights so that every width of ``widths`` works.

    Args:
        model: a converted model (:func:`inn.convert`; from a trained network or a freshly
            initialised one; ``fold_batchnorm=False`` keeps integral BatchNorms, whose running
            statistics are then tracked at full width and sampled at every other width).
        dataset: a map-style dataset of ``(inputs, targets)``.
        steps, epochs: the length of training (one of them; an epoch is
            ``len(dataset) // batch_size`` steps).
        batch_size: the global batch (split evenly over the processes).
        widths: one width range for every resizable group (fractions ``(low, high)`` in
            (0, 1] or channel counts), ``{group: range}``, or a :class:`WidthSampler`.
        rule: ``"sandwich"`` (largest + smallest + ``num_random`` random widths per step,
            gradients accumulated, one optimiser step) or ``"random"`` (the paper's Algorithm 1:
            one random width per step).
        distill: in-place distillation: the outputs of the largest width (detached) are the
            target (KL divergence) of the others; needs the sandwich rule.
        smoothness: adds ``smoothness`` x the mean roughness (squared second differences along
            the channel axes, :func:`inn.recover.roughness`) of the weights' node values to the
            loss once per step: smoother weight functions lose less when sampled at few points.
        loss: ``loss(outputs, targets)`` (default cross-entropy).
        optimiser: ``"sgd"`` (Nesterov momentum) or ``"adamw"``; weight decay applies to the
            weights' node values only. Linear warm-up over ``warmup`` of the steps, then cosine.
        amp: ``"bf16"`` or ``"fp16"`` (CUDA; with a gradient scaler): autocast mixed precision.
        augment: applied to each batch of inputs before the forward passes.
        checkpoint: a file: written every ``checkpoint_every`` steps and at the end (by rank 0);
            if it exists and ``resume``, training continues from it (on any number of processes).
        log: a JSON-lines file (rank 0): step, loss, learning rate, samples/s every ``log_every``
            steps.
        seed: the data order and the width draws of every step depend on it only.
        statistics_batches: at the end, the integral BatchNorms' statistics are averaged over
            this many training batches at full width.
        ddp: wrap the model in DistributedDataParallel (``None``: when a process group of more
            than one process is initialised).
        callback: ``callback(step, info)`` after every step; ``info`` has ``loss`` and
            ``widths`` (the widths of each forward pass).

    Returns:
        A :class:`TrainReport`. The model is left at full width, in eval mode.
    """
    sampler = (
        widths
        if isinstance(widths, WidthSampler)
        else WidthSampler.for_model(model, widths, rule=rule, num_random=num_random, seed=seed)
    )
    if distill and not (
        sampler.rule == "sandwich"
        or (sampler.rule == "fixed" and sampler.fixed[0] == max(sampler.fixed))
    ):
        raise InnError(
            "distill=True needs rule='sandwich' or a 'fixed' rule starting at the largest width "
            "(the first width of each step is the teacher)"
        )
    if amp not in AMP:
        raise InnError(f"unknown amp {amp!r}; choose one of {[k for k in AMP if k]} or None")
    if (steps is None) == (epochs is None):
        raise InnError("give the length of training as steps=... or epochs=... (one of them)")
    rank, world = _distributed(ddp)
    shards = _Shards(dataset, batch_size, rank, world, seed, num_workers)
    total = steps if steps is not None else max(1, round(epochs * shards.per_epoch))
    device = next(model.parameters()).device
    if amp == "fp16" and device.type != "cuda":
        raise InnError("amp='fp16' needs a CUDA model; use amp='bf16' on the CPU")

    opt = _optimiser(model, optimiser, lr, momentum, weight_decay)
    schedule = _schedule(opt, total, warmup)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    start = 0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, model)
        opt.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        sampler = WidthSampler.from_state_dict(state["sampler"])
        start = state["step"]
    norms = tracked_norms(model)
    for m in norms:
        m.set_statistics(None, None)
        m.track_statistics = True
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    model.train()
    autocast = (
        (lambda: torch.autocast(device.type, dtype=AMP[amp])) if amp is not None else nullcontext
    )
    history: list[dict[str, Any]] = []
    if log is not None and rank == 0:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    batches = shards.batches(start)
    current: dict[str, Any] = {}
    penalty = roughness_penalty(model, smoothness) if smoothness > 0 else None

    def one_step(i: int, backward: Callable[[Tensor], None]) -> float:
        _, (x, y) = next(batches)  # the batches of step i: they start at the same step
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if augment is not None:
            x = augment(x)
        draws = sampler.draw(i)
        teacher = None
        losses = []
        for k, draw in enumerate(draws):
            model.resize(widths=draw)
            last = k == len(draws) - 1
            sync = net.no_sync() if (world > 1 and not last) else nullcontext()
            with sync:
                with autocast():
                    out = net(x)
                    if distill and k > 0:
                        value = F.kl_div(
                            F.log_softmax(out.float(), -1), F.log_softmax(teacher, -1),
                            log_target=True, reduction="batchmean",
                        )  # fmt: skip
                    else:
                        value = loss(out.float(), y)
                if distill and k == 0:
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
        if rank == 0 and (done % log_every == 0 or done == total):
            elapsed = time.perf_counter() - tick
            entry = {
                "step": done, "loss": value, "lr": schedule.get_last_lr()[0],
                "samples_per_s": (done - start) * batch_size / max(elapsed, 1e-9),
            }  # fmt: skip
            history.append(entry)
            if log is not None:
                with open(log, "a") as handle:
                    handle.write(json.dumps(entry) + "\n")
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
            _save(done)

    def _save(done: int) -> None:
        if rank == 0:
            save_checkpoint(
                checkpoint, model, optimiser=opt.state_dict(), schedule=schedule.state_dict(),
                scaler=scaler.state_dict() if scaler is not None else None, step=done,
                sampler=sampler.state_dict(),
            )  # fmt: skip
        if world > 1:
            dist.barrier()

    tick = time.perf_counter()
    try:
        done = fit(
            one_step, opt, steps=total, start=start, schedule=schedule, scaler=scaler,
            clip_norm=clip_norm, on_step=on_step, progress=progress and rank == 0,
            desc="random-width training", items_per_step=batch_size,
        )  # fmt: skip
    finally:
        for m in norms:
            m.track_statistics = False
        model.resize(widths={g.name: g.full_size for g in model.resizable_groups})
    seconds = time.perf_counter() - tick
    if norms and statistics_batches > 0 and done > 0:
        reestimate_full_width_batchnorm(
            model, _first_inputs(shards, total, statistics_batches, device)
        )
        if world > 1:
            for m in norms:
                dist.broadcast(m.running_mean_function.values, 0)
                dist.broadcast(m.running_var_function.values, 0)
    if checkpoint is not None and done > 0:
        _save(total)
    model.eval()
    return TrainReport(
        start=start,
        steps=total,
        seconds=seconds,
        samples_per_s=done * batch_size / max(seconds, 1e-9),
        last_loss=current.get("loss", float("nan")),
        history=history,
    )


def _first_inputs(shards: _Shards, step: int, count: int, device: torch.device) -> list[Tensor]:
    """The inputs of ``count`` batches of the epoch after ``step`` (this rank's shards)."""
    out = []
    for _, (x, _) in shards.batches(step):
        out.append(x.to(device))
        if len(out) == count:
            break
    return out
