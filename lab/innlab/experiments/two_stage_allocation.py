"""The table of ``lab/scripts/two_stage_allocation.py``: ``inn.prune``'s accuracy with widths
allocated in one stage or in two (rows: budget, method, seed, accuracy)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["METHODS", "markdown"]

METHODS = ("one stage", "two stages")


def markdown(rows: Sequence[dict]) -> str:
    """Mean over seeds, one line per method, one column per budget."""
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    lines = ["| allocation | " + " | ".join(budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for method in METHODS:
        cells = [
            100 * statistics.mean(r["accuracy"] for r in rows
                                  if (r["budget"], r["method"]) == (budget, method))
            for budget in budgets
        ]  # fmt: skip
        lines.append(f"| {method} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    lines.append("\nTop-1 accuracy (%) on the 1,000 test digits, mean over permutation seeds.")
    return "\n".join(lines)
