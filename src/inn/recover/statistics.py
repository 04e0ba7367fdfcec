"""BatchNorm statistics measured again: at the current widths, or at full width for all widths.

Narrowing a network shifts the mean and variance that reach each BatchNorm; statistics measured
on a few hundred calibration images in a forward pass repair much of it (EagleEye's adaptive
BatchNorm, Li et al., ECCV 2020). Two jobs, two functions:

* :func:`reestimate_batchnorm`: at the model's current widths, after resizing. For an integral
  model the measured statistics replace the sampled running statistics of its integral
  BatchNorms while no group's width changes (the node values are not changed, so resizing
  back to full width is exact); for a plain model its BatchNorms' running statistics are
  replaced. The statistics are the moments pooled over all the data.
* :func:`reestimate_full_width_batchnorm`: the node values of the running statistics (the
  continuous statistics every width samples from) measured at full width, after random-width
  training has changed the weights. The statistics are the average of the batches' statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from inn.convert import IntegralModel
from inn.layers import IntegralBatchNorm, IntegralWrapped, NarrowStatistics
from inn.layers.width_statistics import BUCKETS, bucket_sizes
from inn.recover.batches import as_batches

__all__ = [
    "narrow_statistics_layers",
    "reestimate_batchnorm",
    "reestimate_full_width_batchnorm",
    "reestimate_width_statistics",
    "tracked_norms",
]


class _Moments:
    """Pooled per-channel sums of one BatchNorm's inputs, shape ``(C,)`` each, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.total: Tensor | float = 0.0
        self.squares: Tensor | float = 0.0

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        x = inputs[0].detach().double().movedim(1, 0).reshape(inputs[0].shape[1], -1)
        self.count += x.shape[1]
        self.total = self.total + x.sum(1)
        self.squares = self.squares + x.square().sum(1)

    def mean_var(self) -> tuple[Tensor, Tensor]:
        mean = self.total / self.count
        var = (self.squares - self.count * mean.square()) / max(self.count - 1, 1)
        return mean, var.clamp_min(0)


def reestimate_batchnorm(model: nn.Module, data: Iterable) -> int:
    """Measure every BatchNorm's statistics on ``data`` at the model's current widths.

    One pass over ``data`` with each BatchNorm normalising by its batch statistics (as in
    training, so every layer sees the inputs it will see once re-estimated), no gradient; the
    pooled mean and unbiased variance of each BatchNorm's input become its statistics. Integral
    BatchNorms keep them while no group's width changes (:meth:`set_statistics`); in a plain
    model the running statistics are overwritten. Plain BatchNorms inside an integral model
    (groups kept at full width) are left as they are. The model's mode is restored. (To change
    the statistics of every width: :func:`reestimate_full_width_batchnorm`.)

    Args:
        model: an :class:`inn.IntegralModel` (converted with ``fold_batchnorm=False`` to have
            BatchNorms) or a plain model.
        data: batches ``(inputs, targets)`` or ``inputs``.

    Returns:
        The number of BatchNorms re-estimated.
    """
    norms: list[nn.Module] = list(narrow_statistics_layers(model))
    if not isinstance(model, IntegralModel):
        norms += [
            m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]  # fmt: skip
    if not norms:
        return 0
    batches = as_batches(data)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    moments = _measure(model, norms, [x.to(device) for x, _ in batches])
    # measured at every group's current width: stale once any group changes
    under = (
        [model.partition(g.name) for g in model.groups] if isinstance(model, IntegralModel) else []
    )
    for m in norms:
        mean, var = moments[m]
        if isinstance(m, NarrowStatistics):
            m.set_statistics(mean.float(), var.float(), under)
        else:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.fill_(len(batches))
    return len(norms)


