"""Applying channel orders: reorder every group of a traced network in place."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from inn.graph import GraphAnalysis, Member, group_members
from inn.permute.order import EXACT_WORK, order_channels

__all__ = ["PermutationReport", "permute_groups"]

log = logging.getLogger(__name__)


@dataclass
class PermutationReport:
    """What :func:`permute_groups` did: ``{group name: (total variation before, after)}`` and
    the seconds spent on channel distances and on ordering (the solver)."""

    total_variation: dict[str, tuple[float, float]] = field(default_factory=dict)
    distance_seconds: float = 0.0
    order_seconds: float = 0.0


def _channels(tensor: Tensor, m: Member) -> Tensor:
    """The member's channels as rows, shape ``(size, -1)``."""
    part = tensor.detach().narrow(m.dim, m.offset, m.size * m.block).movedim(m.dim, 0)
    return part.reshape(m.size, -1)


def _apply(root: nn.Module, m: Member, order: Tensor) -> None:
    """Put the member's channels in ``order`` (int64, shape ``(size,)``), in place."""
    module = root.get_submodule(m.module)
    tensor: Tensor = getattr(module, m.tensor)
    index = torch.arange(tensor.shape[m.dim], device=tensor.device)
    block = torch.arange(m.block, device=tensor.device)
    moved = (order.to(tensor.device)[:, None] * m.block + block).reshape(-1) + m.offset
    index[m.offset : m.offset + m.size * m.block] = moved
    with torch.no_grad():
        tensor.copy_(tensor.index_select(m.dim, index))


def permute_groups(
    root: nn.Module,
    analysis: GraphAnalysis,
    *,
    solver: str = "greedy-2opt",
    seed: int = 0,
    work: float = EXACT_WORK,
) -> PermutationReport:
    """Reorder the channels of every resizable group in place; outputs do not change.

    Each group is ordered by :func:`inn.permute.order_channels` over all its member slices.

    Args:
        solver: see :func:`inn.permute.open_path_order`.
        seed: seed of the solver and of the column samples of wide groups.
        work: largest ``n^2 * d / 2`` (absolute differences, ``n`` channels of ``d`` values in
            all) for which a group's exact distance matrix is computed; wider groups are ordered
            from a Euclidean proxy and the L1 distances of candidate edges only (see
            :func:`inn.permute.order_channels`).

    Returns:
        the exact total variation (L1 over all member slices) of every permuted group before and
        after, and the time spent on distances and in the solver.
    """
    report = PermutationReport()
    groups = tqdm(
        list(group_members(root, analysis).items()),
        desc="permuting channels",
        leave=False,
        disable=None,  # a bar in a terminal only (conversions of large models take a while)
    )
    for key, members in groups:
        group = analysis.groups[key]
        if not group.resizable or group.full_size < 3:
            continue
        rows = [_channels(getattr(root.get_submodule(m.module), m.tensor), m) for m in members]
        result = order_channels([(r, 0) for r in rows], solver=solver, seed=seed, exact_work=work)
        report.distance_seconds += result.distance_seconds
        report.order_seconds += result.order_seconds
        report.total_variation[group.name] = (result.before, result.after)
        log.debug("group %s: total variation %.4g -> %.4g", group.name, result.before, result.after)
        if torch.equal(result.order, torch.arange(group.full_size)):
            continue
        for m in members:
            _apply(root, m, result.order)
    return report
