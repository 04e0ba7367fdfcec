"""``inn train`` (random-width training, one process or ``torchrun``) and
``inn experiment pipeline-a``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_train_parser", "pipeline_a"]

FRACTIONS = (0.25, 0.35, 0.5, 0.6, 0.75, 0.9, 1.0)


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH fractions, got {text!r}") from error
    return low, high


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="random-width training of an integral network (one process, or under torchrun)",
        description="Train an integral network so that every width in --widths works. Under "
        "`torchrun --nproc_per_node N inn train ...` it runs DDP (gloo on CPU, nccl on GPU).",
    )
    p.add_argument("--model", default="cifar_resnet18", help="zoo model name")
    p.add_argument("--model-width", type=int, help="the zoo constructor's width (default: its own)")
    p.add_argument(
        "--from",
        dest="start",
        choices=["scratch", "pretrained"],
        default="pretrained",
        help="start from the zoo checkpoint (converted) or a fresh initialisation",
    )
    p.add_argument(
        "--keep-batchnorm",
        action="store_true",
        help="keep integral BatchNorm (default: fold it into the convolutions)",
    )
    p.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist")
    p.add_argument("--data-dir", help="folder with CIFAR-10, for --dataset cifar10")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--steps", type=int, help="train for this many steps instead of --epochs")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (all processes)")
    p.add_argument("--optimiser", choices=["sgd", "adamw"], default="sgd")
    p.add_argument(
        "--lr", type=float, help="learning rate (default 0.01 from pretrained, 0.05 from scratch)"
    )
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--smoothness", type=float, default=3.0, help="roughness penalty on the weights (default 3)"
    )
    p.add_argument("--clip-norm", type=float, default=5.0, help="gradient norm clipping")
    p.add_argument("--widths", type=_range, default=(0.25, 1.0), help="LOW:HIGH (default 0.25:1)")
    p.add_argument("--rule", choices=["sandwich", "random"], default="sandwich")
    p.add_argument("--num-random", type=int, default=2, help="random widths per sandwich step")
    p.add_argument("--distill", action="store_true", help="in-place distillation (sandwich)")
    p.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision (fp16: CUDA only)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--checkpoint", help="checkpoint file: resumed from if it exists")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/train", help="output folder (default out/train)")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from inn.cli_inspect import require_experiment_packages

    require_experiment_packages("train")  # the digits and the plots
    import torch
    import torch.distributed as dist

    import inn
    from inn import zoo
    from inn.experiments import workloads
    from inn.experiments.pruning import accuracy

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device(args.device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    rank = dist.get_rank() if world > 1 else 0
    work = workloads.training_data(args.dataset, Path(args.data_dir) if args.data_dir else None)
    kwargs: dict[str, Any] = {"in_channels": work.in_channels}
    if args.model_width:
        kwargs["width" if args.model != "mobilenet_v2" else "width_mult"] = args.model_width
    if args.start == "pretrained":
        if args.model_width or args.dataset != "mnist":
            raise inn.InnError(
                "--from pretrained uses the zoo checkpoint (MNIST, default width): drop "
                "--model-width and --dataset, or use --from scratch"
            )
        model = zoo.load_pretrained(args.model)
    else:
        torch.manual_seed(args.seed)
        model = zoo.ZOO[args.model](**kwargs).eval()
    example = work.test[0][0][:1]
    imodel = inn.convert(
        model, example, permute=args.start == "pretrained", fold_batchnorm=not args.keep_batchnorm
    ).to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        print(f"inn train: {args.model} ({args.start}) on {work.name}, widths {args.widths}, "
              f"{args.rule} rule, {world} process(es), {device}")  # fmt: skip
    report = inn.train.train(
        imodel, work.train, epochs=None if args.steps else args.epochs, steps=args.steps,
        batch_size=args.batch_size, widths=args.widths, rule=args.rule,
        num_random=args.num_random, distill=args.distill, optimiser=args.optimiser,
        lr=args.lr or (0.01 if args.start == "pretrained" else 0.05), smoothness=args.smoothness,
        clip_norm=args.clip_norm, weight_decay=args.weight_decay, amp=args.amp, checkpoint=args.checkpoint,
        checkpoint_every=args.checkpoint_every, log=out / "log.jsonl" if rank == 0 else None,
        seed=args.seed,
    )  # fmt: skip
    if rank == 0:
        test = [(x.to(device), y.to(device)) for x, y in work.test]
        results = inn.train.at_widths(imodel, FRACTIONS, lambda m: accuracy(m, test))
        torch.save(imodel.state_dict(), out / "model.pt")
        summary = {
            "command": "inn " + " ".join(sys.argv[1:] if args.argv is None else args.argv),
            "model": args.model, "start": args.start, "dataset": args.dataset,
            "processes": world, "seconds": report.seconds, "samples_per_s": report.samples_per_s,
            "steps": report.steps, "accuracy_at_width": results,
        }  # fmt: skip
        (out / "train.json").write_text(json.dumps(summary, indent=1))
        print("width     " + " ".join(f"{f:>6.0%}" for f in results))
        print("accuracy  " + " ".join(f"{100 * a:>6.1f}" for a in results.values()))
        print(f"{report.steps} steps in {report.seconds:.0f} s ({report.samples_per_s:.0f} "
              f"samples/s); written: {out}/model.pt, train.json, log.jsonl")  # fmt: skip
    if world > 1:
        dist.destroy_process_group()
    return 0


def pipeline_a(args: argparse.Namespace, command: str) -> int:
    """``inn experiment pipeline-a``: Table 1 at CPU scale (see inn.experiments.pipeline_a)."""
    from inn import zoo
    from inn.experiments import pipeline_a, workloads

    name = args.model or "cifar_resnet18"
    work = workloads.training_data(args.dataset, Path(args.data_dir) if args.data_dir else None)
    kwargs: dict[str, Any] = {"in_channels": work.in_channels}
    if name in ("cifar_resnet18", "nin"):
        kwargs["width"] = args.model_width or (8 if name == "cifar_resnet18" else 48)
    start = time.perf_counter()
    rows = pipeline_a.run(
        lambda: zoo.ZOO[name](**kwargs), work.train, work.test, work.calib,
        epochs=args.epochs, seeds=tuple(range(args.seeds)),
        methods=tuple(args.methods.split(",")) if args.methods else pipeline_a.METHODS,
    )  # fmt: skip
    out = Path(args.out or f"out/pipeline-a-{name}")
    title = (f"Pipeline A: {name}({', '.join(f'{k}={v}' for k, v in kwargs.items())}) trained "
             f"{args.epochs:g} epochs on {work.name}")  # fmt: skip
    setup = {"model": name, "kwargs": kwargs, "epochs": args.epochs,
             "seconds": time.perf_counter() - start}  # fmt: skip
    pipeline_a.save(rows, out, title, command, setup)
    print(f"\n{title}\n\n{pipeline_a.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    return 0
