"""The strongest discrete competitor of random-width training: a universally slimmable network.

Yu & Huang (ICCV 2019): a plain network whose every layer keeps its *first k* channels at a
smaller width, trained with the sandwich rule, with BatchNorm statistics recalibrated per width
after training. Here the channel groups are those of :func:`inn.convert` (so both sides are
resized at the same widths) and the forward pass at a width is the plain network called with
sliced parameters (:func:`torch.func.functional_call`): no integral layers, no resampling.
:class:`SlimmableNetwork` has the ``resize``/``groups`` surface :func:`inn.train.train` uses,
so both are trained by the same loop with the same width draws.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from inn import InnError
from inn.convert import Group, prepare
from inn.graph import group_members
from innlab.baselines import select_channels

__all__ = ["SlimmableNetwork"]


class SlimmableNetwork(nn.Module):
    """``model`` resizable by keeping the first channels of each channel group.

    Args:
        model: a plain network (its BatchNorms are kept).
        example_inputs: an input batch for tracing.
    """

    def __init__(self, model: nn.Module, example_inputs: Tensor | Sequence[Tensor]) -> None:
        super().__init__()
        gm, analysis, _ = prepare(model, example_inputs, fold_batchnorm=False)
        self.net, self._analysis = gm, analysis
        self._full = {g.name: g.full_size for g in analysis.groups.values()}
        self._keys = {g.name: key for key, g in analysis.groups.items()}
        self._pinned = {g.name: g.reason for g in analysis.groups.values() if not g.resizable}
        self._widths = dict(self._full)
        # tensor (module, name, dim) -> its runs of channels: (group name, offset, block)
        self._runs: dict[tuple[str, str, int], list[tuple[str, int, int]]] = defaultdict(list)
        names = {key: g.name for key, g in analysis.groups.items()}
        for key, members in group_members(gm, analysis).items():
            for m in members:
                self._runs[(m.module, m.tensor, m.dim)].append((names[key], m.offset, m.block))
        # depthwise convolutions (one input channel per group): name -> channel multiplier
        self._depthwise: dict[str, int] = {}
        for name, module in gm.named_modules():
            if not isinstance(module, nn.modules.conv._ConvNd) or module.groups == 1:
                continue
            if module.in_channels != module.groups:
                raise InnError(
                    f"SlimmableNetwork: {name} ({type(module).__name__}, groups={module.groups}, "
                    f"{module.in_channels} input channels) cannot be sliced to its first channels: "
                    "only depthwise convolutions (groups = input channels) are; use a network "
                    "without other grouped convs"
                )
            self._depthwise[name] = module.out_channels // module.groups

    # -- the surface inn.train.train uses -----------------------------------------------------
    @property
    def groups(self) -> list[Group]:
        return [
            Group(n, self._widths[n], f, n not in self._pinned, self._pinned.get(n, ""))
            for n, f in self._full.items()
        ]

    @property
    def resizable_groups(self) -> list[Group]:
        return [g for g in self.groups if g.resizable]

    def resize(self, *, widths: Mapping[str, int]) -> SlimmableNetwork:
        for name, width in widths.items():
            if name not in self._full or name in self._pinned:
                raise InnError(f"SlimmableNetwork: group {name!r} is unknown or cannot be resized")
            if not 1 <= width <= self._full[name]:
                raise InnError(f"width of group {name!r} must be in [1, {self._full[name]}]")
            self._widths[name] = int(width)
        return self

    @contextmanager
    def widths_kept(self) -> Iterator[SlimmableNetwork]:
        saved = dict(self._widths)
        try:
            yield self
        finally:
            self._widths = saved

    # -- forward and export -------------------------------------------------------------------
    def _indices(self, module: str, tensor: str, dim: int, size: int) -> Tensor | None:
        """Indices along ``dim`` kept at the current widths (None: all of them)."""
        runs = self._runs.get((module, tensor, dim))
        if not runs:
            return None
        pieces, end = [], 0
        for group, offset, block in sorted(runs, key=lambda r: r[1]):
            if offset > end:
                pieces.append(torch.arange(end, offset))
            pieces.append(torch.arange(offset, offset + self._widths[group] * block))
            end = offset + self._full[group] * block
        if end < size:
            pieces.append(torch.arange(end, size))
        return torch.cat(pieces)

    def _sliced(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        tensors = dict(self.net.named_parameters()) | dict(self.net.named_buffers())
        for full_name, value in tensors.items():
            module, _, name = full_name.rpartition(".")
            sliced = value
            for dim in range(value.dim()):
                index = self._indices(module, name, dim, value.shape[dim])
                if index is not None and len(index) < value.shape[dim]:
                    sliced = sliced.index_select(dim, index.to(value.device))
            out[full_name] = sliced
        return out

    @contextmanager
    def _depthwise_groups(self, tensors: Mapping[str, Tensor]) -> Iterator[None]:
        """Each depthwise convolution's ``groups`` set to its sliced channels while inside."""
        modules = {name: self.net.get_submodule(name) for name in self._depthwise}
        saved = {name: m.groups for name, m in modules.items()}
        try:
            for name, module in modules.items():
                module.groups = len(tensors[f"{name}.weight"]) // self._depthwise[name]
            yield
        finally:
            for name, module in modules.items():
                module.groups = saved[name]

    def forward(self, *args: Any) -> Any:
        if self._widths == self._full:
            return self.net(*args)
        tensors = self._sliced()
        with self._depthwise_groups(tensors):
            return functional_call(self.net, tensors, args)

    def export(self) -> nn.Module:
        """A plain pruned copy at the current widths (BatchNorm statistics as trained: recalibrate
        them with :func:`inn.reestimate_batchnorm`, as slimmable networks do)."""
        gm = copy.deepcopy(self.net)
        keep = {
            self._keys[name]: torch.arange(width)
            for name, width in self._widths.items()
            if width < self._full[name]
        }
        select_channels(gm, self._analysis, keep)
        gm._tracer_cls = gm.graph._tracer_cls = None
        gm.recompile()
        return gm.train(self.training)
