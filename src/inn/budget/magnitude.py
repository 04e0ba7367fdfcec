"""Channel magnitudes: how strongly each channel is made and read, and the widths they imply.

:func:`channel_scores` ranks a group's channels (the channels a selection keeps,
:func:`keep_strongest`). :func:`~inn.budget.sensitivity.magnitude_table` turns the ranking into
a sensitivity table for :func:`inn.budget.plan` (``sensitivity="magnitude"``): within each group
the scores are normalised as in LAMP (Lee et al., "Layer-adaptive sparsity for the magnitude-based
pruning", ICLR 2021: a score over the sum of the scores not smaller than it, so the strongest
channel of every group scores 1), and one threshold across all groups sets every width. It is
the allocation of global magnitude pruning; it needs no data and no forward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = ["channel_scores", "keep_strongest", "lamp_scores"]


def channel_scores(imodel: IntegralModel) -> dict[str, Tensor]:
    """Per resizable group, one importance per lattice node, shape ``(full_size,)``: the L1
    norm of every weight that makes or reads the channel (the producing layers' kernels and the
    consuming layers' input columns, :meth:`IntegralLayer.weight_axes`), summed over layers.
    Groups that no weight touches are absent.

    Scales, biases and statistics are left out (a BatchNorm's statistics only echo the kernel
    before it, which is counted already). The reading weights are in because a channel matters
    as much as it is read: on the zoo's EfficientNet, ranking by the producing kernels alone
    kept about 1 point less in ``inn.prune`` at 30 % of the parameters and at half the MACs
    (``docs/notebook.md``, "Which channels a selection keeps")."""
    scores: dict[str, Tensor] = {}
    for name, rows in imodel.tensor_segments(weights=True):
        l1 = rows.double().cpu().abs().sum(1)
        scores[name] = scores[name] + l1 if name in scores else l1
    return scores


def keep_strongest(imodel: IntegralModel, name: str, scores: Tensor) -> None:
    """Group ``name`` keeps, at its current width, the original channels of the largest
    ``scores`` (:func:`channel_scores`) instead of resampled ones."""
    partition = imodel.partition(name)
    partition.select(torch.topk(scores, partition.size).indices.tolist())


def lamp_scores(scores: Tensor) -> Tensor:
    """``(N,)`` scores, each divided by the sum of the scores not smaller than it, sorted
    ascending: non-decreasing, the last (the strongest channel) is 1."""
    ordered = torch.sort(scores.double()).values
    at_least = ordered.flip(0).cumsum(0).flip(0)
    return ordered / at_least.clamp_min(torch.finfo(torch.float64).tiny)
