"""Which widths a random-width training step visits: ranges per group and a sampling rule.

The draws of step ``i`` come from a generator seeded with ``(seed, i)`` only, never from a
global random state, so every process of a distributed run draws the same widths at the same
step, and a resumed run draws what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from inn.convert import Group, IntegralModel
from inn.errors import InnError
from inn.numerics import points_at

__all__ = ["SAMPLINGS", "WidthRange", "WidthSampler", "at_widths", "uniform_widths"]

SAMPLINGS = ("sandwich", "random", "fixed")
WidthRange = tuple[float, float] | tuple[int, int]
"""Fractions of the full width in (0, 1] (floats) or channel counts (ints), inclusive."""


def _channels(name: str, full: int, given: Any) -> tuple[int, int]:
    """``given`` (a :data:`WidthRange`) of group ``name`` as channel counts ``(low, high)``."""
    if not (isinstance(given, (tuple, list)) and len(given) == 2):
        raise InnError(f"the width range of group {name!r} must be (low, high), got {given!r}")
    low, high = given
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in given):
        raise InnError(f"the width range of group {name!r} must hold numbers, got {given!r}")
    if isinstance(low, int) and isinstance(high, int):
        counts = (low, high)
        if not 1 <= low <= high <= full:
            raise InnError(
                f"group {name!r} has {full} channels: a range in channels needs "
                f"1 <= low <= high <= {full}, got {given!r} (or give fractions in (0, 1])"
            )
        return counts
    if not 0 < float(low) <= float(high) <= 1:
        raise InnError(
            f"the width range of group {name!r} must be fractions 0 < low <= high <= 1 (or "
            f"channel counts as ints), got {given!r}"
        )
    return points_at(float(low), full), points_at(float(high), full)


@dataclass(frozen=True)
class WidthSampler:
    """The widths of each step of random-width training.

    Attributes:
        ranges: group name -> ``(low, high)`` channels, inclusive.
        sampling: ``"sandwich"`` (the largest widths, the smallest, then ``num_random`` random draws,
            every step; universally slimmable networks, Yu & Huang 2019) or ``"random"`` (one
            random draw per step: the paper's Algorithm 1) or ``"fixed"`` (every step visits the
            same fractions ``fixed`` of each range's upper end: slimmable networks with a few
            switches, Yu et al. 2019).
        num_random: random draws per step of the sandwich rule.
        seed: with the step number, the only source of the draws.
        same_fraction: one fraction of each range for every group per draw (as slimmable
            networks do) instead of one independent draw per group (as the paper does).
        round_to: drawn widths are multiples of this (or a range's ends).
        skew: a random draw's position ``u`` in its range (uniform in ``[0, 1)``) is taken as
            ``u ** skew``: 1 draws every width equally often; above 1 narrow widths more often
            (2: half the draws in the lowest quarter of the range), which the sandwich rule's
            two ends, trained at every step, leave the least trained.
    """

    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    sampling: str = "sandwich"
    num_random: int = 2
    seed: int = 0
    same_fraction: bool = False
    round_to: int = 1
    fixed: tuple[float, ...] = (1.0, 0.25, 0.5, 0.75)
    skew: float = 1.0

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise InnError(f"unknown width sampling {self.sampling!r}; choose one of {SAMPLINGS}")
        if not self.skew > 0:
            raise InnError(f"need skew > 0 (1: every width equally often), got {self.skew!r}")
        if self.num_random < 0 or self.round_to < 1:
            raise InnError(
                f"need num_random >= 0 and round_to >= 1, got {self.num_random}, {self.round_to}"
            )
        if not self.ranges:
            raise InnError("the width sampler has no groups to resize")

    @classmethod
    def for_model(
        cls,
        model: IntegralModel,
        widths: WidthRange | Mapping[str, WidthRange] = (0.25, 1.0),
        **options: Any,
    ) -> WidthSampler:
        """A sampler over ``model``'s resizable groups.

        Args:
            widths: one range for every resizable group, or ``{group name: range}`` for some
                (the others stay at their full width).
            **options: ``sampling``, ``num_random``, ``seed``, ``same_fraction``, ``round_to``,
                ``skew``.
        """
        if not isinstance(model, IntegralModel):
            raise InnError(
                f"random-width training needs an inn.IntegralModel, got {type(model).__name__}: "
                "convert it first with inn.convert(model, example_inputs)"
            )
        if isinstance(widths, Mapping):
            for name in widths:
                model._check_group(name)  # names the group, suggests close names, explains pins
        return cls.for_groups(model.groups, widths, **options)

    @classmethod
    def for_groups(
        cls,
        groups: Sequence[Group],
        widths: WidthRange | Mapping[str, WidthRange] = (0.25, 1.0),
        **options: Any,
    ) -> WidthSampler:
        """A sampler over ``groups`` (``model.groups`` of any resizable model): one range for
        the resizable ones, or ``{group name: range}``."""
        full = {g.name: g.full_size for g in groups}
        if isinstance(widths, Mapping):
            given = dict(widths)
            unknown = sorted(set(given) - set(full))
            if unknown:
                raise InnError(
                    f"no channel group named {unknown}; groups are e.g. {list(full)[:5]}"
                )
        else:
            given = {g.name: widths for g in groups if g.resizable}
        ranges = {name: _channels(name, full[name], r) for name, r in given.items()}
        return cls(ranges=ranges, **options)

    def _round(self, width: float, low: int, high: int) -> int:
        """``width`` to the nearest multiple of ``round_to``, half up as
        :func:`~inn.numerics.points_at` rounds (a fixed fraction is trained at the width
        ``uniform_widths`` evaluates), within ``[low, high]``."""
        steps = math.floor(width / self.round_to + 0.5)
        return int(min(high, max(low, steps * self.round_to)))

    def draw(self, step: int) -> list[dict[str, int]]:
        """The widths of each forward pass of step ``step`` (the largest first, then the
        smallest, under the sandwich rule)."""
        if self.sampling == "fixed":
            return [
                {n: self._round(f * high, low, high) for n, (low, high) in self.ranges.items()}
                for f in self.fixed
            ]
        rng = np.random.default_rng([self.seed, step])
        draws: list[dict[str, int]] = []
        if self.sampling == "sandwich":
            draws.append({n: high for n, (_, high) in self.ranges.items()})
            draws.append({n: low for n, (low, _) in self.ranges.items()})
        for _ in range(self.num_random if self.sampling == "sandwich" else 1):
            if self.same_fraction:
                fractions = dict.fromkeys(self.ranges, rng.random() ** self.skew)
            else:
                u = rng.random(len(self.ranges)) ** self.skew
                fractions = dict(zip(self.ranges, u, strict=True))
            draws.append({
                n: self._round(low + fractions[n] * (high - low + 1) - 0.5, low, high)
                for n, (low, high) in self.ranges.items()
            })  # fmt: skip
        return draws

    def uniform(self, step: int) -> list[bool]:
        """Per forward pass of step ``step`` (as :meth:`draw`), whether every group is at the
        same point of its range: the sandwich's largest and smallest widths, every fixed
        fraction, the random draws of ``same_fraction``."""
        if self.sampling == "fixed":
            return [True] * len(self.fixed)
        ends = [True, True] if self.sampling == "sandwich" else []
        randoms = self.num_random if self.sampling == "sandwich" else 1
        return ends + [self.same_fraction] * randoms

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> WidthSampler:
        state = dict(state)
        state["ranges"] = {k: tuple(v) for k, v in state["ranges"].items()}
        state["fixed"] = tuple(state.get("fixed", cls.fixed))
        return cls(**state)


def uniform_widths(model: Any, fraction: float) -> dict[str, int]:
    """Every resizable group of ``model`` at ``fraction`` of its channels (at least one)."""
    return {g.name: points_at(fraction, g.full_size) for g in model.resizable_groups}


def at_widths(
    model: Any, fractions: Sequence[float], evaluate: Callable[[Any], float]
) -> dict[float, float]:
    """``evaluate(model)`` with every resizable group at each fraction of ``fractions``; the
    model's widths are restored afterwards."""
    out = {}
    for f in fractions:
        with model.widths_kept():
            model.resize(widths=uniform_widths(model, f))
            out[f] = evaluate(model)
    return out
