"""Data-free non-uniform partitions: put a group's sample points where its weights vary most.

For each narrowed group, a density along the channel axis is read off the group's weight
functions (their node values, every tensor of the group side by side) and the points are
equidistributed in it (:func:`inn.numerics.equidistributed`):

* ``"curvature"``: ``|f''|^(1/3)``, the density that minimises the midpoint rule's error
  (cell error ~ h^3 |f''|);
* ``"variation"``: ``|f'|``, equal total variation between neighbouring points.

No data and no training; the points can then be tuned (:func:`inn.tune_partition` starts from
the points a group has).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from inn.budget.sensitivity import GroupValues, group_values
from inn.errors import InnError
from inn.numerics import equidistributed

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = ["DENSITIES", "channel_density", "place_points"]

DENSITIES = ("curvature", "variation")


def channel_density(group: GroupValues, kind: str = "curvature") -> Tensor:
    """Density along the group's axis, shape ``(N,)``, from its values ``(N, columns)``."""
    v = group.values.double()
    if v.shape[0] < 3:
        return torch.ones(v.shape[0], dtype=torch.float64)
    if kind == "variation":
        d = v.diff(dim=0).abs().mean(1)
        return torch.cat([d[:1], 0.5 * (d[1:] + d[:-1]), d[-1:]])
    if kind == "curvature":
        d = v.diff(n=2, dim=0).abs().mean(1).pow(1 / 3)
        return torch.cat([d[:1], d, d[-1:]])
    raise InnError(f"unknown density {kind!r}; choose one of {DENSITIES}")


def place_points(imodel: IntegralModel, density: str = "curvature", floor: float = 0.25) -> int:
    """Give every resizable group narrower than its full width (and wider than 1) trainable
    points equidistributed in ``density``; returns how many groups got them. A later
    ``resize`` returns them to uniform points."""
    if density not in DENSITIES:
        raise InnError(f"unknown density {density!r}; choose one of {DENSITIES}")
    values = group_values(imodel)
    like = next(imodel.parameters(), None)
    placed = 0
    for g in imodel.resizable_groups:
        if not 1 < g.size < g.full_size or g.name not in values:
            continue
        part = imodel.partition(g.name)
        points = equidistributed(
            channel_density(values[g.name], density), g.size, closed=part.closed, floor=floor
        )
        part.make_trainable(like=like).reset(points)
        part.version += 1
        placed += 1
    return placed
