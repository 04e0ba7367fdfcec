"""``inn inspect MODEL``: every channel group, whether it can shrink, and why not."""

from __future__ import annotations

import argparse
from typing import Any

from inn.cli.models import load_weights, parse_model_kwargs, parse_shape

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    inspect = sub.add_parser(
        "inspect", help="list a model's channel groups: which can shrink, and why not"
    )
    inspect.add_argument("model", help="torchvision name, timm:NAME or module:callable")
    inspect.add_argument("--input-shape", default="1,3,224,224", help="example input shape")
    inspect.add_argument("--num-classes", type=int, help="number of classes of the model")
    inspect.add_argument("--weights", help="state_dict file (.pt) of the model")
    inspect.add_argument("--model-kwargs", help="keyword arguments of the model, as JSON")
    inspect.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    import inn

    kwargs = parse_model_kwargs(args.model_kwargs)
    model, _ = load_weights(args.model, args.weights, args.num_classes, "inn inspect", kwargs)
    model.eval()
    shape = parse_shape(args.input_shape)
    imodel = inn.convert(model, torch.randn(shape), permute=False)
    report = imodel.coverage()
    width = max(len(g.name) for g in report.groups)
    print(f"{'group':<{width}}  {'channels':>8}  resizable")
    for g in report.groups:
        print(f"{g.name:<{width}}  {g.full_size:>8}  {'yes' if g.resizable else 'no: ' + g.reason}")
    print(f"\n{args.model}: {report}")
    if imodel.report.probed:
        probed = ", ".join(f"{op} x{n}" for op, n in imodel.report.probed.items())
        print(f"no rule needed, probed and found channel-wise: {probed}")
    return 0
