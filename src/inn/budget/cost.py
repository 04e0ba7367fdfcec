"""Parameter and MAC counts of an integral model as functions of its group widths.

Every count the budget needs is a sum of terms ``c * A(w) * B(w)``: ``c`` a constant (kernel
size, spatial positions), ``A`` and ``B`` the sizes of a tensor's two channel axes, each the
sum of the widths of the groups whose partitions make up the axis (several for concatenated
channels). :class:`CostModel` holds those terms as two sparse-in-spirit matrices, so a cost and
the change of cost for shrinking any one group are a few vector operations: planning does not
sample or run the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from inn.convert.fold import foldable
from inn.layers import IntegralLayer
from inn.layers.conv import IntegralConvTranspose2d, _IntegralConvNd
from inn.layers.linear import IntegralLinear

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = ["CostModel", "cost_models"]

_MAC_LAYERS = (_IntegralConvNd, IntegralLinear, IntegralConvTranspose2d)
_PLAIN_MAC_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)
_FOLD_INTO = (_IntegralConvNd, IntegralLinear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class CostModel:
    """``cost(w) = constant + sum_t coefficient[t] * (A[t] @ w + a0[t]) * (B[t] @ w + b0[t])``.

    Attributes:
        groups: group names, the order of ``w``.
        coefficient: ``(T,)``; ``A``, ``B``: ``(T, G)`` counts of each group in a term's axis;
        a0, b0: ``(T,)`` the constant part of each axis (1 where the axis is not a channel axis).
    """

    groups: tuple[str, ...]
    constant: float
    coefficient: np.ndarray
    A: np.ndarray
    a0: np.ndarray
    B: np.ndarray
    b0: np.ndarray

    def __call__(self, widths: np.ndarray) -> float:
        """The cost at ``widths`` ``(G,)`` (every group, in ``groups`` order)."""
        return float(
            self.constant
            + self.coefficient @ ((self.A @ widths + self.a0) * (self.B @ widths + self.b0))
        )

    def savings(self, widths: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Per group ``g``: cost at ``widths`` minus cost with group ``g`` alone ``steps[g]``
        narrower, shape ``(G,)``."""
        a = self.A @ widths + self.a0
        b = self.B @ widths + self.b0
        ca, cb = self.coefficient * a, self.coefficient * b
        linear = cb @ self.A + ca @ self.B
        square = self.coefficient @ (self.A * self.B)
        return steps * linear - steps**2 * square

    def scaled(self, factor: float, constant: float = 0.0) -> CostModel:
        return CostModel(
            self.groups, self.constant * factor + constant, self.coefficient * factor,
            self.A, self.a0, self.B, self.b0,
        )  # fmt: skip

    def plus(self, other: CostModel) -> CostModel:
        """The sum of two cost models over the same groups."""
        return CostModel(
            self.groups,
            self.constant + other.constant,
            np.concatenate([self.coefficient, other.coefficient]),
            np.concatenate([self.A, other.A]),
            np.concatenate([self.a0, other.a0]),
            np.concatenate([self.B, other.B]),
            np.concatenate([self.b0, other.b0]),
        )


class _Terms:
    """Collects terms ``c * axis_a * axis_b``; an axis is a list of partitions (or ``None``)."""

    def __init__(self, index: Mapping[int, int], num_groups: int) -> None:
        self.index, self.num_groups = index, num_groups
        self.constant = 0.0
        self.rows: list[tuple[float, np.ndarray, float, np.ndarray, float]] = []

    def _axis(self, partitions: Sequence | None) -> tuple[np.ndarray, float]:
        row = np.zeros(self.num_groups)
        if not partitions:
            return row, 1.0
        for p in partitions:
            row[self.index[id(p)]] += 1
        return row, 0.0

    def add(self, coefficient: float, a: Sequence | None, b: Sequence | None) -> None:
        if not a and not b:
            self.constant += coefficient
            return
        ra, a0 = self._axis(a)
        rb, b0 = self._axis(b)
        self.rows.append((coefficient, ra, a0, rb, b0))

    def model(self, groups: tuple[str, ...]) -> CostModel:
        g = self.num_groups
        if not self.rows:
            empty = np.zeros((0, g))
            return CostModel(
                groups, self.constant, np.zeros(0), empty, np.zeros(0), empty, np.zeros(0)
            )
        c, ra, a0, rb, b0 = zip(*self.rows, strict=True)
        return CostModel(
            groups,
            self.constant,
            np.array(c),
            np.stack(ra),
            np.array(a0),
            np.stack(rb),
            np.array(b0),
        )


