"""Running statistics per width bucket: what random-width training measures at narrow widths,
kept so that a narrow width needs no data at evaluation.

Statistics tracked at full width and sampled at a narrow width are not what the narrow network
computes: its pre-normalisation activations sum over fewer, differently weighted channels. So
bucket ``k`` of ``K`` keeps the statistics measured with every group at the fraction
``(k + 1) / K`` of its channels (they depend on the widths upstream too), on that width's own
lattice (:func:`bucket_sizes`). They are kept relative to the full width's statistics sampled
at that width (mean: difference, variance: ratio): what varies from one channel to the next
stays in the sampled statistics, so moving a bucket to another lattice interpolates only the
effect of the width. The bucket ``K / K`` is the full width, the ordinary running statistics.

The buckets are measured at the end of random-width training on training batches
(:func:`inn.recover.reestimate_width_statistics`), and during it every pass in which all groups
are at one fraction records its batch statistics into the two buckets around its width (linear
weights). At evaluation a width without measured statistics blends its two neighbouring
buckets the same way, each interpolated onto its lattice (exactly a bucket's width gets that
bucket's statistics back unchanged), if both have been recorded (else the full width's are
sampled). Where the points are selected lattice nodes (nested channels,
:meth:`inn.IntegralModel.nest_channels`), the buckets are kept per node instead
(:class:`inn.layers.IntegralBatchNorm`).

Forty buckets, 2.5 % apart, so that 25, 35, 37.5, 50, 60, 75 and 90 % are buckets: a width
between two buckets gets blended statistics, which are less exact the farther apart the buckets
are and the fewer channels a group has. With twenty (5 % apart, until 2026-12-06) the twin of a
torchvision ShuffleNetV2 x0.5 lost 10 points at 36-38 % of every group (9 of its stem's 24
channels, between the buckets' 8 and 10), against 88.2 / 90.0 % at the buckets either side;
with forty, 89.3-89.6 % (``docs/notebook.md``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from inn.continuous import axis_matrix
from inn.numerics import points_at, uniform

__all__ = [
    "BUCKETS", "blend", "blend_nodes", "bucket_sizes", "lattice_matrix", "neighbours", "rebucket",
    "rebucket_nodes",
]  # fmt: skip

BUCKETS = 40
"""Width fractions 1/40, 2/40, ..., 40/40 (the last: the full width's running statistics)."""


def neighbours(fraction: float, buckets: int = BUCKETS) -> list[tuple[int, float]]:
    """The buckets around width ``fraction`` (index ``k`` stands for ``(k + 1) / buckets``) and
    their linear weights, which sum to 1; below the first bucket, the first alone."""
    position = fraction * buckets - 1  # in bucket indices
    if position <= 0:
        return [(0, 1.0)]
    low = min(math.floor(position), buckets - 1)
    high_weight = position - low
    if low == buckets - 1 or high_weight == 0:
        return [(low, 1.0)]
    return [(low, 1.0 - high_weight), (low + 1, high_weight)]


def bucket_sizes(full_sizes: Sequence[int], k: int, buckets: int = BUCKETS) -> list[int]:
    """The lattice bucket ``k`` stores its statistics on: per segment of ``full_sizes`` nodes,
    ``(k + 1) / buckets`` of them (at least one), the widths a uniform fraction resizes to."""
    return [points_at((k + 1) / buckets, n) for n in full_sizes]


@functools.lru_cache(maxsize=256)
def _matrix(
    sizes_from: tuple[int, ...],
    sizes_to: tuple[int, ...],
    closed: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    with torch.inference_mode(False):
        points = [uniform(n, closed=closed, dtype=dtype, device=device) for n in sizes_to]
        return axis_matrix(list(sizes_from), points, closed=closed)


def lattice_matrix(
    sizes_from: Sequence[int], sizes_to: Sequence[int], *, closed: bool, like: Tensor
) -> Tensor:
    """``(sum(sizes_to), sum(sizes_from))``: per segment, the interpolant of values on the
    uniform lattice of ``sizes_from[i]`` nodes, evaluated on the uniform lattice of
    ``sizes_to[i]`` points (in ``like``'s dtype and device; memoised)."""
    return _matrix(tuple(sizes_from), tuple(sizes_to), closed, like.dtype, like.device)


def blend(
    stats: Tensor,
    counts: Tensor,
    full_sizes: Sequence[int],
    sizes: Sequence[int],
    *,
    closed: bool,
    fraction: float | None = None,
) -> Tensor | None:
    """``(2, sum(sizes))``: the relative statistics (mean difference, variance ratio) at the
    uniform width ``sizes`` (per segment of ``full_sizes`` nodes), blended from the buckets
    around ``fraction`` (default: the width's own) of ``stats`` (``(2, K - 1, N)``, bucket
    ``k`` on its lattice) and moved onto the width's lattice; ``None`` where a bucket it needs
    is not recorded (``counts[k] == 0``). ``K`` is ``stats.shape[1] + 1``."""
    buckets = stats.shape[1] + 1
    fraction = sum(sizes) / sum(full_sizes) if fraction is None else fraction
    out: Tensor | int = 0
    for k, weight in neighbours(fraction, buckets):
        if k == buckets - 1:
            relative = _full_width(stats)
        elif counts[k] > 0:
            stored = bucket_sizes(full_sizes, k, buckets)
            nodes = stats[:, k, : sum(stored)]
            relative = nodes @ lattice_matrix(stored, sizes, closed=closed, like=nodes).T
        else:
            return None
        out = out + weight * relative
    return out.expand(2, sum(sizes)) if isinstance(out, Tensor) else None


def blend_nodes(node_statistics: Tensor, nodes: Tensor, fraction: float) -> Tensor:
    """``(2, n)``: the relative statistics of the selected lattice ``nodes`` at width
    ``fraction``, from ``node_statistics`` (``(3, K - 1, N)``: relative mean, relative
    variance, weight recorded, per bucket and node; ``K`` buckets, :data:`BUCKETS` but in a
    saved state). Per node, the buckets around ``fraction`` that recorded it, with their linear
    weights renormalised (a node kept only from a wider bucket on takes that bucket's); none:
    the full width's."""
    return _blend_nodes(node_statistics, nodes, fraction)[0]


def _blend_nodes(node_statistics: Tensor, nodes: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """:func:`blend_nodes` and ``(n,)``: whether a bucket around ``fraction`` recorded each node
    (the full width counts as recorded)."""
    buckets = node_statistics.shape[1] + 1
    total = node_statistics.new_zeros(2, len(nodes))
    weights = node_statistics.new_zeros(len(nodes))
    for k, weight in neighbours(fraction, buckets):
        if k == buckets - 1:
            relative, seen = _full_width(node_statistics), torch.ones_like(weights)
        else:
            relative = node_statistics[:2, k, nodes]
            seen = (node_statistics[2, k, nodes] > 0).to(weights)
        total = total + weight * seen * relative
        weights = weights + weight * seen
    blended = torch.where(weights > 0, total / weights.clamp_min(1e-12), _full_width(total))
    return blended, weights > 0


def _full_width(like: Tensor) -> Tensor:
    """``(2, 1)``: the full width's statistics relative to themselves (mean 0, variance 1)."""
    return like.new_tensor([0.0, 1.0])[:, None]


def rebucket(
    stats: Tensor, counts: Tensor, full_sizes: Sequence[int], *, closed: bool
) -> tuple[Tensor, Tensor]:
    """Buckets saved with another number of them (``stats``: ``(2, K' - 1, N)``) as
    :data:`BUCKETS` buckets: each gets the saved ones blended at its fraction, as evaluation
    blended them (unrecorded where a saved bucket it needs was not recorded)."""
    out = stats.new_zeros(2, BUCKETS - 1, stats.shape[2])
    recorded = counts.new_zeros(BUCKETS - 1)
    for k in range(BUCKETS - 1):
        sizes = bucket_sizes(full_sizes, k)
        values = blend(stats, counts, full_sizes, sizes, closed=closed, fraction=(k + 1) / BUCKETS)
        if values is not None:
            out[:, k, : sum(sizes)] = values
            recorded[k] = 1.0
    return out, recorded


def rebucket_nodes(node_statistics: Tensor) -> Tensor:
    """Per-node buckets saved with another number of them (``(3, K' - 1, N)``) as
    :data:`BUCKETS` buckets: each node of each bucket gets the saved ones blended at the
    bucket's fraction, as evaluation blended them (recorded where a saved bucket around it
    recorded the node)."""
    nodes = torch.arange(node_statistics.shape[2], device=node_statistics.device)
    out = node_statistics.new_zeros(3, BUCKETS - 1, node_statistics.shape[2])
    for k in range(BUCKETS - 1):
        out[:2, k], recorded = _blend_nodes(node_statistics, nodes, (k + 1) / BUCKETS)
        out[2, k] = recorded.to(out)
    return out
