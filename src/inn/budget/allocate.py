"""Choosing a width per group under a cost budget: greedy on marginal error per unit of cost.

Starting from full width, the group whose next narrowing step costs the least error per unit
of cost saved is narrowed, until the budget is met; then single steps are given back, best
ratio first, while the budget still holds, and steps are traded between groups while the result
is more than 1 % under the budget (:func:`refine`). Errors add across groups (the usual
first-order model of per-layer sensitivity analyses); the cost model is exact.
"""

from __future__ import annotations

import numpy as np

from inn.budget.cost import CostModel
from inn.errors import InnError
from inn.numerics import points_at

__all__ = ["Table", "allocate", "level_widths", "one_fraction_widths", "refine"]

_COARSE_STEPS = 32  # a group is narrowed in steps of about 1/32 of its width, then refined


def allocate(
    cost: CostModel,
    target: float,
    full: np.ndarray,
    resizable: np.ndarray,
    table_widths: list[np.ndarray],
    table_errors: list[np.ndarray],
    *,
    round_to: int = 1,
    min_width: int | np.ndarray = 1,
) -> np.ndarray:
    """Integer widths ``(G,)`` with ``cost(widths) <= target``, minimising the summed error.

    Args:
        cost: the cost as a function of the widths.
        full: full widths ``(G,)``; resizable: ``(G,)`` booleans (others stay at full width).
        table_widths, table_errors: per group, the error at a few widths (interpolated).
        round_to: widths are multiples of this (or the full width).
        min_width: no group goes below this (nor below ``round_to``); one value, or ``(G,)``.

    Raises:
        InnError: the target cannot be met (check the floor first: see ``plan``).
    """
    full = full.astype(float)
    table = Table(table_widths, table_errors)
    lowest = np.where(resizable, np.minimum(full, np.maximum(min_width, round_to)), full)
    coarse = np.maximum(round_to, np.round(full / _COARSE_STEPS / round_to) * round_to)
    widths = _shrink(cost, target, full.copy(), coarse, lowest, resizable, round_to, full, table)
    widths = _shrink(cost, target, widths, round_to, lowest, resizable, round_to, full, table)
    widths = refine(cost, target, widths, lowest, resizable, round_to, full, table)
    if cost(widths) > target * (1 + 1e-9):
        raise InnError(f"could not meet the budget {target:.6g} (reached {cost(widths):.6g})")
    return widths.astype(int)


def level_widths(
    cost: CostModel, target: float, full: np.ndarray, resizable: np.ndarray, lowest: np.ndarray,
    round_to: int, table: Table,
) -> np.ndarray:  # fmt: skip
    """Every resizable group at its narrowest width whose error is at most a common level, the
    lowest level whose cost meets ``target`` (then :func:`refine` closes the gap that the steps
    leave). With errors linear in the fraction removed the level is a common fraction; with
    normalised channel magnitudes (:mod:`inn.budget.magnitude`) it is global magnitude pruning."""
    options, errors = [], []
    for g in range(len(full)):
        first = np.ceil(lowest[g] / round_to) * round_to
        steps = np.arange(first, full[g], round_to) if resizable[g] else np.array([])
        options.append(np.unique([lowest[g], *steps, full[g]]))
        errors.append(table.group(g, options[-1]))

    def widths_at(level: float) -> np.ndarray:
        return np.array([
            w[np.argmax(e <= level)] if (e <= level).any() else w[-1]
            for w, e in zip(options, errors, strict=True)
        ])  # fmt: skip

    lo, hi = 0.0, max(float(e.max()) for e in errors)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cost(widths_at(mid)) > target else (lo, mid)
    return widths_at(hi)


def one_fraction_widths(
    cost: CostModel, target: float, full: np.ndarray, resizable: np.ndarray, lowest: np.ndarray,
    round_to: int,
) -> np.ndarray:  # fmt: skip
    """Every resizable group at the largest common fraction whose cost meets ``target``, each
    width that fraction's channel count (:func:`inn.numerics.points_at`: the widths random-width
    training records statistics at) rounded down to ``round_to``, at least ``lowest``."""

    def widths_at(fraction: float) -> np.ndarray:
        counts = np.array([points_at(fraction, int(n)) for n in full], dtype=float)
        return np.where(resizable, np.maximum(lowest, _snap(counts, round_to, full)), full)

    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cost(widths_at(mid)) <= target else (lo, mid)
    return widths_at(lo)


