"""Partitions: strictly increasing points in [0, 1] at which continuous weights are sampled.

Two layouts are used throughout:

* ``closed``: the first point is 0 and the last is 1 (``linspace(0, 1, n)``); needed by the closed
  Newton-Cotes rules (trapezoid, Simpson).
* open (``closed=False``, the default): cell-centred points ``(k + 0.5) / n``, the midpoints of
  ``n`` equal cells; every point has the same quadrature weight ``1 / n`` under the rectangle rule,
  so a channel carries the same weight wherever it lies.

Plain functions build fixed partitions; :class:`TrainablePartition` is a module whose points are
parameters and stay strictly increasing inside the interval for any value of its parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from inn.errors import PartitionError

__all__ = [
    "TrainablePartition",
    "check_partition",
    "composite",
    "equidistributed",
    "gauss_legendre",
    "random_uniform",
    "uniform",
]


def uniform(
    n: int,
    *,
    closed: bool = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """``n`` equally spaced points in [0, 1], shape ``(n,)``.

    Args:
        n: number of points, ``>= 1``.
        closed: if True, ``linspace(0, 1, n)`` (endpoints included; ``n = 1`` gives ``[0.5]``);
            otherwise the cell midpoints ``(k + 0.5) / n``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise PartitionError(f"a partition needs at least one point, got n={n!r}")
    dtype = dtype or torch.get_default_dtype()
    if closed and n > 1:
        return torch.linspace(0.0, 1.0, n, dtype=dtype, device=device)
    return (torch.arange(n, dtype=dtype, device=device) + 0.5) / n


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


