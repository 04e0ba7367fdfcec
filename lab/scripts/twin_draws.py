"""Independent widths per group or one fraction per draw: which twin serves uniform widths, and
which serves the non-uniform widths a parameter budget allocates with no data.

Writes ``results/twin-draws-{model}/results.{json,md}`` (run from the repository root)::

    python lab/scripts/twin_draws.py --model efficientnet    # about 7 min on 2 cores

The zoo's checkpoint (``innlab.zoo.load_pretrained``) is converted with its BatchNorms kept
(integral BatchNorm) and trained with random widths twice, alike but for the draws
(``WidthSampler.same_fraction``): selected channels, the discrete network as teacher, sandwich
rule with 2 random draws in [25 %, 100 %], SGD lr 0.05 (``--lr``), on the 4,000 MNIST training
digits. Each twin is evaluated on the 1,000 test digits with no data, at uniform fractions of
every group and resized to keep 60 / 40 % of the parameters (``resize(compression=...)``: every
group at one fraction, the default for a model with width statistics; and widths allocated by
the output change on synthetic inputs, the default until 2026-12-06). Beside them,
Torch-Pruning's global LAMP ranking with BatchNorm re-estimated on 256 training digits. And
whether a uniform width can learn at all: the converted network trained at that width alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

import inn
import inn.train
from inn.budget import count_parameters
from innlab import zoo
from innlab.experiments import peers
from innlab.experiments.pruning import accuracy
from innlab.experiments.twin_draws import markdown
from innlab.experiments.workloads import training_data

FRACTIONS = (1.0, 0.75, 0.5, 0.35)
KEEP = (0.6, 0.4)
ALONE = (0.5, 0.25)  # uniform widths also trained alone, 150 steps each
RECIPE = {"epochs": 2.0, "batch_size": 64, "lr": 0.05, "clip_norm": 5.0, "low": 0.25}
"""The recipe; ``--lr`` changes the rate (the results then go to ``twin-draws-{model}-lr{lr}``)."""


def twin(plain, data, example, same: bool, recipe: dict) -> dict:
    imodel = inn.convert(plain, example, seed=0, fold_batchnorm=False)
    widths = inn.train.WidthSampler.for_model(
        imodel, (recipe["low"], 1.0), sampling="sandwich", num_random=2, seed=0, same_fraction=same
    )
    start = time.perf_counter()
    inn.train.train(
        imodel, data.train, epochs=recipe["epochs"], batch_size=recipe["batch_size"],
        widths=widths, lr=recipe["lr"], clip_norm=recipe["clip_norm"], teacher=plain, seed=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    imodel.eval()
    uniform = inn.train.at_widths(imodel, FRACTIONS, lambda m: accuracy(m, data.test))
    budget, by_outputs = {}, {}
    for keep in KEEP:
        imodel.resize(compression=1 - keep)
        budget[str(keep)] = accuracy(imodel, data.test)
        imodel.resize(compression=1 - keep, sensitivity="outputs")
        by_outputs[str(keep)] = accuracy(imodel, data.test)
    return {"uniform": {str(f): a for f, a in uniform.items()}, "budget": budget,
            "budget_by_outputs": by_outputs, "train_s": round(seconds, 1)}  # fmt: skip


def alone(plain, data, example, fraction: float, recipe: dict, steps: int = 150) -> float:
    """Accuracy after training at one uniform width only (can this width learn at all?)."""
    imodel = inn.convert(plain, example, seed=0, fold_batchnorm=False)
    fixed = inn.train.WidthSampler.for_model(imodel, (fraction, fraction), sampling="random")
    inn.train.train(imodel, data.train, steps=steps, batch_size=recipe["batch_size"], widths=fixed,
                    lr=recipe["lr"], clip_norm=recipe["clip_norm"], teacher=plain, seed=0)  # fmt: skip
    imodel.eval().resize(widths=fixed.draw(0)[0])
    return accuracy(imodel, data.test)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet", choices=sorted(zoo.ZOO))
    parser.add_argument("--lr", type=float, default=RECIPE["lr"], help="SGD learning rate")
    args = parser.parse_args(argv)
    recipe = {**RECIPE, "lr": args.lr}
    torch.set_num_threads(2)
    data = training_data("mnist")
    plain = zoo.load_pretrained(args.model).eval()
    example = data.test[0][0][:1]
    peer = {}
    for keep in KEEP:
        small = peers.torch_pruning_prune(plain, example, data.calib, count_parameters,
                                          keep * count_parameters(plain))  # fmt: skip
        inn.reestimate_batchnorm(small, data.calib)
        peer[str(keep)] = accuracy(small, data.test)
    given = sys.argv[1:] if argv is None else argv
    payload = {
        "title": f"Twin widths drawn per group or as one fraction: {args.model} ({data.name}), "
                 f"SGD lr {args.lr:g}",
        "command": shlex.join(["python", "lab/scripts/twin_draws.py", *given]),
        "recipe": ", ".join(f"{k} {v}" for k, v in recipe.items())
                  + ", selected channels, teacher, integral BatchNorm",
        "discrete": accuracy(plain, data.test),
        "fractions": list(FRACTIONS),
        "keep": list(KEEP),
        "torch_pruning": peer,
        "twins": {"independent": twin(plain, data, example, False, recipe),
                  "same": twin(plain, data, example, True, recipe)},
        "alone_150_steps": {str(f): alone(plain, data, example, f, recipe) for f in ALONE},
    }  # fmt: skip
    suffix = "" if args.lr == RECIPE["lr"] else f"-lr{args.lr:g}"
    out = Path("results") / f"twin-draws-{args.model}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = f"# {payload['title']}\n\n`{payload['command']}`\n\n{markdown(payload)}\n"
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
