"""Integral batch normalisation: affine parameters and running statistics along channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from inn.continuous import Partition
from inn.errors import ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec, fill, shared_partition
from inn.layers.registry import LayerRequest, register_integral_layer

__all__ = [
    "IntegralBatchNorm",
    "IntegralBatchNorm1d",
    "IntegralBatchNorm2d",
    "IntegralBatchNorm3d",
    "batch_norm_layer",
]


class IntegralBatchNorm(IntegralLayer):
    """BatchNorm whose weight, bias, running mean and variance are functions of the channel.

    The channel axis is one role (``"out"`` and ``"in"`` share one partition). In training mode
    the batch statistics are used; the running statistics are left as they are (they are
    sampled, not stored per channel) unless ``track_statistics`` is set (random-width
    training sets it): then a pass at the full, uniform partition updates their node values with
    the BatchNorm's momentum, so that the statistics of every narrower width are sampled from
    them. In eval mode the sampled running statistics are used, with the variance clamped at 0
    where interpolation undershoots.
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
        self.register_buffer("measured_mean", None, persistent=False)
        self.register_buffer("measured_var", None, persistent=False)
        self._measured_sizes: tuple[object, ...] | None = None
        self._measured_under: tuple[Partition, ...] = ()
        self.track_statistics = False

    def _sizes(self) -> tuple[object, ...]:
        own = tuple(p.sampling_key for p in self.segment_partitions("out"))
        return own + tuple(p.sampling_key for p in self._measured_under)

    def set_statistics(
        self, mean: Tensor | None, var: Tensor | None, under: Sequence[Partition] = ()
    ) -> None:
        """Use ``mean`` and ``var`` (shape ``(num_features,)``) instead of the sampled running
        statistics until the partition's size changes, or any partition of ``under`` (the
        widths upstream that the statistics were measured at) changes; ``None`` goes back to
        the sampled ones."""
        if mean is None or var is None:
            self.measured_mean = self.measured_var = self._measured_sizes = None
            self._measured_under = ()
            return
        if mean.shape != (self.num_features,) or var.shape != (self.num_features,):
            raise ShapeError(
                f"{type(self).__name__} has {self.num_features} channels, got statistics of "
                f"shapes {tuple(mean.shape)} and {tuple(var.shape)}"
            )
        self.measured_mean, self.measured_var = mean.detach().clone(), var.detach().clone()
        self._measured_under = tuple(under)
        self._measured_sizes = self._sizes()

    def statistics(self) -> dict[str, Tensor]:
        """The sampled tensors, with the measured statistics where they are current."""
        t = dict(self.sampled())
        if self._measured_sizes is not None and self._measured_sizes == self._sizes():
            like = t.get("running_mean", self.measured_mean)
            t["running_mean"] = self.measured_mean.to(like)
            t["running_var"] = self.measured_var.to(like)
        if "running_var" in t:
            t["running_var"] = t["running_var"].clamp_min(0)
        return t

    @property
    def num_features(self) -> int:
        return self.size("out", self.full_features)

    def forward(self, x: Tensor) -> Tensor:
        t = self.statistics()
        if self.training and self.track_statistics and "running_mean" in t and self.at_full_width():
            # The node values are the running statistics at the full uniform partition.
            mean, var = self.running_mean_function.values, self.running_var_function.values
            momentum = 0.1 if self.momentum is None else self.momentum
            return F.batch_norm(
                x, mean, var, t.get("weight"), t.get("bias"), True, momentum, self.eps
            )
        if self.training or "running_mean" not in t:
            return F.batch_norm(x, None, None, t.get("weight"), t.get("bias"), True, 0.0, self.eps)
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
