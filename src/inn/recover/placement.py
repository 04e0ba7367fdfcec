"""Data-free non-uniform partitions: put a group's sample points where its weights vary most.

For each narrowed group, a density along the channel axis is read off the group's weight
functions (their node values, every tensor of the group side by side) and the points are
equidistributed in it (:mod:`inn.continuous.placement`: ``"curvature"`` or ``"variation"``).

No data and no training; the points can then be tuned (:func:`inn.recover.tune_partition`
starts from the points a group has).
"""

from __future__ import annotations

from inn.budget.sensitivity import group_values
from inn.continuous import DENSITIES, channel_density, equidistributed
from inn.convert import IntegralModel
from inn.errors import InnError

__all__ = ["place_points"]


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
            channel_density(values[g.name].values, density), g.size, closed=part.closed,
            floor=floor,
        )  # fmt: skip
        part.make_trainable(like=like).reset(points)
        part.version += 1
        placed += 1
    return placed
