"""Channel rules for torchvision's own layers, registered at the first trace after torchvision
is imported (so that importing ``inn`` does not import it).

Swin's and MaxViT's attention split the embedding among their heads; Swin merges patches by
concatenating four spatial slices along the channels; ConvNeXt's ``LayerNorm2d`` normalises
over dim 1; stochastic depth drops whole samples or rows, never channels.
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Layout
from inn.graph.rules import function_rule, module_rule
from inn.graph.rules_torch import channels_first_norm, passthrough
from inn.graph.trace import register_leaf_module, register_library_rules
from inn.graph.wrapped import Wrapped

__all__: list[str] = []


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
    ctx: RuleContext, node: fx.Node, module: nn.Module, spec: Wrapped = _WINDOW_ATTENTION
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


def maxvit_attention(ctx: RuleContext, node: fx.Node, module: nn.Module) -> Any:
    return window_attention(ctx, node, module, _MAXVIT_ATTENTION)


def patch_merging(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Swin's patch merging: four spatial slices concatenated along the channels."""
    x = ctx.input(node)
    if not isinstance(x, Layout) or x.dim != x.ndim - 1:
        return ctx.unknown(node, "patch merging of channels not on the last axis")
    return x.with_segments(x.segments * 4)


def _register_torchvision() -> None:
    """Add torchvision's layers to the registry (at the first trace after it is imported)."""
    from torchvision.models import maxvit, swin_transformer
    from torchvision.models.convnext import LayerNorm2d
    from torchvision.ops import stochastic_depth

    function_rule(stochastic_depth)(passthrough)
    module_rule(LayerNorm2d)(channels_first_norm)
    register_leaf_module(LayerNorm2d)
    module_rule(swin_transformer.ShiftedWindowAttention)(window_attention)
    register_leaf_module(swin_transformer.ShiftedWindowAttention)
    function_rule(swin_transformer._patch_merging_pad)(patch_merging)
    module_rule(maxvit.RelativePositionalMultiHeadAttention)(maxvit_attention)
    register_leaf_module(maxvit.RelativePositionalMultiHeadAttention)


register_library_rules("torchvision", _register_torchvision)
