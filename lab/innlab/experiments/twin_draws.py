"""The table of ``lab/scripts/twin_draws.py``: a twin whose groups draw their widths
independently against one whose groups share one fraction per draw, at uniform widths and at
parameter budgets allocated with no data, beside Torch-Pruning."""

from __future__ import annotations

__all__ = ["DRAWS", "markdown"]

DRAWS = {"independent": "twin, independent widths per group", "same": "twin, one fraction per draw"}


def markdown(payload: dict) -> str:
    """Accuracy (%) at each uniform width and each parameter budget, one row per model (and per
    twin a row of its budgets planned by the output change on synthetic inputs, where run)."""
    uniform, budgets = payload["fractions"], payload["keep"]
    lines = [
        f"The discrete network: {100 * payload['discrete']:.1f} %. Twins: {payload['recipe']}.",
        "",
        "| | " + " | ".join(f"{f:.0%} width" for f in uniform)
        + " | " + " | ".join(f"{k:.0%} params" for k in budgets) + " | train (s) |",
        "|---|" + "---:|" * (len(uniform) + len(budgets) + 1),
    ]  # fmt: skip
    for key, label in DRAWS.items():
        twin = payload["twins"][key]
        cells = [f"{100 * twin['uniform'][str(f)]:.1f}" for f in uniform]
        cells += [f"{100 * twin['budget'][str(k)]:.1f}" for k in budgets]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {twin['train_s']:.0f} |")
        if "budget_by_outputs" in twin:  # results before 2026-12-06 lack it
            cells = [f"{100 * twin['budget_by_outputs'][str(k)]:.1f}" for k in budgets]
            lines.append(f"| {label}, planned by output change | " + " | " * len(uniform)
                         + " | ".join(cells) + " | |")  # fmt: skip
    peer = [f"{100 * payload['torch_pruning'][str(k)]:.1f}" for k in budgets]
    lines.append("| Torch-Pruning LAMP + BatchNorm re-estimated (256 images) | "
                 + " | ".join("" for _ in uniform) + " | " + " | ".join(peer) + " | |")  # fmt: skip
    alone = ", ".join(f"{float(f):.0%} of every group: {100 * a:.1f} %"
                      for f, a in payload["alone_150_steps"].items())  # fmt: skip
    lines += ["", f"Trained at one uniform width alone (150 steps, the same recipe): {alone}."]
    return "\n".join(lines)
