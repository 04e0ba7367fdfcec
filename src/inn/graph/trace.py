"""Tracing a model with ``torch.fx`` and recording the shape of every intermediate tensor."""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.fx.passes.shape_prop import ShapeProp

from inn.errors import ConversionError, first_line, warn

__all__ = [
    "as_tuple",
    "is_leaf_module",
    "register_imported_libraries",
    "register_leaf_module",
    "register_library_rules",
    "register_traced_forward",
    "trace",
]

_LEAF_TYPES: set[type[nn.Module]] = set()
# torch.nn modules traced through (not kept whole), with the forward the tracer follows
_TRACED_FORWARDS: dict[type[nn.Module], Callable[..., Any]] = {}
# library -> registration of its layers, run at the first trace after it is imported
_LIBRARY_RULES: dict[str, Callable[[], None]] = {}


def register_traced_forward(cls: type[nn.Module], forward: Callable[..., Any]) -> None:
    """Trace through ``cls`` (a ``torch.nn`` module fx would keep whole) by following
    ``forward(module, *args, **kwargs)``, a traceable path computing the same as its own."""
    _TRACED_FORWARDS[cls] = forward


def register_library_rules(library: str, register: Callable[[], None]) -> None:
    """Call ``register()`` (adding ``library``'s leaf modules and channel rules) once, at the
    first trace after ``library`` has been imported: a model using its layers has imported it
    by then, and importing ``inn`` imports neither timm nor torchvision."""
    _LIBRARY_RULES[library] = register


def register_imported_libraries() -> None:
    """Run the pending registrations of the libraries imported by now (before a trace or an
    analysis)."""
    for library, register in list(_LIBRARY_RULES.items()):
        if library in sys.modules:
            register()
            del _LIBRARY_RULES[library]


