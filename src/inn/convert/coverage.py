"""How much of a converted network resizing can reach."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from inn.layers import IntegralLayer

if TYPE_CHECKING:
    from inn.convert.model import Group, IntegralModel

__all__ = ["Coverage", "coverage"]


@dataclass(frozen=True)
class Coverage:
    """Parameters (at full width) inside layers with at least one resizable channel axis.

    Attributes:
        parameters: all parameters of the integral model at full width (folded BatchNorms are
            part of the layer before them).
        resizable_parameters: those in layers with at least one resizable channel axis.
        groups: every channel group.
        pinned: why groups are pinned: reason -> number of groups.
    """

    parameters: int
    resizable_parameters: int
    groups: list[Group]
    pinned: dict[str, int]

    @property
    def share(self) -> float:
        return self.resizable_parameters / max(self.parameters, 1)

    def __str__(self) -> str:
        resizable = sum(g.resizable for g in self.groups)
        lines = [
            f"{len(self.groups)} channel groups, {resizable} resizable; {self.share:.1%} of "
            f"{self.parameters:,} parameters lie in layers with a resizable channel axis"
        ]
        lines += [f"  {n} pinned: {reason}" for reason, n in self.pinned.items()]
        return "\n".join(lines)


def coverage(imodel: IntegralModel) -> Coverage:
    """The :class:`Coverage` of ``imodel`` (see :meth:`IntegralModel.coverage`)."""
    total = resizable = 0
    seen: set[int] = set()
    for module in imodel.graph_module.modules():
        if isinstance(module, IntegralLayer):
            for name in module.channel_axes():
                values = getattr(module, f"{name}_function").values
                if isinstance(values, nn.Parameter):
                    resizable += values.numel()
            seen.update(id(p) for n, p in module.named_parameters() if not n.startswith("module."))
    total = resizable + sum(
        p.numel() for p in imodel.graph_module.parameters() if id(p) not in seen
    )
    groups = imodel.groups
    pinned = Counter(_short(g.reason) for g in groups if not g.resizable)
    return Coverage(total, resizable, groups, dict(pinned.most_common()))


def _short(reason: str) -> str:
    """A reason without the node name that ends it, so that equal causes count together."""
    return reason.rsplit(" (", 1)[0] if reason.endswith(")") else reason
