"""Integral self-attention: continuous along the embedding axes and the per-head dimension."""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from inn.errors import ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec
from inn.layers.registry import LayerRequest, register_integral_layer
from inn.layers.wrapped import IntegralWrapped

__all__ = [
    "AttentionWeights",
    "IntegralAttention",
    "IntegralWindowAttention",
    "PlainAttention",
    "attention_layer",
    "plain_attention",
    "window_attention_layer",
]


class AttentionWeights:
    """The tensors of a self-attention layer in one convention.

    ``qkv_weight`` ``(3 * heads * head_dim, in)``, ``qkv_bias`` ``(3 * heads * head_dim,)`` or
    None, ``proj_weight`` ``(out, heads * head_dim)``, ``proj_bias`` ``(out,)`` or None; rows of
    ``qkv`` ordered (q/k/v, head, head dim), as timm's ``Attention`` and
    ``nn.MultiheadAttention``'s ``in_proj_weight`` both store them.
    """

    def __init__(self, module: nn.Module) -> None:
        if isinstance(module, nn.MultiheadAttention):
            self.qkv_weight, self.qkv_bias = module.in_proj_weight, module.in_proj_bias
            self.proj_weight, self.proj_bias = module.out_proj.weight, module.out_proj.bias
            self.heads = module.num_heads
            self.scale = module.head_dim**-0.5
            self.batch_first, self.returns_weights = module.batch_first, True
        else:  # timm's Attention
            self.qkv_weight, self.qkv_bias = module.qkv.weight, module.qkv.bias
            self.proj_weight, self.proj_bias = module.proj.weight, module.proj.bias
            self.heads = module.num_heads
            self.scale = float(module.scale)
            self.batch_first, self.returns_weights = True, False
        # from the shapes: a pruned copy may have fewer dims per head than its attributes say
        self.head_dim = self.qkv_weight.shape[0] // (3 * self.heads)


class IntegralAttention(IntegralLayer):
    """Multi-head self-attention whose projections are continuous along the input (``"in"``) and
    output (``"out"``) embedding axes and along the per-head dimension (``"head_dim"``, one
    partition shared by every head of q, k and v). The head count stays.

    The sum over the head dimension in ``q . k`` is an integral too: q is multiplied by its
    quadrature weights, so narrower heads keep the logits' scale; the output projection
    integrates over the head dimension as any input axis.

    Shape:
        ``(B, N, in)`` (or ``(N, B, in)`` where ``batch_first`` is False) -> ``(B, N, out)``.
    """

    def __init__(
        self, module: nn.Module, partitions: PartitionSpec | None = None, *, rule: str = "rectangle"
    ) -> None:
        super().__init__(rule)
        w = AttentionWeights(module)
        h, d = w.heads, w.head_dim
        c_in, c_out = w.qkv_weight.shape[1], w.proj_weight.shape[0]
        if w.qkv_weight.shape[0] != 3 * h * d or w.proj_weight.shape[1] != h * d:
            raise ShapeError(f"{type(module).__name__}: projections do not match {h} heads of {d}")
        self._set_partitions(partitions, {"in": c_in, "out": c_out, "head_dim": d}, rule)
        self.heads, self.scale = h, w.scale
        self.batch_first, self.returns_weights = w.batch_first, w.returns_weights
        self.full = {"in": c_in, "out": c_out, "head_dim": d}
        qkv = w.qkv_weight.detach().reshape(3 * h, d, c_in)
        qkv_bias = None if w.qkv_bias is None else w.qkv_bias.detach().reshape(3 * h, d)
        if self.is_continuous("head_dim"):  # q carries the quadrature of q . k
            full = self._full_scale("head_dim", qkv)
            qkv = torch.cat([qkv[:h] / full[:, None].to(qkv), qkv[h:]])
            if qkv_bias is not None:
                qkv_bias = torch.cat([qkv_bias[:h] / full.to(qkv_bias), qkv_bias[h:]])
        self._register("qkv_weight", qkv, {1: "head_dim", 2: "in"}, integrated=2)
        self._register("qkv_bias", qkv_bias, {1: "head_dim"})
        proj = w.proj_weight.detach().reshape(c_out, h, d)
        self._register("proj_weight", proj, {0: "out", 2: "head_dim"}, integrated=2)
        self._register("proj_bias", w.proj_bias, {0: "out"})

    def widths(self) -> dict[str, int]:
        return {role: self.size(role, n) for role, n in self.full.items()}

    def projections(self) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """``qkv`` and ``proj`` weights and biases at the current widths, as 2-D/1-D tensors."""
        t = self.sampled()
        h = self.heads
        qkv, qkv_bias = t["qkv_weight"], t.get("qkv_bias")
        if self.is_continuous("head_dim"):
            scale = self.quadrature_scale("head_dim", qkv).to(qkv)
            qkv = torch.cat([qkv[:h] * scale[:, None], qkv[h:]])
            if qkv_bias is not None:
                qkv_bias = torch.cat([qkv_bias[:h] * scale, qkv_bias[h:]])
        proj = t["proj_weight"]
        return (
            qkv.reshape(-1, qkv.shape[-1]),
            None if qkv_bias is None else qkv_bias.reshape(-1),
            proj.reshape(proj.shape[0], -1),
            t.get("proj_bias"),
        )

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> object:
        qkv, qkv_bias, proj, proj_bias = self.projections()
        return _attend(
            x, qkv, qkv_bias, proj, proj_bias, self.heads, self.scale, self.batch_first,
            self.returns_weights,
        )  # fmt: skip

    def to_discrete(self) -> nn.Module:
        return fx.symbolic_trace(
            PlainAttention(
                *self.projections(), self.heads, self.scale, self.batch_first, self.returns_weights
            )
        )


