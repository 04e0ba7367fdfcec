"""Torch-Pruning (Fang et al., DepGraph, CVPR 2023), the structured pruner users pick today, as
the peer of the budget and pruning experiments. An optional import: ``pip install
-e lab`` brings it; the library itself never needs it.

Every peer run is: choose channels with one of Torch-Pruning's importances and its global
ranking, in small steps until the parameter (or MAC) budget is met; re-estimate BatchNorm
statistics on the calibration images (EagleEye's adaptive BatchNorm: forward passes in train
mode, no gradient); optionally spend the calibration budget on biases and BatchNorm parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from inn import InnError

__all__ = ["IMPORTANCES", "torch_pruning_prune"]

IMPORTANCES = ("lamp", "l1", "taylor")
_STEPS = 200  # Torch-Pruning's own recipe reaches MAC targets in 200 small steps


def _tp():
    try:
        import torch_pruning
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise InnError(
            'the Torch-Pruning peer needs torch-pruning: pip install torch-pruning==1.6.1'
        ) from error
    return torch_pruning


def _importance(name: str):
    tp = _tp()
    if name == "lamp":
        return tp.importance.LAMPImportance(p=2)
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise InnError(f"unknown importance {name!r}; choose one of {IMPORTANCES}")


def torch_pruning_prune(
    model: nn.Module,
    example: Tensor,
    calib: Sequence[tuple[Tensor, Tensor]],
    cost: Callable[[nn.Module], float],
    target: float,
    *,
    importance: str = "lamp",
) -> nn.Module:
    """A pruned copy of ``model`` whose ``cost`` is at most ``target`` (global ranking).

    Channels are removed in ``_STEPS`` steps of Torch-Pruning's linear schedule up to 95 % of
    the channels, stopping at the first step that meets the target. The last convolution or
    linear layer (the one that produces the classes) is never pruned. BatchNorm is kept (not
    folded), as Torch-Pruning users do.
    """
    tp = _tp()
    pruned = copy.deepcopy(model).eval()
    # the layer that produces the classes (a Linear, or NIN's last 1x1 convolution) keeps them
    heads = [m for m in pruned.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1:]
    pruner = tp.pruner.MetaPruner(
        pruned,
        example,
        importance=_importance(importance),
        global_pruning=True,
        pruning_ratio=0.95,
        iterative_steps=_STEPS,
        ignored_layers=heads,
    )
    x, y = calib[0]
    for _ in range(_STEPS):
        if cost(pruned) <= target:
            break
        if importance == "taylor":
            pruned.zero_grad()
            nn.functional.cross_entropy(pruned(x), y).backward()
        pruner.step()
    pruned.zero_grad(set_to_none=True)
    if cost(pruned) > target:
        raise InnError(f"Torch-Pruning could not reach the target {target:.4g}")
    return pruned.eval()
