"""Channel rules for sequence layers: embeddings, recurrent layers (LSTM, GRU, RNN) and
``torch.nn``'s transformer layers (traced through, so that the attention and MLP rules apply).
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Attribute, Layout, Segment
from inn.graph.rules import function_rule, module_rule
from inn.graph.trace import register_traced_forward
from inn.graph.wrapped import Wrapped

__all__: list[str] = []


@module_rule(nn.Embedding, nn.EmbeddingBag)
def embedding(ctx: RuleContext, node: fx.Node, module: nn.Embedding) -> Any:
    """The embedding dimension is a new channel axis (the table's dim 1, resampled like a
    bias); a ``max_norm`` renormalises each row over it and pins it."""
    name = str(node.target)
    shape = ctx.shape(node)
    if module.max_norm is not None or shape is None:
        return ctx.unknown(node, f"embedding {name!r} (max_norm rescales rows by their norm)")
    out = ctx.new_output(name, module.embedding_dim)
    ctx.record(name, "wrapped", {"out": out}, wrapped=_TABLE)
    return Layout(len(shape) - 1, len(shape), out)


_TABLE = Wrapped({"weight": {1: "out"}}, one_axis=False)
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@module_rule(nn.LSTM, nn.GRU, nn.RNN)
def recurrent(ctx: RuleContext, node: fx.Node, module: nn.RNNBase) -> Any:
    """Input features (the input weights' dim 1) and the hidden size (one axis for every layer
    and direction, as the module has one ``hidden_size``; each gate's block of rows tied to it)
    are both resizable. Outputs: ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``)."""
    name, x = str(node.target), ctx.input(node)
    if (
        not isinstance(x, Layout)
        or x.dim != x.ndim - 1
        or x.blocked
        or len(node.args) + len(node.kwargs) > 1  # initial states
        or getattr(module, "proj_size", 0)
    ):
        return ctx.unknown(node, f"recurrent layer {name!r} (initial states, projections or "
                           "features not on the last axis)")
    hidden = ctx.new_output(name, module.hidden_size, role="hidden")
    directions = 2 if module.bidirectional else 1
    gates = _GATES[type(module).__name__]
    tensors: dict[str, dict[int, str]] = {}
    integrated: dict[str, int] = {}
    for layer in range(module.num_layers):
        for suffix in ("", "_reverse")[:directions]:
            ih, hh = f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"
            tensors[ih] = {0: "gates", 1: "in" if layer == 0 else "between"}
            tensors[hh] = {0: "gates", 1: "hidden"}
            tensors[f"bias_ih_l{layer}{suffix}"] = {0: "gates"}
            tensors[f"bias_hh_l{layer}{suffix}"] = {0: "gates"}
            integrated[ih] = integrated[hh] = 1
    roles = {
        "in": x.segments,
        "hidden": hidden,
        "gates": hidden * gates,
        "between": hidden * directions,
    }
    spec = Wrapped(tensors, integrated=integrated, one_axis=False)
    ctx.record(name, "wrapped", roles, wrapped=spec)
    output = x.with_segments(hidden * directions)
    state = Layout(2, 3, hidden)
    return [output, [state, state] if gates == 4 else state]


@module_rule(nn.LSTMCell, nn.GRUCell, nn.RNNCell)
def recurrent_cell(ctx: RuleContext, node: fx.Node, module: nn.RNNCellBase) -> Any:
    """One step of a recurrent layer: input and hidden size resizable, as in :func:`recurrent`.
    Returns ``h`` (LSTMCell: ``(h, c)``)."""
    name, x = str(node.target), ctx.input(node)
    if not isinstance(x, Layout) or x.dim != x.ndim - 1 or x.blocked or len(node.args) > 1:
        return ctx.unknown(node, f"recurrent cell {name!r} (initial states or features not on "
                           "the last axis)")
    hidden = ctx.new_output(name, module.hidden_size, role="hidden")
    gates = {nn.LSTMCell: 4, nn.GRUCell: 3}.get(type(module), 1)
    spec = Wrapped(
        {
            "weight_ih": {0: "gates", 1: "in"},
            "weight_hh": {0: "gates", 1: "hidden"},
            "bias_ih": {0: "gates"},
            "bias_hh": {0: "gates"},
        },
        integrated={"weight_ih": 1, "weight_hh": 1},
        one_axis=False,
    )
    roles = {"in": x.segments, "hidden": hidden, "gates": hidden * gates}
    ctx.record(name, "wrapped", roles, wrapped=spec)
    state = x.with_segments(hidden)
    return [state, state] if gates == 4 else state


@function_rule(F.embedding, F.embedding_bag)
def functional_embedding(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """``F.embedding(indices, weight)`` with a tensor attribute as the table: its dim 1 is a
    new channel axis, as in :func:`embedding`."""
    weight, shape = ctx.values.get(node.args[1]) if len(node.args) > 1 else None, ctx.shape(node)
    max_norm = ctx.argument(node, 3, "max_norm") if node.target is F.embedding else None
    if not isinstance(weight, Attribute) or len(weight.shape) != 2 or shape is None or max_norm:
        return ctx.unknown(node, f"{node.name} (a table that is not a tensor attribute, or a "
                           "max_norm)")
    dim = weight.source_dim(1)
    if dim is None:
        return ctx.unknown(node, f"{node.name} (a reshaped table)")
    axis = ctx.axes.new(weight.shape[1], f"{node.name}:out")
    segments = (Segment(axis, weight.shape[1]),)
    ctx.record(weight.target, "attribute", {"out": segments}, tensor_dims=dim)
    return Layout(len(shape) - 1, len(shape), segments)


# -- transformers: traced through their plain path --------------------------------------------
def _encoder_layer(self: nn.TransformerEncoderLayer, src: Any, src_mask: Any = None,
                   src_key_padding_mask: Any = None, is_causal: bool = False) -> Any:
    """The layer's own blocks in its documented order (its fused fast path cannot be traced)."""
    x = src
    if self.norm_first:
        x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
        return x + self._ff_block(self.norm2(x))
    x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
    return self.norm2(x + self._ff_block(x))


