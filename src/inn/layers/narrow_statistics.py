"""Running statistics of a layer at narrow widths, whoever computes the normalisation: an
integral BatchNorm, or a BatchNorm-like module resized through its own forward (timm's
``BatchNormAct2d``, a user's BatchNorm subclass).

Two sources, in this order: statistics measured at the current widths
(:meth:`NarrowStatistics.set_statistics`, :func:`inn.reestimate_batchnorm`), and the width
buckets that random-width training records (:mod:`inn.layers.width_statistics`). Where neither
serves the current width, the full width's running statistics sampled at it are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from inn.continuous import Partition
from inn.errors import InnError, ShapeError
from inn.layers.base import at_nodes, node_indices
from inn.layers.width_statistics import (
    BUCKETS,
    blend,
    blend_nodes,
    bucket_sizes,
    lattice_matrix,
    neighbours,
    rebucket,
    rebucket_nodes,
)

__all__ = ["NarrowStatistics"]

_BUFFERS = ("width_statistics", "width_counts", "node_statistics")


class NarrowStatistics:
    """Mixin of an :class:`~inn.layers.IntegralLayer` whose continuous tensors include
    ``running_mean`` and ``running_var`` along its ``"out"`` channels.

    The host calls :meth:`_init_narrow_statistics` in its ``__init__``, provides
    :meth:`_statistics_eps` and :meth:`_statistics_momentum`, records the batch statistics of
    narrow training passes with :meth:`_record_width` (where :meth:`_recording`), and evaluates
    with :meth:`narrow_statistics` applied to its sampled tensors.

    Buffers: ``width_statistics`` ``(2, BUCKETS - 1, C)`` (relative mean and variance per
    bucket, on the bucket's lattice), ``width_counts`` ``(BUCKETS - 1,)`` (weight recorded per
    bucket), ``node_statistics`` ``(3, BUCKETS - 1, C)`` (relative mean, variance and weight
    recorded per bucket and lattice node, for selected channels).
    """

    track_statistics: bool

    def _init_narrow_statistics(self, running_mean: Tensor | None) -> None:
        """Register the buffers (``None`` where the layer has no running statistics)."""

        def zeros(*shape: int) -> Tensor | None:
            return None if running_mean is None else running_mean.new_zeros(shape)

        c = 0 if running_mean is None else running_mean.shape[0]
        self.register_buffer("width_statistics", zeros(2, BUCKETS - 1, c))
        self.register_buffer("width_counts", zeros(BUCKETS - 1))
        self.register_buffer("node_statistics", zeros(3, BUCKETS - 1, c))
        self.register_buffer("measured_mean", None, persistent=False)
        self.register_buffer("measured_var", None, persistent=False)
        self._measured_sizes: tuple[object, ...] | None = None
        self._measured_under: tuple[Partition, ...] = ()
        # whether a tracked pass at a narrow width records its statistics (random-width training
        # records only passes in which every group is at the same fraction: the statistics of a
        # width depend on the widths upstream, and evaluation at a width fraction has them equal)
        self.record_widths = True
        self._bucket_cache: tuple[Any, tuple[Tensor, Tensor] | None] | None = None

    @property
    def keeps_narrow_statistics(self) -> bool:
        """Whether the layer has running statistics (and so buckets and measured statistics)."""
        return self.width_statistics is not None

    @property
    def has_width_statistics(self) -> bool:
        """Whether any width bucket holds recorded statistics (random-width training, or
        :func:`inn.recover.reestimate_width_statistics`, measured them)."""
        if not self.keeps_narrow_statistics:
            return False
        return bool((self.width_counts > 0).any() or (self.node_statistics[2] > 0).any())

    def _statistics_eps(self) -> float:
        raise NotImplementedError

    def _statistics_momentum(self) -> float | None:
        raise NotImplementedError

    # -- measured at the current widths ----------------------------------------------------
    def _sizes(self) -> tuple[object, ...]:
        own = tuple(p.sampling_key for p in self.segment_partitions("out"))
        return own + tuple(p.sampling_key for p in self._measured_under)

    def set_statistics(
        self, mean: Tensor | None, var: Tensor | None, under: Sequence[Partition] = ()
    ) -> None:
        """Use ``mean`` and ``var`` (shape ``(C,)`` at the current width) instead of the
        sampled running statistics until the partition's size changes, or any partition of
        ``under`` (the widths upstream that the statistics were measured at) changes; ``None``
        goes back to the sampled ones."""
        if mean is None or var is None:
            self.measured_mean = self.measured_var = self._measured_sizes = None
            self._measured_under = ()
            return
        self._check_statistics(mean, var)
        self.measured_mean, self.measured_var = mean.detach().clone(), var.detach().clone()
        self._measured_under = tuple(under)
        self._measured_sizes = self._sizes()

    def _check_statistics(self, mean: Tensor, var: Tensor) -> None:
        channels = sum(self._segment_sizes()[0])
        if mean.shape != (channels,) or var.shape != (channels,):
            raise ShapeError(
                f"{type(self).__name__} has {channels} channels, got statistics of "
                f"shapes {tuple(mean.shape)} and {tuple(var.shape)}"
            )

    # -- width buckets ----------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        for name in _BUFFERS:  # state saved before them
            if getattr(self, name) is not None:
                state_dict.setdefault(prefix + name, getattr(self, name))
        saved = state_dict.get(prefix + "width_statistics")
        if (
            saved is not None
            and self.width_statistics is not None
            and saved.shape[1] != BUCKETS - 1
        ):
            state_dict[prefix + "width_statistics"], state_dict[prefix + "width_counts"] = rebucket(
                saved, state_dict[prefix + "width_counts"], self._segment_sizes()[1],
                closed=self._closed(),
            )  # fmt: skip
        nodes = state_dict.get(prefix + "node_statistics")
        if nodes is not None and self.node_statistics is not None and nodes.shape[1] != BUCKETS - 1:
            state_dict[prefix + "node_statistics"] = rebucket_nodes(nodes)
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[misc]

    def _segment_sizes(self) -> tuple[list[int], list[int]]:
        parts = self.segment_partitions("out")
        return [p.size for p in parts], [p.full_size for p in parts]

    def _recording(self) -> bool:
        """Whether a training pass now records its batch statistics into the buckets."""
        return (
            self.training and self.track_statistics and self.record_widths
            and self.keeps_narrow_statistics and self._bucketed()
        )  # fmt: skip

    def _record_width(self, mean: Tensor, var: Tensor) -> None:
        """Random-width training at a narrow width: this batch's mean and unbiased variance
        (shape ``(C,)``) into the width buckets around its width."""
        sizes, full = self._segment_sizes()
        nodes = self._node_index()
        momentum = self._statistics_momentum()
        momentum = 0.1 if momentum is None else momentum
        with torch.no_grad():
            mean, var = mean.detach().float(), var.detach().float()
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
        return all(at_nodes(p) for p in self.segment_partitions("out"))

    def _node_index(self) -> Tensor | None:
        """The lattice nodes the current points are (index over the concatenated segments'
        nodes) where :meth:`_at_nodes`, else ``None``."""
        if not self._at_nodes():
            return None
        nodes = node_indices(self.segment_partitions("out"))
        return torch.tensor(nodes, dtype=torch.long, device=self.node_statistics.device)

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
        eps = self._statistics_eps()
        return t["running_mean"].to(like), t["running_var"].to(like).clamp_min(eps)

    def set_width_statistics(self, bucket: int, mean: Tensor, var: Tensor) -> None:
        """Store ``mean`` and ``var`` (shape ``(C,)``), measured at the current narrow width
        (uniform points or selected nodes), as the statistics of width bucket ``bucket``
        (fraction ``(bucket + 1) / BUCKETS``; see :mod:`inn.layers.width_statistics`)."""
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
        """The running mean and variance at the current narrow width blended from the width
        buckets, or ``None`` where a bucket it needs was never recorded. Memoised until the
        width, a bucket or the full width's statistics change (it runs at every forward pass in
        eval mode)."""
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

    def narrow_statistics(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """``tensors`` (the layer's sampled tensors) with ``running_mean`` and ``running_var``
        replaced by the measured statistics where they are current, else at a narrow width by
        those of the width buckets where recorded; the variance clamped at 0 where
        interpolation undershoots."""
        t = dict(tensors)
        if self._measured_sizes is not None and self._measured_sizes == self._sizes():
            like = t.get("running_mean", self.measured_mean)
            t["running_mean"] = self.measured_mean.to(like)
            t["running_var"] = self.measured_var.to(like)
        elif "running_mean" in t and self.keeps_narrow_statistics and self._bucketed():
            blended = self._bucket_statistics(t["running_mean"])
            if blended is not None:
                t["running_mean"], t["running_var"] = blended
        if "running_var" in t:
            t["running_var"] = t["running_var"].clamp_min(0)
        return t
