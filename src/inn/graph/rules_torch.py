"""Built-in channel rules for ``torch.nn`` layers and elementwise functions (tensor algebra:
:mod:`inn.graph.rules_tensor`)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from inn.graph.layout import Layout, Segment
from inn.graph.rules import ChannelRule, Wrapped, function_rule, module_rule
from inn.graph.rules_probe import probed
from inn.graph.trace import register_leaf_module

if TYPE_CHECKING:
    from inn.graph.groups import Analyser

__all__ = ["BATCHNORMS", "declared_rule", "self_attention", "wrapped"]

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
def passthrough(ctx: Analyser, node: fx.Node, module: Any) -> Any:
    """Elementwise operations: the output has the input's channels."""
    return ctx.input(node)


@module_rule(*_split_targets(_SPATIAL)[0])
@function_rule(*_split_targets(_SPATIAL)[1])
def spatial(ctx: Analyser, node: fx.Node, module: Any) -> Any:
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
def pool_with_indices(ctx: Analyser, node: fx.Node, module: Any) -> Any:
    """A max pooling that also returns where each maximum was: both keep the channels."""
    x = ctx.input(node)
    if not isinstance(x, Layout) or x.dim != 1:
        return ctx.unknown(node, f"{node.target.__name__} over channels not on dim 1")
    return [x, x]


@module_rule(nn.Unfold, nn.Fold)
@function_rule(F.unfold, F.fold)
def unfold(ctx: Analyser, node: fx.Node, module: Any) -> Any:
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
def pad(ctx: Analyser, node: fx.Node, module: Any) -> Any:
    """``F.pad`` passes the channels where it pads other axes only."""
    x, amounts = ctx.input(node), ctx.argument(node, 1, "pad", ())
    if not isinstance(x, Layout):
        return ctx.unknown(node, "a pad of an untracked tensor")
    i = x.ndim - 1 - x.dim  # the channels' pair in the pad tuple (pairs from the last axis)
    if 2 * i < len(amounts) and tuple(amounts[2 * i : 2 * i + 2]) != (0, 0):
        return ctx.unknown(node, "a pad of the channels")
    return x


try:  # torchvision's stochastic depth drops whole samples or rows, never channels
    from torchvision.ops import stochastic_depth

    function_rule(stochastic_depth)(passthrough)
except ImportError:  # pragma: no cover - torchvision is optional
    pass


# -- layers -----------------------------------------------------------------------------------
@module_rule(nn.modules.batchnorm._BatchNorm)
def batch_norm(ctx: Analyser, node: fx.Node, module: nn.Module) -> Any:
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
def convolution(ctx: Analyser, node: fx.Node, conv: nn.Module) -> Any:
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
def conv_transpose(ctx: Analyser, node: fx.Node, conv: nn.Module) -> Any:
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
def pixel_shuffle(ctx: Analyser, node: fx.Node, module: Any) -> Any:
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


def _regrouped(ctx: Analyser, x: Layout, block: int) -> list[Segment] | None:
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
def pixel_unshuffle(ctx: Analyser, node: fx.Node, module: Any) -> Any:
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
def channel_shuffle(ctx: Analyser, node: fx.Node, module: Any) -> Any:
    """``g`` equal pieces of the channels interleaved: output channel ``k`` is piece ``k % g``'s
    channel ``k // g``. Pinned: the output would hold each channel of the (tied) pieces as a
    block of ``g``, which no convolution reads."""
    g = module.groups if module is not None else ctx.argument(node, 1, "groups")
    return ctx.unknown(node, f"channel shuffle {node.name} (interleaves its {g} groups)")


@module_rule(nn.GLU)
@function_rule(F.glu)
def glu(ctx: Analyser, node: fx.Node, module: Any) -> Any:
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
def linear(ctx: Analyser, node: fx.Node, module: nn.Linear) -> Any:
    """A Linear over the channels (the last axis) makes new ones; over another axis (a token
    mixing MLP on ``x.transpose(1, 2)``) it leaves the channels where they are."""
    x = ctx.input(node)
    if isinstance(x, Layout) and x.dim != x.ndim - 1:
        return x
    if not isinstance(x, Layout) or len({s.block for s in x.segments}) != 1:
        return ctx.unknown(node, f"Linear {node.target!r} (channels in blocks of several sizes)")
    return ctx.producer(str(node.target), "linear", x, module.out_features)


def wrapped(ctx: Analyser, node: fx.Node, spec: Wrapped, channel_dim: int | None = None) -> Any:
    """A module resampled through its own forward (see :class:`Wrapped`)."""
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


_AFFINE = Wrapped({"weight": {0: "out"}, "bias": {0: "out"}})


