"""The ``inn`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from inn.experiments import digits_widths

    results = digits_widths.run(Path(args.out))
    print("\nDigits CNN (scikit-learn digits, 397 test images), sampled at fewer channels")
    print("without fine-tuning or channel reordering:\n")
    print("| width | channels (conv1, conv2) | parameters | test accuracy |")
    print("|------:|:-----------------------:|-----------:|--------------:|")
    for r in results:
        print(f"| {r.width_fraction:.0%} | {r.channels} | {r.parameters:,} | {r.accuracy:.1%} |")
    print(f"\nresults written to {Path(args.out) / 'results.json'}")
    return 0


def _load_architecture(spec: str, num_classes: int | None):
    """A torchvision model name or ``package.module:callable``."""
    import torch.nn as nn

    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory() if not isinstance(factory, nn.Module) else factory
    import torchvision

    if spec not in torchvision.models.list_models():
        raise SystemExit(
            f"inn prune: unknown architecture {spec!r}: use a torchvision model name or module:callable"
        )
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    return torchvision.models.get_model(spec, weights=None, **kwargs)


def _prune(args: argparse.Namespace) -> int:
    import torch

    import inn
    from inn.cost import count_macs, count_parameters

    if (args.compression is None) == (args.widths is None):
        raise SystemExit("inn prune: give exactly one of --compression or --widths")
    model = _load_architecture(args.arch, args.num_classes)
    if args.weights:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    model.eval()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    x = torch.randn(shape)
    imodel = inn.convert(model, x, seed=args.seed)
    if args.widths is not None:
        imodel.resize(widths={k: int(v) for k, v in json.loads(args.widths).items()})
    else:
        imodel.resize(compression=args.compression)
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
    print(
        f"pruned model saved to {args.output} (a plain torch.nn.Module: torch.load(..., weights_only=False))"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inn", description="Integral Neural Networks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a small CNN on real digits and sample it at several widths"
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.set_defaults(func=_demo)
    prune = sub.add_parser("prune", help="convert a model and export it at a smaller width")
    prune.add_argument(
        "arch", help="torchvision architecture name (e.g. resnet18) or module:callable"
    )
    prune.add_argument("--weights", help="state_dict file (.pt) of the architecture")
    prune.add_argument(
        "--compression", type=float, help="fraction of parameters to remove, in [0, 1)"
    )
    prune.add_argument(
        "--widths", help="explicit widths as JSON, e.g. '{\"layer1.0.conv1:out\": 32}'"
    )
    prune.add_argument(
        "--input-shape", default="1,3,224,224", help="example input shape (default 1,3,224,224)"
    )
    prune.add_argument(
        "--num-classes", type=int, help="number of classes of a torchvision architecture"
    )
    prune.add_argument("--seed", type=int, default=0, help="seed of the channel permutation")
    prune.add_argument(
        "-o", "--output", default="pruned.pt", help="output file (default pruned.pt)"
    )
    prune.set_defaults(func=_prune)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from inn.errors import InnError

    try:
        return args.func(args)
    except InnError as err:
        print(f"inn {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
