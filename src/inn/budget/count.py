"""Parameter and multiply-accumulate counts of plain PyTorch modules (an exported model, a
baseline): what a budget is measured against. The same counts of an integral model as
functions of its widths are :func:`inn.budget.cost_model`."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import torch
from torch import Tensor, nn

__all__ = ["count_macs", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Elements of every parameter of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example_inputs: Tensor | Sequence[Tensor]) -> int:
    """Multiply-accumulates of the convolution and linear layers for one forward pass.

    Counted per layer from its output shape: ``out.numel() * in_channels / groups * kernel``
    for convolutions, ``out.numel() * in_features`` for linear layers.
    """
    total = 0

    def conv_hook(m: nn.Module, _: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        total += out.numel() * (m.weight.shape[1] * prod(m.weight.shape[2:]))

    def transpose_hook(m: nn.Module, inputs: tuple[Tensor, ...], _: Tensor) -> None:
        nonlocal total
        total += inputs[0].numel() * prod(m.weight.shape[1:])

    def linear_hook(m: nn.Module, _: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            handles.append(m.register_forward_hook(transpose_hook))
        elif isinstance(m, nn.modules.conv._ConvNd):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    inputs = (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total
