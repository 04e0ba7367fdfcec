"""Networks outside the zoo: a torchvision architecture trained here on the digits, then pruned
to parameter and MAC budgets by ``inn.prune``'s defaults and by Torch-Pruning, side by side.

Writes ``results/budget-torchvision-{model}/results.{json,md}`` and ``accuracy.png`` (run from
the repository root)::

    python lab/scripts/heldout_budget.py --model mnasnet0_5            # about 6 min on 2 cores
    python lab/scripts/heldout_budget.py --model shufflenet_v2_x0_5

The architecture is ``torchvision.models.get_model(model, num_classes=10)`` with its stem taking
one channel, trained from a fresh start by the zoo's loop (``lab/scripts/train_zoo.py``'s
``fit``: SGD 0.05, warm-up then cosine, random shifts) on the 4,000 MNIST training digits. Its
BatchNorms track with momentum 0.1: torchvision's MNASNet sets 0.0003, with which a few hundred
steps leave the running statistics at their initial values (chance accuracy in eval mode).
Every method then gets the same 256 calibration digits (``innlab.experiments.budget``): ``inn``
(``inn.prune``'s defaults, 3 permutation seeds) against Torch-Pruning's global LAMP with
BatchNorm re-estimated, and with the biases then calibrated; and ``inn-trained``: the network's
random-width twin (``inn.train.train``'s defaults, the network as teacher, 3 epochs, BatchNorm
kept), resized to each budget with no data (``inn-trained+outputs``: planned by the output
change on synthetic inputs, the default until 2026-12-06). Where Torch-Pruning cannot prune the
architecture its rows are missing and the error is recorded in the title.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
import torchvision
from torch import nn
from train_zoo import fit

import inn
from innlab.experiments import budget
from innlab.experiments.pruning import accuracy
from innlab.experiments.workloads import training_data

RECIPE = {"epochs": 15, "lr": 0.05, "batch_size": 64, "weight_decay": 4e-5}
BUDGETS = (("params", 0.8), ("params", 0.6), ("params", 0.4), ("params", 0.3), ("macs", 0.5))
PEERS = ("tp-lamp+bn", "tp-lamp+bn+calib")
TWIN_EPOCHS = 3.0


def gray_network(name: str) -> nn.Module:
    """``name`` from torchvision with 10 classes, its first 3-channel conv taking 1 channel and
    every BatchNorm's momentum 0.1."""
    model = torchvision.models.get_model(name, weights=None, num_classes=10)
    path, stem = next(
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.in_channels == 3
    )
    parent, _, attr = path.rpartition(".")
    gray = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding,
                     dilation=stem.dilation, groups=1, bias=stem.bias is not None)  # fmt: skip
    setattr(model.get_submodule(parent) if parent else model, attr, gray)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnasnet0_5", help="torchvision classification model")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = gray_network(args.model)
    data = training_data("mnist")
    seconds = fit(model, RECIPE, data.train, seed=0, desc=args.model)
    model.eval()
    print(f"{args.model}: {accuracy(model, data.test):.1%} after {seconds:.0f} s", flush=True)
    example = data.test[0][0][:1]
    twin = inn.convert(model, example, fold_batchnorm=False, seed=0)
    inn.train.train(twin, data.train, epochs=TWIN_EPOCHS, teacher=model, seed=0)
    twin.eval()
    twin_full = accuracy(twin, data.test)
    ours = ["inn-trained", "inn-trained+outputs", "inn"]
    rows = budget.run(model, data.test, data.calib, budgets=BUDGETS, methods=ours,
                      seeds=tuple(range(args.seeds)), trained=twin)  # fmt: skip
    failure = ""
    try:
        rows += budget.run(model, data.test, data.calib, budgets=BUDGETS, methods=PEERS)[1:]
    except Exception as error:  # Torch-Pruning's own failure on this architecture, recorded
        failure = f"; Torch-Pruning fails on it: {type(error).__name__}: {error}"
    given = sys.argv[1:] if argv is None else argv
    title = (
        f"Pruning without fine-tuning: torchvision {args.model} (1-channel stem) trained on "
        f"{data.name} for {RECIPE['epochs']} epochs; its twin {twin_full:.1%} at full width"
        f"{failure}"
    )
    command = shlex.join(["python", "lab/scripts/heldout_budget.py", *given])
    out = Path("results") / f"budget-torchvision-{args.model}"
    budget.save(rows, out, title, command)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
