"""Train the random-width INN twin of a zoo model and write its committed checkpoint.

Usage (from the repository root)::

    python lab/scripts/train_twin.py                       # cifar_resnet18, the demo network
    python lab/scripts/train_twin.py --epochs 4 --out-dir /tmp/twin

The twin is the committed zoo network converted with its BatchNorms kept as integral BatchNorms
and fine-tuned by :func:`inn.train.train` on the same 4,000 MNIST training digits, with the
zoo's optimiser, schedule, augmentation and learning rate, the sandwich rule over widths
[25 %, 100 %] of every group, each group's strongest channels nested and the checkpoint as the
teacher of every width (``innlab.zoo.TWIN_RECIPE``). It writes
``lab/innlab/checkpoints/{name}-inn.pt`` (the integral model's state_dict, loaded by
:func:`innlab.zoo.load_integral`) and ``{name}-inn.json`` (recipe, seed, test accuracy at every
width, time, the command).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from train_zoo import RECIPES, accuracy, provenance, random_shift

import inn
from innlab.data import mnist_splits
from innlab.zoo import TWIN_RECIPE, checkpoint_dir, load_pretrained

FRACTIONS = (0.25, 0.35, 0.5, 0.6, 0.75, 0.9, 1.0)


def train_twin(name: str, epochs: int, seed: int, out_dir: Path, command: str) -> dict[str, Any]:
    recipe = {**RECIPES[name], **TWIN_RECIPE, "epochs": epochs}
    recipe["lr"] = RECIPES[name]["lr"] * TWIN_RECIPE["lr_factor"]
    train_set, test_set = mnist_splits(seed=0)
    torch.manual_seed(seed)
    example = train_set[0][0][None]
    pretrained = load_pretrained(name)  # converted as a copy: it stays the teacher as it is
    imodel = inn.convert(pretrained, example, fold_batchnorm=False, seed=seed)
    aug = torch.Generator().manual_seed(seed + 1)
    start = time.perf_counter()
    report = inn.train.train(
        imodel, train_set, epochs=epochs, batch_size=recipe["batch_size"],
        widths=recipe["widths"], sampling="sandwich", num_random=recipe["num_random"],
        smoothness=recipe["smoothness"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
        channels=recipe["channels"], teacher=pretrained if recipe["teacher"] else None,
        warmup=1 / epochs, clip_norm=recipe["clip_norm"], seed=seed,
        augment=lambda x: random_shift(x, 2, aug),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    at_width = inn.train.at_widths(imodel, FRACTIONS, lambda m: accuracy(m, test_set))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-inn.pt"
    torch.save(imodel.state_dict(), path)
    info = {
        "name": f"{name}-inn",
        "architecture": f"inn.convert(innlab.zoo.load_pretrained({name!r}), fold_batchnorm=False)",
        "dataset": "innlab.data.mnist_splits(seed=0): 4,000 train / 1,000 test",
        "seed": seed,
        "recipe": recipe,
        "steps": report.steps,
        "test_accuracy_at_width": at_width,
        "train_time_s": round(seconds, 1),
        **provenance(path, command),
    }
    (out_dir / f"{name}-inn.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_resnet18", choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=TWIN_RECIPE["epochs"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=checkpoint_dir())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(
        ["python", "lab/scripts/train_twin.py", *(sys.argv[1:] if argv is None else argv)]
    )
    info = train_twin(args.model, args.epochs, args.seed, args.out_dir, command)
    print(json.dumps(info["test_accuracy_at_width"]), f"{info['train_time_s']} s")


if __name__ == "__main__":
    main()
