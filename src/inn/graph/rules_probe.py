"""The rule of every operation that has none: probe it (:mod:`inn.graph.probe`).

A module, function or method with no entry in the registry is run on random inputs of its
traced shapes. Channel-wise (an activation, a per-channel scale, a pooling or a norm over other
axes, a user's layer of that kind): its channels pass, the inputs' channels are tied, and a
module's per-channel tensors are resampled with them (through its own ``forward``). Anything
else pins the channels flowing in, with the probe's finding as the reason. So no operation pins
for want of a rule, and none is resized on a guess.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.func import functional_call

from inn.graph.layout import Attribute, Layout
from inn.graph.probe import Operand, probe
from inn.graph.rules import Wrapped
from inn.graph.rules_tensor import bind_attribute
from inn.module_sizes import set_size_attributes, size_attributes

if TYPE_CHECKING:
    from inn.graph.groups import Analyser

__all__ = ["probed"]


def probed(ctx: Analyser, node: fx.Node, module: nn.Module | None, what: str) -> Any:
    """Probe ``node`` (``what`` names it in reasons) and apply what was found."""
    inputs = _flat_nodes((node.args, node.kwargs))
    layouts = [(a, v) for a in inputs if isinstance(v := ctx.values.get(a), Layout)]
    wide = [(a, x) for a, x in layouts if x.channels > 1]
    if not wide:
        return ctx.unknown(node, what)
    first = wide[0][1]
    channels = first.channels
    if any(x.channels != channels or x.blocked for _, x in wide):
        return ctx.unknown(node, f"{what}, whose inputs have different channels")
    examples = _examples(ctx, node, inputs)
    if examples is None:
        return ctx.unknown(node, f"{what}, which cannot be probed (an input of unknown value)")
    operands = [(a, x.dim) for a, x in wide]
    attributes = []
    for a in inputs:
        value = ctx.values.get(a)
        if isinstance(value, Attribute):
            dim = first.dim - (first.ndim - len(value.shape))
            if dim >= 0 and value.shape[dim] == channels:
                operands.append((a, dim))
                attributes.append(value)
    run, tensors = _runner(node, module, examples, [a for a, _ in operands])
    found = probe(run, [Operand(examples[a], d) for a, d in operands], tensors, channels)
    if not found.channelwise:
        return ctx.unknown(node, f"{what}, which {found.reason}")
    for _, x in wide[1:]:
        ctx.axes.tie(first.segments, x.segments, f"inputs of {node.name} split differently")
    for attribute in attributes:
        bind_attribute(ctx, attribute, first)
    for _, x in layouts:
        if x.channels == 1:
            ctx.pin_value(x, "broadcast single channel")
    if module is not None and (found.tensors or size_attributes(module)):
        spec = Wrapped({name: {dim: "out"} for name, dim in found.tensors.items()})
        ctx.record(str(node.target), "wrapped", {"in": first.segments, "out": first.segments},
                   wrapped=spec)
    op = type(module).__name__ if module is not None else what
    ctx.probed[op] = ctx.probed.get(op, 0) + 1
    out_ndim = len(ctx.shape(node) or ())
    return Layout(found.out_dim, out_ndim, first.segments)


def _examples(ctx: Analyser, node: fx.Node, inputs: Sequence[fx.Node]) -> dict | None:
    """A value for every input node: random float64 tensors of the traced shapes (other dtypes
    kept), the recorded value of numbers and shapes; None where one is unknown."""
    gen = torch.Generator().manual_seed(len(ctx.values))
    out: dict[fx.Node, Any] = {}
    for a in inputs:
        meta = a.meta.get("tensor_meta")
        if hasattr(meta, "shape"):
            shape = tuple(meta.shape)
            if meta.dtype.is_floating_point:
                out[a] = torch.randn(shape, generator=gen, dtype=torch.float64)
            elif meta.dtype == torch.bool:
                out[a] = torch.rand(shape, generator=gen) > 0.5
            else:
                return None  # indices or counts: random ones would mean nothing
        elif "value" in a.meta:
            out[a] = a.meta["value"]
        else:
            return None
    return out


def _runner(
    node: fx.Node, module: nn.Module | None, examples: Mapping[fx.Node, Any], probed: list
) -> tuple[Any, dict[str, Tensor]]:
    """``run(operand values, tensors, width)`` calling the node's operation, and the module's
    floating tensors (float64) by name."""
    tensors: dict[str, Tensor] = {}
    if module is not None:
        module = copy.deepcopy(module).double().eval()
        tensors = {
            n: t for n, t in [*module.named_parameters(), *module.named_buffers()]
            if t.is_floating_point()
        }
        originals = size_attributes(module)

    def run(values: Sequence[Tensor], new_tensors: Mapping[str, Tensor], width: int) -> Any:
        given = dict(examples)
        given.update(zip(probed, values, strict=True))
        args = fx.node.map_arg(node.args, lambda n: _fresh(given[n]))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: _fresh(given[n]))
        with torch.no_grad():
            if module is not None:
                set_size_attributes(module, originals, {"out": width, "in": width})
                return functional_call(module, dict(new_tensors), tuple(args), dict(kwargs))
            if node.op == "call_method":
                return getattr(args[0], str(node.target))(*args[1:], **kwargs)
            return node.target(*args, **kwargs)

    return run, tensors


def _fresh(value: Any) -> Any:
    """A copy of a tensor (an in-place operation must not change the next call's input)."""
    return value.clone() if isinstance(value, Tensor) else value


def _flat_nodes(obj: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(obj, lambda n: out.append(n) or n)
    return list(dict.fromkeys(out))
