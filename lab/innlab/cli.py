"""The commands of the experiments, added to ``inn`` through the ``inn.commands`` entry point:
``inn demo``, ``inn experiment NAME`` and ``inn upscale``."""

from __future__ import annotations

import argparse
import functools
import importlib
import time
from pathlib import Path
from typing import Any

from inn.cli import command_line, parse_budgets, positive_float, positive_int

__all__ = ["IMAGE_PACKAGES", "register", "require_experiment_packages"]

LAB_INSTALL = "pip install -e lab (from the inn repository)"
"""How the experiments and their packages are installed."""
_EXPERIMENT_PACKAGES = {"matplotlib": "matplotlib", "mlxtend": "mlxtend"}
IMAGE_PACKAGES = {
    "matplotlib": "matplotlib", "PIL": "pillow", "skimage": "scikit-image", "pywt": "PyWavelets",
    "sklearn": "scikit-learn",
}  # fmt: skip
"""What the super-resolution and reconstruction experiments need (their images and SSIM)."""


def require_experiment_packages(command: str, packages: dict[str, str] | None = None) -> None:
    """Stop before any work if the experiments' packages (or ``packages``: import name ->
    package) are missing."""
    missing = []
    for module, package in (packages or _EXPERIMENT_PACKAGES).items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SystemExit(
            f"inn {command}: needs {', '.join(missing)}, which the experiments install: "
            f"{LAB_INSTALL}"
        )


def _output(
    parser: argparse.ArgumentParser, default: str | None, what: str = "output folder"
) -> None:
    """``-o/--output`` (``--out``, the earlier spelling, still read)."""
    parser.add_argument("-o", "--output", dest="out", default=default, metavar="DIR", help=what)
    parser.add_argument("--out", dest="out", help=argparse.SUPPRESS)


# experiment -> (help, options it takes); every option is defined once in _OPTIONS
_EXPERIMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "budget": (
        "inn.prune vs Torch-Pruning at parameter and MAC budgets, on a zoo network",
        ("model", "budgets", "methods", "seeds", "steps", "update"),
    ),
    "pipeline-a": (
        "the paper's Table 1: networks trained with random widths vs discrete and slimmable",
        ("model", "methods", "seeds", "epochs", "model-width", "min-width", "dataset", "data-dir",
         "update"),
    ),
    "pipeline-b": (
        "the INN rows of pruning without fine-tuning (partition tuning)",
        ("model", "methods", "seeds", "steps", "compressions", "dataset", "data-dir", "weights"),
    ),
    "pipeline-c": (
        "the discrete baselines of pruning without fine-tuning",
        ("model", "methods", "seeds", "steps", "compressions", "dataset", "data-dir", "weights"),
    ),
    "pruning": (
        "pipelines B and C and the peers side by side",
        ("model", "methods", "seeds", "steps", "compressions", "dataset", "data-dir", "weights"),
    ),
    "sr": (
        "SRCNN and EDSR pruned without fine-tuning (PSNR, Figure 7)",
        ("model", "methods", "steps", "compressions"),
    ),
    "reconstruction": (
        "images fitted on fixed vs trainable partitions",
        ("budgets-reconstruction", "steps-reconstruction"),
    ),
    "faces": (
        "MTCNN's pretrained RNet and ONet (facenet-pytorch) vs Torch-Pruning",
        ("model", "methods", "seeds", "steps", "compressions"),
    ),
}
_OPTIONS: dict[str, dict[str, Any]] = {
    "model": {"help": "zoo model (cifar_resnet18, nin, mobilenet_v2, mobilenet_v3, efficientnet, "
              "vit; sr: srcnn or edsr; faces: rnet or onet, default both) or, with cifar10, an "
              "architecture; pipeline-a also takes timm:NAME (trained by its rows)"},
    "budgets": {"default": "params:0.8,params:0.6,params:0.4,params:0.3,macs:0.7,macs:0.5,macs:0.3",
                "help": "KIND:FRACTION kept, comma-separated"},
    "methods": {"help": "comma-separated subset of the experiment's methods (default: all)"},
    "update": {"action": "store_true",
               "help": "rerun only --methods and keep the other methods' rows of the results "
               "already in --output (the command is recorded after the earlier one)"},
    "seeds": {"type": positive_int, "default": 3, "help": "seeds of permutation / random choice"},
    "steps": {"type": positive_int, "default": 150, "help": "tuning/calibration steps"},
    "epochs": {"type": positive_float, "default": 2.0, "help": "epochs per row"},
    "model-width": {"type": positive_int, "help": "the zoo constructor's width (default: 8)"},
    "min-width": {"type": positive_float, "default": 0.25,
                  "help": "random widths are drawn in [MIN_WIDTH, 1] of every group (US-Nets' "
                  "MobileNetV2: 0.35)"},
    "dataset": {"choices": ["mnist", "cifar10"], "default": "mnist", "help": "the data"},
    "data-dir": {"help": "folder with CIFAR-10 (torchvision layout), for --dataset cifar10"},
    "weights": {"help": "state_dict of the model, for --dataset cifar10"},
    "compressions": {"help": "fractions of parameters removed (default: 0,0.1,...,0.7; sr: "
                     "0,0.2,0.4,0.6)"},
    "budgets-reconstruction": {"help": "parameter counts (default: 300,600,1200)"},
    "steps-reconstruction": {"type": positive_int, "default": 400, "help": "Adam steps per fit"},
}  # fmt: skip