@module_rule(nn.LayerNorm)
def layer_norm(ctx: Analyser, node: fx.Node, module: nn.LayerNorm) -> Any:
    """LayerNorm over the channels only (channels-last), as in ConvNeXt and transformers."""
    x = ctx.input(node)
    if (
        type(module) is not nn.LayerNorm
        or len(module.normalized_shape) != 1
        or not isinstance(x, Layout)
    ):
        return ctx.unknown(node, f"module {node.target!r} ({type(module).__name__})")
    return wrapped(ctx, node, _AFFINE, channel_dim=-1)


def channels_first_norm(ctx: Analyser, node: fx.Node, module: nn.Module) -> Any:
    """A LayerNorm over dim 1 of ``(N, C, H, W)`` (torchvision's and timm's LayerNorm2d)."""
    return wrapped(ctx, node, _AFFINE, channel_dim=1)


@module_rule(nn.RMSNorm)
def rms_norm(ctx: Analyser, node: fx.Node, module: nn.RMSNorm) -> Any:
    """RMSNorm over the channels only (channels-last), like :func:`layer_norm`."""
    if type(module) is not nn.RMSNorm or len(module.normalized_shape) != 1:
        return probed(ctx, node, module, f"module {node.target!r} ({type(module).__name__})")
    return wrapped(ctx, node, _WEIGHT, channel_dim=-1)


_WEIGHT = Wrapped({"weight": {0: "out"}})


@module_rule(nn.GroupNorm)
def group_norm(ctx: Analyser, node: fx.Node, module: nn.GroupNorm) -> Any:
    """GroupNorm keeps its groups; each group keeps the same share of the channels."""
    spec = Wrapped(_AFFINE.tensors, groups=module.num_groups)
    return wrapped(ctx, node, spec, channel_dim=1)


def _heads_split_attention(qkv: str, proj: str) -> Wrapped:
    """The layout of an attention whose heads split the embedding: ``qkv`` (q | k | v rows,
    each the embedding's channels) and the output projection ``proj`` (reads the embedding's
    channels), by their module names."""
    return Wrapped(
        {
            f"{qkv}.weight": {0: "qkv", 1: "in"},
            f"{qkv}.bias": {0: "qkv"},
            f"{proj}.weight": {0: "out", 1: "in"},
            f"{proj}.bias": {0: "out"},
        },
        integrated={f"{qkv}.weight": 1, f"{proj}.weight": 1},
        one_axis=False,
    )


_WINDOW_ATTENTION = _heads_split_attention("qkv", "proj")
_MAXVIT_ATTENTION = _heads_split_attention("to_qkv", "merge")


def window_attention(
    ctx: Analyser, node: fx.Node, module: nn.Module, spec: Wrapped = _WINDOW_ATTENTION
) -> Any:
    """torchvision's Swin and MaxViT attention: the heads split the embedding (``C //
    num_heads`` per head), so the embedding becomes that many pieces tied to one partition."""
    name, x = str(node.target), ctx.input(node)
    if not isinstance(x, Layout) or x.dim != x.ndim - 1 or x.blocked:
        return ctx.unknown(node, f"window attention {name!r} (embedding not on the last axis)")
    heads = getattr(module, "num_heads", getattr(module, "n_heads", 0))
    if ctx.axes.tied_pieces(x.segments, heads, f"heads of {name!r}") is None:
        return ctx.unknown(node, f"window attention {name!r} ({heads} heads)")
    segments = ctx.axes.expand(x.segments)
    out_name = next(t for t, dims in spec.tensors.items() if dims.get(0) == "out")
    out = ctx.new_output(name, module.get_parameter(out_name).shape[0])
    roles = {"in": segments, "qkv": segments * 3, "out": out}
    ctx.record(name, "window_attention", roles, wrapped=spec)
    return x.with_segments(out)


def maxvit_attention(ctx: Analyser, node: fx.Node, module: nn.Module) -> Any:
    return window_attention(ctx, node, module, _MAXVIT_ATTENTION)


def patch_merging(ctx: Analyser, node: fx.Node, module: Any) -> Any:
    """Swin's patch merging: four spatial slices concatenated along the channels."""
    x = ctx.input(node)
    if not isinstance(x, Layout) or x.dim != x.ndim - 1:
        return ctx.unknown(node, "patch merging of channels not on the last axis")
    return x.with_segments(x.segments * 4)


