"""A graph pass: folding each BatchNorm into the convolution or linear layer before it (eval
semantics), on the traced model."""

from __future__ import annotations

from collections import Counter

import torch
import torch.fx as fx
from torch import nn

__all__ = ["fold_batchnorms", "foldable"]

_FOLDABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _fold(layer: nn.Module, norm: nn.modules.batchnorm._BatchNorm) -> None:
    """Scale ``layer``'s output channels in place so that ``layer`` alone computes ``norm(layer(x))``."""
    with torch.no_grad():
        scale = torch.rsqrt(norm.running_var.double() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        weight = layer.weight
        view = (-1,) + (1,) * (weight.dim() - 1)
        if layer.bias is None:
            layer.bias = nn.Parameter(
                torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
            )
        new_bias = layer.bias.double() * scale + shift
        weight.copy_((weight.double() * scale.reshape(view)).to(weight.dtype))
        layer.bias.copy_(new_bias.to(weight.dtype))


def foldable(
    gm: fx.GraphModule, layer_types: tuple[type, ...] = _FOLDABLE
) -> list[tuple[fx.Node, fx.Node]]:
    """``(layer node, BatchNorm node)`` pairs where the BatchNorm's only input is the output of a
    conv/linear layer (of ``layer_types``) used by nothing else, each module called once."""
    calls = Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_module")
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        norm = gm.get_submodule(str(node.target))
        if not _has_statistics(norm):
            continue
        prev = node.args[0] if node.args else None
        if not isinstance(prev, fx.Node) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        layer = gm.get_submodule(str(prev.target))
        if (
            not isinstance(layer, layer_types)
            or calls[str(prev.target)] != 1
            or calls[str(node.target)] != 1
        ):
            continue
        meta = prev.meta.get("tensor_meta")
        if _is_linear(layer) and (meta is None or len(meta.shape) != 2):
            continue  # BatchNorm1d on (N, L, C) normalises another axis than the Linear's output
        pairs.append((prev, node))
    return pairs


def _has_statistics(module: nn.Module) -> bool:
    """A BatchNorm (plain or integral) with running statistics."""
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm):
        return module.running_mean is not None
    # integral BatchNorms; not subclasses that do more (timm's BatchNormAct2d activates too)
    return (
        getattr(module, "is_norm", False)
        and hasattr(module, "set_statistics")
        and (getattr(module, "running_mean_function", None) is not None)
    )


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or hasattr(module, "in_features")


def fold_batchnorms(gm: fx.GraphModule) -> list[str]:
    """Fold every BatchNorm whose only input is a conv/linear output used by nothing else.

    Returns:
        The names of the folded BatchNorm modules (removed from the graph). BatchNorms that
        cannot be folded (after a concatenation, an activation, a shared layer) are left in place.
    """
    folded = []
    for prev, node in foldable(gm):
        _fold(gm.get_submodule(str(prev.target)), gm.get_submodule(str(node.target)))
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded.append(str(node.target))
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return folded
