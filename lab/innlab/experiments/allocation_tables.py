"""The table of ``lab/scripts/allocation_tables.py``: ``inn.prune``'s accuracy with the widths
allocated from each of four tables (rows: model, budget, table, seed, accuracy)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["TABLES", "markdown"]

# label -> the samplings of inn.budget.output_errors, or None for sensitivity="magnitude"
TABLES: dict[str, tuple[str, ...] | None] = {
    "resampled": ("resample",),
    "selected": ("select",),
    "lower of the two": ("resample", "select"),
    "magnitude": None,
}


def markdown(rows: Sequence[dict]) -> str:
    """Mean ± std over seeds, one line per table, one column per model and budget."""
    columns = sorted({(r["model"], r["budget"]) for r in rows})
    lines = [
        "| table | " + " | ".join(f"{m} {b}" for m, b in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for label in TABLES:
        cells = []
        for model, budget in columns:
            values = [100 * r["accuracy"] for r in rows
                      if (r["model"], r["budget"], r["table"]) == (model, budget, label)]  # fmt: skip
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {spread:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "\nTop-1 accuracy (%) on the 1,000 test digits, mean ± std over permutation seeds."
    )
    return "\n".join(lines)
