"""Modules resized through their own ``forward``: the layout of their tensors and the rule
helper that records one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Layout

__all__ = ["Wrapped", "wrapped"]


@dataclass(frozen=True)
class Wrapped:
    """How a module without an integral counterpart of its own is resized: its tensors are
    resampled along their channel dims and passed to its own ``forward``.

    Attributes:
        tensors: ``{tensor name: {dim: role}}`` with roles ``"in"`` / ``"out"``.
        integrated: ``{tensor name: dim}`` summed over by the layer (an input axis).
        one_axis: input and output channels are one axis (elementwise layers and norms).
        groups: the channels form this many equal groups sharing one partition (GroupNorm).
    """

    tensors: Mapping[str, Mapping[int, str]]
    integrated: Mapping[str, int] = field(default_factory=dict)
    one_axis: bool = True
    groups: int = 1


def wrapped(ctx: RuleContext, node: fx.Node, spec: Wrapped, channel_dim: int | None = None) -> Any:
    """A module resampled through its own forward (see :class:`Wrapped`), reading channels on
    ``channel_dim`` of its input (any dim when None)."""
    name, x = str(node.target), ctx.input(node)
    if (
        not isinstance(x, Layout)
        or x.blocked
        or (channel_dim is not None and x.dim != channel_dim % x.ndim)
    ):
        return ctx.unknown(node, f"module {name!r} (channels on another axis)")
    segments = x.segments
    tied = spec.groups == 1 or ctx.axes.tied_pieces(segments, spec.groups, f"groups of {name!r}")
    if not tied:
        return ctx.unknown(node, f"module {name!r} ({spec.groups} groups)")
    if spec.one_axis:
        ctx.record(name, "wrapped", {"in": segments, "out": segments}, wrapped=spec)
        return x
    out = ctx.new_output(name, _out_channels(ctx.gm.get_submodule(name), spec))
    ctx.record(name, "wrapped", {"in": segments, "out": out}, wrapped=spec)
    return x.with_segments(out)


def _out_channels(module: nn.Module, spec: Wrapped) -> int:
    for tensor, dims in spec.tensors.items():
        for dim, role in dims.items():
            if role == "out":
                return module.get_parameter(tensor).shape[dim]
    raise ValueError("a 'dense' rule needs a tensor with an 'out' dim")
