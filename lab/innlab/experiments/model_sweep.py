"""The table of ``lab/scripts/model_sweep.py``: architectures no issue or test names, each
converted, pruned and trained by ``inn``'s public API (rows: one per model, with the error where
a stage failed)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown"]


def markdown(rows: Sequence[dict]) -> str:
    """One line per model: conversion error, groups, pruning to half the parameters, training."""
    lines = [
        "| model | input | conversion error | resizable groups | kept whole | prune to 50 % "
        "params: kept, seconds | random-width training: seconds | result |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        prune = f"{r['params_kept']:.3f}, {r['prune_s']:.0f}" if "prune_s" in r else ""
        train = f"{r['train_s']:.0f}" if "train_s" in r else ""
        error = f"{r['conversion_error']:.1e}" if "conversion_error" in r else ""
        groups = r.get("groups", "")
        refused = r.get("error", "").startswith(("InnError", "ConversionError"))
        result = "ok" if r["ok"] else f"{'refused' if refused else 'failed'}: {r['error']}"
        whole = ", ".join(r.get("kept_whole", [])) or ""
        lines.append(
            f"| {r['model']} | {r['size']} | {error} | {groups} | {whole} | {prune} | {train} "
            f"| {result} |"
        )
    ok = sum(r["ok"] for r in rows)
    lines.append(
        f"\n{ok} of {len(rows)} architectures went through every stage (refused: an `inn` error "
        "that says why, e.g. a budget below what the pinned channels allow). Random weights "
        "(BatchNorm statistics randomised), batch of 2 at the input size shown; conversion "
        "error: max |integral - original| / max |original| at full width; pruned by "
        "`inn.prune(budget={'params': 0.5})` with 2 batches of 8 random calibration images, kept: "
        "its parameters over those the original's forward uses; "
        "trained by `inn.train.train` for 2 steps of 8 images with BatchNorm kept, then resized "
        "to `compression=0.5` with no data."
    )
    return "\n".join(lines)
