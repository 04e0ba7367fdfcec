"""The table of ``lab/scripts/wrapped_statistics.py``: a timm twin's ``BatchNormAct2d``
statistics at narrow widths (width buckets, the full width's sampled, re-estimated)."""

from __future__ import annotations

__all__ = ["COLUMNS", "markdown"]

# row key -> column title
COLUMNS = {
    "buckets": "no data, width buckets",
    "sampled": "no data, full width's statistics sampled",
    "re-estimated": "statistics re-estimated on 256 images",
}


def markdown(payload: dict) -> str:
    """A line about the network, then accuracy (%) per width and kind of statistics."""
    lines = [
        f"The discrete network: {100 * payload['discrete_accuracy']:.1f} %; "
        f"{payload['wrapped_norms']} BatchNormAct2d layers; random-width training "
        f"{payload['train_s']:.0f} s.",
        "",
        "| width | " + " | ".join(COLUMNS.values()) + " |",
        "|---:|" + "---:|" * len(COLUMNS),
    ]
    for row in payload["rows"]:
        cells = " | ".join(f"{100 * row[k]:.1f}" for k in COLUMNS)
        lines.append(f"| {row['width']:.0%} | {cells} |")
    return "\n".join(lines)
