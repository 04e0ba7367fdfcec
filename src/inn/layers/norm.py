"""Integral batch normalisation: affine parameters and running statistics along channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inn.errors import ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec, fill, shared_partition
from inn.layers.narrow_statistics import NarrowStatistics
from inn.layers.registry import LayerRequest, register_integral_layer

__all__ = [
    "IntegralBatchNorm",
    "IntegralBatchNorm1d",
    "IntegralBatchNorm2d",
    "IntegralBatchNorm3d",
    "batch_norm_layer",
]


class IntegralBatchNorm(NarrowStatistics, IntegralLayer):
    """BatchNorm whose weight, bias, running mean and variance are functions of the channel.

    The channel axis is one role (``"out"`` and ``"in"`` share one partition). In training mode
    the batch statistics are used; the running statistics are left as they are (they are
    sampled, not stored per channel) unless ``track_statistics`` is set (random-width
    training sets it): then a pass at the full, uniform partition updates their node values with
    the BatchNorm's momentum, so that the statistics of every narrower width are sampled from
    them, and a pass at a narrow width records its batch statistics per width bucket
    (:mod:`inn.layers.width_statistics`): on the bucket's uniform lattice where the points are
    uniform, per lattice node where they are selected nodes (:meth:`IntegralModel.nest_channels`).
    In eval mode: statistics measured at the current widths (:func:`inn.reestimate_batchnorm`)
    if current, else at a narrow width the recorded width buckets, else the sampled running
    statistics; the variance clamped at 0 where interpolation undershoots.
    """

    discrete: type[nn.modules.batchnorm._BatchNorm]
    is_norm = True

    def __init__(
        self,
        norm: nn.modules.batchnorm._BatchNorm,
        partitions: PartitionSpec | None = None,
        *,
        rule: str = "rectangle",
    ) -> None:
        super().__init__(rule)
        if not isinstance(norm, self.discrete):
            raise ShapeError(
                f"{type(self).__name__} needs an {self.discrete.__name__}, got {type(norm).__name__}"
            )
        channels = norm.num_features
        shared = shared_partition(partitions, channels, rule, "a BatchNorm")
        self._set_partitions({"out": shared, "in": shared}, {"out": channels, "in": channels}, rule)
        self.eps, self.momentum, self.full_features = norm.eps, norm.momentum, channels
        self._register("weight", norm.weight, {0: "out"})
        self._register("bias", norm.bias, {0: "out"})
        self._register("running_mean", norm.running_mean, {0: "out"}, trainable=False)
        self._register("running_var", norm.running_var, {0: "out"}, trainable=False)
        self.track_statistics = False
        self._init_narrow_statistics(norm.running_mean)

    def _statistics_eps(self) -> float:
        return self.eps

    def _statistics_momentum(self) -> float | None:
        return self.momentum

    def statistics(self) -> dict[str, Tensor]:
        """The sampled tensors, with the measured statistics where they are current, else at a
        narrow width those of the width buckets where recorded
        (:meth:`~inn.layers.narrow_statistics.NarrowStatistics.narrow_statistics`)."""
        return self.narrow_statistics(self.sampled())

    @property
    def num_features(self) -> int:
        return self.size("out", self.full_features)

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            t = self.sampled()
            if self.track_statistics and "running_mean" in t:
                if self.at_full_width():
                    # The node values are the running statistics at the full uniform partition.
                    mean, var = self.running_mean_function.values, self.running_var_function.values
                    momentum = 0.1 if self.momentum is None else self.momentum
                    return F.batch_norm(
                        x, mean, var, t.get("weight"), t.get("bias"), True, momentum, self.eps
                    )
                if self._recording():
                    self._record_width(*_batch_moments(x))
            return F.batch_norm(x, None, None, t.get("weight"), t.get("bias"), True, 0.0, self.eps)
        t = self.statistics()
        if "running_mean" not in t:
            return F.batch_norm(x, None, None, t.get("weight"), t.get("bias"), True, 0.0, self.eps)
        if t["running_mean"].requires_grad:  # sampled at trained points (tune_partition)
            return _normalised(x, t["running_mean"], t["running_var"], t.get("weight"),
                               t.get("bias"), self.eps)  # fmt: skip
        return F.batch_norm(
            x, t["running_mean"], t["running_var"], t.get("weight"), t.get("bias"), False, 0.0,
            self.eps,
        )  # fmt: skip

    def to_discrete(self) -> nn.Module:
        t = self.statistics()
        ref = next(iter(t.values()))
        layer = self.discrete(
            self.num_features,
            eps=self.eps,
            momentum=self.momentum,
            affine="weight" in t,
            track_running_stats="running_mean" in t,
            device=ref.device,
            dtype=ref.dtype,
        )
        return fill(layer.eval(), t)


def _batch_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and unbiased variance of ``x`` ``(N, C, ...)``, as BatchNorm tracks them."""
    with torch.no_grad():
        values = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
        var, mean = torch.var_mean(values, dim=1, correction=1 if values.shape[1] > 1 else 0)
    return mean, var


class IntegralBatchNorm1d(IntegralBatchNorm):
    discrete = nn.BatchNorm1d


class IntegralBatchNorm2d(IntegralBatchNorm):
    discrete = nn.BatchNorm2d


class IntegralBatchNorm3d(IntegralBatchNorm):
    discrete = nn.BatchNorm3d


_BATCHNORMS = {
    c.discrete: c for c in (IntegralBatchNorm1d, IntegralBatchNorm2d, IntegralBatchNorm3d)
}


@register_integral_layer(*_BATCHNORMS, kinds=("norm",))
def batch_norm_layer(norm: nn.Module, request: LayerRequest) -> IntegralLayer:
    """The integral layer of an ``nn.BatchNorm1d/2d/3d`` (one channel axis)."""
    return _BATCHNORMS[type(norm)](norm, request.partitions, rule=request.rule)


def _normalised(
    x: Tensor, mean: Tensor, var: Tensor, weight: Tensor | None, bias: Tensor | None, eps: float
) -> Tensor:
    """Eval-mode batch normalisation of ``x`` ``(N, C, ...)`` written out, differentiable with
    respect to the statistics ``(C,)`` too (``F.batch_norm`` is not)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    return y if bias is None else y + bias.view(shape)
