"""Grids on [0, 1]: the uniform layouts, Gauss-Legendre nodes, and the check every set of points
passes.

Two layouts are used throughout:

* ``closed``: the first point is 0 and the last is 1 (``linspace(0, 1, n)``); needed by the closed
  Newton-Cotes rules (trapezoid, Simpson).
* open (``closed=False``, the default): cell-centred points ``(k + 0.5) / n``, the midpoints of
  ``n`` equal cells; every point has the same quadrature weight ``1 / n`` under the rectangle rule,
  so a channel carries the same weight wherever it lies.

The interpolation lattice and the quadrature rules are built on these; the partitions that
sample continuous tensors (trainable, composite, data-free placement) are in
:mod:`inn.continuous`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from inn.errors import PartitionError

__all__ = ["check_partition", "gauss_legendre", "points_at", "uniform"]


def points_at(fraction: float, n: int) -> int:
    """How many of ``n`` points ``fraction`` of them stands for: rounded half up, at least one.
    The one rule by which a width fraction becomes a channel count (training ranges, uniform
    widths, the lattices of width statistics), so that a width trained, measured and evaluated
    at one fraction is the same width."""
    return max(1, math.floor(fraction * n + 0.5))


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
