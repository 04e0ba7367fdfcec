"""Built-in channel rules for ``torch.nn`` layers and elementwise functions (tensor algebra:
:mod:`inn.graph.rules_tensor`; attention: :mod:`inn.graph.rules_attention`)."""

from __future__ import annotations

import itertools
import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Layout, Segment
from inn.graph.rules import function_rule, module_rule
from inn.graph.rules_probe import probed
from inn.graph.wrapped import Wrapped, wrapped

__all__ = ["BATCHNORMS", "channels_first_norm", "group_norm", "passthrough"]

_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout,
    F.relu, F.relu6, F.silu, F.gelu, F.hardswish, F.hardsigmoid, F.leaky_relu, F.elu, F.mish,
    F.dropout, F.dropout2d, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh,
    operator.neg, torch.neg, torch.abs, torch.exp, torch.clamp,
    "relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "double", "half", "to",
    "type_as", "detach", "clamp", "clamp_", "abs", "neg", "exp", "sigmoid_", "hardswish",
    "gelu", "silu",
)  # fmt: skip
# operations over the trailing (spatial) axes of (N, C, ...): channels must be on dim 1
_SPATIAL = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Upsample, nn.UpsamplingNearest2d,
    nn.UpsamplingBilinear2d, nn.ZeroPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d,
    nn.ConstantPad2d,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool2d,
    F.interpolate,
)  # fmt: skip


def _split_targets(targets: tuple[Any, ...]) -> tuple[list[type], list[Any]]:
    modules = [t for t in targets if isinstance(t, type)]
    return modules, [t for t in targets if not isinstance(t, type)]