def refine(
    cost: CostModel, target: float, widths: np.ndarray, lowest: np.ndarray, resizable: np.ndarray,
    round_to: int, full: np.ndarray, table: Table,
) -> np.ndarray:  # fmt: skip
    """Widths under ``target`` brought within 1 % of it where the granularity allows: single
    steps given back while the budget holds, then, while still more than 1 % under, a trade: one
    step of a group down (or up) and the others' widths filled (or narrowed, then filled) to the
    budget (the greedy only adds; a coarse group can leave a gap that finer ones fill better)."""
    widths = _fill(cost, target, widths, resizable, round_to, full, table)
    for _ in range(len(full)):
        if cost(widths) >= 0.99 * target:
            break
        best = widths
        for g, up in [(g, False) for g in np.flatnonzero(resizable & (widths > lowest))] + [
            (g, True) for g in np.flatnonzero(resizable & (widths < full))
        ]:
            trial = widths.copy()
            step = round_to if up else -round_to
            trial[g] = np.clip(_snap(trial[g] + step, round_to, full[g]), lowest[g], full[g])
            others = resizable.copy()
            others[g] = False  # else the fill (or shrink) would give the step straight back
            if up:
                trial = _shrink(cost, target, trial, round_to, lowest, others, round_to, full,
                                table)  # fmt: skip
            trial = _fill(cost, target, trial, others, round_to, full, table)
            if cost(best) < cost(trial) <= target:
                best = trial
        if best is widths:
            break
        widths = best
    return widths


class Table:
    """Per-group error tables, interpolated."""

    def __init__(self, widths: list[np.ndarray], errors: list[np.ndarray]) -> None:
        self.widths, self.errors = widths, errors

    def group(self, g: int, widths: np.ndarray) -> np.ndarray:
        """Group ``g``'s error at each of ``widths``."""
        return np.interp(widths, self.widths[g], self.errors[g])

    def __call__(self, widths: np.ndarray) -> np.ndarray:
        """The error of each group at ``widths`` ``(G,)``."""
        groups = range(len(self.widths))
        return np.array([self.group(g, w) for g, w in zip(groups, widths, strict=True)])


def _shrink(
    cost: CostModel, target: float, widths: np.ndarray, step: float | np.ndarray,
    lowest: np.ndarray, resizable: np.ndarray, round_to: int, full: np.ndarray, table: Table,
) -> np.ndarray:  # fmt: skip
    """Narrow the group with the least error added per cost saved until ``target`` is met, by
    ``step`` channels at a time (one for all groups, or ``(G,)``)."""
    widths = widths.copy()
    while cost(widths) > target:
        smaller = np.maximum(lowest, _snap(widths - step, round_to, full))
        smaller = np.where(resizable, smaller, widths)
        delta = widths - smaller
        saved = cost.savings(widths, delta)
        ok = (delta > 0) & (saved > 0)
        if not ok.any():
            break
        gain = np.maximum(table(smaller) - table(widths), 0)
        ratio = np.where(ok, gain / np.where(ok, saved, 1), np.inf)
        g = int(np.argmin(ratio))
        widths[g] = smaller[g]
    return widths


def _fill(
    cost: CostModel, target: float, widths: np.ndarray, resizable: np.ndarray, round_to: int,
    full: np.ndarray, table: Table,
) -> np.ndarray:  # fmt: skip
    """Give single steps back to the ``resizable`` groups while the budget holds, most error
    removed per cost first."""
    widths = widths.copy()
    current = cost(widths)
    while True:
        larger = np.where(
            resizable, np.minimum(full, _snap(widths + round_to, round_to, full)), widths
        )
        delta = larger - widths
        added = -cost.savings(widths, -delta)
        fits = (delta > 0) & (current + added <= target)
        if not fits.any():
            return widths
        ratio = np.where(fits, (table(widths) - table(larger)) / np.maximum(added, 1e-12), -np.inf)
        g = int(np.argmax(ratio))
        widths[g] = larger[g]
        current = cost(widths)


def _snap(widths: np.ndarray, round_to: int, full: np.ndarray) -> np.ndarray:
    """Round down to a multiple of ``round_to``; the full width is always allowed."""
    snapped = np.floor(widths / round_to) * round_to
    return np.where(widths >= full, full, snapped)