def gauss_legendre(
    n: int,
    *,
    a: float = 0.0,
    b: float = 1.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Gauss-Legendre nodes and weights on ``[a, b]``, each of shape ``(n,)``.

    The ``n``-point rule integrates polynomials of degree ``2n - 1`` exactly on ``[a, b]``.
    """
    if n < 1:
        raise PartitionError(f"Gauss-Legendre needs at least one node, got n={n}")
    if not b > a:
        raise PartitionError(f"need a < b for the interval of integration, got [{a}, {b}]")
    x, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (b - a)
    dtype = dtype or torch.get_default_dtype()
    nodes = torch.as_tensor(a + half * (x + 1.0), dtype=dtype, device=device)
    weights = torch.as_tensor(half * w, dtype=dtype, device=device)
    return nodes, weights


def check_partition(points: Tensor, *, name: str = "partition") -> Tensor:
    """Raise :class:`PartitionError` unless ``points`` is 1-D, finite, increasing, in [0, 1].

    Returns:
        ``points`` unchanged, so the call can be chained.
    """
    if not isinstance(points, Tensor):
        raise PartitionError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() != 1 or points.numel() == 0:
        raise PartitionError(
            f"{name} must be a non-empty 1-D tensor, got shape {tuple(points.shape)}"
        )
    if not points.is_floating_point():
        raise PartitionError(f"{name} must be floating point, got {points.dtype}")
    p = points.detach()
    if not torch.isfinite(p).all():
        raise PartitionError(f"{name} has non-finite points: {p.tolist()[:8]}")
    if p.min() < 0 or p.max() > 1:
        raise PartitionError(
            f"{name} must lie in [0, 1], got points in [{p.min().item():.4g}, {p.max().item():.4g}]"
        )
    if p.numel() > 1 and not (p[1:] > p[:-1]).all():
        k = int(torch.nonzero(p[1:] <= p[:-1])[0])
        raise PartitionError(
            f"{name} must be strictly increasing, but point {k + 1} ({p[k + 1].item():.6g}) "
            f"<= point {k} ({p[k].item():.6g})"
        )
    return points


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


class TrainablePartition(nn.Module):
    """``n`` trainable points, strictly increasing inside [0, 1] for any parameter value.

    The gaps between consecutive points (and, for an open partition, between the ends of the
    interval and the outer points) are a softmax of free parameters, mixed with a floor so no gap
    can vanish in floating point. Closed partitions keep their endpoints at 0 and 1.

    Args:
        n: number of points.
        init: initial points (strictly increasing, in [0, 1]; for ``closed`` the first must be 0
            and the last 1); default: :func:`uniform`.
        closed: whether the endpoints are fixed at 0 and 1.
        min_gap: fraction of the interval reserved as a floor spread evenly over the gaps.

    Shape:
        ``forward()`` returns ``(n,)``.
    """

    def __init__(
        self,
        n: int,
        init: Tensor | None = None,
        *,
        closed: bool = False,
        min_gap: float = 1e-2,
    ) -> None:
        super().__init__()
        if n < 1:
            raise PartitionError(f"a trainable partition needs at least one point, got n={n}")
        if not 0 <= min_gap < 1:
            raise PartitionError(f"min_gap must be in [0, 1), got {min_gap}")
        self.n, self.closed, self.min_gap = n, closed, min_gap
        if init is None:
            init = uniform(n, closed=closed, dtype=torch.float64)
        check_partition(init, name="initial trainable partition")
        if init.numel() != n:
            raise PartitionError(f"init has {init.numel()} points, expected n={n}")
        self.logits = nn.Parameter(self._logits_for(init.detach().to(torch.float64)).float())

    @property
    def num_gaps(self) -> int:
        return self.n - 1 if self.closed else self.n + 1

    def _logits_for(self, points: Tensor) -> Tensor:
        if self.closed:
            if self.n == 1:
                return torch.zeros(0, dtype=points.dtype)
            if points[0] != 0 or points[-1] != 1:
                raise PartitionError("a closed trainable partition must start at 0 and end at 1")
            gaps = points.diff()
        else:
            edges = torch.cat([points.new_zeros(1), points, points.new_ones(1)])
            gaps = edges.diff()
        floor = self.min_gap / self.num_gaps
        free = (gaps - floor) / (1.0 - self.min_gap)
        if (free <= 0).any():
            raise PartitionError(
                f"initial points have a gap below the floor min_gap / gaps = {floor:.3g}; "
                "lower min_gap"
            )
        return free.log() - free.log().mean()

    def forward(self) -> Tensor:
        if self.closed and self.n == 1:
            return self.logits.new_full((1,), 0.5)
        gaps = self.min_gap / self.num_gaps + (1.0 - self.min_gap) * torch.softmax(self.logits, 0)
        points = torch.cumsum(gaps, 0)
        if self.closed:
            return torch.cat([points.new_zeros(1), points[:-1], points.new_ones(1)])
        return points[:-1]

    def reset(self, points: Tensor) -> None:
        """Set the parameters so that ``forward()`` returns ``points`` (up to round-off)."""
        check_partition(points, name="points")
        if points.numel() != self.n:
            raise PartitionError(f"got {points.numel()} points for a partition of size {self.n}")
        with torch.no_grad():
            self.logits.copy_(self._logits_for(points.detach().cpu().to(torch.float64)))

    def extra_repr(self) -> str:
        return f"n={self.n}, closed={self.closed}, min_gap={self.min_gap}"


def equidistributed(
    density: Tensor, n: int, *, closed: bool = False, floor: float = 0.25
) -> Tensor:
    """``n`` points on [0, 1] with equal mass of ``density`` between neighbours.

    ``density`` (shape ``(N,)``, non-negative) is given at the ``N`` points ``uniform(N,
    closed=closed)`` and taken as piecewise linear between them (constant beyond the outer
    ones). It is mixed with the uniform density, ``floor`` of the mass spread evenly, so the
    points stay apart where the density vanishes. Open layouts put the points at the mass
    quantiles ``(k + 0.5) / n``, closed ones at ``k / (n - 1)`` (0 and 1 included).

    Returns:
        Strictly increasing points, shape ``(n,)``, float64; inside (0, 1) for open layouts.
    """
    if n < 1:
        raise PartitionError(f"need at least one point, got n={n}")
    if not 0 < floor <= 1:
        raise PartitionError(f"floor must be in (0, 1], got {floor}")
    d = density.detach().to(torch.float64).cpu().reshape(-1)
    if d.numel() == 0 or not torch.isfinite(d).all() or (d < 0).any():
        raise PartitionError("density must be finite, non-negative and non-empty")
    nodes = uniform(d.numel(), closed=closed, dtype=torch.float64).numpy()
    grid = np.linspace(0.0, 1.0, 16 * d.numel() + 1)
    values = np.interp(grid, nodes, d.numpy())
    cells = 0.5 * (values[1:] + values[:-1]) * np.diff(grid)  # trapezoid mass of each cell
    total = cells.sum()
    cells = (1 - floor) * (cells / total if total > 0 else np.diff(grid)) + floor * np.diff(grid)
    mass = np.concatenate([[0.0], np.cumsum(cells)])
    mass /= mass[-1]
    quantiles = uniform(n, closed=closed, dtype=torch.float64).numpy()
    if closed and n == 1:
        quantiles = np.array([0.5])
    points = torch.from_numpy(np.interp(quantiles, mass, grid))
    return check_partition(points, name="equidistributed partition")
