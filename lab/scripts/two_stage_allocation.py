"""Does measuring the groups' errors again near the plan help the allocation? Two-stage
allocation against ``inn.prune``'s one stage, on the zoo's MobileNetV2.

Writes ``results/two-stage-allocation/results.{json,md}`` (run from the repository root, about
8 min on 2 cores)::

    python lab/scripts/two_stage_allocation.py

``inn.prune`` measures each group's output error with every other group at full width and adds
the errors. Two stages: plan to the square root of the budget with that table, measure each
group's error again with the others at those widths (on the same 64 calibration digits,
resampled or selected channels, the lower, against the full network's outputs), allocate the
rest of the budget from there (``inn.budget.allocate.allocate`` started at the first plan's
widths), then ``inn.prune`` with the final widths. 3 permutation seeds; accuracy on the 1,000
test digits.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

import inn
from inn.budget import Sensitivity, channel_scores, output_errors
from inn.budget.allocate import allocate
from inn.budget.magnitude import keep_strongest
from inn.budget.sensitivity import OUTPUT_FRACTIONS, flat_output
from innlab.experiments.pruning import accuracy
from innlab.experiments.two_stage_allocation import markdown
from innlab.experiments.workloads import mnist_workload
from innlab.experiments.written import save_rows

OUT = Path("results") / "two-stage-allocation"
MODEL = "mobilenet_v2"
BUDGETS = (("macs", 0.5), ("params", 0.6), ("params", 0.3))
SEEDS = (0, 1, 2)
SAMPLES = 64


def errors_around(
    imodel: inn.IntegralModel, inputs: torch.Tensor, base: dict[str, int]
) -> Sensitivity:
    """Each group's output error (squared, relative to the full network's outputs) at fractions
    of its ``base`` width, the other groups at ``base``; the lower of resampled and selected."""
    scores = channel_scores(imodel)
    widths, errors = {}, {}
    with imodel.widths_kept(), torch.no_grad():
        imodel.resize(widths={g.name: g.full_size for g in imodel.resizable_groups})
        reference = flat_output(imodel(inputs))
        energy = float(reference.square().sum())

        def error() -> float:
            return float((flat_output(imodel(inputs)) - reference).square().sum()) / energy

        imodel.resize(widths=base)
        for g in imodel.resizable_groups:
            start = base[g.name]
            levels = np.unique([1, start, *(max(1, round(f * start)) for f in OUTPUT_FRACTIONS)])
            values = []
            for n in levels:
                imodel.resize(widths={g.name: int(n)})
                measured = [error()]
                if n < start:
                    keep_strongest(imodel, g.name, scores[g.name])
                    measured.append(error())
                values.append(min(measured))
            imodel.resize(widths={g.name: start})
            widths[g.name], errors[g.name] = levels.astype(float), np.array(values)
    return Sensitivity(widths, errors, "outputs")


def two_stage(imodel: inn.IntegralModel, table: Sensitivity, inputs: torch.Tensor, kind: str,
              fraction: float) -> dict[str, int]:  # fmt: skip
    first = imodel.plan({kind: math.sqrt(fraction)}, sensitivity=table).widths
    near = errors_around(imodel, inputs, first)
    groups = imodel.groups
    start = np.array([first.get(g.name, g.full_size) for g in groups], dtype=float)
    resizable = np.array([g.resizable for g in groups])
    cost = inn.budget.cost_model(imodel, kind)
    full = np.array([g.full_size for g in groups], dtype=float)
    widths = allocate(
        cost, fraction * cost(full), start, resizable,
        [near.widths.get(g.name, np.array([w])) for g, w in zip(groups, start, strict=True)],
        [near.errors.get(g.name, np.array([0.0])) for g in groups],
    )  # fmt: skip
    return {g.name: int(w) for g, w in zip(groups, widths, strict=True) if g.resizable}


def main() -> None:
    work = mnist_workload(MODEL)
    example = work.test[0][0][:1]
    inputs = torch.cat([x for x, _ in work.calib])[:SAMPLES]
    rows = []
    for seed in SEEDS:
        imodel = inn.convert(work.model, example, fold_batchnorm=False, seed=seed)
        table = output_errors(imodel, work.calib, samplings=("resample", "select"))
        for kind, fraction in BUDGETS:
            plans = {
                "one stage": imodel.plan({kind: fraction}, sensitivity=table).widths,
                "two stages": two_stage(imodel, table, inputs, kind, fraction),
            }
            for method, widths in plans.items():
                torch.manual_seed(seed)
                small = inn.prune(work.model, example, widths=widths, calib=work.calib,
                                  convert_options={"seed": seed})  # fmt: skip
                rows.append({"budget": f"{kind}:{fraction}", "method": method, "seed": seed,
                             "accuracy": accuracy(small, work.test)})  # fmt: skip
                print(rows[-1], flush=True)
    command = "python lab/scripts/two_stage_allocation.py"
    title = f"Allocation in one or two stages: {MODEL}, mean of {len(SEEDS)} seeds"
    text = save_rows(OUT, title, command, rows, markdown(rows))
    print(text)


if __name__ == "__main__":
    main()