def register(sub: Any) -> None:
    """Add ``demo``, ``experiment NAME`` and ``upscale`` to the ``inn`` command's sub-parsers."""
    from innlab.cli_sr import add_upscale_parser

    demo = sub.add_parser(
        "demo",
        help="prune a trained ResNet-18 on real digits: inn vs Torch-Pruning, tables and a plot",
    )
    _output(demo, "out/demo")
    demo.add_argument(
        "--steps", type=positive_int, default=150, help="tuning/calibration steps per compression"
    )
    demo.set_defaults(func=_demo)

    exp = sub.add_parser(
        "experiment", help="the paper's experiments at CPU scale (inn experiment NAME --help)"
    )
    names = exp.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, (text, options) in _EXPERIMENTS.items():
        parser = names.add_parser(name, help=text, description=text)
        for option in options:
            parser.add_argument(f"--{option}", **_OPTIONS[option])
        _output(parser, None, "output folder (default: out/NAME-MODEL)")
        parser.set_defaults(func=_experiment)
    add_upscale_parser(sub)


DEMO_MODEL = "cifar_resnet18"
DEMO_COMPRESSIONS = (0.2, 0.4, 0.6)
DEMO_METHODS = ("inn", "inn-data-free", "inn-uniform+tune", "tp-lamp+bn", "tp-lamp+bn+calib")


def _report(results, out: Path, title: str, command: str) -> None:
    from innlab.experiments import pruning

    pruning.save(results, out, title, command)
    print(f"\n{title}\n\n{pruning.markdown(results)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")


