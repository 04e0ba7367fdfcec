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
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn
from torch.func import functional_call

from inn.graph.context import RuleContext
from inn.graph.layout import Attribute, Layout
from inn.graph.probe import Operand, probe
from inn.graph.wrapped import Wrapped
from inn.module_sizes import set_size_attributes, size_attributes

__all__ = ["probed"]


def probed(ctx: RuleContext, node: fx.Node, module: nn.Module | None, what: str) -> Any:
    """Probe ``node`` (``what`` names it in reasons) and apply what was found."""
    inputs = _flat_nodes((node.args, node.kwargs))
    layouts = [(a, v) for a in inputs if isinstance(v := ctx.values.get(a), Layout)]
    wide = [(a, x) for a, x in layouts if x.channels > 1]
    if not wide:
        return ctx.unknown(node, what)
    first = wide[0][1]
    channels = first.channels
    others = [x for _, x in wide if x.channels != channels]  # a sampling grid's (x, y): constants
    wide = [(a, x) for a, x in wide if x.channels == channels]
    if any(x.blocked for _, x in wide):
        return ctx.unknown(node, f"{what}, which reads channels in blocks of features")
    examples = _examples(ctx, node, inputs)
    if examples is None:
        return ctx.unknown(node, f"{what}, which cannot be probed (an input of unknown value)")
    attributes = {
        a.name: (a, v) for a in inputs
        if isinstance(v := ctx.values.get(a), Attribute) and channels in v.shape
    }  # fmt: skip
    try:
        run, tensors = _runner(node, module, examples, [a for a, _ in wide], list(attributes))
        operands = [Operand(examples[a], x.dim) for a, x in wide]
        found = probe(run, operands, tensors, channels)
    except Exception as err:  # probing must never stop a conversion: pin instead
        return ctx.unknown(node, f"{what}, which cannot be probed ({type(err).__name__})")
    if not found.channelwise:
        return ctx.unknown(node, f"{what}, which {found.reason}")
    for _, x in wide[1:]:
        ctx.axes.tie(first.segments, x.segments, f"inputs of {node.name} split differently")
    for x in others + [x for _, x in layouts if x.channels == 1]:
        ctx.pin_value(x, f"read by {what} beside its channels")
    for key, (_, attribute) in attributes.items():
        dim = attribute.source_dim(found.tensors[key]) if key in found.tensors else None
        if dim is None:
            ctx.pin_value(first, f"{what} uses tensor attribute {attribute.target!r}")
        else:
            ctx.record(attribute.target, "attribute", {"out": first.segments}, tensor_dims=dim)
    own = {n: d for n, d in found.tensors.items() if n not in attributes}
    if module is not None and (own or size_attributes(module)):
        spec = Wrapped({name: {dim: "out"} for name, dim in own.items()})
        ctx.record(str(node.target), "wrapped", {"in": first.segments, "out": first.segments},
                   wrapped=spec)
    op = type(module).__name__ if module is not None else what
    ctx.probed[op] = ctx.probed.get(op, 0) + 1
    meta = node.meta.get("tensor_meta")
    shapes = [meta] if hasattr(meta, "shape") else list(meta or [])
    out = [Layout(d, len(m.shape), first.segments) for d, m in zip(found.out_dims, shapes,
                                                                    strict=True)]
    return out[0] if hasattr(meta, "shape") else out


def _examples(ctx: RuleContext, node: fx.Node, inputs: Sequence[fx.Node]) -> dict | None:
    """A value for every input node: random tensors of the traced shapes (float64 for floating
    ones), the recorded value of numbers and shapes; None where one is unknown."""
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
            else:  # indices or counts: 0 and 1 are valid wherever an index is
                out[a] = torch.randint(0, 2, shape, generator=gen, dtype=meta.dtype)
        elif "value" in a.meta:
            out[a] = a.meta["value"]
        else:
            return None
    return out


def _runner(
    node: fx.Node,
    module: nn.Module | None,
    examples: Mapping[fx.Node, Any],
    probed: list[fx.Node],
    attributes: list[str],
) -> tuple[Any, dict[str, Tensor]]:
    """``run(operand values, tensors, width)`` calling the node's operation, and the tensors
    probed beside the operands: a module's floating tensors (float64) or the tensor attributes
    passed to a function (by node name)."""
    tensors: dict[str, Tensor] = {}
    by_name = {a.name: a for a in examples}
    if module is not None:
        module = copy.deepcopy(module).double().eval()
        tensors = {
            n: t for n, t in [*module.named_parameters(), *module.named_buffers()]
            if t.is_floating_point()
        }
        originals = size_attributes(module)
    else:
        tensors = {name: examples[by_name[name]] for name in attributes}

    def run(values: Sequence[Tensor], new_tensors: Mapping[str, Tensor], width: int) -> Any:
        given = dict(examples)
        given.update(zip(probed, values, strict=True))
        if module is None:
            given.update({by_name[n]: t for n, t in new_tensors.items()})
        args = fx.node.map_arg(node.args, lambda n: _fresh(given[n]))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: _fresh(given[n]))
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)  # a random op draws the same numbers at every call
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
