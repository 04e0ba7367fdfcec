"""Which table the width allocation of ``inn.prune`` should read, on the zoo's efficient networks.

Writes ``results/allocation-tables/results.{json,md}`` (run from the repository root, about
25 min on 2 cores)::

    python lab/scripts/allocation_tables.py

``inn.prune`` (calibration data, ``sampling="auto"``: per group resampled or selected channels,
whichever loses less) on the zoo's MobileNetV2 and EfficientNet at half the MACs and at 30 % of
the parameters, 3 permutation seeds, the widths allocated from four tables:

* ``resampled``: each group's output error on the calibration digits with resampled channels
  (``output_errors(samplings=("resample",))``, the default before this comparison);
* ``selected``: the same with the group's strongest original channels kept;
* ``lower of the two``: per width, the lower of the two (the default now: the export may use
  either);
* ``magnitude``: no data, one threshold on LAMP-normalised channel magnitudes
  (``sensitivity="magnitude"``, the allocation of global magnitude pruning).

Accuracy on the 1,000 test digits.
"""

from __future__ import annotations

from pathlib import Path

import torch

import inn
from inn.budget import output_errors
from innlab.experiments.allocation_tables import TABLES, markdown
from innlab.experiments.pruning import accuracy
from innlab.experiments.workloads import mnist_workload
from innlab.experiments.written import save_rows

OUT = Path("results") / "allocation-tables"
MODELS = ("mobilenet_v2", "efficientnet")
BUDGETS = (("macs", 0.5), ("params", 0.3))
SEEDS = (0, 1, 2)


def main() -> None:
    rows = []
    for name in MODELS:
        work = mnist_workload(name)
        example = work.test[0][0][:1]
        for seed in SEEDS:
            imodel = inn.convert(work.model, example, fold_batchnorm=False, seed=seed)
            tables = {
                label: output_errors(imodel, work.calib, samplings=samplings)
                if samplings is not None else "magnitude"
                for label, samplings in TABLES.items()
            }  # fmt: skip
            for kind, fraction in BUDGETS:
                for label, table in tables.items():
                    torch.manual_seed(seed)
                    pruned = inn.prune(
                        work.model, example, calib=work.calib, budget={kind: fraction},
                        convert_options={"seed": seed}, resize_options={"sensitivity": table},
                    )  # fmt: skip
                    rows.append({"model": name, "budget": f"{kind}:{fraction}", "table": label,
                                 "seed": seed, "accuracy": accuracy(pruned, work.test)})  # fmt: skip
                    print(rows[-1], flush=True)
    command = "python lab/scripts/allocation_tables.py"
    title = "Width allocation of inn.prune: which table it reads"
    text = save_rows(OUT, title, command, rows, markdown(rows))
    print(text)


if __name__ == "__main__":
    main()
