"""Reordering the channels of every group so that weights vary smoothly along the channel axis."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from inn.graph import GraphAnalysis
from inn.permute import channel_distances, open_path_order, total_variation

__all__ = ["Member", "PermutationReport", "group_members", "permute_groups"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A run of channels of one tensor that belongs to a group.

    ``tensor.narrow(dim, offset, size * block)`` holds the group's ``size`` channels, each
    ``block`` consecutive entries wide.
    """

    module: str
    tensor: str
    dim: int
    offset: int
    size: int
    block: int


@dataclass
class PermutationReport:
    """What :func:`permute_groups` did: ``{group name: (total variation before, after)}`` and
    the seconds spent on channel distances and on ordering (the solver)."""

    total_variation: dict[str, tuple[float, float]] = field(default_factory=dict)
    distance_seconds: float = 0.0
    order_seconds: float = 0.0


def group_members(root: nn.Module, analysis: GraphAnalysis) -> dict[int, list[Member]]:
    """Every tensor slice that belongs to each group (keyed by the group's root axis)."""
    members: dict[int, list[Member]] = {}
    for roles in analysis.modules.values():
        for role, axes in roles.tensor_axes().items():
            for path, dim in axes:
                prefix, _, tensor_name = path.rpartition(".")
                owner = ".".join(p for p in (roles.owner, prefix) if p)
                if getattr(root.get_submodule(owner), tensor_name, None) is None:
                    continue
                offset = 0
                for seg in roles.roles[role]:
                    key = analysis.root(seg.axis)
                    members.setdefault(key, []).append(
                        Member(owner, tensor_name, dim, offset, seg.size, seg.block)
                    )
                    offset += seg.size * seg.block
    return members


def _channels(tensor: Tensor, m: Member) -> Tensor:
    """The member's channels as rows, shape ``(size, -1)``."""
    part = tensor.detach().narrow(m.dim, m.offset, m.size * m.block).movedim(m.dim, 0)
    return part.reshape(m.size, -1)


def _sketch(rows: list[Tensor], max_features: int, generator: torch.Generator) -> list[Tensor]:
    """Subsample the columns of wide members so that at most ``max_features`` remain in all.

    Each kept column is weighted by (columns of its member / columns kept), so the summed L1
    distance is an unbiased estimate of the full one; groups feeding a large Linear layer (a VGG
    classifier has 25,088 columns per channel) would otherwise cost minutes.
    """
    total = sum(r.shape[1] for r in rows)
    if total <= max_features:
        return rows
    out = []
    for r in rows:
        keep = max(1, round(max_features * r.shape[1] / total))
        if keep >= r.shape[1]:
            out.append(r)
            continue
        cols = torch.randperm(r.shape[1], generator=generator)[:keep].to(r.device)
        out.append(r[:, cols] * (r.shape[1] / keep))
    return out


def _apply(root: nn.Module, m: Member, order: Tensor) -> None:
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
    work: float = 1e10,
) -> PermutationReport:
    """Reorder the channels of every resizable group in place; outputs do not change.

    Args:
        work: budget of absolute differences per group for the distances (``n^2`` times the
            columns per channel): wider groups are estimated on a seeded random subset of the
            columns (between 256 and 8192 of them, see :func:`_sketch`).

    Returns:
        the total variation of every permuted group before and after, and the time spent.
    """
    report = PermutationReport()
    generator = torch.Generator().manual_seed(seed)
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
        clock = time.perf_counter()
        rows = [_channels(getattr(root.get_submodule(m.module), m.tensor), m) for m in members]
        max_features = int(min(max(work / group.full_size**2, 256), 8192))
        distances = channel_distances([(r, 0) for r in _sketch(rows, max_features, generator)])
        report.distance_seconds += time.perf_counter() - clock
        clock = time.perf_counter()
        order = open_path_order(distances, solver=solver, seed=seed)
        report.order_seconds += time.perf_counter() - clock
        before = total_variation(distances, torch.arange(group.full_size))
        after = total_variation(distances, order)
        report.total_variation[group.name] = (before, after)
        log.debug("group %s: total variation %.4g -> %.4g", group.name, before, after)
        for m in members:
            _apply(root, m, order)
    return report
