"""Built-in channel rules for self-attention: ``nn.MultiheadAttention`` and the helper that
timm's and other attention layers share."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import torch.fx as fx
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Layout
from inn.graph.rules import module_rule
from inn.graph.wrapped import Wrapped

__all__ = ["self_attention"]


def self_attention(
    ctx: RuleContext,
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
def multihead_attention(ctx: RuleContext, node: fx.Node, module: nn.MultiheadAttention) -> Any:
    """``nn.MultiheadAttention`` called as self-attention without masks."""
    q = node.args[0] if node.args else node.kwargs.get("query")
    same = all(ctx.argument(node, i, k, q) is q for i, k in ((1, "key"), (2, "value")))
    allowed = {
        "need_weights": False,
        "attn_mask": None,
        "key_padding_mask": None,
        "is_causal": False,
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
        return ctx.unknown(
            node,
            f"attention {node.target!r} (cross-attention, masks or weights read:"
            " not plain self-attention; its channels stay)",
        )
    out = self_attention(ctx, node, module, _MHA_NAMES)
    return [out, None] if isinstance(out, Layout) else out
