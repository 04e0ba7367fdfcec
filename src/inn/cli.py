"""The ``inn`` command: ``inn demo``, ``inn prune``, ``inn train``, ``inn experiment NAME``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

__all__ = ["main"]

DEMO_MODEL = "cifar_resnet18"
DEMO_COMPRESSIONS = (0.2, 0.4, 0.6)
DEMO_METHODS = ("inn", "inn-data-free", "inn-uniform+tune", "tp-lamp+bn", "tp-lamp+bn+calib")


def _command_line(argv: list[str] | None) -> str:
    return "inn " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def _report(results, out: Path, title: str, command: str) -> None:
    from inn.experiments import pruning

    pruning.save(results, out, title, command)
    print(f"\n{title}\n\n{pruning.markdown(results)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")


def _demo(args: argparse.Namespace) -> int:
    import importlib.util

    from inn.cli_inspect import require_experiment_packages

    require_experiment_packages("demo")
    from inn.experiments import budget, workloads

    start = time.perf_counter()
    print(
        f"inn demo: pruning a trained CIFAR-style ResNet-18 ({DEMO_MODEL}, width 16) on real MNIST"
    )
    print(
        "digits without fine-tuning, to 20/40/60 % fewer parameters: inn's defaults, inn without\n"
        "any data, the uniform INN with partition tuning, and Torch-Pruning (global LAMP + BatchNorm\n"
        "re-estimation, then + bias calibration), all with the same 256 calibration images; and\n"
        "its twin trained with random widths (inn.train), resized with no data and no tuning.\n"
    )
    methods = list(DEMO_METHODS)
    if importlib.util.find_spec("torch_pruning") is None:
        methods = [m for m in methods if not m.startswith("tp-")]
        print(
            'torch-pruning is not installed: its rows are left out (pip install "inn[experiments]")'
        )
    from inn import zoo

    twin = zoo.load_integral(DEMO_MODEL)  # the same network trained for every width
    work = workloads.mnist_workload(DEMO_MODEL)
    rows = budget.run(
        work.model,
        work.test,
        work.calib,
        budgets=[("params", 1 - c) for c in DEMO_COMPRESSIONS],
        methods=["inn-trained", *methods],
        seeds=(0,),
        steps=args.steps,
        trained=twin,
    )
    title = f"Pruning without fine-tuning: {work.name}"
    out = Path(args.out)
    budget.save(rows, out, title, _command_line(args.argv))
    print(f"\n{title}\n\n{budget.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _parse_budgets(text: str) -> list[tuple[str, float]]:
    """``"params:0.6,macs:0.5"`` -> ``[("params", 0.6), ("macs", 0.5)]``."""
    out = []
    for item in text.split(","):
        kind, _, value = item.strip().partition(":")
        try:
            out.append((kind, float(value)))
        except ValueError:
            raise SystemExit(
                f"inn: a budget reads KIND:FRACTION (e.g. macs:0.5), got {item!r}"
            ) from None
    return out


def _budget_experiment(args: argparse.Namespace) -> int:
    from inn.experiments import budget, workloads

    model_name = args.model or DEMO_MODEL
    work = workloads.mnist_workload(model_name)
    rows = budget.run(
        work.model,
        work.test,
        work.calib,
        budgets=_parse_budgets(args.budgets),
        methods=tuple(args.methods.split(",")) if args.methods else budget.METHODS,
        seeds=tuple(range(args.seeds)),
        steps=args.steps,
    )
    out = Path(args.out or f"out/budget-{model_name}")
    title = f"Pruning to a budget without fine-tuning, inn vs Torch-Pruning: {work.name}"
    budget.save(rows, out, title, _command_line(args.argv))
    print(f"\n{title}\n\n{budget.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from inn.cli_inspect import IMAGE_PACKAGES, require_experiment_packages

    if args.name in ("sr", "reconstruction"):
        from inn import cli_sr

        require_experiment_packages(f"experiment {args.name}", IMAGE_PACKAGES)
        run = cli_sr.sr_experiment if args.name == "sr" else cli_sr.reconstruction_experiment
        return run(args, _command_line(args.argv))
    if args.name == "faces":
        packages = {**IMAGE_PACKAGES, "torch_pruning": "torch-pruning"}
        require_experiment_packages("experiment faces", packages)
        from inn.experiments import faces

        return faces.main(args, _command_line(args.argv))
    require_experiment_packages("experiment")
    from inn.experiments import pruning, workloads

    if args.name == "budget":
        return _budget_experiment(args)
    if args.name == "pipeline-a":
        from inn.cli_train import pipeline_a

        return pipeline_a(args, _command_line(args.argv))

    methods = {
        "pipeline-b": pruning.INN_METHODS,
        "pipeline-c": pruning.BASELINE_METHODS,
        "pruning": pruning.INN_METHODS + pruning.BASELINE_METHODS + pruning.PEER_METHODS,
    }[args.name]
    if args.dataset == "cifar10":
        if not (args.data_dir and args.weights and args.model):
            raise SystemExit(
                "inn experiment: --dataset cifar10 needs --data-dir, --model and --weights"
            )
        work = workloads.cifar10_workload(args.model, Path(args.weights), Path(args.data_dir))
    else:
        work = workloads.mnist_workload(args.model or DEMO_MODEL)
    methods = pruning.applicable(methods, work.model)
    if args.methods:
        methods = tuple(m for m in methods if m in args.methods.split(","))
    given = args.compressions or "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7"
    compressions = tuple(float(c) for c in given.split(","))
    results = pruning.run(
        work.model,
        work.test,
        work.calib,
        compressions=compressions,
        methods=methods,
        seeds=tuple(range(args.seeds)),
        steps=args.steps,
    )
    out = Path(args.out or f"out/{args.name}-{(args.model or DEMO_MODEL)}")
    title = f"Test accuracy (%) without fine-tuning ({args.name}): {work.name}"
    _report(results, out, title, _command_line(args.argv))
    return 0


def _prune(args: argparse.Namespace) -> int:
    import torch

    import inn
    from inn.cli_inspect import load_weights, parse_model_kwargs, parse_shape
    from inn.cost import count_macs, count_parameters

    if sum(a is not None for a in (args.compression, args.widths, args.budget)) != 1:
        raise SystemExit("inn prune: give exactly one of --compression, --widths or --budget")
    shape = parse_shape(args.input_shape)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # before the long work
    kwargs = parse_model_kwargs(args.model_kwargs)
    model, classes = load_weights(args.arch, args.weights, args.num_classes, "inn prune", kwargs)
    model.eval()
    x = torch.randn(shape)
    imodel = inn.convert(model, x, seed=args.seed)
    if args.widths is not None:
        imodel.resize(widths={k: int(v) for k, v in json.loads(args.widths).items()})
    elif args.budget is not None:
        ((kind, fraction),) = _parse_budgets(args.budget)
        imodel.resize(budget={kind: fraction}, round_to=args.round_to)
    else:
        imodel.resize(compression=args.compression, round_to=args.round_to)
    small = imodel.export()
    before = (count_parameters(model), count_macs(model, x))
    after = (count_parameters(small), count_macs(small, x))
    width = max(len(g.name) for g in imodel.groups)
    print(f"{'group':<{width}}  {'full':>6}  {'new':>6}")
    for g in imodel.groups:
        note = "" if g.resizable else f"  (fixed: {g.reason})"
        print(f"{g.name:<{width}}  {g.full_size:>6}  {g.size:>6}{note}")
    print(f"\nparameters: {before[0]:,} -> {after[0]:,} ({1 - after[0] / before[0]:.1%} removed)")
    print(
        f"MACs at input {shape}: {before[1]:,} -> {after[1]:,} ({1 - after[1] / before[1]:.1%} removed)"
    )
    torch.save(small, args.output)
    out = Path(args.output)
    state_path = out.with_name(f"{out.stem}.state_dict.pt")
    widths_path = out.with_name(f"{out.stem}.widths.json")
    torch.save(small.state_dict(), state_path)
    recipe = {
        "architecture": args.arch,
        "model_kwargs": kwargs,
        "num_classes": classes,
        "input_shape": list(shape),
        "widths": {g.name: g.size for g in imodel.resizable_groups},
        "rebuild": "imodel = inn.convert(model, torch.randn(input_shape)); "
        "imodel.resize(widths=widths); small = imodel.export(); "
        "small.load_state_dict(torch.load(state_dict, weights_only=True))",
    }
    widths_path.write_text(json.dumps(recipe, indent=2) + "\n")
    print(
        f"pruned model saved to {args.output} (a plain torch.nn.Module: torch.load(..., "
        f"weights_only=False)); without pickling: {state_path} + {widths_path} (widths per group)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inn", description="Integral Neural Networks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    from inn import __version__

    parser.add_argument("--version", action="version", version=f"inn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="prune a trained ResNet-18 on real digits: INN vs L1, a table and a plot"
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.add_argument(
        "--steps", type=int, default=150, help="tuning/calibration steps per compression"
    )
    demo.set_defaults(func=_demo)

    exp = sub.add_parser(
        "experiment",
        help="the paper's pipelines: pipeline-a (training), pipeline-b, pipeline-c, pruning "
        "(both); budget: inn vs Torch-Pruning at parameter and MAC budgets; sr: SRCNN and EDSR "
        "pruned without fine-tuning; reconstruction: images on fixed vs trainable partitions; "
        "faces: MTCNN's pretrained RNet and ONet (facenet-pytorch) vs Torch-Pruning",
    )
    exp.add_argument(
        "name",
        choices=["pipeline-a", "pipeline-b", "pipeline-c", "pruning", "budget", "sr",
                 "reconstruction", "faces"],
    )  # fmt: skip
    exp.add_argument(
        "--model",
        help="zoo model (cifar_resnet18, nin, mobilenet_v2, vit; sr: srcnn or edsr; faces: rnet "
        "or onet, default both) or, with cifar10, an architecture",
    )
    exp.add_argument(
        "--budgets",
        default="params:0.8,params:0.6,params:0.4,params:0.3,macs:0.7,macs:0.5,macs:0.3",
        help="budget experiment: KIND:FRACTION kept, comma-separated",
    )
    exp.add_argument("--methods", help="comma-separated subset of the experiment's methods")
    exp.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist")
    exp.add_argument(
        "--data-dir", help="folder with CIFAR-10 (torchvision layout), for --dataset cifar10"
    )
    exp.add_argument("--weights", help="state_dict of the model, for --dataset cifar10")
    exp.add_argument(
        "--compressions",
        help="fractions of parameters removed (default 0,0.1,...,0.7; sr: 0,0.2,0.4,0.6)",
    )
    exp.add_argument(
        "--budgets-reconstruction", help="reconstruction: parameter counts (default 300,600,1200)"
    )
    exp.add_argument(
        "--steps-reconstruction", type=int, default=400, help="reconstruction: Adam steps per fit"
    )
    exp.add_argument(
        "--seeds", type=int, default=3, help="number of seeds for permutation / random choice"
    )
    exp.add_argument(
        "--steps", type=int, default=150, help="tuning/calibration steps per compression"
    )
    exp.add_argument("--epochs", type=float, default=2.0, help="pipeline-a: epochs per row")
    exp.add_argument(
        "--model-width", type=int, help="pipeline-a: the zoo constructor's width (default 8)"
    )
    exp.add_argument("--out", help="output folder (default out/NAME-MODEL)")
    exp.set_defaults(func=_experiment)

    prune = sub.add_parser("prune", help="convert a model and export it at a smaller width")
    prune.add_argument(
        "arch", help="torchvision name (e.g. resnet18), timm:NAME or module:callable"
    )
    prune.add_argument("--weights", help="state_dict file (.pt) of the architecture")
    prune.add_argument(
        "--compression", type=float, help="fraction of parameters to remove, in [0, 1)"
    )
    prune.add_argument(
        "--widths", help="explicit widths as JSON, e.g. '{\"layer1.0.conv1:out\": 32}'"
    )
    prune.add_argument(
        "--budget", help="KIND:FRACTION of the original kept: params:0.5, macs:0.4, latency:0.5"
    )
    prune.add_argument(
        "--round-to", type=int, default=1, help="widths a multiple of this (with a budget)"
    )
    prune.add_argument(
        "--input-shape", default="1,3,224,224", help="example input shape (default 1,3,224,224)"
    )
    prune.add_argument(
        "--num-classes", type=int, help="number of classes of a torchvision architecture"
    )
    prune.add_argument("--seed", type=int, default=0, help="seed of the channel permutation")
    prune.add_argument("--model-kwargs", help="keyword arguments of the model, as JSON")
    prune.add_argument(
        "-o", "--output", default="pruned.pt", help="output file (default pruned.pt)"
    )
    prune.set_defaults(func=_prune)

    from inn.cli_inspect import add_inspect_parser
    from inn.cli_sr import add_upscale_parser
    from inn.cli_train import add_train_parser

    add_train_parser(sub)
    add_inspect_parser(sub)
    add_upscale_parser(sub)

    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from inn.errors import InnError

    try:
        with contextlib.ExitStack() as stack:
            if args.quiet:  # progress bars and warnings go to stderr; errors are printed after
                stack.enter_context(contextlib.redirect_stderr(stack.enter_context(
                    open(os.devnull, "w")
                )))  # fmt: skip
            return args.func(args)
    except InnError as err:
        if args.debug:
            raise
        print(f"inn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # anything else: one line, the traceback only on request
        if args.debug:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(
            f"inn {args.command}: error: {type(err).__name__}: {first} (--debug shows where)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