# -- simple rules ----------------------------------------------------------------------------
@module_rule(*_split_targets(_ELEMENTWISE)[0])
@function_rule(*_split_targets(_ELEMENTWISE)[1])
def passthrough(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Elementwise operations: the output has the input's channels."""
    return ctx.input(node)


@module_rule(*_split_targets(_SPATIAL)[0])
@function_rule(*_split_targets(_SPATIAL)[1])
def spatial(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Pooling, resampling and padding of ``(N, C, ...)``: the channels pass (a pad of the
    channels themselves changes their count and is pinned by the shape check)."""
    x = ctx.input(node)
    if isinstance(x, Layout) and x.dim != 1:
        return ctx.unknown(node, f"{node.target!r} over a tensor whose channels are not on dim 1")
    with_indices = getattr(module, "return_indices", False) or ctx.argument(
        node, 99, "return_indices", False
    )
    return [x, x] if with_indices and isinstance(x, Layout) else x


@function_rule(
    F.max_pool1d_with_indices, F.max_pool2d_with_indices, F.max_pool3d_with_indices,
    F.adaptive_max_pool1d_with_indices, F.adaptive_max_pool2d_with_indices,
    F.adaptive_max_pool3d_with_indices,
)  # fmt: skip
def pool_with_indices(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """A max pooling that also returns where each maximum was: both keep the channels."""
    x = ctx.input(node)
    if not isinstance(x, Layout) or x.dim != 1:
        return ctx.unknown(node, f"{node.target.__name__} over channels not on dim 1")
    return [x, x]


@module_rule(nn.Unfold, nn.Fold)
@function_rule(F.unfold, F.fold)
def unfold(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``Unfold``: ``(N, C, H, W) -> (N, C k, L)``, each channel a block of its ``k`` patch
    positions (read by a Linear after a transpose, like a flatten); ``Fold`` undoes it."""
    x, shape = ctx.input(node), ctx.shape(node)
    if not isinstance(x, Layout) or x.dim != 1 or shape is None:
        return ctx.unknown(node, f"{node.name} over channels not on dim 1")
    if node.target is F.fold or isinstance(module, nn.Fold):
        segments = _regrouped(ctx, x, x.channels // shape[1])
        if segments is None:
            return ctx.unknown(node, f"{node.name} (a block of positions spans two axes)")
        return Layout(1, len(shape), tuple(segments))
    ratio = shape[1] // x.channels
    return Layout(1, len(shape), tuple(Segment(s.axis, s.size, s.block * ratio)
                                       for s in x.segments))


@function_rule(F.pad)
def pad(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``F.pad`` passes the channels where it pads other axes only."""
    x, amounts = ctx.input(node), ctx.argument(node, 1, "pad", ())
    if not isinstance(x, Layout):
        return ctx.unknown(node, "a pad of an untracked tensor")
    i = x.ndim - 1 - x.dim  # the channels' pair in the pad tuple (pairs from the last axis)
    if 2 * i < len(amounts) and tuple(amounts[2 * i : 2 * i + 2]) != (0, 0):
        return ctx.unknown(node, "a pad of the channels")
    return x


# -- layers -----------------------------------------------------------------------------------
@module_rule(nn.modules.batchnorm._BatchNorm)
def batch_norm(ctx: RuleContext, node: fx.Node, module: nn.Module) -> Any:
    """BatchNorm (and SyncBatchNorm, the same in eval); a subclass that does more is probed."""
    x = ctx.input(node)
    what = f"module {node.target!r} ({type(module).__name__})"
    if type(module) not in BATCHNORMS:
        return probed(ctx, node, module, what)
    if not isinstance(x, Layout) or x.dim != 1 or x.blocked:
        return ctx.unknown(node, what)
    ctx.record(str(node.target), "norm", {"in": x.segments, "out": x.segments})
    return x


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@module_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def convolution(ctx: RuleContext, node: fx.Node, conv: nn.Module) -> Any:
    """Dense: new output channels. Depthwise: one axis through. Grouped (``g`` groups): the
    input is ``g`` equal pieces tied to one partition, the output ``g`` copies of a new axis."""
    name, x = str(node.target), ctx.input(node)
    if isinstance(x, Layout) and x.blocked:
        return ctx.unknown(node, f"convolution {name!r}, which reads channels in blocks of "
                           "features (after a flatten or a pixel unshuffle)")
    if (
        not isinstance(x, Layout)
        or x.dim != 1
        or conv.padding_mode not in ("zeros", "reflect", "replicate", "circular")
    ):
        return ctx.unknown(node, f"convolution {name!r}")
    g = conv.groups
    if g == 1:
        return ctx.producer(name, "conv", x, conv.out_channels)
    if g == conv.in_channels == conv.out_channels:
        ctx.record(name, "depthwise", {"in": x.segments, "out": x.segments})
        return x
    pieces = ctx.axes.tied_pieces(x.segments, g, f"groups of {name!r} split differently")
    if pieces is None:
        return ctx.unknown(node, f"grouped convolution {name!r} (groups={g})")
    out = ctx.new_output(name, conv.out_channels // g, copies=g)
    ctx.record(name, "grouped", {"in": pieces[0], "out": out}, groups=g)
    return x.with_segments(out)


@module_rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv_transpose(ctx: RuleContext, node: fx.Node, conv: nn.Module) -> Any:
    """As :func:`convolution`; a grouped one's weight ``(in, out / g, ...)`` holds every
    group's input channels (role ``"in"``) and one group's output channels (``"out_group"``)."""
    name, x = str(node.target), ctx.input(node)
    if (
        not isinstance(x, Layout)
        or x.dim != 1
        or x.blocked
        or conv.padding_mode != "zeros"
        or len(node.args) + len(node.kwargs) > 1  # an output_size
    ):
        return ctx.unknown(node, f"transposed convolution {name!r}")
    g = conv.groups
    if g == 1:
        return ctx.producer(name, "conv_transpose", x, conv.out_channels)
    if g == conv.in_channels == conv.out_channels:
        ctx.record(name, "depthwise", {"in": x.segments, "out": x.segments})
        return x
    pieces = ctx.axes.tied_pieces(x.segments, g, f"groups of {name!r} split differently")
    if pieces is None:
        return ctx.unknown(node, f"grouped transposed convolution {name!r} (groups={g})")
    out = ctx.new_output(name, conv.out_channels // g, copies=g)
    roles = {"in": [s for p in pieces for s in p], "out": out, "out_group": out[:1]}
    ctx.record(name, "conv_transpose", roles, groups=g)
    return x.with_segments(out)


@module_rule(nn.PixelShuffle)
@function_rule(F.pixel_shuffle, torch.pixel_shuffle)
def pixel_shuffle(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``(N, C r^2, H, W) -> (N, C, H r, W r)``: output channel ``c`` is input channels
    ``c r^2 .. c r^2 + r^2 - 1``, so the input's channels are regrouped into blocks of ``r^2``
    (every axis tied to them too: the producing convolution then keeps or drops whole blocks)."""
    x = ctx.input(node)
    r = module.upscale_factor if module is not None else ctx.argument(node, 1, "upscale_factor")
    if not isinstance(x, Layout) or x.dim != 1 or x.ndim < 3 or not isinstance(r, int):
        return ctx.unknown(node, f"pixel shuffle {node.name}")
    segments = _regrouped(ctx, x, r * r)
    if segments is None:
        return ctx.unknown(node, f"pixel shuffle {node.name} (an r^2 block spans two axes)")
    return x.with_segments(segments)


def _regrouped(ctx: RuleContext, x: Layout, block: int) -> list[Segment] | None:
    """``x``'s channels read ``block`` at a time as one channel each (factoring every axis
    tied to them), or None where a block would span two axes."""
    segments = ctx.axes.expand(x.segments)
    offsets = [0, *itertools.accumulate(s.size * s.block for s in segments)]
    if any(o % block for o in offsets):
        return None
    out = []
    for seg in segments:
        (s,) = ctx.axes.expand([seg])  # an axis seen twice (grouped copies) is factored once
        if s.block % block == 0:
            out.append(Segment(s.axis, s.size, s.block // block))
        elif block % s.block == 0 and s.size % (block // s.block) == 0:
            coarse = ctx.axes.factor(s.axis, block // s.block)
            out.append(Segment(coarse, ctx.axes.size[coarse], 1))
        else:
            return None
    return out


@module_rule(nn.PixelUnshuffle)
@function_rule(F.pixel_unshuffle, torch.pixel_unshuffle)
def pixel_unshuffle(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``(N, C, H r, W r) -> (N, C r^2, H, W)``: each channel becomes a block of ``r^2``
    consecutive sub-pixel channels (a consumer that reads whole blocks, a Linear after a
    flatten, can follow; a convolution pins them)."""
    x = ctx.input(node)
    r = module.downscale_factor if module is not None else ctx.argument(
        node, 1, "downscale_factor"
    )
    if not isinstance(x, Layout) or x.dim != 1 or x.ndim < 3 or not isinstance(r, int):
        return ctx.unknown(node, f"pixel unshuffle {node.name}")
    return x.with_segments([Segment(s.axis, s.size, s.block * r * r) for s in x.segments])


@module_rule(nn.ChannelShuffle)
@function_rule(F.channel_shuffle, torch.channel_shuffle)
def channel_shuffle(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``g`` equal pieces of the channels interleaved: output channel ``k`` is piece ``k % g``'s
    channel ``k // g``. Pinned: the output would hold each channel of the (tied) pieces as a
    block of ``g``, which no convolution reads."""
    g = module.groups if module is not None else ctx.argument(node, 1, "groups")
    return ctx.unknown(node, f"channel shuffle {node.name} (interleaves its {g} groups)")


@module_rule(nn.GLU)
@function_rule(F.glu)
def glu(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """GLU along the channels: ``a * sigmoid(b)`` of the two halves, whose channels are tied
    pairwise (one partition); along another axis the channels pass."""
    x = ctx.input(node)
    dim = module.dim if module is not None else ctx.argument(node, 1, "dim", -1)
    what = f"GLU {node.name}"
    if not isinstance(x, Layout) or not isinstance(dim, int):
        return ctx.unknown(node, what)
    if dim % x.ndim != x.dim:
        return x
    halves = ctx.axes.pieces(x.segments, 2)
    if halves is None or not ctx.axes.tie(halves[0], halves[1], f"halves of {what}"):
        return ctx.unknown(node, f"{what} (its halves split differently)")
    return x.with_segments(halves[0])


@module_rule(nn.Linear)
def linear(ctx: RuleContext, node: fx.Node, module: nn.Linear) -> Any:
    """A Linear over the channels (the last axis) makes new ones; over another axis (a token
    mixing MLP on ``x.transpose(1, 2)``) it leaves the channels where they are."""
    x = ctx.input(node)
    if isinstance(x, Layout) and x.dim != x.ndim - 1:
        return x
    if not isinstance(x, Layout) or len({s.block for s in x.segments}) != 1:
        return ctx.unknown(node, f"Linear {node.target!r} (channels in blocks of several sizes)")
    return ctx.producer(str(node.target), "linear", x, module.out_features)


_AFFINE = Wrapped({"weight": {0: "out"}, "bias": {0: "out"}})


@module_rule(nn.LayerNorm)
def layer_norm(ctx: RuleContext, node: fx.Node, module: nn.LayerNorm) -> Any:
    """LayerNorm over the channels only (channels-last), as in ConvNeXt and transformers."""
    x = ctx.input(node)
    if (
        type(module) is not nn.LayerNorm
        or len(module.normalized_shape) != 1
        or not isinstance(x, Layout)
    ):
        return ctx.unknown(node, f"module {node.target!r} ({type(module).__name__})")
    return wrapped(ctx, node, _AFFINE, channel_dim=-1)


def channels_first_norm(ctx: RuleContext, node: fx.Node, module: nn.Module) -> Any:
    """A LayerNorm over dim 1 of ``(N, C, H, W)`` (torchvision's and timm's LayerNorm2d)."""
    return wrapped(ctx, node, _AFFINE, channel_dim=1)


@module_rule(nn.RMSNorm)
def rms_norm(ctx: RuleContext, node: fx.Node, module: nn.RMSNorm) -> Any:
    """RMSNorm over the channels only (channels-last), like :func:`layer_norm`."""
    if type(module) is not nn.RMSNorm or len(module.normalized_shape) != 1:
        return probed(ctx, node, module, f"module {node.target!r} ({type(module).__name__})")
    return wrapped(ctx, node, _WEIGHT, channel_dim=-1)


_WEIGHT = Wrapped({"weight": {0: "out"}})


@module_rule(nn.GroupNorm)
def group_norm(ctx: RuleContext, node: fx.Node, module: nn.GroupNorm) -> Any:
    """GroupNorm keeps its groups; each group keeps the same share of the channels."""
    spec = Wrapped(_AFFINE.tensors, groups=module.num_groups)
    return wrapped(ctx, node, spec, channel_dim=1)