def _attend(
    x: Tensor,
    qkv: Tensor,
    qkv_bias: Tensor | None,
    proj: Tensor,
    proj_bias: Tensor | None,
    heads: int,
    scale: float,
    batch_first: bool,
    returns_weights: bool,
) -> object:
    if not batch_first:
        x = x.transpose(0, 1)
    b, n = x.shape[0], x.shape[1]
    q, k, v = F.linear(x, qkv, qkv_bias).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    y = F.scaled_dot_product_attention(q, k, v, scale=scale)
    y = F.linear(y.transpose(1, 2).reshape(b, n, -1), proj, proj_bias)
    if not batch_first:
        y = y.transpose(0, 1)
    return (y, None) if returns_weights else y


class PlainAttention(nn.Module):
    """Self-attention of plain ``nn.Linear`` projections with any head dimension; exported
    (through ``torch.fx``) in place of an :class:`IntegralAttention`."""

    def __init__(
        self,
        qkv: Tensor,
        qkv_bias: Tensor | None,
        proj: Tensor,
        proj_bias: Tensor | None,
        heads: int,
        scale: float,
        batch_first: bool,
        returns_weights: bool,
    ) -> None:
        super().__init__()
        self.qkv = _linear(qkv, qkv_bias)
        self.proj = _linear(proj, proj_bias)
        self.heads, self.scale = heads, scale
        self.batch_first, self.returns_weights = batch_first, returns_weights

    def forward(self, x: Tensor, *args: object, **kwargs: object) -> object:
        return _attend(
            x, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias, self.heads,
            self.scale, self.batch_first, self.returns_weights,
        )  # fmt: skip


def plain_attention(module: nn.Module) -> fx.GraphModule:
    """A self-attention module (``nn.MultiheadAttention``, timm's ``Attention``) as plain
    layers, whatever its tensors' widths (``nn.MultiheadAttention`` needs heads x head dim =
    input width; a pruned one may not have it)."""
    w = AttentionWeights(module)
    return fx.symbolic_trace(
        PlainAttention(
            w.qkv_weight, w.qkv_bias, w.proj_weight, w.proj_bias, w.heads, w.scale,
            w.batch_first, w.returns_weights,
        )  # the tensors are copied into new Linear layers
    )  # fmt: skip


def _linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer = layer.to(weight)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


