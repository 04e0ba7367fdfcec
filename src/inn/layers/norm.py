"""Integral batch normalisation: affine parameters and running statistics along channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inn.continuous import Partition
from inn.errors import InnError, ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec, fill, shared_partition
from inn.layers.registry import LayerRequest, register_integral_layer
from inn.layers.width_statistics import (
    BUCKETS,
    blend,
    blend_nodes,
    bucket_sizes,
    lattice_matrix,
    neighbours,
    rebucket,
)

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
        stats = norm.running_mean
        self.register_buffer(  # (mean / variance, bucket, channel): see width_statistics
            "width_statistics",
            None if stats is None else stats.new_zeros(2, BUCKETS - 1, channels),
        )
        self.register_buffer(
            "width_counts", None if stats is None else stats.new_zeros(BUCKETS - 1)
        )
        self.register_buffer(  # (mean / variance / weight recorded, bucket, node): selected nodes
            "node_statistics",
            None if stats is None else stats.new_zeros(3, BUCKETS - 1, channels),
        )
        self.register_buffer("measured_mean", None, persistent=False)
        self.register_buffer("measured_var", None, persistent=False)
        self._measured_sizes: tuple[object, ...] | None = None
        self._measured_under: tuple[Partition, ...] = ()
        self.track_statistics = False
        # whether a tracked pass at a narrow width records its statistics (random-width training
        # records only passes in which every group is at the same fraction: the statistics of a
        # width depend on the widths upstream, and evaluation at a width fraction has them equal)
        self.record_widths = True
        self._bucket_cache: tuple[Any, tuple[Tensor, Tensor] | None] | None = None

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
        self._check_statistics(mean, var)
        self.measured_mean, self.measured_var = mean.detach().clone(), var.detach().clone()
        self._measured_under = tuple(under)
        self._measured_sizes = self._sizes()

    def _check_statistics(self, mean: Tensor, var: Tensor) -> None:
        if mean.shape != (self.num_features,) or var.shape != (self.num_features,):
            raise ShapeError(
                f"{type(self).__name__} has {self.num_features} channels, got statistics of "
                f"shapes {tuple(mean.shape)} and {tuple(var.shape)}"
            )

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        for name in ("width_statistics", "width_counts", "node_statistics"):  # saved before them
            if getattr(self, name) is not None:
                state_dict.setdefault(prefix + name, getattr(self, name))
        saved = state_dict.get(prefix + "width_statistics")
        if saved is not None and self.width_statistics is not None and saved.shape[1] != BUCKETS - 1:
            state_dict[prefix + "width_statistics"], state_dict[prefix + "width_counts"] = rebucket(
                saved, state_dict[prefix + "width_counts"], self._segment_sizes()[1],
                closed=self._closed(),
            )  # fmt: skip
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _segment_sizes(self) -> tuple[list[int], list[int]]:
        parts = self.segment_partitions("out")
        return [p.size for p in parts], [p.full_size for p in parts]

    def _record_width(self, x: Tensor) -> None:
        """Random-width training at a narrow width: this batch's statistics into the width
        buckets around its width (:mod:`inn.layers.width_statistics`)."""
        sizes, full = self._segment_sizes()
        nodes = self._node_index()
        with torch.no_grad():
            values = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
            var, mean = torch.var_mean(values, dim=1, correction=1 if values.shape[1] > 1 else 0)
            momentum = 0.1 if self.momentum is None else self.momentum
            for k, weight in neighbours(sum(sizes) / sum(full)):
                if k == BUCKETS - 1:  # the full width: tracked at full width only
                    continue
                if nodes is not None:
                    seen = self.node_statistics[2, k, nodes]
                    rate = torch.where(seen > 0, momentum * weight, 1.0)
                    old = self.node_statistics[:2, k, nodes]
                    self.node_statistics[:2, k, nodes] = old.lerp(self._relative(mean, var), rate)
                    self.node_statistics[2, k, nodes] = seen + weight
                    continue
                rate = 1.0 if self.width_counts[k] == 0 else momentum * weight
                self._bucket(k).lerp_(self._to_bucket(k, mean, var), rate)
                self.width_counts[k] += weight

    def _at_nodes(self) -> bool:
        """Whether every segment is at selected nodes or its full uniform lattice."""
        return all(
            p.selected is not None or (p.is_uniform and p.size == p.full_size)
            for p in self.segment_partitions("out")
        )

    def _node_index(self) -> Tensor | None:
        """The lattice nodes the current points are (index over the concatenated segments'
        nodes) where :meth:`_at_nodes`, else ``None``."""
        if not self._at_nodes():
            return None
        index, offset = [], 0
        for p in self.segment_partitions("out"):
            index.extend(offset + i for i in (p.selected or range(p.full_size)))
            offset += p.full_size
        return torch.tensor(index, dtype=torch.long, device=self.node_statistics.device)

    def _relative(self, mean: Tensor, var: Tensor) -> Tensor:
        """``(2, n)``: statistics at the current width relative to the full width's sampled at
        it (:meth:`_sampled_full`)."""
        stats = self.width_statistics
        base_mean, base_var = self._sampled_full(stats)
        return torch.stack([mean.to(stats) - base_mean, var.to(stats) / base_var])

    def _bucket(self, k: int) -> Tensor:
        """``(2, n)``: bucket ``k``'s mean and variance on its own lattice (a view)."""
        return self.width_statistics[:, k, : sum(self._bucket_sizes(k))]

    def _bucket_sizes(self, k: int) -> list[int]:
        return bucket_sizes(self._segment_sizes()[1], k)

    def _to_bucket(self, k: int, mean: Tensor, var: Tensor) -> Tensor:
        """Statistics at the current uniform width, relative to the full width's sampled at it
        (:meth:`_sampled_full`), on bucket ``k``'s lattice (unchanged where the width is the
        bucket's)."""
        move = lattice_matrix(
            self._segment_sizes()[0], self._bucket_sizes(k), closed=self._closed(),
            like=self.width_statistics,
        )  # fmt: skip
        return self._relative(mean, var) @ move.T

    def _sampled_full(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """The full width's running mean and variance sampled at the current width. Buckets
        keep their statistics relative to these (mean: difference, variance: ratio), which
        carry what varies from one channel to the next, so that moving them to another lattice
        interpolates only how the width changes them."""
        with torch.no_grad():
            t = self.sampled()
        return t["running_mean"].to(like), t["running_var"].to(like).clamp_min(self.eps)

    def set_width_statistics(self, bucket: int, mean: Tensor, var: Tensor) -> None:
        """Store ``mean`` and ``var`` (shape ``(num_features,)``), measured at the current
        narrow width (uniform points or selected nodes), as the statistics of width bucket
        ``bucket`` (fraction ``(bucket + 1) / BUCKETS``; see :mod:`inn.layers.width_statistics`)."""
        if not 0 <= bucket < BUCKETS - 1:
            raise InnError(f"bucket must be in [0, {BUCKETS - 2}], got {bucket}")
        self._check_statistics(mean, var)
        with torch.no_grad():
            nodes = self._node_index()
            if nodes is not None:
                self.node_statistics[:2, bucket, nodes] = self._relative(mean.float(), var.float())
                seen = self.node_statistics[2, bucket, nodes]
                self.node_statistics[2, bucket, nodes] = seen.clamp_min(1)
                return
            self._bucket(bucket).copy_(self._to_bucket(bucket, mean.float(), var.float()))
            self.width_counts[bucket] = max(float(self.width_counts[bucket]), 1.0)

    def _bucket_statistics(self, like: Tensor) -> tuple[Tensor, Tensor] | None:
        """The running mean and variance at the current narrow uniform width blended from the
        width buckets, or ``None`` where a bucket it needs was never recorded. Memoised until
        the width, a bucket or the full width's statistics change (it runs at every forward
        pass in eval mode)."""
        tensors = (
            self.width_statistics, self.width_counts, self.node_statistics,
            self.running_mean_function.values, self.running_var_function.values,
        )  # fmt: skip
        key = (
            tuple(p.sampling_key for p in self.segment_partitions("out")),
            tuple((id(t), t._version) for t in tensors), like.dtype, like.device,
        )  # fmt: skip
        if self._bucket_cache is None or self._bucket_cache[0] != key:
            self._bucket_cache = (key, self._blend_buckets(like))
        return self._bucket_cache[1]

    def _blend_buckets(self, like: Tensor) -> tuple[Tensor, Tensor] | None:
        sizes, full = self._segment_sizes()
        nodes = self._node_index()
        if nodes is not None:
            relative = blend_nodes(self.node_statistics, nodes, sum(sizes) / sum(full))
        else:
            relative = blend(
                self.width_statistics, self.width_counts, full, sizes, closed=self._closed()
            )
            if relative is None:
                return None
        base_mean, base_var = self._sampled_full(self.width_statistics)
        return (base_mean + relative[0]).to(like), (base_var * relative[1]).to(like)

    def _closed(self) -> bool:
        return self.running_mean_function.closed

    def _bucketed(self) -> bool:
        """Whether the width buckets serve the current width: narrow, at uniform points or at
        selected nodes (not trained points)."""
        if self.at_full_width():
            return False
        parts = self.segment_partitions("out")
        return all(p.is_uniform for p in parts) or self._at_nodes()

    def statistics(self) -> dict[str, Tensor]:
        """The sampled tensors, with the measured statistics where they are current, else at a
        narrow width those of the width buckets where recorded."""
        t = dict(self.sampled())
        if self._measured_sizes is not None and self._measured_sizes == self._sizes():
            like = t.get("running_mean", self.measured_mean)
            t["running_mean"] = self.measured_mean.to(like)
            t["running_var"] = self.measured_var.to(like)
        elif "running_mean" in t and self._bucketed():
            blended = self._bucket_statistics(t["running_mean"])
            if blended is not None:
                t["running_mean"], t["running_var"] = blended
        if "running_var" in t:
            t["running_var"] = t["running_var"].clamp_min(0)
        return t

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
                if self.record_widths and self._bucketed():
                    self._record_width(x)
            return F.batch_norm(x, None, None, t.get("weight"), t.get("bias"), True, 0.0, self.eps)
        t = self.statistics()
        if "running_mean" not in t:
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
