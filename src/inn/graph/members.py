"""The tensor slices that make up each channel group of a traced network."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from inn.graph.groups import GraphAnalysis

__all__ = ["Member", "group_members"]


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
