"""Integral fully connected layer."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from inn.errors import ShapeError
from inn.layers.base import IntegralLayer, PartitionSpec, fill
from inn.layers.registry import LayerRequest, register_integral_layer

__all__ = ["IntegralLinear", "linear_layer"]


class IntegralLinear(IntegralLayer):
    """``y = x W^T + b`` with ``W(s, t)`` continuous along outputs ``s`` and inputs ``t``.

    Args:
        linear: the discrete layer to start from (its weights are reproduced exactly at full width).
        partitions: ``{"out": ..., "in": ...}``; a missing or ``None`` role stays discrete.
            Default: a new partition for each role.
        rule: quadrature rule of the input axis.
        in_block: input features per input channel: a Linear after ``flatten`` of ``C x H x W``
            has ``C`` channels of ``H * W`` features each; only ``C`` is continuous.

    Shape:
        input ``(*, in_features)``, output ``(*, out_features)`` at the current partitions.
    """

    def __init__(
        self,
        linear: nn.Linear,
        partitions: PartitionSpec | None = None,
        *,
        rule: str = "rectangle",
        in_block: int = 1,
    ) -> None:
        super().__init__(rule)
        out_features, in_features = linear.weight.shape
        if in_block < 1 or in_features % in_block:
            raise ShapeError(
                f"in_block={in_block} does not divide in_features={in_features} of the Linear layer"
            )
        self.in_block = in_block
        self._set_partitions(partitions, {"out": out_features, "in": in_features // in_block}, rule)
        weight = linear.weight.reshape(out_features, in_features // in_block, in_block)
        self._register("weight", weight, {0: "out", 1: "in"}, integrated=1, merge=(1, 2))
        self._register("bias", linear.bias, {0: "out"})
        self.full_out, self.full_in = out_features, in_features // in_block

    @property
    def out_features(self) -> int:
        return self.size("out", self.full_out)

    @property
    def in_features(self) -> int:
        return self.size("in", self.full_in) * self.in_block

    def forward(self, x: Tensor) -> Tensor:
        t = self.sampled()
        return F.linear(x, t["weight"], t.get("bias"))

    def to_discrete(self) -> nn.Linear:
        t = self.sampled()
        ref = t["weight"]
        layer = nn.Linear(
            self.in_features,
            self.out_features,
            bias="bias" in t,
            device=ref.device,
            dtype=ref.dtype,
        )
        return fill(layer, t)


@register_integral_layer(nn.Linear, kinds=("linear",))
def linear_layer(linear: nn.Module, request: LayerRequest) -> IntegralLayer:
    """The integral layer of an ``nn.Linear``, keeping whole blocks of input features."""
    block = request.blocks["in"][0]  # one per layer (the analysis pins mixed blocks)
    return IntegralLinear(linear, request.partitions, rule=request.rule, in_block=block)