class IntegralWindowAttention(IntegralWrapped):
    """Window attention (Swin: torchvision's ``ShiftedWindowAttention``, timm's
    ``WindowAttention``; MaxViT's ``RelativePositionalMultiHeadAttention``), resized through
    its own forward.

    The sum over the head dimension in ``q . k`` is an integral: q is multiplied by the
    quadrature weights of ``q_role`` (the role along its rows) and, where the attention scales
    the logits by ``head_dim ** -0.5`` of the current width (``rescaled``), by
    ``sqrt(head_dim / full head_dim)``, so that at any width the logits approximate the
    full-width ones (and at full width are unchanged).

    torchvision's function splits the embedding into ``num_heads`` heads, so there the
    embedding axis is ``num_heads`` tied pieces and ``q_role`` is ``"in"``; timm's infers the
    head dimension from the projection, so it has its own axis (``"qkv_head_dim"``).
    """

    def __init__(
        self,
        module: nn.Module,
        tensors: dict[str, dict[int, str]],
        partitions: PartitionSpec,
        *,
        q_role: str,
        rescaled: bool,
        integrated: dict[str, int] | None = None,
        rule: str = "rectangle",
    ) -> None:
        super().__init__(module, tensors, partitions, integrated=integrated, rule=rule)
        self.q_role, self.rescaled = q_role, rescaled
        # the tensors whose rows are q | k | v
        self.qkv_names = [n for n, dims in tensors.items() if dims.get(0) in ("qkv", q_role)]
        if self.is_continuous(q_role):
            with torch.no_grad():
                for name in self.qkv_names:
                    function = getattr(self, f"{self.tensor_names[name]}_function", None)
                    if function is not None:
                        q = function.values[: function.values.shape[0] // 3]
                        q /= _rows(self._full_scale(q_role, q)[: q.shape[0]], q)

    def tensors(self) -> dict[str, Tensor]:
        t = super().tensors()
        if not self.is_continuous(self.q_role):
            return t
        parts = self.segment_partitions(self.q_role)
        ratio = sum(p.size for p in parts) / sum(p.full_size for p in parts)
        for name in self.qkv_names:
            if name in t:
                qkv = t[name]
                third = qkv.shape[0] // 3
                scale = self.quadrature_scale(self.q_role, qkv)[:third]
                if self.rescaled:
                    scale = scale * ratio**0.5
                t[name] = torch.cat([qkv[:third] * _rows(scale, qkv), qkv[third:]])
        return t

    def fit_sizes(self, module: nn.Module) -> None:
        super().fit_sizes(module)
        if self.q_role == "in" and hasattr(module, "head_dim"):  # MaxViT reshapes with it
            heads = getattr(module, "n_heads", getattr(module, "num_heads", 1))
            module.head_dim = self.widths()["in"] // heads


def _rows(scale: Tensor, like: Tensor) -> Tensor:
    """``scale`` shaped to multiply the rows of ``like``."""
    return scale.to(like).reshape(-1, *[1] * (like.dim() - 1))


@register_integral_layer("attention")
def attention_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    """Self-attention (``nn.MultiheadAttention``, timm's ``Attention``): one head-dim partition
    shared by every head of q, k and v."""
    parts = request.partitions
    head_dim = parts["qkv_head_dim"]
    spec = {"in": parts["in"], "out": parts["out"], "head_dim": head_dim and head_dim[:1]}
    return IntegralAttention(module, spec, rule=request.rule)


@register_integral_layer("window_attention")
def window_attention_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    """Window attention (Swin's, MaxViT's, timm's) resampled through its own ``forward``."""
    timm_style = "qkv_head_dim" in request.partitions  # head dim inferred, not C // heads
    return IntegralWindowAttention(
        module,
        request.tensors,
        request.partitions,
        q_role="qkv_head_dim" if timm_style else "in",
        # the logits' scale: Swin's follows the head dim, timm's where fused, MaxViT's is fixed
        rescaled=bool(getattr(module, "fused_attn", not hasattr(module, "scale_factor"))),
        integrated=request.integrated,
        rule=request.rule,
    )
