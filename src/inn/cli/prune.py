"""``inn prune``: convert a model, resize it to a compression, a budget or explicit widths,
and save the plain PyTorch module it exports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inn.cli.calib import add_calib_arguments, load_calibration
from inn.cli.models import (
    UsageError,
    load_weights,
    parse_model_kwargs,
    parse_shape,
    positive_int,
)

__all__ = ["add_parser", "parse_budgets"]


def add_parser(sub: Any) -> None:
    prune = sub.add_parser("prune", help="convert a model and export it at a smaller width")
    prune.add_argument(
        "arch", help="torchvision name (e.g. resnet18), timm:NAME or module:callable"
    )
    prune.add_argument("--weights", help="state_dict file (.pt) of the architecture")
    target = prune.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--compression", type=float, help="fraction of parameters to remove, in [0, 1)"
    )
    target.add_argument(
        "--widths", help="explicit widths as JSON, e.g. '{\"layer1.0.conv1:out\": 32}'"
    )
    target.add_argument(
        "--budget", help="KIND:FRACTION of the original kept: params:0.5, macs:0.4, latency:0.5"
    )
    prune.add_argument(
        "--round-to",
        type=int,
        help="widths a multiple of this (default: what --device runs fast: 8 for 16-bit floats "
        "on CUDA, 4 for float32 on CUDA, 1 on the CPU; 16 suits large layers on an AVX-512 CPU)",
    )
    prune.add_argument(
        "--device",
        default="cpu",
        help="where the pruned model will run: latency is measured there and widths rounded for it",
    )
    prune.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        default="float32",
        help="the precision the pruned model will run in",
    )
    prune.add_argument(
        "--batch-size", type=positive_int, default=1, help="batch size of a latency budget"
    )
    prune.add_argument("--input-shape", default="1,3,224,224", help="example input shape")
    prune.add_argument(
        "--num-classes", type=int, help="number of classes of a torchvision architecture"
    )
    prune.add_argument("--seed", type=int, default=0, help="seed of the channel permutation")
    prune.add_argument("--model-kwargs", help="keyword arguments of the model, as JSON")
    prune.add_argument(
        "--sampling", choices=["auto", "resample", "select"], default="auto",
        help="how a narrowed group gets its channels: resampled, its original channels with the "
        "largest L1 norm selected, or auto (with --calib: per group, whichever loses less; "
        "without: resampled)",
    )  # fmt: skip
    prune.add_argument("-o", "--output", default="pruned.pt", help="output file")
    add_calib_arguments(prune)
    prune.set_defaults(func=run)


def parse_budgets(text: str) -> list[tuple[str, float]]:
    """``"params:0.6,macs:0.5"`` -> ``[("params", 0.6), ("macs", 0.5)]``."""
    out = []
    for item in text.split(","):
        kind, _, value = item.strip().partition(":")
        try:
            out.append((kind, float(value)))
        except ValueError:
            raise UsageError(
                f"a budget reads KIND:FRACTION (e.g. macs:0.5), got {item!r}"
            ) from None
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    import inn
    from inn.budget import count_macs, count_parameters
    from inn.pruning import export_repaired, resize_to_budget

    shape = parse_shape(args.input_shape)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)  # before the long work
    kwargs = parse_model_kwargs(args.model_kwargs)
    model, classes = load_weights(args.arch, args.weights, args.num_classes, "inn prune", kwargs)
    model.eval()
    x = torch.randn(shape)
    calib = load_calibration(args, shape)
    dtype = getattr(torch, args.dtype)
    imodel = inn.convert(model, x, seed=args.seed, fold_batchnorm=calib is None)
    kind = None
    if args.widths is not None:
        imodel.resize(widths={k: int(v) for k, v in json.loads(args.widths).items()})
    else:
        if args.budget is not None:
            ((kind, fraction),) = parse_budgets(args.budget)
            budget = inn.Budget(kind, fraction, device=args.device, batch_size=args.batch_size,
                                dtype=dtype)  # fmt: skip
        else:
            budget = imodel.compression_budget(args.compression, device=args.device, dtype=dtype)
        resize_to_budget(
            imodel, calib, budget=budget, sampling=args.sampling, round_to=args.round_to
        )
    small = export_repaired(
        imodel, model, calib, sampling=args.sampling, calibrate_options={"progress": True}
    )
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
    if kind == "latency":
        print(_measured_latency(small, model, x, args.device, args.batch_size))
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


def _measured_latency(small: Any, model: Any, x: Any, device: str, batch_size: int) -> str:
    """The pruned model's latency over the original's on ``device``, timed in alternation."""
    import copy

    import inn

    inputs = (x[:1].expand(batch_size, *x.shape[1:]).contiguous().to(device),)
    on_device = [copy.deepcopy(m).to(device).eval() for m in (small, model)]
    ratio = inn.budget.latency_ratio(*on_device, inputs)
    return (
        f"latency on {device} at batch {batch_size}: {ratio:.2f} of the original's (median of "
        "15 interleaved rounds)"
    )
