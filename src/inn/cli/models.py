"""What the commands read: models (torchvision, timm or ``module:callable``), state_dict files,
shapes and JSON keyword arguments, each mistake answered in one line."""

from __future__ import annotations

import importlib
import json
import pickle
import re
from pathlib import Path
from typing import Any

from inn.errors import InnError

__all__ = [
    "UsageError",
    "command_line",
    "load_architecture",
    "load_callable",
    "load_weights",
    "parse_model_kwargs",
    "parse_shape",
    "positive_float",
    "positive_int",
]


class UsageError(InnError):
    """A mistake in a command's arguments (a file or name that does not exist, a value that does
    not fit): the command exits with code 2, as for the mistakes argparse finds itself; errors in
    the work exit with 1."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a count of steps, images, epochs ...)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def command_line(argv: list[str] | None) -> str:
    """The command as typed, for the headers of results files."""
    import shlex
    import sys

    return "inn " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def import_user_module(name: str) -> Any:
    """Import ``name`` as ``python -m`` would: the current folder is searched first (an
    installed console script does not put it on ``sys.path``)."""
    import os
    import sys

    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(name)


def load_callable(spec: str, option: str) -> Any:
    """The object ``package.module:name`` names (for ``--data`` and the like)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{option} {spec!r} is not module:callable (e.g. mypackage.data:splits)")
    try:
        module = import_user_module(module_name)
    except ImportError as err:
        raise UsageError(f"{option} {spec!r}: cannot import {module_name!r} ({err})") from None
    if not hasattr(module, attr):
        raise UsageError(f"{option} {spec!r}: module {module_name!r} has no {attr!r}")
    return getattr(module, attr)


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
        factory = getattr(import_user_module(module_name), attr)
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


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"``, ``"1x3x224x224"``, ``"1 3 224 224"`` or ``"(1, 3, 224, 224)"``."""
    parts = [p for p in re.split(r"[\s,x×*()\[\]]+", text.strip().lower()) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(
            f"--input-shape {text!r} is not a shape: give positive sizes like 1,3,224,224 "
            "(or 1x3x224x224)"
        )
    return tuple(int(p) for p in parts)


def parse_model_kwargs(text: str | None, option: str = "--model-kwargs") -> dict[str, Any]:
    """``--model-kwargs '{"num_classes": 10}'``: a JSON object of keyword arguments."""
    if not text:
        return {}
    try:
        kwargs = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{option} is not JSON ({err}): give e.g. '{{\"width\": 8}}'") from None
    if not isinstance(kwargs, dict):
        raise UsageError(f"{option} must be a JSON object of keyword arguments, got {text!r}")
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
        raise UsageError(f"no weights file {path!r}: give the path of a saved state_dict")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in str(err):
            raise UsageError(
                f"{path} holds a pickled object, not a state_dict: save it with "
                "torch.save(model.state_dict(), path) and pass that file (inn does not unpickle "
                "arbitrary objects)"
            ) from None
        raise UsageError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path} is not a state_dict (a dict of tensors): {type(state).__name__}")
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
        raise UsageError(
            f"the weights in {path} do not fit {spec}: {'; '.join(problems)}. Check the "
            "architecture name and --num-classes"
        )
    model.load_state_dict(state)
    return model, num_classes