def _tensor_axes(layer: IntegralLayer, name: str) -> tuple[float, list[list]]:
    """Constant part of a tensor's size and the partitions of each of its channel axes."""
    roles, _, _ = layer._layouts[name]
    shape = getattr(layer, f"{name}_function").values.shape
    constant = prod(n for d, n in enumerate(shape) if d not in roles)
    return float(constant), [layer.segment_partitions(r) for _, r in sorted(roles.items())]


def _positions(imodel: IntegralModel) -> dict[str, float]:
    """Output positions (batch x spatial) of every conv / linear module at the example input,
    summed over its calls (a module called twice works twice): its MACs are its weight's size
    times this."""
    positions: dict[str, float] = {}
    handles = []

    def hook(name: str, transposed: bool):
        def record(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
            if transposed:
                x = inputs[0]
                positions[name] = positions.get(name, 0.0) + x.numel() / x.shape[1]
            else:
                channels = (
                    out.shape[-1]
                    if isinstance(module, (IntegralLinear, nn.Linear))
                    else out.shape[1]
                )
                positions[name] = positions.get(name, 0.0) + out.numel() / channels

        return record

    for name, module in imodel.graph_module.named_modules():
        if isinstance(module, _MAC_LAYERS + _PLAIN_MAC_LAYERS):
            transposed = isinstance(
                module, (IntegralConvTranspose2d, nn.modules.conv._ConvTransposeNd)
            )
            handles.append(module.register_forward_hook(hook(name, transposed)))
    try:
        device = next(imodel.parameters()).device
        with torch.no_grad():
            imodel(*[x.to(device) for x in imodel.example_inputs])
    finally:
        for h in handles:
            h.remove()
    return positions


def _output_factor(layer: IntegralLayer, continuous: bool) -> float:
    """Output channels of ``layer`` per point of its ``"out"`` axis (all of them if discrete)."""
    if not continuous:
        return float(getattr(layer, "out_features", None) or layer.out_channels)
    if isinstance(layer, _IntegralConvNd) and layer.mode == "grouped":
        return float(layer.groups_full)
    return 1.0


def cost_models(imodel: IntegralModel) -> dict[str, CostModel]:
    """``{"params": ..., "macs": ..., "activations": ...}`` of ``imodel``: parameters of the
    exported model, multiply-accumulates of its convolutions and linear layers at the example
    input, and the elements of their outputs (a memory-traffic proxy used by the latency model),
    as functions of the widths of ``imodel.groups``. Memoised on ``imodel`` (they depend on its
    structure and example input only; counting runs one forward pass)."""
    if "_cost_counts" not in imodel.__dict__:
        imodel.__dict__["_cost_counts"] = _count(imodel)
    return imodel.__dict__["_cost_counts"]


def _count(imodel: IntegralModel) -> dict[str, CostModel]:
    names = tuple(g.name for g in imodel.groups)
    index = {id(imodel._partitions[n]): i for i, n in enumerate(names)}
    params, macs, acts = (_Terms(index, len(names)) for _ in range(3))
    positions = _positions(imodel)
    # BatchNorms that export() folds: their parameters vanish, the layer before gets a bias
    pairs = foldable(imodel.graph_module, _FOLD_INTO)
    folded = {str(norm.target) for _, norm in pairs}
    for layer_node, _ in pairs:
        layer = imodel.graph_module.get_submodule(str(layer_node.target))
        if isinstance(layer, IntegralLayer) and layer.bias_function is None:
            out = layer.segment_partitions("out")
            params.add(_output_factor(layer, bool(out)), out, None)
        elif not isinstance(layer, IntegralLayer) and layer.bias is None:
            params.add(layer.weight.shape[0], None, None)
    seen: set[int] = set()
    for name, module in imodel.graph_module.named_modules():
        if name in folded:
            seen.update(id(p) for p in module.parameters())
            continue
        if isinstance(module, IntegralLayer):
            seen.update(id(p) for n, p in module.named_parameters() if not n.startswith("module."))
            for tensor in module._layouts:
                values = getattr(module, f"{tensor}_function").values
                constant, axes = _tensor_axes(module, tensor)
                axes += [None] * (2 - len(axes))
                if isinstance(values, nn.Parameter):
                    params.add(constant, *axes)
                if tensor == "weight" and isinstance(module, _MAC_LAYERS):
                    macs.add(constant * positions[name], *axes)
                    out_axis = module.segment_partitions("out")
                    acts.add(
                        positions[name] * _output_factor(module, bool(out_axis)), out_axis, None
                    )
        elif isinstance(module, _PLAIN_MAC_LAYERS) and name in positions:
            macs.add(module.weight.numel() * positions[name], None, None)
            channels = module.weight.shape[
                1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
            ]
            acts.add(positions[name] * channels, None, None)
    params.constant += sum(p.numel() for p in imodel.graph_module.parameters() if id(p) not in seen)
    return {
        "params": params.model(names),
        "macs": macs.model(names),
        "activations": acts.model(names),
    }
