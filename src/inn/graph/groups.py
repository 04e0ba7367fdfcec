"""Dependency groups: the channel axes of a traced model that must share one partition.

Every tensor with a channel axis gets a *layout*: which of its dimensions holds the channels and
how those channels are made of *segments* (runs of channels produced by one layer; several after
a concatenation; with ``block`` consecutive features per channel after a flatten). Segment axes
are merged (union-find) where the network ties them: a residual add, a depthwise convolution, a
multiplication by a squeeze-excitation gate, a module called twice. An axis is *pinned* (kept at
full width and in its order) where the analysis cannot prove that resizing is safe: the model's
inputs and outputs, grouped convolutions, operations it does not understand. Nothing is ever
resized on a guess.

Example: in ``y = conv2(relu(bn(conv1(x)))) + x`` the output of ``conv1`` and the input of
``conv2`` form one group; the output of ``conv2`` and ``x`` form another, pinned because ``x`` is
the model input.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from inn.graph.trace import is_leaf_module

__all__ = ["ChannelGroup", "GraphAnalysis", "ModuleRoles", "Segment", "analyse"]


@dataclass(frozen=True)
class Segment:
    """``size`` channels of one axis, each ``block`` consecutive features wide."""

    axis: int
    size: int
    block: int = 1


@dataclass(frozen=True)
class _Layout:
    dim: int  # the tensor dimension that holds the channels (non-negative)
    ndim: int
    segments: tuple[Segment, ...]

    @property
    def channels(self) -> int:
        return sum(s.size * s.block for s in self.segments)


@dataclass
class ModuleRoles:
    """The segments of a supported module's ``in`` and ``out`` channel roles."""

    name: str
    kind: str  # "conv", "conv_transpose", "linear", "norm", "depthwise"
    roles: dict[str, tuple[Segment, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelGroup:
    """A set of channel axes sharing one partition.

    Attributes:
        name: readable, stable name: the first module (in graph order) producing it + ``":out"``.
        full_size: number of channels in the original network.
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

    def group_of(self, segment: Segment) -> ChannelGroup:
        return self.groups[self.root(segment.axis)]


_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d,
    nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample,
    nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ReflectionPad2d,
    nn.ReplicationPad2d, nn.ConstantPad2d, nn.PixelShuffle,
)  # fmt: skip
_PASS_FUNCTIONS = {
    F.relu, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, F.mish,
    F.dropout, F.dropout2d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d,
    F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
    F.adaptive_max_pool2d, F.interpolate, F.pad, torch.relu, torch.sigmoid, torch.tanh,
    torch.nn.functional.sigmoid, torch.nn.functional.tanh, operator.neg, torch.neg, torch.abs,
    torch.exp, torch.clamp,
}  # fmt: skip
_PASS_METHODS = {
    "relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "double", "half", "to",
    "type_as", "detach", "clamp", "clamp_", "abs", "neg", "exp", "sigmoid_", "hardswish",
}  # fmt: skip
_BINARY = {
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
    operator.truediv, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div,
    torch.maximum, torch.minimum,
}  # fmt: skip
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
_RESHAPES = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}
_SHAPE_METHODS = {"size", "dim"}
_STOCHASTIC_DEPTH_NAMES = {"stochastic_depth"}


class _Analyser:
    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.parent: list[int] = []
        self.pin_reason: dict[int, str] = {}
        self.axis_name: list[str] = []
        self.axis_size: list[int] = []
        self.values: dict[fx.Node, Any] = {}
        self.modules: dict[str, ModuleRoles] = {}
        self.module_out: dict[str, tuple[Segment, ...]] = {}

    # -- union-find ---------------------------------------------------------------------------
    def new_axis(self, size: int, name: str, pinned: str = "") -> int:
        self.parent.append(len(self.parent))
        self.axis_name.append(name)
        self.axis_size.append(size)
        if pinned:
            self.pin_reason[len(self.parent) - 1] = pinned
        return len(self.parent) - 1

    def root(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        if self.axis_size[ra] != self.axis_size[rb]:
            self.pin(a, "tied to an axis of another size")
            self.pin(b, "tied to an axis of another size")
            return
        keep, drop = (ra, rb) if ra < rb else (rb, ra)
        self.parent[drop] = keep
        reason = self.pin_reason.pop(drop, "") or self.pin_reason.get(keep, "")
        if reason:
            self.pin_reason[keep] = reason

    def pin(self, axis: int, reason: str) -> None:
        self.pin_reason.setdefault(self.root(axis), reason)

    def pin_value(self, value: Any, reason: str) -> None:
        for layout in _layouts_in(value):
            for seg in layout.segments:
                self.pin(seg.axis, reason)

    def union_segments(self, a: tuple[Segment, ...], b: tuple[Segment, ...], reason: str) -> bool:
        if [(s.size, s.block) for s in a] != [(s.size, s.block) for s in b]:
            for s in (*a, *b):
                self.pin(s.axis, reason)
            return False
        for x, y in zip(a, b, strict=True):
            self.union(x.axis, y.axis)
        return True

    # -- layouts --------------------------------------------------------------------------------
    def fresh_layout(self, node: fx.Node, reason: str) -> _Layout | None:
        """A pinned axis for a tensor the analysis cannot follow (dim 1 holds its channels)."""
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        if shape is None or len(shape) < 2:
            return None
        axis = self.new_axis(int(shape[1]), f"{node.name}:out", pinned=reason)
        return _Layout(1, len(shape), (Segment(axis, int(shape[1])),))

    def run(self) -> GraphAnalysis:
        for node in self.gm.graph.nodes:
            self.values[node] = self.visit(node)
        groups: dict[int, ChannelGroup] = {}
        for axis in range(len(self.parent)):
            r = self.root(axis)
            if r not in groups:
                reason = self.pin_reason.get(r, "")
                groups[r] = ChannelGroup(self.axis_name[r], self.axis_size[r], not reason, reason)
        return GraphAnalysis(groups, self.modules, self.root)

    def arg(self, node: fx.Node, i: int = 0) -> Any:
        a = node.args[i] if i < len(node.args) else None
        return self.values.get(a) if isinstance(a, fx.Node) else None

    def visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self.fresh_layout(node, "model input")
        if node.op == "output":
            self.pin_value([self.values.get(a) for a in _flat_nodes(node.args)], "model output")
            return None
        if node.op == "get_attr":
            return self.fresh_layout(node, f"tensor attribute {node.target!r} used in the graph")
        if node.op == "call_module":
            return self.visit_module(node, self.gm.get_submodule(str(node.target)))
        return self.visit_function(node)

    def unknown(self, node: fx.Node, what: str) -> _Layout | None:
        """Pin every axis flowing in; the output keeps the input's layout (pinned) when the
        shape is unchanged (e.g. a LayerNorm), else gets a fresh pinned axis."""
        for a in _flat_nodes((node.args, node.kwargs)):
            self.pin_value(self.values.get(a), f"used by {what} ({node.name})")
        x = self.arg(node)
        meta_in = (
            node.args[0].meta.get("tensor_meta")
            if node.args and isinstance(node.args[0], fx.Node)
            else None
        )
        meta_out = node.meta.get("tensor_meta")
        if (
            isinstance(x, _Layout)
            and meta_in is not None
            and getattr(meta_out, "shape", None) == meta_in.shape
        ):
            return x
        return self.fresh_layout(node, f"produced by {what} ({node.name})")

    # -- modules -------------------------------------------------------------------------------
    def visit_module(self, node: fx.Node, module: nn.Module) -> Any:
        name = str(node.target)
        x = self.arg(node)
        if is_leaf_module(module):
            return self.unknown(node, f"registered leaf module {name!r}")
        if isinstance(module, _PASS_MODULES) and not isinstance(module, nn.PixelShuffle):
            return x
        if isinstance(module, nn.Flatten):
            return self.reshape(node, x)
        if not isinstance(x, _Layout):
            return self.unknown(node, f"module {name!r} ({type(module).__name__})")
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and x.dim == 1:
            self.record(name, "norm", {"in": x.segments, "out": x.segments})
            return x
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and x.dim == 1:
            if module.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
                return self.unknown(node, f"convolution {name!r}")
            if module.groups == 1:
                return self.producer(node, name, "conv", x, module.out_channels)
            if module.groups == module.in_channels == module.out_channels:
                self.record(name, "depthwise", {"in": x.segments, "out": x.segments})
                return x
            return self.unknown(node, f"grouped convolution {name!r} (groups={module.groups})")
        if isinstance(module, nn.ConvTranspose2d) and x.dim == 1 and module.groups == 1:
            return self.producer(node, name, "conv_transpose", x, module.out_channels)
        if isinstance(module, nn.Linear) and x.dim == x.ndim - 1:
            if len({s.block for s in x.segments}) != 1:
                return self.unknown(node, f"Linear {name!r} after a flatten of unequal blocks")
            return self.producer(node, name, "linear", x, module.out_features)
        return self.unknown(node, f"module {name!r} ({type(module).__name__})")

    def record(self, name: str, kind: str, roles: dict[str, tuple[Segment, ...]]) -> None:
        """Note a module's roles; a module called twice must see the same axes each time."""
        if name in self.modules:
            for role, segs in roles.items():
                self.union_segments(self.modules[name].roles[role], segs, f"module {name!r} reused")
        else:
            self.modules[name] = ModuleRoles(name, kind, dict(roles))

    def producer(
        self, node: fx.Node, name: str, kind: str, x: _Layout, out_channels: int
    ) -> _Layout:
        if name not in self.module_out:
            axis = self.new_axis(out_channels, f"{name}:out")
            self.module_out[name] = (Segment(axis, out_channels),)
        out = self.module_out[name]
        self.record(name, kind, {"in": x.segments, "out": out})
        return _Layout(x.dim, x.ndim, out)

    # -- functions and methods -------------------------------------------------------------------
    def visit_function(self, node: fx.Node) -> Any:
        target = node.target
        method = node.op == "call_method"
        fname = getattr(target, "__name__", str(target))
        if (method and target in _PASS_METHODS) or (not method and target in _PASS_FUNCTIONS):
            return self.arg(node)
        if not method and fname in _STOCHASTIC_DEPTH_NAMES:
            return self.arg(node)
        if (method and target in _SHAPE_METHODS) or (not method and target is getattr):
            return None
        if (method and target in _BINARY_METHODS) or (not method and target in _BINARY):
            return self.binary(node)
        if (not method and target is torch.cat) or (method and target == "cat"):
            return self.cat(node)
        if (not method and target in _RESHAPES) or (method and target in _RESHAPE_METHODS):
            return self.reshape(node, self.arg(node))
        if (not method and target is torch.mean) or (method and target in ("mean", "sum", "amax")):
            return self.reduce(node)
        if (not method and target is torch.permute) or (method and target == "permute"):
            return self.permute(node)
        return self.unknown(node, f"{'method' if method else 'function'} {fname!r}")

    def binary(self, node: fx.Node) -> Any:
        tensors = [self.values.get(a) for a in node.args[:2] if isinstance(a, fx.Node)]
        layouts = [t for t in tensors if isinstance(t, _Layout)]
        if len(tensors) != len(layouts):
            return self.unknown(node, "an elementwise operation on untracked tensors")
        if len(layouts) == 1:
            return layouts[0]
        a, b = layouts
        if a.ndim - a.dim != b.ndim - b.dim:
            return self.unknown(node, "an elementwise operation on misaligned channel axes")
        if a.channels == 1 or b.channels == 1:  # broadcast of a single channel
            self.pin_value(a if a.channels == 1 else b, "broadcast single channel")
            return b if a.channels == 1 else a
        if not self.union_segments(
            a.segments, b.segments, f"operands of {node.name} split differently"
        ):
            return self.fresh_layout(node, f"{node.name} mixes differently split channels")
        return a if a.ndim >= b.ndim else b

    def cat(self, node: fx.Node) -> Any:
        items = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        layouts = [self.values.get(a) for a in items] if isinstance(items, (list, tuple)) else []
        if not layouts or not all(isinstance(x, _Layout) for x in layouts):
            return self.unknown(node, "a concatenation of untracked tensors")
        first = layouts[0]
        if dim % first.ndim == first.dim:
            return _Layout(first.dim, first.ndim, tuple(s for x in layouts for s in x.segments))
        for other in layouts[1:]:
            self.union_segments(first.segments, other.segments, "concatenated along another axis")
        return first

    def reshape(self, node: fx.Node, x: Any) -> Any:
        meta_in = (
            node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], fx.Node) else None
        )
        meta_out = node.meta.get("tensor_meta")
        if not isinstance(x, _Layout) or meta_in is None or meta_out is None:
            return self.unknown(node, "a reshape of an untracked tensor")
        shape_in, shape_out = list(meta_in.shape), list(meta_out.shape)
        before, channels = prod(shape_in[: x.dim]), shape_in[x.dim]
        # the channel axis may only be merged with the axes right after it (a flatten)
        for d_out, size in enumerate(shape_out):
            if prod(shape_out[:d_out]) != before or size % channels:
                continue
            merged = size // channels
            for end in range(x.dim + 1, len(shape_in) + 1):
                rest_in, rest_out = prod(shape_in[end:]), prod(shape_out[d_out + 1 :])
                if prod(shape_in[x.dim + 1 : end]) == merged and rest_in == rest_out:
                    segs = tuple(Segment(s.axis, s.size, s.block * merged) for s in x.segments)
                    return _Layout(d_out, len(shape_out), segs)
        return self.unknown(node, "a reshape that mixes channels with other axes")

    def reduce(self, node: fx.Node) -> Any:
        x = self.arg(node)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        if not isinstance(x, _Layout) or dims is None:
            return self.unknown(node, "a reduction over all axes")
        dims = [dims] if isinstance(dims, int) else list(dims)
        dims = [d % x.ndim for d in dims]
        if x.dim in dims:
            return self.unknown(node, "a reduction over channels")
        if keepdim:
            return x
        return _Layout(x.dim - sum(d < x.dim for d in dims), x.ndim - len(dims), x.segments)

    def permute(self, node: fx.Node) -> Any:
        x = self.arg(node)
        order = (
            node.args[1:]
            if len(node.args) > 2 or not isinstance(node.args[1], (list, tuple))
            else node.args[1]
        )
        if not isinstance(x, _Layout) or not all(isinstance(d, int) for d in order):
            return self.unknown(node, "a permutation of untracked axes")
        order = [d % x.ndim for d in order]
        return _Layout(order.index(x.dim), x.ndim, x.segments)


def _flat_nodes(obj: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(obj, lambda n: out.append(n) or n)
    return out


def _layouts_in(value: Any) -> list[_Layout]:
    if isinstance(value, _Layout):
        return [value]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _layouts_in(v)]
    return []


def analyse(gm: fx.GraphModule) -> GraphAnalysis:
    """Find the channel groups of a traced model (see the module docstring)."""
    return _Analyser(gm).run()