def _demo(args: argparse.Namespace) -> int:
    import importlib.util

    require_experiment_packages("demo")
    from innlab.experiments import budget, workloads

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
            "torch-pruning is not installed: its rows are left out (pip install torch-pruning==1.6.1)"
        )
    from innlab import zoo

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
    budget.save(rows, out, title, command_line(args.argv))
    print(f"\n{title}\n\n{budget.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _budget_experiment(args: argparse.Namespace) -> int:
    from innlab.experiments import budget, workloads
    from innlab.experiments.rerun import merge_rerun

    model_name = args.model or DEMO_MODEL
    work = workloads.mnist_workload(model_name)
    rows = budget.run(
        work.model,
        work.test,
        work.calib,
        budgets=parse_budgets(args.budgets),
        methods=tuple(args.methods.split(",")) if args.methods else budget.METHODS,
        seeds=tuple(range(args.seeds)),
        steps=args.steps,
    )
    out = Path(args.out or f"out/budget-{model_name}")
    title = f"Pruning to a budget without fine-tuning, inn vs Torch-Pruning: {work.name}"
    command = command_line(args.argv)
    if args.update:
        path = out / "results.json"
        earlier = budget.load(path) if path.is_file() else None
        rows, command = merge_rerun(
            path, earlier and (earlier[0], earlier[2]), rows, command,
            ("unpruned", *budget.METHODS),
        )  # fmt: skip
    budget.save(rows, out, title, command)
    print(f"\n{title}\n\n{budget.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    if args.name in ("sr", "reconstruction"):
        from innlab import cli_sr

        require_experiment_packages(f"experiment {args.name}", IMAGE_PACKAGES)
        run = cli_sr.sr_experiment if args.name == "sr" else cli_sr.reconstruction_experiment
        return run(args, command_line(args.argv))
    if args.name == "faces":
        packages = {**IMAGE_PACKAGES, "torch_pruning": "torch-pruning"}
        require_experiment_packages("experiment faces", packages)
        from innlab.experiments import faces

        return faces.main(args, command_line(args.argv))
    require_experiment_packages("experiment")
    from innlab.experiments import pruning, workloads

    if args.name == "budget":
        return _budget_experiment(args)
    if args.name == "pipeline-a":
        return _pipeline_a(args, command_line(args.argv))

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
    _report(results, out, title, command_line(args.argv))
    return 0


def _pipeline_a(args: argparse.Namespace, command: str) -> int:
    """``inn experiment pipeline-a``: Table 1 at CPU scale (see innlab.experiments.pipeline_a)."""
    from innlab import zoo
    from innlab.experiments import pipeline_a, workloads
    from innlab.experiments.rerun import merge_rerun

    name = args.model or "cifar_resnet18"
    work = workloads.training_data(args.dataset, Path(args.data_dir) if args.data_dir else None)
    kwargs: dict[str, Any] = {"in_channels": work.in_channels}
    if name in ("cifar_resnet18", "nin"):
        kwargs["width"] = args.model_width or (8 if name == "cifar_resnet18" else 48)
    if name.startswith("timm:"):  # an architecture no zoo script trained (the rows train it)
        import timm

        kwargs = {"in_chans": work.in_channels, "num_classes": 10}
        make = functools.partial(timm.create_model, name[5:], pretrained=False, **kwargs)
    else:
        make = functools.partial(zoo.ZOO[name], **kwargs)
    # transformers train with AdamW (as lab/scripts/train_zoo.py trains the zoo's ViT)
    optimiser = {"optimiser": "adamw", "lr": 2e-3, "weight_decay": 0.05} if name == "vit" else {}
    start = time.perf_counter()
    rows = pipeline_a.run(
        make, work.train, work.test, work.calib, **optimiser,
        epochs=args.epochs, seeds=tuple(range(args.seeds)), low=args.min_width,
        methods=tuple(args.methods.split(",")) if args.methods else pipeline_a.METHODS,
    )  # fmt: skip
    out = Path(args.out or f"out/pipeline-a-{name.replace(':', '-')}")
    title = (f"Pipeline A: {name}({', '.join(f'{k}={v}' for k, v in kwargs.items())}) trained "
             f"{args.epochs:g} epochs on {work.name}")  # fmt: skip
    setup = {"model": name, "kwargs": kwargs, "epochs": args.epochs, "min_width": args.min_width,
             **optimiser,
             "seconds": time.perf_counter() - start}  # fmt: skip
    if args.update:
        path = out / "results.json"
        earlier = pipeline_a.load(path) if path.is_file() else None
        rows, command = merge_rerun(
            path, earlier and (earlier[0], earlier[1]["command"]), rows, command,
            pipeline_a.METHODS,
        )  # fmt: skip
    pipeline_a.save(rows, out, title, command, setup)
    print(f"\n{title}\n\n{pipeline_a.markdown(rows)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'accuracy.png'}")
    return 0
