"""The table of ``lab/scripts/narrow_channels.py``: MobileNetV2 at narrow widths, resampled
against selected channels (rows: channels, stage, accuracy per width with and without data)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FRACTIONS", "markdown"]

FRACTIONS = (0.35, 0.5, 0.75)


def markdown(rows: Sequence[dict]) -> str:
    """One line per row and kind of statistics: accuracy (%) at each of ``FRACTIONS``."""
    lines = [
        "| channels | stage | statistics | " + " | ".join(f"{f:.0%}" for f in FRACTIONS) + " |",
        "|---|---|---|" + "---:|" * len(FRACTIONS),
    ]
    for row in rows:
        for stats in ("no data", "re-estimated"):
            cells = " | ".join(f"{100 * row[stats][str(f)]:.1f}" for f in FRACTIONS)
            lines.append(f"| {row['channels']} | {row['stage']} | {stats} | {cells} |")
    return "\n".join(lines)