def _decoder_layer(self: nn.TransformerDecoderLayer, tgt: Any, memory: Any, tgt_mask: Any = None,
                   memory_mask: Any = None, tgt_key_padding_mask: Any = None,
                   memory_key_padding_mask: Any = None, tgt_is_causal: bool = False,
                   memory_is_causal: bool = False) -> Any:
    x = tgt
    if self.norm_first:
        x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
        x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                memory_is_causal)
        return x + self._ff_block(self.norm3(x))
    x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
    x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                       memory_is_causal))
    return self.norm3(x + self._ff_block(x))


def _encoder(self: nn.TransformerEncoder, src: Any, mask: Any = None,
             src_key_padding_mask: Any = None, is_causal: Any = None) -> Any:
    for layer in self.layers:
        src = layer(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                    is_causal=bool(is_causal))
    return src if self.norm is None else self.norm(src)


def _decoder(self: nn.TransformerDecoder, tgt: Any, memory: Any, tgt_mask: Any = None,
             memory_mask: Any = None, tgt_key_padding_mask: Any = None,
             memory_key_padding_mask: Any = None, tgt_is_causal: Any = None,
             memory_is_causal: bool = False) -> Any:
    for layer in self.layers:
        tgt = layer(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                    tgt_key_padding_mask=tgt_key_padding_mask,
                    memory_key_padding_mask=memory_key_padding_mask,
                    tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
    return tgt if self.norm is None else self.norm(tgt)


def _transformer(self: nn.Transformer, src: Any, tgt: Any, src_mask: Any = None,
                 tgt_mask: Any = None, memory_mask: Any = None, src_key_padding_mask: Any = None,
                 tgt_key_padding_mask: Any = None, memory_key_padding_mask: Any = None,
                 src_is_causal: Any = None, tgt_is_causal: Any = None,
                 memory_is_causal: bool = False) -> Any:
    memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                          is_causal=src_is_causal)
    return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)


for _cls, _forward in {
    nn.Transformer: _transformer,
    nn.TransformerEncoderLayer: _encoder_layer,
    nn.TransformerDecoderLayer: _decoder_layer,
    nn.TransformerEncoder: _encoder,
    nn.TransformerDecoder: _decoder,
}.items():
    register_traced_forward(_cls, _forward)


