"""Integral convolutions: Conv1d/2d/3d and ConvTranspose1d/2d/3d (dense, grouped, depthwise)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from inn.errors import ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec, fill, shared_partition
from inn.layers.registry import LayerRequest, register_integral_layer

__all__ = [
    "IntegralConv1d",
    "IntegralConv2d",
    "IntegralConv3d",
    "IntegralConvTranspose1d",
    "IntegralConvTranspose2d",
    "IntegralConvTranspose3d",
    "conv_mode",
    "conv_transpose_layer",
    "convolution_layer",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TYPES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def conv_mode(conv: nn.Module) -> str:
    """``"dense"`` (groups = 1), ``"depthwise"`` (one input and one output channel per group:
    the input and output channels are one axis) or ``"grouped"`` (fixed number of groups whose
    widths are continuous)."""
    if conv.groups == 1:
        return "dense"
    if conv.in_channels == conv.out_channels == conv.groups:
        return "depthwise"
    return "grouped"


class _IntegralConvNd(IntegralLayer):
    """Convolution whose weight is continuous along its output and input channels.

    * dense: ``W(s, t)`` with ``s`` = out channel, ``t`` = in channel (integrated).
    * grouped (``g`` groups): per-group axes; the ``"out"``/``"in"`` partitions describe one
      group and are shared by all groups; the number of groups stays ``g``.
    * depthwise: a single channel axis; ``"out"`` and ``"in"`` are the same partition and the
      number of groups follows its size.

    Args:
        conv: the discrete convolution to start from.
        partitions: ``{"out": ..., "in": ...}`` (a missing or ``None`` role stays discrete).
        rule: quadrature rule of the input axis.
        out_block: output features per output channel (dense and grouped): before a
            ``PixelShuffle(r)`` the ``C r^2`` outputs are ``C`` channels of ``r^2`` sub-pixels
            each; only ``C`` is continuous, whole blocks are kept or dropped.
    """

    nd: int

    def __init__(
        self,
        conv: nn.Module,
        partitions: PartitionSpec | None = None,
        *,
        rule: str = "rectangle",
        out_block: int = 1,
    ) -> None:
        super().__init__(rule)
        if not isinstance(conv, _CONV_TYPES[self.nd]):
            raise ShapeError(
                f"{type(self).__name__} needs an nn.Conv{self.nd}d, got {type(conv).__name__}"
            )
        self.mode = conv_mode(conv)
        self.groups_full = conv.groups
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.padding_mode = conv.padding_mode
        self.full_out, self.full_in = conv.out_channels, conv.in_channels
        w, g = conv.weight, conv.groups
        self.out_block = out_block
        if self.mode == "depthwise" and out_block != 1:
            raise ShapeError("a depthwise convolution has no output blocks (out_block must be 1)")
        if self.mode == "depthwise":
            shared = shared_partition(
                partitions, conv.out_channels, rule, "a depthwise convolution"
            )
            self._set_partitions({"out": shared, "in": shared}, {"out": g, "in": g}, rule)
            self._register("weight", w, {0: "out"})
            self._register("bias", conv.bias, {0: "out"})
            return
        if out_block < 1 or (w.shape[0] // g) % out_block:
            raise ShapeError(
                f"out_block={out_block} does not divide the {w.shape[0] // g} output channels per "
                f"group of the {type(conv).__name__}"
            )
        per_group = w.shape[0] // g // out_block
        self._set_partitions(partitions, {"out": per_group, "in": w.shape[1]}, rule)
        # (groups, channels[, block], in, *kernel); no block dim at 1: state_dicts stay as before
        shape = (g, per_group, out_block) if out_block > 1 else (g, per_group)
        last = len(shape) - 1
        weight = w.reshape(*shape, *w.shape[1:])
        self._register("weight", weight, {1: "out", last + 1: "in"}, integrated=last + 1,
                       merge=(0, last))  # fmt: skip
        bias = None if conv.bias is None else conv.bias.reshape(shape)
        self._register("bias", bias, {1: "out"}, merge=(0, last))

    @property
    def groups(self) -> int:
        return self.size("out", self.full_out) if self.mode == "depthwise" else self.groups_full

    @property
    def out_channels(self) -> int:
        if self.mode == "depthwise":
            return self.groups
        per_group = self.full_out // self.groups_full // self.out_block
        return self.size("out", per_group) * self.out_block * self.groups_full

    @property
    def in_channels(self) -> int:
        if self.mode == "depthwise":
            return self.groups
        return self.size("in", self.full_in // self.groups_full) * self.groups_full

    def _padding_args(self) -> tuple[Any, tuple[int, ...] | None]:
        if self.padding_mode == "zeros" or isinstance(self.padding, str):
            return self.padding, None
        pad = tuple(p for p in reversed(self.padding) for _ in range(2))
        return 0, pad

    def forward(self, x: Tensor) -> Tensor:
        t = self.sampled()
        padding, explicit = self._padding_args()
        if explicit is not None:
            x = F.pad(x, explicit, mode=self.padding_mode)
        return _CONV[self.nd](
            x, t["weight"], t.get("bias"), self.stride, padding, self.dilation, self.groups
        )

    def to_discrete(self) -> nn.Module:
        t = self.sampled()
        w = t["weight"]
        layer = _CONV_TYPES[self.nd](
            self.in_channels,
            self.out_channels,
            tuple(w.shape[2:]),
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias="bias" in t,
            padding_mode=self.padding_mode,
            device=w.device,
            dtype=w.dtype,
        )
        return fill(layer, t)


class IntegralConv1d(_IntegralConvNd):
    nd = 1


class IntegralConv2d(_IntegralConvNd):
    nd = 2


class IntegralConv3d(_IntegralConvNd):
    nd = 3


_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_CONV_TRANSPOSE_TYPES = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


class _IntegralConvTransposeNd(IntegralLayer):
    """Transposed convolution whose weight ``(in, out / groups, *kernel)`` is continuous along
    its input (integrated) and output channels: dense, grouped (per-group axes shared by every
    group, the group count stays) or depthwise (one axis; the group count follows it).

    Args:
        conv: the discrete transposed convolution (``padding_mode="zeros"``).
        partitions: ``{"out": ..., "in": ...}`` (one group's channels where grouped).
        rule: quadrature rule of the input axis.
    """

    nd: int

    def __init__(
        self, conv: nn.Module, partitions: PartitionSpec | None = None, *, rule: str = "rectangle"
    ) -> None:
        super().__init__(rule)
        if not isinstance(conv, _CONV_TRANSPOSE_TYPES[self.nd]):
            raise ShapeError(
                f"{type(self).__name__} needs an nn.ConvTranspose{self.nd}d, got "
                f"{type(conv).__name__}"
            )
        if conv.padding_mode != "zeros":
            raise ShapeError(
                f"{type(conv).__name__} supports padding_mode='zeros' only, got "
                f"{conv.padding_mode!r}"
            )
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.output_padding = conv.output_padding
        self.full_in, self.full_out, self.groups_full = (
            conv.in_channels, conv.out_channels, conv.groups,
        )  # fmt: skip
        self.mode = conv_mode(conv)
        w, g = conv.weight, conv.groups
        if self.mode == "depthwise":
            shared = shared_partition(partitions, g, rule, "a depthwise transposed convolution")
            self._set_partitions({"out": shared, "in": shared}, {"out": g, "in": g}, rule)
            self._register("weight", w, {0: "out"})
            self._register("bias", conv.bias, {0: "out"})
            return
        per_in, per_out = conv.in_channels // g, conv.out_channels // g
        self._set_partitions(partitions, {"out": per_out, "in": per_in}, rule)
        weight = w.reshape(g, per_in, *w.shape[1:])
        self._register("weight", weight, {1: "in", 2: "out"}, integrated=1, merge=(0, 1))
        bias = None if conv.bias is None else conv.bias.reshape(g, per_out)
        self._register("bias", bias, {1: "out"}, merge=(0, 1))

    @property
    def groups(self) -> int:
        return self.size("out", self.full_out) if self.mode == "depthwise" else self.groups_full

    @property
    def in_channels(self) -> int:
        if self.mode == "depthwise":
            return self.groups
        return self.size("in", self.full_in // self.groups_full) * self.groups_full

    @property
    def out_channels(self) -> int:
        if self.mode == "depthwise":
            return self.groups
        return self.size("out", self.full_out // self.groups_full) * self.groups_full

    def forward(self, x: Tensor) -> Tensor:
        t = self.sampled()
        return _CONV_TRANSPOSE[self.nd](
            x, t["weight"], t.get("bias"), self.stride, self.padding, self.output_padding,
            self.groups, self.dilation,
        )  # fmt: skip

    def to_discrete(self) -> nn.Module:
        t = self.sampled()
        w = t["weight"]
        layer = _CONV_TRANSPOSE_TYPES[self.nd](
            self.in_channels,
            self.out_channels,
            tuple(w.shape[2:]),
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            dilation=self.dilation,
            bias="bias" in t,
            device=w.device,
            dtype=w.dtype,
        )
        return fill(layer, t)


class IntegralConvTranspose1d(_IntegralConvTransposeNd):
    nd = 1


class IntegralConvTranspose2d(_IntegralConvTransposeNd):
    nd = 2


class IntegralConvTranspose3d(_IntegralConvTransposeNd):
    nd = 3


_CONVS = {_CONV_TYPES[c.nd]: c for c in (IntegralConv1d, IntegralConv2d, IntegralConv3d)}
_CONV_TRANSPOSES = {
    _CONV_TRANSPOSE_TYPES[c.nd]: c
    for c in (IntegralConvTranspose1d, IntegralConvTranspose2d, IntegralConvTranspose3d)
}


@register_integral_layer(*_CONVS, kinds=("conv", "grouped", "depthwise"))
def convolution_layer(conv: nn.Module, request: LayerRequest) -> IntegralLayer:
    """The integral layer of an ``nn.Conv1d/2d/3d``: a grouped one takes one group's output
    partitions; a dense or grouped one keeps whole blocks of output features."""
    parts = request.partitions
    if request.kind == "depthwise":
        return _CONVS[type(conv)](conv, parts, rule=request.rule)
    if request.kind == "grouped":
        out = parts["out"]
        parts = {**parts, "out": None if out is None else out[: len(out) // request.groups]}
    block = request.blocks["out"][0]  # one per layer (the analysis pins mixed blocks)
    return _CONVS[type(conv)](conv, parts, rule=request.rule, out_block=block)


@register_integral_layer(*_CONV_TRANSPOSES, kinds=("conv_transpose", "depthwise"))
def conv_transpose_layer(conv: nn.Module, request: LayerRequest) -> IntegralLayer:
    """The integral layer of an ``nn.ConvTranspose1d/2d/3d``: a grouped one takes one group's
    input and output partitions."""
    parts = request.partitions
    if request.kind == "conv_transpose" and request.groups > 1:
        parts = {
            r: None if p is None else p[: len(p) // request.groups]
            for r, p in parts.items()
            if r in ("in", "out")
        }
    return _CONV_TRANSPOSES[type(conv)](conv, parts, rule=request.rule)
