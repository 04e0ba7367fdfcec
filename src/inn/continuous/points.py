"""Fixed partitions beyond one uniform grid: a uniform partition of random size (training) and
composites of sub-partitions (channels of several tensors concatenated).

The grids they are built from (the open and closed uniform layouts, Gauss-Legendre nodes) are
:mod:`inn.numerics`' (:func:`inn.numerics.uniform`), since the interpolation lattice and the
quadrature rules need them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from inn.errors import PartitionError
from inn.numerics import check_partition, uniform

__all__ = ["composite", "random_uniform"]


def random_uniform(
    low: int,
    high: int,
    *,
    closed: bool = False,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A uniform partition whose size is drawn uniformly from ``[low, high]`` (training).

    Returns:
        Tensor of shape ``(n,)`` with ``low <= n <= high``.
    """
    if not 1 <= low <= high:
        raise PartitionError(
            f"need 1 <= low <= high for a random partition size, got {low}, {high}"
        )
    n = int(torch.randint(low, high + 1, (1,), generator=generator).item())
    return uniform(n, closed=closed, dtype=dtype, device=device)


def composite(parts: Sequence[Tensor], lengths: Sequence[float] | None = None) -> Tensor:
    """Concatenate sub-partitions, each on [0, 1], into one partition of [0, 1].

    Part ``k`` is mapped affinely onto its own sub-interval of length ``lengths[k]`` (default:
    proportional to its number of points); the sub-intervals are consecutive and disjoint, so the
    result is strictly increasing. Used where channels of several tensors are concatenated.

    Returns:
        Tensor of shape ``(sum(len(p) for p in parts),)``.
    """
    if len(parts) == 0:
        raise PartitionError("a composite partition needs at least one part")
    for k, p in enumerate(parts):
        check_partition(p, name=f"part {k} of the composite partition")
    if lengths is None:
        lengths = [float(p.numel()) for p in parts]
    if len(lengths) != len(parts) or any(not l > 0 for l in lengths):  # noqa: E741
        raise PartitionError(f"need one positive length per part, got {list(lengths)}")
    total = float(sum(lengths))
    out, start = [], 0.0
    for p, length in zip(parts, lengths, strict=True):
        scale = length / total
        out.append(start + scale * p)
        start += scale
    result = torch.cat(out)
    if result.numel() > 1 and not (result[1:] > result[:-1]).all():
        raise PartitionError(
            "parts of the composite partition overlap or touch (two closed parts share an "
            "endpoint); build it from open partitions (closed=False)"
        )
    return check_partition(result.clamp(0.0, 1.0), name="composite partition")