def _measure(
    model: nn.Module, norms: list[nn.Module], inputs: list[Tensor]
) -> dict[nn.Module, tuple[Tensor, Tensor]]:
    """Pooled mean and unbiased variance (float64, shape ``(C,)``) of each of ``norms``' inputs
    over ``inputs``, with the norms normalising by batch statistics and the rest of the model
    in eval mode; no gradient, the modes restored."""
    moments = {m: _Moments() for m in norms}
    handles = [m.register_forward_pre_hook(moments[m]) for m in norms]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for m in norms:
            m.train()
        with torch.no_grad():
            for x in inputs:
                model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    return {m: moments[m].mean_var() for m in norms}


def reestimate_width_statistics(model: IntegralModel, inputs: list[Tensor]) -> int:
    """Measure the statistics of every width bucket of ``model``'s integral BatchNorms
    (:mod:`inn.layers.width_statistics`) on ``inputs`` (shape ``(B, ...)`` each): for bucket
    ``k`` (``0 <= k < BUCKETS - 1``) every resizable group is narrowed to ``(k + 1) / BUCKETS``
    of its channels (:func:`~inn.layers.width_statistics.bucket_sizes`) and the pooled
    statistics are stored in the bucket. A width with no data then blends measured statistics
    instead of sampling the full width's. The widths are restored. Returns the number of
    BatchNorms whose buckets were set.
    """
    norms = narrow_statistics_layers(model)
    groups = model.resizable_groups
    if not norms or not groups:
        return 0
    measured: set[nn.Module] = set()
    with model.widths_kept():
        for bucket in range(BUCKETS - 1):
            model.resize(widths={g.name: bucket_sizes([g.full_size], bucket)[0] for g in groups})
            narrow = [m for m in norms if not m.at_full_width()]
            for m, (mean, var) in _measure(model, narrow, inputs).items():
                m.set_width_statistics(bucket, mean, var)
                measured.add(m)
    return len(measured)


def tracked_norms(model: nn.Module) -> list[IntegralBatchNorm | IntegralWrapped]:
    """The layers of ``model`` whose running statistics random-width training tracks: integral
    BatchNorms with running statistics, and wrapped normalisations (a timm ``BatchNormAct2d``, a
    user's BatchNorm subclass) whose forward updates running statistics."""
    return [
        m
        for m in model.modules()
        if (isinstance(m, IntegralBatchNorm) and m.running_mean_function is not None)
        or (isinstance(m, IntegralWrapped) and m.tracked_buffers)
    ]


def narrow_statistics_layers(model: nn.Module) -> list[NarrowStatistics]:
    """The layers of ``model`` that keep statistics at narrow widths (measured, width
    buckets): integral BatchNorms and BatchNorm-like wrapped modules with running statistics."""
    return [
        m for m in model.modules() if isinstance(m, NarrowStatistics) and m.keeps_narrow_statistics
    ]


def _momentum_owner(norm: IntegralBatchNorm | IntegralWrapped) -> nn.Module:
    return norm.module if isinstance(norm, IntegralWrapped) else norm


def reestimate_full_width_batchnorm(model: IntegralModel, batches: list[Tensor]) -> None:
    """Set the running statistics of ``model``'s integral BatchNorms (their node values, i.e.
    the full width's statistics, which every width samples) to the average batch statistics
    over ``batches`` (inputs, shape ``(B, ...)``), measured at full width with the current
    weights. The model's widths and mode are restored; unlike :func:`reestimate_batchnorm`, the
    change holds at every width."""
    norms = tracked_norms(model)
    if not norms:
        return
    momenta = {m: _momentum_owner(m).momentum for m in norms}
    was_training = model.training
    with model.widths_kept(), torch.no_grad():
        model.resize(widths={g.name: g.full_size for g in model.resizable_groups})
        model.train()
        for m in norms:
            m.track_statistics = True
            if isinstance(m, NarrowStatistics):
                m.set_statistics(None, None)
        try:
            for k, x in enumerate(batches):
                for m in norms:  # a running average of the batch statistics
                    _momentum_owner(m).momentum = 1.0 / (k + 1)
                model(x)
        finally:
            for m in norms:
                _momentum_owner(m).momentum, m.track_statistics = momenta[m], False
            model.train(was_training)
