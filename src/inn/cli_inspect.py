"""``inn inspect MODEL``: every channel group, whether it can shrink and why not."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

__all__ = ["add_inspect_parser", "load_architecture"]


def load_architecture(spec: str, num_classes: int | None = None, command: str = "inn") -> Any:
    """A model from a torchvision name, ``timm:NAME`` or ``package.module:callable`` (random
    initialisation: nothing is downloaded)."""
    from torch import nn

    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if spec.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise SystemExit(f"{command}: {spec!r} needs timm: pip install timm") from None
        name = spec[5:]
        if name not in timm.list_models():
            close = timm.list_models(f"*{name}*")[:5]
            raise SystemExit(f"{command}: timm has no model {name!r}; close: {close}")
        return timm.create_model(name, pretrained=False, **kwargs)
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory if isinstance(factory, nn.Module) else factory(**kwargs)
    import torchvision

    if spec not in torchvision.models.list_models():
        import difflib

        close = difflib.get_close_matches(spec, torchvision.models.list_models(), n=3)
        raise SystemExit(
            f"{command}: unknown architecture {spec!r} (close: {close}): use a torchvision "
            "model name, timm:NAME or module:callable"
        )
    return torchvision.models.get_model(spec, weights=None, **kwargs)


def _inspect(args: argparse.Namespace) -> int:
    import torch

    import inn

    model = load_architecture(args.model, args.num_classes, "inn inspect").eval()
    shape = tuple(int(s) for s in args.input_shape.split(","))
    imodel = inn.convert(model, torch.randn(shape), permute=False)
    report = imodel.coverage()
    width = max(len(g.name) for g in report.groups)
    print(f"{'group':<{width}}  {'channels':>8}  resizable")
    for g in report.groups:
        print(f"{g.name:<{width}}  {g.full_size:>8}  {'yes' if g.resizable else 'no: ' + g.reason}")
    print(f"\n{args.model}: {report}")
    return 0


def add_inspect_parser(sub: Any) -> None:
    inspect = sub.add_parser(
        "inspect", help="list a model's channel groups: which can shrink, and why not"
    )
    inspect.add_argument("model", help="torchvision name, timm:NAME or module:callable")
    inspect.add_argument(
        "--input-shape", default="1,3,224,224", help="example input shape (default 1,3,224,224)"
    )
    inspect.add_argument("--num-classes", type=int, help="number of classes of the model")
    inspect.set_defaults(func=_inspect)
