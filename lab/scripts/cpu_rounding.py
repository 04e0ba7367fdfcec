"""Should a plan round widths to the CPU's vector width (16 floats under AVX-512) by default?
``inn.prune`` with ``round_to=16`` against unrounded widths on the zoo's efficient networks.

Writes ``results/cpu-rounding/results.{json,md}`` (run from the repository root, about 15 min
on 2 cores)::

    python lab/scripts/cpu_rounding.py

A convolution off a multiple of 16 channels takes 1.3-1.4x the time per MAC on this CPU, and
torchvision's MobileNetV2 at 224 x 224 ran faster with its plans rounded
(``benchmarks/results/channel-alignment-cpu``). This asks what rounding does to the networks
``inn`` is measured on: the zoo's MobileNetV2, MobileNetV3 and EfficientNet (28 x 28 digits),
pruned with ``inn.prune``'s defaults and 256 calibration digits at 30 % of the parameters and
half the MACs, 2 permutation seeds; accuracy on the 1,000 test digits and latency at batch 1
over the unpruned network's.
"""

from __future__ import annotations

from pathlib import Path

import torch

import inn
from inn.budget import latency_ratio
from innlab.experiments.cpu_rounding import ROUNDINGS, markdown
from innlab.experiments.pruning import accuracy
from innlab.experiments.workloads import mnist_workload
from innlab.experiments.written import save_rows

OUT = Path("results") / "cpu-rounding"
MODELS = ("mobilenet_v2", "mobilenet_v3", "efficientnet")
BUDGETS = (("params", 0.3), ("macs", 0.5))
SEEDS = (0, 1)


def main() -> None:
    torch.set_num_threads(2)
    rows = []
    for name in MODELS:
        work = mnist_workload(name)
        example = work.test[0][0][:1]
        for kind, fraction in BUDGETS:
            for seed in SEEDS:
                for round_to in ROUNDINGS:
                    torch.manual_seed(seed)
                    small = inn.prune(
                        work.model, example, budget={kind: fraction}, calib=work.calib,
                        convert_options={"seed": seed}, resize_options={"round_to": round_to},
                    )  # fmt: skip
                    rows.append({
                        "model": name, "budget": f"{kind}:{fraction}", "round_to": round_to,
                        "seed": seed, "accuracy": accuracy(small, work.test),
                        "latency_ratio": latency_ratio(small.eval(), work.model, (example,)),
                    })  # fmt: skip
                    print(rows[-1], flush=True)
    command = "python lab/scripts/cpu_rounding.py"
    title = f"inn.prune with widths rounded to 16 or not, mean of {len(SEEDS)} seeds"
    print(save_rows(OUT, title, command, rows, markdown(rows)))


if __name__ == "__main__":
    main()
