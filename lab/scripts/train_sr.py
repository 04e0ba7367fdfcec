"""Train the super-resolution zoo (SRCNN x3, EDSR x4, and EDSR's random-width INN twin) on
patches of the training images and write the committed checkpoints.

Usage (from the repository root)::

    python lab/scripts/train_sr.py                    # srcnn, edsr, then edsr-inn (from edsr)
    python lab/scripts/train_sr.py --models edsr --steps 500 --out-dir /tmp/sr

Writes ``lab/innlab/checkpoints/{name}.pt`` and ``{name}.json`` (recipe, seed, PSNR / SSIM on the
test images, bicubic's, time, the command). Seeded: ``torch.manual_seed`` for the
initialisation, the patch dataset (:class:`innlab.sr.SRPatches`) and the batch order. The test
images are never seen; the reported PSNR is that of the final weights.
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
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler
from train_zoo import provenance

import inn
import inn.train
from inn import loop
from innlab.sr import SRPatches, evaluate
from innlab.zoo import SR_ZOO, checkpoint_dir

# name -> recipe: Adam, one-cycle schedule (5 % warm-up, cosine decay), patches of the training
# images; the twin is EDSR converted and fine-tuned by inn.train over random widths: selected
# channels, the discrete EDSR as the teacher of every width (the L1 loss to its outputs), one
# fraction for every group per draw (the recipes measured: results/sr/twin-recipes.json)
SR_RECIPES: dict[str, dict[str, Any]] = {
    "srcnn": {"scale": 3, "patch": 16, "batch_size": 32, "steps": 2500, "lr": 2e-3, "loss": "mse"},
    "edsr": {"scale": 4, "patch": 24, "batch_size": 16, "steps": 9000, "lr": 1e-3, "loss": "l1"},
    "edsr-inn": {
        "from": "edsr", "scale": 4, "patch": 24, "batch_size": 16, "steps": 3000, "lr": 4e-4,
        "widths": (0.3, 1.0), "num_random": 1, "same_fraction": True, "channels": "select",
        "teacher": True,
    },
}  # fmt: skip
WIDTHS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def batches(dataset: SRPatches, batch_size: int, steps: int, seed: int):
    sampler = RandomSampler(dataset, num_samples=steps * batch_size,
                            generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return iter(DataLoader(dataset, batch_size, sampler=sampler))


def train_discrete(name: str, recipe: dict[str, Any], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = SR_ZOO[name]()
    data = SRPatches(recipe["scale"], recipe["patch"], luma=name == "srcnn", seed=seed)
    stream = batches(data, recipe["batch_size"], recipe["steps"], seed)
    loss_fn = F.l1_loss if recipe["loss"] == "l1" else F.mse_loss
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, recipe["lr"], total_steps=recipe["steps"], pct_start=max(0.05, 3 / recipe["steps"])
    )
    model.train()

    def step(i: int, backward: loop.Backward) -> float:
        x, y = next(stream)
        value = loss_fn(model(x), y)
        backward(value)
        return float(value.detach())

    loop.fit(step, optimiser, steps=recipe["steps"], schedule=schedule, progress=True, desc=name)
    return model.eval()


def train_twin(recipe: dict[str, Any], seed: int, out_dir: Path) -> inn.IntegralModel:
    torch.manual_seed(seed)
    base = SR_ZOO[recipe["from"]]()
    base.load_state_dict(torch.load(out_dir / f"{recipe['from']}.pt", weights_only=True))
    base.eval()
    data = SRPatches(base.scale, recipe["patch"], seed=seed + 1)
    imodel = inn.convert(base, data[0][0][None], seed=seed)
    widths = inn.train.WidthSampler.for_model(
        imodel, recipe["widths"], sampling="sandwich", num_random=recipe["num_random"],
        same_fraction=recipe["same_fraction"], seed=seed,
    )  # fmt: skip
    inn.train.train(
        imodel, data, steps=recipe["steps"], batch_size=recipe["batch_size"], widths=widths,
        loss=F.l1_loss, optimiser="adamw", lr=recipe["lr"], weight_decay=0.0,
        channels=recipe["channels"], teacher=base if recipe["teacher"] else None, seed=seed,
    )  # fmt: skip
    return imodel.eval()


def train_one(name: str, steps: int | None, seed: int, out_dir: Path, command: str) -> dict:
    recipe = dict(SR_RECIPES[name])
    if steps is not None:
        recipe["steps"] = steps
    start = time.perf_counter()
    twin = name.endswith("-inn")
    model = train_twin(recipe, seed, out_dir) if twin else train_discrete(name, recipe, seed)
    seconds = time.perf_counter() - start
    scale = recipe["scale"]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.pt"
    torch.save(model.state_dict(), path)
    if twin:
        psnr_at = inn.train.at_widths(model, WIDTHS, lambda m: evaluate(m, scale)["psnr"])
        result: dict[str, Any] = {"psnr_at_width": {str(f): v for f, v in psnr_at.items()}}
    else:
        result = {key: evaluate(model, scale)[key] for key in ("psnr", "ssim")}
    info = {
        "name": name,
        "architecture": f"innlab.zoo.SR_ZOO[{name!r}]()" if name in SR_ZOO else recipe["from"],
        "dataset": "innlab.sr.SRPatches (innlab.sr.TRAIN_IMAGES); test: innlab.sr.TEST_IMAGES",
        "seed": seed,
        "recipe": recipe,
        "test": result,
        "bicubic": {k: evaluate("bicubic", scale)[k] for k in ("psnr", "ssim")},
        "num_parameters": sum(p.numel() for p in SR_ZOO[name.removesuffix("-inn")]().parameters()),
        "train_time_s": round(seconds, 1),
        **provenance(path, command),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(SR_RECIPES), choices=list(SR_RECIPES))
    parser.add_argument("--steps", type=int, default=None, help="override every recipe's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=checkpoint_dir())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(["python", "lab/scripts/train_sr.py", *(sys.argv[1:] if argv is None else argv)])
    for name in args.models:
        info = train_one(name, args.steps, args.seed, args.out_dir, command)
        print(name, json.dumps(info["test"]), "bicubic", json.dumps(info["bicubic"]),
              f"{info['train_time_s']} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
