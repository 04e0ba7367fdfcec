"""The table of ``lab/scripts/cpu_rounding.py``: ``inn.prune`` with widths rounded to 16 or not
on the zoo's efficient networks (rows: model, budget, round_to, seed, accuracy, latency)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["ROUNDINGS", "markdown"]

ROUNDINGS = (1, 16)


def markdown(rows: Sequence[dict]) -> str:
    """Per model and budget: accuracy and latency ratio, mean over seeds, per ``round_to``."""
    keys = list(dict.fromkeys((r["model"], r["budget"]) for r in rows))
    head = " | ".join(f"round_to={r}: accuracy / latency" for r in ROUNDINGS)
    lines = [f"| model | budget | {head} |", "|---|---|" + "---:|" * len(ROUNDINGS)]
    for model, budget in keys:
        cells = []
        for r in ROUNDINGS:
            sel = [
                x for x in rows if (x["model"], x["budget"], x["round_to"]) == (model, budget, r)
            ]
            accuracy = 100 * statistics.mean(x["accuracy"] for x in sel)
            latency = statistics.mean(x["latency_ratio"] for x in sel)
            cells.append(f"{accuracy:.1f} / {latency:.2f}")
        lines.append(f"| {model} | {budget} | " + " | ".join(cells) + " |")
    lines.append(
        "\nTop-1 accuracy (%) on the 1,000 test digits and latency at batch 1 over the unpruned "
        "network's (interleaved, median of 15 rounds), mean over permutation seeds."
    )
    return "\n".join(lines)
