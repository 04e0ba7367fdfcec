"""Choosing a width per group under a cost budget: greedy on marginal error per unit of cost.

Starting from full width, the group whose next narrowing step costs the least error per unit
of cost saved is narrowed, until the budget is met; then single steps are given back, best
ratio first, while the budget still holds (so the result lands just under it). Errors add
across groups (the usual first-order model of per-layer sensitivity analyses); the cost model
is exact.
"""

from __future__ import annotations

import numpy as np

from inn.budget.cost import CostModel
from inn.errors import InnError

__all__ = ["allocate"]

_COARSE_STEPS = 32  # a group is narrowed in steps of about 1/32 of its width, then refined


def _interp(widths: np.ndarray, table_w: list[np.ndarray], table_e: list[np.ndarray]) -> np.ndarray:
    return np.array(
        [np.interp(w, tw, te) for w, tw, te in zip(widths, table_w, table_e, strict=True)]
    )


def allocate(
    cost: CostModel,
    target: float,
    full: np.ndarray,
    resizable: np.ndarray,
    table_widths: list[np.ndarray],
    table_errors: list[np.ndarray],
    *,
    round_to: int = 1,
    min_width: int = 1,
) -> np.ndarray:
    """Integer widths ``(G,)`` with ``cost(widths) <= target``, minimising the summed error.

    Args:
        cost: the cost as a function of the widths.
        full: full widths ``(G,)``; resizable: ``(G,)`` booleans (others stay at full width).
        table_widths, table_errors: per group, the error at a few widths (interpolated).
        round_to: widths are multiples of this (or the full width).
        min_width: no group goes below this (nor below ``round_to``).

    Raises:
        InnError: the target cannot be met (check the floor first: see ``plan``).
    """
    full = full.astype(float)
    lowest = np.where(resizable, np.minimum(full, max(min_width, round_to)), full)
    coarse = np.maximum(round_to, np.round(full / _COARSE_STEPS / round_to) * round_to)
    widths = full.copy()
    errors = _interp(widths, table_widths, table_errors)
    current = cost(widths)
    for step in (coarse, np.full_like(full, round_to)):
        while current > target:
            smaller = np.maximum(lowest, _snap(widths - step, round_to, full))
            smaller = np.where(resizable, smaller, widths)
            delta = widths - smaller
            saved = cost.savings(widths, delta)
            gain = _interp(smaller, table_widths, table_errors) - errors
            ok = (delta > 0) & (saved > 0)
            if not ok.any():
                break
            ratio = np.where(ok, np.maximum(gain, 0) / np.where(ok, saved, 1), np.inf)
            g = int(np.argmin(ratio))
            widths[g], errors[g] = (
                smaller[g],
                np.interp(smaller[g], table_widths[g], table_errors[g]),
            )
            current = cost(widths)
        # Give single steps back while the budget holds, most error removed per cost first.
        while True:
            larger = np.where(
                resizable, np.minimum(full, _snap(widths + round_to, round_to, full)), widths
            )
            delta = larger - widths
            added = -cost.savings(widths, -delta)
            fits = (delta > 0) & (current + added <= target)
            if not fits.any():
                break
            gain = errors - _interp(larger, table_widths, table_errors)
            ratio = np.where(fits, gain / np.maximum(added, 1e-12), -np.inf)
            g = int(np.argmax(ratio))
            widths[g], errors[g] = larger[g], np.interp(larger[g], table_widths[g], table_errors[g])
            current = cost(widths)
    if current > target * (1 + 1e-9):
        raise InnError(f"could not meet the budget {target:.6g} (reached {current:.6g})")
    return widths.astype(int)


def _snap(widths: np.ndarray, round_to: int, full: np.ndarray) -> np.ndarray:
    """Round down to a multiple of ``round_to``; the full width is always allowed."""
    snapped = np.floor(widths / round_to) * round_to
    return np.where(widths >= full, full, snapped)
