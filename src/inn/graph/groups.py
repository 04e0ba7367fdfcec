"""Dependency groups: the channel axes of a traced model that must share one partition.

Every tensor with a channel axis gets a layout (:mod:`inn.graph.layout`): which dimension holds
its channels and which axes (runs of channels of one partition) they are made of. Walking the
graph in order, each node's rule (:mod:`inn.graph.rules`) computes its output's layout and ties
axes where the network does: a residual add, a depthwise convolution, a squeeze-excitation gate,
a module called twice, the groups of a grouped convolution. An axis is *pinned* (kept at full
width and in its order) where the analysis cannot prove that resizing is safe: the model's
inputs and outputs, operations without a rule. Nothing is ever resized on a guess.

Example: in ``y = conv2(relu(bn(conv1(x)))) + x`` the output of ``conv1`` and the input of
``conv2`` form one group; the output of ``conv2`` and ``x`` form another, pinned because ``x`` is
the model input.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from inn.errors import ConversionError
from inn.graph.layout import Attribute, Axes, ChannelCount, Layout, Segment, ShapeOf
from inn.graph.rules import rule_for
from inn.graph.rules_probe import probed
from inn.graph.trace import register_imported_libraries
from inn.graph.wrapped import Wrapped

__all__ = ["Analyser", "ChannelGroup", "GraphAnalysis", "ModuleRoles", "analyse"]

# module kind -> role -> [(tensor name, dim)] running along that role
TENSOR_AXES: dict[str, dict[str, list[tuple[str, int]]]] = {
    "conv": {"out": [("weight", 0), ("bias", 0)], "in": [("weight", 1)]},
    "grouped": {"out": [("weight", 0), ("bias", 0)], "in": [("weight", 1)]},
    "linear": {"out": [("weight", 0), ("bias", 0)], "in": [("weight", 1)]},
    "conv_transpose": {"out": [("weight", 1), ("bias", 0)], "in": [("weight", 0)]},
    "conv_transpose_grouped": {
        "out": [("bias", 0)],
        "out_group": [("weight", 1)],
        "in": [("weight", 0)],
    },
    "depthwise": {"out": [("weight", 0), ("bias", 0)]},
    "norm": {"out": [("weight", 0), ("bias", 0), ("running_mean", 0), ("running_var", 0)]},
}


@dataclass
class ModuleRoles:
    """What of a module (or of a tensor attribute) runs along which channel axes.

    Attributes:
        name: the module's path (for kind ``"attribute"``: the tensor's path).
        kind: ``"conv"``, ``"grouped"``, ``"conv_transpose"``, ``"linear"``, ``"norm"``,
            ``"depthwise"``, ``"wrapped"`` (resampled through its own forward, see
            :class:`~inn.graph.wrapped.Wrapped`), ``"attention"``, ``"window_attention"`` or
            ``"attribute"``.
        roles: role (``"in"``, ``"out"``, an attention's ``"qkv_head_dim"``...) -> the
            segments of that channel axis, in the order of the tensor dim it runs along.
        groups: a grouped convolution's groups: ``roles["in"]`` is one group's input channels
            and ``roles["out"]`` all output channels (``groups`` repeats of one group's).
        wrapped: for the wrapped and attention kinds, how its tensors are laid out.
        tensor_dims: for kind ``"attribute"``, the tensor's channel dim.
    """

    name: str
    kind: str
    roles: dict[str, tuple[Segment, ...]] = field(default_factory=dict)
    groups: int = 1
    wrapped: Wrapped | None = None
    tensor_dims: int = 0

    @property
    def owner(self) -> str:
        """The path of the module that holds the tensors."""
        return self.name.rpartition(".")[0] if self.kind == "attribute" else self.name

    def tensor_axes(self) -> dict[str, list[tuple[str, int]]]:
        """role -> [(tensor name on :attr:`owner`, dim)] running along that role."""
        if self.kind == "attribute":
            return {"out": [(self.name.rpartition(".")[2], self.tensor_dims)]}
        if self.wrapped is not None:
            axes: dict[str, list[tuple[str, int]]] = {}
            for tensor, dims in self.wrapped.tensors.items():
                for dim, role in dims.items():
                    axes.setdefault(role, []).append((tensor, dim))
            return axes
        if self.kind == "conv_transpose" and "out_group" in self.roles:
            return TENSOR_AXES["conv_transpose_grouped"]
        if self.kind not in TENSOR_AXES:
            raise ConversionError(
                f"module {self.name!r}: its channel rule records kind {self.kind!r} but not which "
                "of its tensors run along the channels: pass wrapped=Wrapped({tensor: {dim: "
                "role}}) to ctx.record (see inn.graph.RuleContext)"
            )
        return TENSOR_AXES[self.kind]


@dataclass(frozen=True)
class ChannelGroup:
    """A set of channel axes sharing one partition.

    Attributes:
        name: readable, stable name: the first module (in graph order) producing it + ``":out"``
            (+ ``[start:end]`` for a piece of a split output).
        full_size: number of channels in the original network (per group of a grouped
            convolution: ``full_size`` channels in each of its groups).
        resizable: False where the axis is pinned (see ``reason``).
        reason: why it is pinned ("" when resizable).
    """

    name: str
    full_size: int
    resizable: bool
    reason: str = ""


@dataclass
class GraphAnalysis:
    groups: dict[int, ChannelGroup]  # root axis -> group
    modules: dict[str, ModuleRoles]  # module name -> its roles
    root: Callable[[int], int]
    # split node name -> (channel dim, the segments of each piece): sizes follow the widths
    splits: dict[str, tuple[int, list[tuple[Segment, ...]]]] = field(default_factory=dict)
    # index node name -> (position of the channel range in the index, the segments before the
    # range and in it): its bounds follow the widths
    slices: dict[str, tuple[int, list[tuple[Segment, ...]]]] = field(default_factory=dict)
    # operations without a rule found channel-wise by probing: class or function -> calls
    probed: dict[str, int] = field(default_factory=dict)

    def group_of(self, segment: Segment) -> ChannelGroup:
        return self.groups[self.root(segment.axis)]


class Analyser:
    """Walks a traced graph, applying each node's rule; the context rules work through (what
    they may use of it: :class:`~inn.graph.context.RuleContext`)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.axes = Axes()
        self.values: dict[fx.Node, Any] = {}
        self.modules: dict[str, ModuleRoles] = {}
        self.module_out: dict[str, tuple[Segment, ...]] = {}
        self.attribute_pins: dict[str, str] = {}
        self.splits: dict[str, tuple[int, list[tuple[Segment, ...]]]] = {}
        self.slices: dict[str, tuple[int, list[tuple[Segment, ...]]]] = {}
        self.probed: dict[str, int] = {}  # op without a rule found channel-wise -> calls

    # -- reading the graph --------------------------------------------------------------------
    def input(self, node: fx.Node, i: int = 0) -> Any:
        """The value (layout) of the node's ``i``-th argument."""
        a = node.args[i] if i < len(node.args) else None
        return self.values.get(a) if isinstance(a, fx.Node) else None

    @staticmethod
    def shape(node: Any) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        shape = getattr(meta, "shape", None)
        return tuple(int(s) for s in shape) if shape is not None else None

    @staticmethod
    def argument(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
        return node.args[i] if i < len(node.args) else node.kwargs.get(name, default)

    # -- building layouts ----------------------------------------------------------------------
    def fresh(self, node: fx.Node, reason: str, dim: int = 1) -> Layout | None:
        """A new axis on dimension ``dim`` of the node's output (pinned with ``reason``)."""
        shape = self.shape(node)
        if shape is None or len(shape) < 2 or not 0 < dim < len(shape):
            return None
        axis = self.axes.new(shape[dim], f"{node.name}:out", pinned=reason)
        return Layout(dim, len(shape), (Segment(axis, shape[dim]),))

    def pin_value(self, value: Any, reason: str) -> None:
        if isinstance(value, Attribute):
            self.attribute_pins.setdefault(value.target, reason)
        for layout in _layouts_in(value):
            for seg in layout.segments:
                self.axes.pin(seg.axis, reason)

    def pin_reads(self, node: fx.Node, allowed: fx.Node | None = None) -> None:
        """Pin the channels whose count (read from a shape) ``node`` uses, but ``allowed``."""
        for a in _flat_nodes((node.args, node.kwargs)):
            read = self.values.get(a)
            if isinstance(read, (ChannelCount, ShapeOf)) and a is not allowed:
                self.pin_value(read.layout, f"its channel count is read by {node.name}")

    def unknown(self, node: fx.Node, what: str) -> Layout | None:
        """Pin every axis flowing in; the output keeps the input's (pinned) layout when the
        shape is unchanged, else gets a new pinned axis."""
        inputs = [self.values.get(a) for a in _flat_nodes((node.args, node.kwargs))]
        for value in inputs:
            self.pin_value(value, f"used by {what} ({node.name})")
        if not _layouts_in(inputs):
            return None  # no channels flow in (a grid made from parameters): none to track
        x = self.input(node)
        first = node.args[0] if node.args else None
        shape = self.shape(node)
        if isinstance(x, Layout) and shape == self.shape(first):
            return x
        # guess where the new channels are (they are pinned, so a wrong guess only costs
        # resizability downstream): where the input had them, else channels-first/-last alike
        dim = 1
        if isinstance(x, Layout) and shape is not None:
            same_rank = len(shape) == x.ndim
            dim = x.dim if same_rank else (len(shape) - 1 if x.dim == x.ndim - 1 else 1)
        return self.fresh(node, f"produced by {what} ({node.name})", dim)

    def record(
        self, name: str, kind: str, roles: Mapping[str, Sequence[Segment]], **extra: Any
    ) -> None:
        """Note a module's roles; a module called twice must see the same axes each time."""
        roles = {r: tuple(s) for r, s in roles.items()}
        if name in self.modules:
            for role, segs in roles.items():
                self.axes.tie(self.modules[name].roles[role], segs, f"module {name!r} reused")
        else:
            self.modules[name] = ModuleRoles(name, kind, roles, **extra)

    def new_output(
        self, name: str, channels: int, copies: int = 1, role: str = "out"
    ) -> tuple[Segment, ...]:
        """A new axis of module ``name`` (``"out"``: its output; the same one at every call),
        ``copies`` times."""
        key = name if role == "out" else f"{name}:{role}"
        if key not in self.module_out:
            axis = self.axes.new(channels, f"{name}:{role}")
            self.module_out[key] = (Segment(axis, channels),) * copies
        return self.module_out[key]

    def producer(self, name: str, kind: str, x: Layout, out_channels: int) -> Layout:
        """A layer that reads channels ``x`` and writes ``out_channels`` new ones."""
        out = self.new_output(name, out_channels)
        self.record(name, kind, {"in": x.segments, "out": out})
        return x.with_segments(out)

    def input_dim(self, node: fx.Node) -> int:
        """Where a model input holds its channels: last for ``(B, N, C)`` tokens read by a
        Linear, a LayerNorm or attention, else dim 1 (``(B, C, ...)``)."""
        shape = self.shape(node)
        for user in node.users:
            if user.op == "call_module" and isinstance(
                self.gm.get_submodule(str(user.target)),
                (nn.Linear, nn.LayerNorm, nn.MultiheadAttention),
            ):
                return len(shape) - 1 if shape else 1
        return 1

    # -- walking --------------------------------------------------------------------------------
    def run(self) -> GraphAnalysis:
        for node in self.gm.graph.nodes:
            self.values[node] = self.visit(node)
        return self.finish()

    def visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self.fresh(node, "model input", self.input_dim(node))
        if node.op == "output":
            self.pin_value([self.values.get(a) for a in _flat_nodes(node.args)], "model output")
            return None
        if node.op == "get_attr":
            value = self.gm
            for part in str(node.target).split("."):
                value = getattr(value, part)
            if not isinstance(value, torch.Tensor):
                return None
            return Attribute(str(node.target), tuple(value.shape), isinstance(value, nn.Parameter))
        if node.target not in _READS_SIZES:
            self.pin_reads(node)  # a getitem picks a size; a reshape checks where it goes
        module = self.gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        if module is not None and type(module) in self.gm.meta.get("kept_whole", {}):
            why = self.gm.meta["kept_whole"][type(module)]
            return self.unknown(
                node, f"{type(module).__name__}, kept whole: its forward cannot be traced ({why})"
            )
        rule, by_user = rule_for(node, module)
        if rule is None:
            return self.checked(node, probed(self, node, module, _describe(node, module)), False)
        return self.checked(node, rule(self, node, module), by_user)

    def checked(self, node: fx.Node, value: Any, by_user: bool) -> Any:
        """The rule's output, if it agrees with the traced shape; a user's rule that does not
        is an error, a built-in one pins (a bug of ours must never resize on a guess)."""
        if not isinstance(value, Layout):
            return value
        shape = self.shape(node)
        if shape is not None and len(shape) == value.ndim and shape[value.dim] == value.channels:
            return value
        if by_user:
            raise ConversionError(
                f"the channel rule registered for {node.target!r} ({node.op} {node.name}) "
                f"says its output has {value.channels} channels on dim {value.dim}, but the traced "
                f"output has shape {shape}: fix the rule (register_channel_rule) or use 'pin'"
            )
        self.pin_value(value, f"rule of {node.name} disagrees with the traced shape")
        return self.fresh(node, f"rule of {node.name} disagrees with the traced shape")

    def finish(self) -> GraphAnalysis:
        axes = self.axes
        for roles in self.modules.values():
            roles.roles = {r: axes.expand(s) for r, s in roles.roles.items()}
            self.pin_unsupported_blocks(roles)
            if roles.kind == "attribute" and roles.name in self.attribute_pins:
                for s in roles.roles["out"]:
                    axes.pin(s.axis, self.attribute_pins[roles.name])
        groups: dict[int, ChannelGroup] = {}
        for axis in range(len(axes.parent)):
            if axis in axes.children:
                continue
            r = axes.root(axis)
            if r not in groups:
                reason = axes.reason(r)
                groups[r] = ChannelGroup(self.group_name(r), axes.size[r], not reason, reason)
        splits, slices = (
            {name: (at, [axes.expand(p) for p in pieces]) for name, (at, pieces) in cuts.items()}
            for cuts in (self.splits, self.slices)
        )
        return GraphAnalysis(groups, self.modules, axes.root, splits, slices, self.probed)

    def pin_unsupported_blocks(self, roles: ModuleRoles) -> None:
        """Channels of several features each (after a flatten, before a pixel shuffle) are read
        by a plain Linear's input and written by a plain convolution's output, one block size
        per layer; anywhere else they are pinned."""
        module = self.gm.get_submodule(roles.owner)
        for role, segments in roles.roles.items():
            blocks = {s.block for s in segments}
            if blocks == {1}:
                continue
            supported = len(blocks) == 1 and (
                (role == "in" and type(module) is nn.Linear)
                or (role == "out" and roles.kind in ("conv", "grouped") and type(module) in _CONVS)
            )
            if not supported:
                for s in segments:
                    self.axes.pin(
                        s.axis,
                        f"{roles.name} ({roles.kind}, {role}) meets channels "
                        "in blocks of features (a flatten or a pixel shuffle)",
                    )

    def group_name(self, root: int) -> str:
        """The name of the first axis of the group, or of the axis it was split from when all
        the pieces of that axis are tied into this group (a grouped convolution's input)."""
        axes = self.axes
        parents = {c: p for p, cs in axes.children.items() for c in cs}
        axis = min(axes.members[root])
        while axis in parents and all(axes.root(c) == root for c in axes.children[parents[axis]]):
            axis = parents[axis]
        return axes.name[axis]


# what reads a size without pinning it by itself: a getitem picks one, a division by a
# constant makes a run of channels (their rules pin otherwise), a reshape checks where it goes
_READS_SIZES = (operator.getitem, operator.floordiv, torch.reshape, "view", "reshape")


def _describe(node: fx.Node, module: nn.Module | None) -> str:
    """How a reason names an operation: ``module 'act' (PReLU)``, ``function 'addcmul'``."""
    if module is not None:
        return f"module {node.target!r} ({type(module).__name__})"
    kind = "method" if node.op == "call_method" else "function"
    return f"{kind} {getattr(node.target, '__name__', str(node.target))!r}"


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _flat_nodes(obj: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(obj, lambda n: out.append(n) or n)
    return out


def _layouts_in(value: Any) -> list[Layout]:
    if isinstance(value, Layout):
        return [value]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _layouts_in(v)]
    return []


def analyse(gm: fx.GraphModule) -> GraphAnalysis:
    """Find the channel groups of a traced model (see the module docstring)."""
    register_imported_libraries()  # a model traced elsewhere may use timm's or torchvision's
    return Analyser(gm).run()