def register_leaf_module(cls: type[nn.Module]) -> type[nn.Module]:
    """Let the tracer treat ``cls`` as one opaque call (usable as a class decorator).

    Use it for custom layers whose ``forward`` cannot be traced (data-dependent control flow).
    Without a channel rule such a layer is probed (:mod:`inn.graph.probe`): channel-wise, it
    resizes with its per-channel tensors; otherwise the channels around it stay at full width.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_leaf_module needs an nn.Module subclass, got {cls!r}")
    _LEAF_TYPES.add(cls)
    return cls


def is_leaf_module(module: nn.Module) -> bool:
    return isinstance(module, tuple(_LEAF_TYPES))


class _Tracer(fx.Tracer):
    def __init__(self, kept_whole: tuple[type[nn.Module], ...] = ()) -> None:
        super().__init__()
        self.kept_whole = kept_whole  # untraceable modules of this model, kept as one call

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if type(m) in _TRACED_FORWARDS:
            return False
        return (
            is_leaf_module(m)
            or isinstance(m, self.kept_whole)
            or super().is_leaf_module(m, module_qualified_name)
            or _inherits_torch_forward(type(m))
        )

    def call_module(
        self, m: nn.Module, forward: Callable[..., Any], args: tuple, kwargs: dict
    ) -> Any:
        if type(m) in _TRACED_FORWARDS:
            forward = functools.partial(_TRACED_FORWARDS[type(m)], m)
        return super().call_module(m, forward, args, kwargs)


_CONTAINERS = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _inherits_torch_forward(cls: type[nn.Module]) -> bool:
    """A subclass of a ``torch.nn`` layer that keeps its ``forward`` (torchvision's
    ``Conv3DSimple(nn.Conv3d)``) is that layer: kept whole like it, so that its rule applies."""
    for base in cls.__mro__[1:]:
        if base in _CONTAINERS or not base.__module__.startswith("torch.nn"):
            continue
        return cls.forward is base.forward
    return False


def as_tuple(example_inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    if isinstance(example_inputs, Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, Sequence) and all(isinstance(t, Tensor) for t in example_inputs):
        return tuple(example_inputs)
    raise ConversionError(
        f"example_inputs must be a tensor or a tuple of tensors, got {type(example_inputs).__name__}"
    )


def trace(model: nn.Module, example_inputs: Tensor | Sequence[Tensor]) -> fx.GraphModule:
    """Symbolically trace ``model`` and annotate every node with its tensor shape.

    A submodule whose ``forward`` cannot be traced (data-dependent control flow) is kept whole,
    as one call, and named in ``gm.meta["kept_whole"]`` (class -> why), so that the analysis
    keeps the channels around it at full width; a warning names it and the way to resize them.

    Raises:
        ConversionError: the model's own ``forward`` cannot be traced (naming the reason and the
            way out), or the example inputs do not run through it.
    """
    register_imported_libraries()  # timm's and torchvision's layers the tracer keeps whole
    inputs = as_tuple(example_inputs)
    kept_whole: dict[type[nn.Module], str] = {}
    while True:
        try:
            graph = _Tracer(tuple(kept_whole)).trace(model)
            break
        except Exception as err:  # fx raises many types; all mean "cannot trace"
            culprit = _failing_module(err, model)
            if culprit is type(model) or culprit in kept_whole:
                raise _untraceable(model, culprit, err) from err
            kept_whole[culprit] = f"{type(err).__name__}: {first_line(err)}"
    if kept_whole:
        names = "; ".join(f"{c.__name__} ({why})" for c, why in kept_whole.items())
        warn(
            f"inn: torch.fx cannot trace the forward of {names}: kept whole as one call, with the "
            "channels flowing in and out at full width. To let them shrink: "
            "inn.register_leaf_module(CLASS) (then probed: resized if channel-wise) or "
            "inn.register_channel_rule."
        )
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    gm.meta["kept_whole"] = dict(kept_whole)
    prop = _QuietShapeProp(gm)
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            prop.propagate(*inputs)
    except Exception as err:
        cause = err.__cause__ or err
        node = prop.current
        where = f"{node.op} {node.target!r}" if node is not None else "the graph"
        if node is not None and node.op == "call_module":
            where += f" ({type(gm.get_submodule(str(node.target))).__name__})"
        shapes = [tuple(t.shape) for t in inputs]
        raise ConversionError(
            f"the example inputs of shapes {shapes} do not run through {type(model).__name__}: "
            f"{where} failed with {type(cause).__name__}: {first_line(cause)}. Pass inputs of the "
            "shape the model expects."
        ) from err
    return gm


def _untraceable(model: nn.Module, culprit: type[nn.Module], err: Exception) -> ConversionError:
    cause = f"torch.fx cannot trace {type(model).__name__}: {type(err).__name__}: {err}"
    if culprit is type(model):
        return ConversionError(
            f"{cause} (in the model's own forward). Data-dependent control flow cannot be traced "
            "by torch.fx: move it into a submodule (inn keeps such a module whole, with its "
            "channels at full width) or make the forward traceable."
        )
    return ConversionError(
        f"{cause} (in the forward of {culprit.__module__}.{culprit.__qualname__}, kept whole). "
        f"Register it with inn.register_leaf_module({culprit.__name__}) (it is then probed: "
        "resizable if channel-wise, else its channels stay at full width) or teach its channels "
        "with inn.register_channel_rule."
    )


class _QuietShapeProp(ShapeProp):
    """ShapeProp that remembers the node it is running (ShapeProp's own report of a failure is
    a printed traceback, which the caller silences and replaces with one message)."""

    current: fx.Node | None = None

    def run_node(self, n: fx.Node) -> object:
        self.current = n
        result = super().run_node(n)
        if _is_constant(result):  # a shape or a number: what probing an op needs besides tensors
            n.meta["value"] = result
        return result


def _is_constant(value: object) -> bool:
    if isinstance(value, (list, tuple)):  # torch.Size is a tuple
        return all(_is_constant(v) for v in value)
    return value is None or isinstance(value, (int, float, bool, str, torch.dtype, torch.device))


def _failing_module(err: BaseException, model: nn.Module) -> type[nn.Module]:
    """The class of the innermost module whose ``forward`` was running when tracing failed."""
    culprit: type[nn.Module] = type(model)
    frame = err.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        if isinstance(owner, nn.Module) and frame.tb_frame.f_code.co_name == "forward":
            culprit = type(owner)
        frame = frame.tb_next
    return culprit
