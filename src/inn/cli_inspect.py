"""``inn inspect MODEL`` (every channel group, whether it can shrink and why not), and the
models, weights and shapes the command line reads, each mistake answered in one line."""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import re
from pathlib import Path
from typing import Any

from inn.errors import InnError

__all__ = [
    "add_inspect_parser",
    "load_architecture",
    "load_weights",
    "parse_model_kwargs",
    "parse_shape",
    "require_experiment_packages",
]


def load_architecture(
    spec: str,
    num_classes: int | None = None,
    command: str = "inn",
    model_kwargs: dict[str, Any] | None = None,
) -> Any:
    """A model from a torchvision name, ``timm:NAME`` or ``package.module:callable`` called
    with ``model_kwargs`` (random initialisation: nothing is downloaded)."""
    from torch import nn

    kwargs = dict(model_kwargs or {})
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
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


# what the commands that run experiments import, and the extra that installs it
_EXPERIMENT_PACKAGES = {"matplotlib": "matplotlib", "mlxtend": "mlxtend"}
IMAGE_PACKAGES = {
    "matplotlib": "matplotlib", "PIL": "pillow", "skimage": "scikit-image", "pywt": "PyWavelets",
    "sklearn": "scikit-learn",
}  # fmt: skip
"""What the super-resolution and reconstruction experiments need (their images and SSIM)."""


def require_experiment_packages(command: str, packages: dict[str, str] | None = None) -> None:
    """Stop before any work if ``inn[experiments]``'s packages (or ``packages``: import name ->
    package) are missing."""
    missing = []
    for module, package in (packages or _EXPERIMENT_PACKAGES).items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SystemExit(
            f"inn {command}: needs {', '.join(missing)}, which the experiments extra installs: "
            'pip install "inn[experiments]"'
        )


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"``, ``"1x3x224x224"``, ``"1 3 224 224"`` or ``"(1, 3, 224, 224)"``."""
    parts = [p for p in re.split(r"[\s,x×*()\[\]]+", text.strip().lower()) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise InnError(
            f"--input-shape {text!r} is not a shape: give positive sizes like 1,3,224,224 "
            "(or 1x3x224x224)"
        )
    return tuple(int(p) for p in parts)


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """``--model-kwargs '{"num_classes": 10}'``: a JSON object of keyword arguments."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise InnError(
            f"--model-kwargs is not JSON ({err}): give e.g. '{{\"width\": 8}}'"
        ) from None
    if not isinstance(kwargs, dict):
        raise InnError(f"--model-kwargs must be a JSON object of keyword arguments, got {text!r}")
    return kwargs


def load_weights(
    spec: str,
    path: str | None,
    num_classes: int | None,
    command: str,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[Any, int | None]:
    """The model of ``spec`` with the state_dict in ``path``, and the ``num_classes`` it was
    built with: where only the classifier's size differs and ``num_classes`` was not given, it
    is read from the weights."""
    import torch
    from torch import nn

    model = load_architecture(spec, num_classes, command, model_kwargs)
    if path is None:
        return model, num_classes
    file = Path(path)
    if not file.is_file():
        raise InnError(f"no weights file {path!r}: give the path of a saved state_dict")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
            raise InnError(
                f"{path} holds a pickled object, not a state_dict: save it with "
                "torch.save(model.state_dict(), path) and pass that file (inn does not unpickle "
                "arbitrary objects)"
            ) from None
        raise InnError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InnError(f"{path} is not a state_dict (a dict of tensors): {type(state).__name__}")
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    owners = {k.rpartition(".")[0] for k in wrong}
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if num_classes is None and layers and owners == {layers[-1]}:  # only the classifier differs
        classes = state[wrong[0]].shape[0]
        print(f"{command}: the weights have {classes} classes: using --num-classes {classes}")
        return load_weights(spec, path, classes, command, model_kwargs)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        problems = []
        if wrong:
            k = wrong[0]
            problems.append(
                f"{len(wrong)} tensors of another shape (e.g. {k}: {tuple(state[k].shape)} in the "
                f"file, {tuple(own[k].shape)} in {spec})"
            )
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise InnError(
            f"the weights in {path} do not fit {spec}: {'; '.join(problems)}. Check the "
            "architecture name and --num-classes"
        )
    model.load_state_dict(state)
    return model, num_classes


def _inspect(args: argparse.Namespace) -> int:
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


def add_inspect_parser(sub: Any) -> None:
    inspect = sub.add_parser(
        "inspect", help="list a model's channel groups: which can shrink, and why not"
    )
    inspect.add_argument("model", help="torchvision name, timm:NAME or module:callable")
    inspect.add_argument(
        "--input-shape", default="1,3,224,224", help="example input shape (default 1,3,224,224)"
    )
    inspect.add_argument("--num-classes", type=int, help="number of classes of the model")
    inspect.add_argument("--weights", help="state_dict file (.pt) of the model")
    inspect.add_argument("--model-kwargs", help="keyword arguments of the model, as JSON")
    inspect.set_defaults(func=_inspect)
