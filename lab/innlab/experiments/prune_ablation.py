"""What each of ``inn.prune``'s two recent changes is worth, on one network and one seed.

* ``tables to 1/8``: the widths planned from error tables measured at 100/75/50/25/12.5 % of
  each group only (flat below 12.5 %: the tables before sensitivity measured one channel too);
* ``tables to 1 channel``: the tables as :func:`inn.budget.output_errors` measures them now;
  both without bias calibration (``calibrate=False``);
* ``+ calibration judged on the fitted images``: biases and BatchNorm parameters fitted to the
  original's outputs, early stopping and the state kept judged on the same images
  (``holdout=0``);
* ``+ calibration judged on held-out images``: the default, a quarter of each batch held out.

Command: ``python -m innlab.experiments.prune_ablation --out results/prune-ablation-mobilenet_v2``.
Only the public API of ``inn`` is used.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import inn
from inn.budget import Sensitivity, output_errors
from innlab.experiments.pruning import accuracy
from innlab.experiments.workloads import mnist_workload

__all__ = ["VARIANTS", "main", "markdown", "run", "to_eighth"]

VARIANTS = (
    "tables to 1/8",
    "tables to 1 channel",
    "+ calibration judged on the fitted images",
    "+ calibration judged on held-out images",
)


def to_eighth(table: Sensitivity) -> Sensitivity:
    """``table`` without its entries below 1/8 of each group's width (flat below, as before)."""
    keep = {n: w >= w[-1] / 8 - 1e-9 for n, w in table.widths.items()}
    return Sensitivity(
        {n: w[keep[n]] for n, w in table.widths.items()},
        {n: e[keep[n]] for n, e in table.errors.items()},
        table.method,
    )


def run(model_name: str, fractions: Sequence[float], seed: int = 0) -> list[dict]:
    """Accuracy (fraction) of every variant at every parameter budget ``fractions``."""
    work = mnist_workload(model_name)
    example = work.test[0][0][:1]
    reference = inn.convert(work.model, example, fold_batchnorm=False, seed=seed)
    tables = {"1": output_errors(reference, work.calib)}
    tables["8"] = to_eighth(tables["1"])
    rows = []
    for fraction in fractions:
        for variant in VARIANTS:
            options = {
                "calibrate": variant.startswith("+"),
                "calibrate_options": {"holdout": 0.25 if "held-out" in variant else 0.0},
                "resize_options": {"sensitivity": tables["8" if "1/8" in variant else "1"]},
            }
            start = time.perf_counter()
            small = inn.prune(
                work.model, example, budget={"params": fraction}, calib=work.calib,
                convert_options={"seed": seed}, **options,
            )  # fmt: skip
            rows.append({"variant": variant, "fraction": fraction, "seed": seed,
                         "accuracy": accuracy(small, work.test),
                         "seconds": time.perf_counter() - start})  # fmt: skip
    return rows


def markdown(rows: Sequence[dict]) -> str:
    fractions = sorted({r["fraction"] for r in rows}, reverse=True)
    lines = ["| variant | " + " | ".join(f"{f:.0%} params" for f in fractions) + " |",
             "|---|" + "---:|" * len(fractions)]  # fmt: skip
    for variant in VARIANTS:
        cells = [next(f"{100 * r['accuracy']:.1f}" for r in rows
                      if r["variant"] == variant and r["fraction"] == f) for f in fractions]  # fmt: skip
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.8, 0.3])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/prune-ablation-mobilenet_v2"))
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rows = run(args.model, args.fractions, args.seed)
    command = "python -m innlab.experiments.prune_ablation " + " ".join(
        [f"--model {args.model}", "--fractions", *map(str, args.fractions), f"--out {args.out}"]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    text = (f"# inn.prune's recent changes, one at a time: {args.model}, seed {args.seed}\n\n"
            f"`{command}`\n\nTest accuracy (%) on the 1,000 test digits, 256 calibration digits.\n\n"
            f"{markdown(rows)}\n")  # fmt: skip
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
