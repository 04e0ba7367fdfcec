"""``inn train``: random-width training of a user's model on a user's data, on one process or
under ``torchrun`` (DDP)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from inn.cli.models import (
    UsageError,
    command_line,
    load_callable,
    load_weights,
    parse_model_kwargs,
    positive_float,
    positive_int,
)

__all__ = ["accuracy", "add_parser"]

FRACTIONS = (0.25, 0.35, 0.5, 0.6, 0.75, 0.9, 1.0)


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH fractions, got {text!r}") from error
    return low, high


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="random-width training of an integral network (one process, or under torchrun)",
        description="Train an integral network so that every width in --widths works. Under "
        "`torchrun --nproc_per_node N inn train ...` it runs DDP (gloo on CPU, nccl on GPU).",
    )
    p.add_argument("--model", required=True, help="torchvision name, timm:NAME or module:callable")
    p.add_argument("--weights", help="state_dict file (.pt) to start from")
    p.add_argument("--num-classes", type=int, help="number of classes of the model")
    p.add_argument("--model-kwargs", help="keyword arguments of the model, as JSON")
    p.add_argument(
        "--data",
        required=True,
        help="module:callable returning (train, test) datasets of (input, target) pairs",
    )
    p.add_argument("--data-kwargs", help="keyword arguments of the --data callable, as JSON")
    p.add_argument(
        "--from",
        dest="start",
        choices=["scratch", "pretrained"],
        default="pretrained",
        help="the model's weights are trained (converted with channel ordering) or a "
        "fresh initialisation",
    )
    p.add_argument(
        "--fold-batchnorm",
        action="store_true",
        help="fold BatchNorm into the convolutions before training (default: keep it as integral "
        "BatchNorm, whose statistics are tracked for every width)",
    )
    # kept: the default now (earlier commands pass it)
    p.add_argument("--keep-batchnorm", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=positive_float, default=3.0, help="passes over the data")
    p.add_argument(
        "--steps", type=positive_int, help="train for this many steps instead of --epochs"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=64, help="global batch (all processes)"
    )
    p.add_argument("--optimiser", choices=["sgd", "adamw"], default="sgd")
    p.add_argument(
        "--lr",
        type=positive_float, default=0.05,
        help="learning rate (from pretrained too: at a fifth of it the narrow widths lag)",
    )
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--smoothness", type=float,
        help="roughness penalty on the weights (default: 0 with selected channels, 3 resampled)",
    )  # fmt: skip
    p.add_argument("--clip-norm", type=float, default=5.0, help="gradient norm clipping")
    p.add_argument(
        "--widths", type=_range, default=(0.25, 1.0),
        help="LOW:HIGH fractions of every group's width (default: 0.25:1)",
    )  # fmt: skip
    p.add_argument("--sampling", choices=["sandwich", "random"], default="sandwich")
    p.add_argument("--num-random", type=int, default=2, help="random widths per sandwich step")
    p.add_argument(
        "--channels", choices=["select", "resample"], default="select",
        help="narrow widths keep each group's strongest channels, nested as in slimmable "
        "networks (default: they train every width of every network measured), or resample "
        "them (the paper's integral network: 0.3-2.6 points better at 25-60 %% width on the "
        "zoo ResNet-18, at chance at 35 %% on the zoo MobileNetV2)",
    )  # fmt: skip
    p.add_argument("--distill", action="store_true", help="in-place distillation (sandwich)")
    p.add_argument(
        "--teacher", action=argparse.BooleanOptionalAction,
        help="the loaded model (as it was before conversion) is the teacher of every width: its "
        "outputs' KL divergence is added to the loss (default: with --from pretrained and no "
        "--distill, unless the loaded model is at chance on the test data; it brings the twin's "
        "full width to its discrete network's in Pipeline A)",
    )  # fmt: skip
    p.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (fp16: CUDA only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--checkpoint", help="checkpoint file: resumed from if it exists")
    p.add_argument(
        "--checkpoint-every", type=positive_int, default=100, help="steps between checkpoints"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", dest="out", default="out/train", help="output folder")
    p.add_argument("--out", dest="out", help=argparse.SUPPRESS)  # the earlier spelling
    p.set_defaults(func=_train)


def accuracy(model: Any, batches: Any) -> float:
    """Top-1 accuracy of ``model`` on ``(inputs, targets)`` batches."""
    import torch

    correct = total = 0
    with torch.no_grad():
        for x, y in batches:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    return correct / max(total, 1)


def _datasets(args: argparse.Namespace) -> tuple[Any, Any]:
    """The ``(train, test)`` datasets of ``--data`` called with ``--data-kwargs``."""
    made = load_callable(args.data, "--data")(
        **parse_model_kwargs(args.data_kwargs, "--data-kwargs")
    )
    if not (isinstance(made, tuple) and len(made) == 2):
        raise UsageError(
            f"--data {args.data!r} must return (train, test) datasets, got {type(made).__name__}"
        )
    return made


def _train(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    import inn
    import inn.train  # a subpackage `import inn` does not load

    if args.fold_batchnorm and args.keep_batchnorm:
        raise UsageError("--fold-batchnorm and --keep-batchnorm contradict each other")
    if args.teacher and (args.start == "scratch" or args.distill):
        raise UsageError("--teacher needs --from pretrained and no --distill")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(args.device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    rank = dist.get_rank() if world > 1 else 0
    train, test = _datasets(args)
    kwargs = parse_model_kwargs(args.model_kwargs)
    if args.start == "scratch":
        torch.manual_seed(args.seed)
    model, _ = load_weights(args.model, args.weights, args.num_classes, "inn train", kwargs)
    model.eval()
    test_batches = list(DataLoader(test, batch_size=250))
    example = test_batches[0][0][:1]
    chance = 1 / max(len({int(t) for _, y in test_batches for t in y}), 1)
    if args.teacher is None:  # the loaded model teaches every width, if it learned anything
        args.teacher = args.start == "pretrained" and not args.distill
        if args.teacher and accuracy(model, test_batches) <= 1.5 * chance:
            args.teacher = False
            if rank == 0:
                print("inn train: the loaded model is at chance level on the test data, so it is "
                      "not the teacher (no --weights? then --from scratch)", file=sys.stderr)  # fmt: skip
    imodel = inn.convert(
        model, example, permute=args.start == "pretrained", fold_batchnorm=args.fold_batchnorm
    ).to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        print(f"inn train: {args.model} ({args.start}) on {args.data}, widths {args.widths}, "
              f"{args.sampling} sampling, {world} process(es), {device}")  # fmt: skip
    report = inn.train.train(
        imodel, train, epochs=None if args.steps else args.epochs, steps=args.steps,
        batch_size=args.batch_size, widths=args.widths, sampling=args.sampling,
        num_random=args.num_random, distill=args.distill, optimiser=args.optimiser,
        teacher=model if args.teacher else None,
        lr=args.lr, channels=args.channels,
        smoothness=args.smoothness,
        clip_norm=args.clip_norm, weight_decay=args.weight_decay, amp=args.amp, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, log=out / "log.jsonl" if rank == 0 else None,
        seed=args.seed,
    )  # fmt: skip
    if rank == 0:
        on_device = [(x.to(device), y.to(device)) for x, y in test_batches]
        results = inn.train.at_widths(imodel, FRACTIONS, lambda m: accuracy(m, on_device))
        torch.save(imodel.state_dict(), out / "model.pt")
        summary = {
            "command": command_line(args.argv), "model": args.model, "data": args.data,
            "start": args.start, "channels": args.channels, "teacher": args.teacher,
            "processes": world, "seconds": report.seconds,
            "samples_per_s": report.samples_per_s, "steps": report.steps,
            "accuracy_at_width": results,
        }  # fmt: skip
        (out / "train.json").write_text(json.dumps(summary, indent=1))
        print("width     " + " ".join(f"{f:>6.0%}" for f in results))
        print("accuracy  " + " ".join(f"{100 * a:>6.1f}" for a in results.values()))
        if results[1.0] <= 1.5 * chance:
            print(f"inn train: warning: {100 * results[1.0]:.1f} % at full width is chance level "
                  f"({100 * chance:.0f} %): the network did not learn; try a lower --lr, more "
                  "--epochs" + (", or no --fold-batchnorm" if args.fold_batchnorm else ""),
                  file=sys.stderr)  # fmt: skip
        print(f"{report.steps} steps in {report.seconds:.0f} s ({report.samples_per_s:.0f} "
              f"samples/s); written: {out}/model.pt, train.json, log.jsonl")  # fmt: skip
    if world > 1:
        dist.destroy_process_group()
    return 0