try:
    from torchvision.models import swin_transformer
    from torchvision.models.convnext import LayerNorm2d as _TorchvisionLayerNorm2d

    module_rule(_TorchvisionLayerNorm2d)(channels_first_norm)
    register_leaf_module(_TorchvisionLayerNorm2d)
    module_rule(swin_transformer.ShiftedWindowAttention)(window_attention)
    register_leaf_module(swin_transformer.ShiftedWindowAttention)
    function_rule(swin_transformer._patch_merging_pad)(patch_merging)
    from torchvision.models import maxvit

    module_rule(maxvit.RelativePositionalMultiHeadAttention)(maxvit_attention)
    register_leaf_module(maxvit.RelativePositionalMultiHeadAttention)
except ImportError:  # pragma: no cover - torchvision is optional
    pass


def declared_rule(kind: str, tensors: Mapping[str, Any] | None, reason: str) -> ChannelRule:
    """The rule for ``register_channel_rule(target, kind, tensors=...)``."""
    if kind == "pin":

        def pin(ctx: Analyser, node: fx.Node, module: Any) -> Any:
            return ctx.unknown(node, reason or f"a pinned layer ({node.target})")

        return pin
    if kind == "elementwise":
        dims = {t: {int(d): "out"} for t, d in (tensors or {}).items()}
        spec = Wrapped(dims)
    else:
        spec = Wrapped(
            dict(tensors or {"weight": {0: "out", 1: "in"}, "bias": {0: "out"}}),
            integrated={"weight": 1} if tensors is None else {},
            one_axis=False,
        )

    def declared(ctx: Analyser, node: fx.Node, module: Any) -> Any:
        if not spec.tensors and spec.one_axis:
            return ctx.input(node)
        return wrapped(ctx, node, spec)

    return declared


def self_attention(
    ctx: Analyser,
    node: fx.Node,
    module: nn.Module,
    names: Mapping[str, str],
    kind: str = "attention",
) -> Any:
    """Self-attention as one layer: the input and output embedding axes and a per-head
    dimension shared by every head (the head count stays). ``names`` maps ``qkv.weight``,
    ``qkv.bias``, ``proj.weight``, ``proj.bias`` to the module's own tensor names."""
    name, x = str(node.target), ctx.input(node)
    if not isinstance(x, Layout) or x.dim != x.ndim - 1 or x.blocked:
        return ctx.unknown(node, f"attention {name!r} (embedding not on the last axis)")
    qkv_weight = module.get_parameter(names["qkv.weight"])
    heads = module.num_heads
    hd = ctx.new_output(name, qkv_weight.shape[0] // (3 * heads), role="head_dim")
    out = ctx.new_output(name, module.get_parameter(names["proj.weight"]).shape[0])
    spec = Wrapped(
        {
            names["qkv.weight"]: {0: "qkv_head_dim", 1: "in"},
            names["qkv.bias"]: {0: "qkv_head_dim"},
            names["proj.weight"]: {0: "out", 1: "proj_head_dim"},
            names["proj.bias"]: {0: "out"},
        },
        integrated={names["qkv.weight"]: 1, names["proj.weight"]: 1},
        one_axis=False,
    )
    roles = {
        "in": x.segments,
        "out": out,
        "qkv_head_dim": hd * 3 * heads,
        "proj_head_dim": hd * heads,
    }
    ctx.record(name, kind, roles, wrapped=spec)
    return x.with_segments(out)


_MHA_NAMES = {
    "qkv.weight": "in_proj_weight",
    "qkv.bias": "in_proj_bias",
    "proj.weight": "out_proj.weight",
    "proj.bias": "out_proj.bias",
}


@module_rule(nn.MultiheadAttention)
def multihead_attention(ctx: Analyser, node: fx.Node, module: nn.MultiheadAttention) -> Any:
    """``nn.MultiheadAttention`` called as self-attention without masks."""
    q = node.args[0] if node.args else node.kwargs.get("query")
    same = all(ctx.argument(node, i, k, q) is q for i, k in ((1, "key"), (2, "value")))
    allowed = {
        "need_weights": False, "attn_mask": None, "key_padding_mask": None, "is_causal": False,
    }
    weights_read = any(
        u.target is not operator.getitem or (u.args[1] != 0 and u.users) for u in node.users
    )
    if (
        not same
        or weights_read
        or any(k not in allowed or v is not allowed[k] for k, v in node.kwargs.items())
        or len(node.args) > 3
        or not module._qkv_same_embed_dim
        or module.bias_k is not None
        or module.add_zero_attn
    ):
        return ctx.unknown(node, f"attention {node.target!r} (cross-attention, masks or weights read:"
                           " not plain self-attention; its channels stay)")
    out = self_attention(ctx, node, module, _MHA_NAMES)
    return [out, None] if isinstance(out, Layout) else out
