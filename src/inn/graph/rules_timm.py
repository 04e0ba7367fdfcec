"""Channel rules for timm's own layers, registered at the first trace after timm is imported.

timm fuses normalisation and activation into one module (``BatchNormAct2d``...), pads
convolutions at run time (``Conv2dSame``) and has its own norms over channels. Each becomes a
module traced as one call and resized through its own ``forward`` (see
:class:`~inn.graph.wrapped.Wrapped`). Layers timm writes out of plain operations (``LayerScale``,
``SqueezeExcite``, ``MixedConv2d``) need no entry: the tracer sees through them.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.rules import module_rule
from inn.graph.rules_attention import self_attention
from inn.graph.rules_torch import channels_first_norm, group_norm
from inn.graph.trace import register_leaf_module, register_library_rules
from inn.graph.wrapped import Wrapped, wrapped

__all__: list[str] = []

_STATISTICS = Wrapped(
    {name: {0: "out"} for name in ("weight", "bias", "running_mean", "running_var")}
)
_WEIGHT = Wrapped({"weight": {0: "out"}})


def _batch_norm_act(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    return wrapped(ctx, node, _STATISTICS, channel_dim=1)


def _channels_last_norm(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    spec = Wrapped({"weight": {0: "out"}, "bias": {0: "out"}})
    return wrapped(ctx, node, spec, channel_dim=-1)


def _rms_norm(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    return wrapped(ctx, node, _WEIGHT, channel_dim=-1)


def _rms_norm_2d(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    return wrapped(ctx, node, _WEIGHT, channel_dim=1)


def _conv_same(ctx: RuleContext, node: fx.Node, conv: Any) -> Any:
    """A convolution that pads at run time or standardises its weight (``StdConv2d``,
    ``ScaledStdConv2d``, each filter over its inputs, with a per-filter ``gain``): dense or
    depthwise, through its own forward (at fewer inputs it standardises over fewer of them,
    as its export does)."""
    if conv.groups == 1:
        spec = Wrapped(
            {"weight": {0: "out", 1: "in"}, "bias": {0: "out"}, "gain": {0: "out"}},
            integrated={"weight": 1},
            one_axis=False,
        )
    elif conv.groups == conv.in_channels == conv.out_channels:
        spec = Wrapped({"weight": {0: "out"}, "bias": {0: "out"}, "gain": {0: "out"}})
    else:
        return ctx.unknown(node, f"grouped convolution {node.target!r} (padded at run time or "
                           "standardised)")
    return wrapped(ctx, node, spec, channel_dim=1)


_TIMM_ATTENTION = {n: n for n in ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias")}


def _attention(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """timm's ``Attention`` (ViT, DeiT...) without q/k norms, called on one tensor."""
    plain = all(
        isinstance(getattr(module, n, nn.Identity()), nn.Identity)
        for n in ("q_norm", "k_norm", "norm")
    )
    if not plain or len(node.args) != 1 or node.kwargs:
        return ctx.unknown(node, f"attention {node.target!r} (q/k norm or a mask)")
    return self_attention(ctx, node, module, _TIMM_ATTENTION)


def _window_attention(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """timm's Swin ``WindowAttention`` (its head dimension follows the projection)."""
    if len(node.args) + len(node.kwargs) > 2:
        return ctx.unknown(node, f"window attention {node.target!r} (unexpected arguments)")
    return self_attention(ctx, node, module, _TIMM_ATTENTION, kind="window_attention")


def _register_timm() -> None:
    """Add timm's layers to the registry (at the first trace after timm is imported)."""
    from timm import layers

    rules = {
        _batch_norm_act: ("BatchNormAct2d", "SyncBatchNormAct", "FrozenBatchNormAct2d"),
        group_norm: ("GroupNormAct", "GroupNorm1Act", "GroupNorm", "GroupNorm1"),
        _channels_last_norm: ("LayerNorm", "LayerNormAct"),
        channels_first_norm: ("LayerNorm2d", "LayerNormAct2d"),
        _rms_norm: ("RmsNorm",),
        _rms_norm_2d: ("RmsNorm2d",),
        _conv_same: ("Conv2dSame", "Conv2dSameExport", "StdConv2d", "StdConv2dSame",
                     "ScaledStdConv2d", "ScaledStdConv2dSame"),
    }
    from timm.models import swin_transformer, vision_transformer

    module_rule(vision_transformer.Attention)(_attention)
    register_leaf_module(vision_transformer.Attention)
    module_rule(swin_transformer.WindowAttention)(_window_attention)
    register_leaf_module(swin_transformer.WindowAttention)
    for rule, names in rules.items():
        for name in names:
            cls = getattr(layers, name, None)
            if cls is not None:
                module_rule(cls)(rule)
                register_leaf_module(cls)


register_library_rules("timm", _register_timm)
