"""Data-free placement: points where a function of the channels varies most.

A density along a channel axis is read off node values (one column per tensor entry along the
axis) and ``n`` points are equidistributed in it:

* ``"curvature"``: ``|f''|^(1/3)``, the density that minimises the midpoint rule's error
  (cell error ~ h^3 |f''|);
* ``"variation"``: ``|f'|``, equal total variation between neighbouring points.

:func:`inn.recover.place_points` applies this to every narrowed group of a model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from inn.errors import InnError, PartitionError
from inn.numerics import check_partition, uniform

__all__ = ["DENSITIES", "channel_density", "equidistributed"]

DENSITIES = ("curvature", "variation")


def channel_density(values: Tensor, kind: str = "curvature") -> Tensor:
    """Density along the channel axis, shape ``(N,)``, from node values ``(N, columns)``."""
    v = values.double()
    if v.shape[0] < 3:
        return torch.ones(v.shape[0], dtype=torch.float64)
    if kind == "variation":
        d = v.diff(dim=0).abs().mean(1)
        return torch.cat([d[:1], 0.5 * (d[1:] + d[:-1]), d[-1:]])
    if kind == "curvature":
        d = v.diff(n=2, dim=0).abs().mean(1).pow(1 / 3)
        return torch.cat([d[:1], d, d[-1:]])
    raise InnError(f"unknown density {kind!r}; choose one of {DENSITIES}")


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
