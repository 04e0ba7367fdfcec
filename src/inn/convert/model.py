"""The integral model: a traced network whose layers are integral, resizable and exportable."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from inn.continuous import Partition
from inn.errors import InnError
from inn.layers import IntegralLayer

__all__ = ["ConversionReport", "Group", "IntegralModel"]


@dataclass(frozen=True)
class Group:
    """A channel group of an :class:`IntegralModel`: ``size`` of ``full_size`` channels."""

    name: str
    size: int
    full_size: int
    resizable: bool
    reason: str = ""


@dataclass
class ConversionReport:
    """What :func:`inn.convert` did: seconds per stage (``trace``, ``fold``, ``analyse``,
    ``permute`` = ``distances`` + ``order`` + applying it, ``initialise``), total variation of each
    permuted group before/after."""

    seconds: dict[str, float] = field(default_factory=dict)
    folded_batchnorms: list[str] = field(default_factory=list)
    total_variation: dict[str, tuple[float, float]] = field(default_factory=dict)


def _layer_parameters(layer: IntegralLayer) -> int:
    """Parameters of ``layer`` once sampled at its current partitions."""
    total = 0
    for name, (roles, _, _) in layer._layouts.items():
        function = getattr(layer, f"{name}_function")
        if not isinstance(function.values, nn.Parameter):
            continue
        shape = list(function.values.shape)
        for dim, role in roles.items():
            shape[dim] = layer.size(role, shape[dim])
        total += prod(shape)
    return total


class IntegralModel(nn.Module):
    """A converted network: runs like the original at full width and can be resized.

    Built by :func:`inn.convert`. ``groups`` lists the channel groups; :meth:`resize` sets their
    widths; :meth:`export` returns a plain PyTorch module at the current widths.
    """

    def __init__(
        self,
        graph_module: fx.GraphModule,
        groups: Mapping[str, tuple[Partition, bool, str]],
        report: ConversionReport | None = None,
        original_parameters: int | None = None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self._partitions = {name: part for name, (part, _, _) in groups.items()}
        self._pinned = {
            name: reason for name, (_, resizable, reason) in groups.items() if not resizable
        }
        self.report = report or ConversionReport()
        self.original_parameters = original_parameters or self.num_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.graph_module(*args, **kwargs)

    @property
    def groups(self) -> list[Group]:
        """The channel groups, in graph order."""
        return [
            Group(name, p.size, p.full_size, name not in self._pinned, self._pinned.get(name, ""))
            for name, p in self._partitions.items()
        ]

    @property
    def resizable_groups(self) -> list[Group]:
        return [g for g in self.groups if g.resizable]

    def num_parameters(self) -> int:
        """Parameters of the model exported at the current widths."""
        total = 0
        seen: set[int] = set()
        for module in self.graph_module.modules():
            if isinstance(module, IntegralLayer):
                total += _layer_parameters(module)
                seen.update(id(p) for p in module.parameters())
        return total + sum(p.numel() for p in self.graph_module.parameters() if id(p) not in seen)

    # -- resizing ---------------------------------------------------------------------------
    def _check_group(self, name: str) -> Partition:
        if name not in self._partitions:
            close = difflib.get_close_matches(name, list(self._partitions), n=3)
            hint = (
                f"; did you mean {close}?"
                if close
                else f"; groups are e.g. {list(self._partitions)[:5]}"
            )
            raise InnError(f"no channel group named {name!r}{hint} (see IntegralModel.groups)")
        if name in self._pinned:
            raise InnError(f"group {name!r} cannot be resized: {self._pinned[name]}")
        return self._partitions[name]

    def _set_fraction(self, fraction: float) -> None:
        for g in self.resizable_groups:
            self._partitions[g.name].resize(max(1, min(g.full_size, round(fraction * g.full_size))))

    def resize(
        self, compression: float | None = None, *, widths: Mapping[str, int] | None = None
    ) -> IntegralModel:
        """Set the widths of the resizable groups, in place (returns ``self``).

        Args:
            compression: fraction of the parameters to remove, in ``[0, 1)``; every resizable
                group keeps the same fraction of its channels, chosen so that the parameter
                count is ``(1 - compression)`` of the original model's (BatchNorm included; within
                1 % where the model's granularity allows).
            widths: explicit ``{group name: channels}``; other groups keep their widths.
        """
        if (compression is None) == (widths is None):
            raise InnError("resize needs exactly one of compression=... or widths={...}")
        if widths is not None:
            checked = {name: (self._check_group(name), w) for name, w in widths.items()}
            for name, (part, w) in checked.items():
                if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= part.full_size:
                    raise InnError(
                        f"width of group {name!r} must be an int in [1, {part.full_size}], got {w!r}"
                    )
            for part, w in checked.values():
                part.resize(w)
            return self
        if not isinstance(compression, (int, float)) or not 0 <= compression < 1:
            raise InnError(f"compression must be in [0, 1), got {compression!r}")
        if not self.resizable_groups:
            raise InnError("this model has no resizable channel group (see IntegralModel.groups)")
        target = (1 - compression) * self.original_parameters
        lo, hi = 0.0, 1.0
        best: tuple[float, float] = (float("inf"), 1.0)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            self._set_fraction(mid)
            count = self.num_parameters()
            best = min(best, (abs(count - target), mid))
            lo, hi = (mid, hi) if count < target else (lo, mid)
        self._set_fraction(best[1])
        return self

    # -- export -------------------------------------------------------------------------------
    def export(self) -> fx.GraphModule:
        """A plain ``torch.nn.Module`` (an ``fx.GraphModule`` of standard layers) at the current
        widths, with no reference to ``inn``: it runs, scripts, exports and pickles on its own."""
        plain = copy.deepcopy(self.graph_module)
        for name, module in list(plain.named_modules()):
            if isinstance(module, IntegralLayer):
                parent, _, child = name.rpartition(".")
                with torch.no_grad():
                    discrete = module.to_discrete()
                discrete.train(module.training)
                setattr(plain.get_submodule(parent) if parent else plain, child, discrete)
        plain._tracer_cls = plain.graph._tracer_cls = None  # pickling would reference inn's tracer
        plain.recompile()
        return plain.train(self.training)

    def extra_repr(self) -> str:
        resizable = self.resizable_groups
        return f"groups={len(self._partitions)}, resizable={len(resizable)}"
