"""The integral model: a traced network whose layers are integral, resizable and exportable."""

from __future__ import annotations

import copy
import difflib
import operator
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx as fx
from torch import Tensor, nn

from inn.continuous import Partition
from inn.continuous.partition import sampling_memo
from inn.errors import InnError
from inn.graph.fold import fold_batchnorms, foldable
from inn.layers import (
    IntegralConv1d,
    IntegralConv2d,
    IntegralConv3d,
    IntegralLayer,
    IntegralLinear,
    IntegralSlice,
    IntegralSplit,
)

if TYPE_CHECKING:
    from inn.budget import Budget, Plan
    from inn.convert.coverage import Coverage

__all__ = ["ConversionReport", "Group", "IntegralModel"]

# layers that export() turns into the plain conv / linear layers a following BatchNorm folds into
_FOLD_INTO = (
    IntegralConv1d, IntegralConv2d, IntegralConv3d, IntegralLinear,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear,
)  # fmt: skip


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
    permuted group before/after, and the operations without a channel rule that probing found
    channel-wise (see :mod:`inn.graph.probe`; the ones found to mix channels name it in the
    reason of the groups they pin), and the modules kept whole because torch.fx cannot trace
    their forward (class -> why; the channels around them stay at full width)."""

    seconds: dict[str, float] = field(default_factory=dict)
    folded_batchnorms: list[str] = field(default_factory=list)
    total_variation: dict[str, tuple[float, float]] = field(default_factory=dict)
    probed: dict[str, int] = field(default_factory=dict)
    kept_whole: dict[str, str] = field(default_factory=dict)


def _layer_parameters(layer: IntegralLayer) -> int:
    """Parameters of ``layer`` once sampled at its current partitions."""
    total = 0
    for name, roles in layer.channel_axes().items():
        function = getattr(layer, f"{name}_function")
        if not isinstance(function.values, nn.Parameter):
            continue
        shape = list(function.values.shape)
        for dim, role in roles.items():
            shape[dim] = layer.size(role, shape[dim])
        total += prod(shape)
    return total


def _set_tensor(owner: nn.Module, name: str, tensor: torch.Tensor) -> None:
    if isinstance(tensor, nn.Parameter):
        owner.register_parameter(name, tensor)
    else:
        owner.register_buffer(name, tensor)


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
        example_inputs: tuple[torch.Tensor, ...] = (),
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.example_inputs = tuple(x.detach().clone() for x in example_inputs)
        self._partitions = {name: part for name, (part, _, _) in groups.items()}
        self._pinned = {
            name: reason for name, (_, resizable, reason) in groups.items() if not resizable
        }
        self.report = report or ConversionReport()
        self.original_parameters = original_parameters or self.num_parameters()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with sampling_memo():
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
                seen.update(
                    id(p) for n, p in module.named_parameters() if not n.startswith("module.")
                )
        return total + sum(p.numel() for p in self.graph_module.parameters() if id(p) not in seen)

    def coverage(self) -> Coverage:
        """How much resizing can reach: the share of parameters in layers with at least one
        resizable channel axis, every group, and why the pinned ones are pinned."""
        from inn.convert.coverage import coverage

        return coverage(self)

    # -- partitions -------------------------------------------------------------------------
    def partition(self, name: str) -> Partition:
        """The partition (the sample points) of group ``name``, resizable or pinned."""
        if name not in self._partitions:
            close = difflib.get_close_matches(name, list(self._partitions), n=3)
            hint = (
                f"; did you mean {close}?"
                if close
                else f"; groups are e.g. {list(self._partitions)[:5]}"
            )
            raise InnError(f"no channel group named {name!r}{hint} (see IntegralModel.groups)")
        return self._partitions[name]

    def tensor_segments(self, *, weights: bool = False) -> Iterator[tuple[str, Tensor]]:
        """Every segment of a continuous tensor's axis that runs along a resizable group:
        ``(group name, rows)``, the tensor's node values along the segment as rows of shape
        ``(full_size, everything else)`` (detached, the tensor's dtype and device).
        ``weights``: only the weights' axes, produced and summed
        (:meth:`IntegralLayer.weight_axes`: no biases, scales or statistics), their values as
        the discrete tensors at full width hold them (:meth:`IntegralLayer.full_width_values`)."""
        names = {id(self._partitions[g.name]): g.name for g in self.resizable_groups}
        for module in self.graph_module.modules():
            if not isinstance(module, IntegralLayer):
                continue
            axes = module.weight_axes() if weights else module.channel_axes()
            for tensor, roles in axes.items():
                values = (
                    module.full_width_values(tensor)
                    if weights
                    else getattr(module, f"{tensor}_function").values
                ).detach()
                for dim, role in roles.items():
                    offset = 0
                    for part in module.segment_partitions(role):
                        if id(part) in names:
                            rows = values.narrow(dim, offset, part.full_size).movedim(dim, 0)
                            yield names[id(part)], rows.reshape(part.full_size, -1)
                        offset += part.full_size

    @property
    def version(self) -> int:
        """A change counter: grows whenever a group is resized or its points change (not on
        parameter updates). Caches of derived results key on it."""
        return sum(p.version for p in self._partitions.values())

    # -- resizing ---------------------------------------------------------------------------
    def _check_group(self, name: str) -> Partition:
        part = self.partition(name)
        if name in self._pinned:
            raise InnError(f"group {name!r} cannot be resized: {self._pinned[name]}")
        return part

    def resize(
        self,
        compression: float | None = None,
        *,
        widths: Mapping[str, int] | None = None,
        budget: Budget | Mapping[str, float] | None = None,
        tolerance: float | None = None,
        **plan_options: Any,
    ) -> IntegralModel:
        """Set the widths of the resizable groups, in place (returns ``self``). Give one of:

        Args:
            compression: fraction of the parameters to remove, in ``[0, 1)``: the parameter
                budget ``budget={"params": 1 - compression}`` (BatchNorm included; within 1 %
                where the model's granularity allows).
            widths: explicit ``{group name: channels}``; other groups keep their widths.
            budget: a parameter, MAC or latency target (see :meth:`plan`).
            tolerance: per group, the fewest points whose estimated integration error (relative
                error of rebuilding the group's weight functions from the samples) is at most
                ``tolerance``: no budget, no data.
            **plan_options: for ``compression`` and ``budget``: ``sensitivity`` (default:
                measured on ``data`` if given, else data-free, and on a model trained with
                random widths every group at one fraction; ``"uniform"`` gives every group the
                same fraction), ``data``, ``round_to``, ``min_width`` (see :meth:`plan`).
        """
        given = [k for k, v in (("compression", compression), ("widths", widths), ("budget", budget),
                                ("tolerance", tolerance)) if v is not None]  # fmt: skip
        if len(given) != 1:
            raise InnError(
                "resize needs exactly one of compression=..., widths={...}, budget=... or "
                f"tolerance=..., got {given or 'none'}"
            )
        if plan_options and given[0] in ("widths", "tolerance"):
            raise InnError(f"{sorted(plan_options)} apply to compression= and budget= only")
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
        if tolerance is not None:
            if (
                isinstance(tolerance, bool)
                or not isinstance(tolerance, (int, float))
                or not tolerance > 0
            ):
                raise InnError(f"tolerance must be a positive number, got {tolerance!r}")
            from inn.budget import smallest_widths

            return self.resize(widths=smallest_widths(self, float(tolerance)))
        if compression is not None:
            budget = self.compression_budget(compression)
        return self.resize(widths=self.plan(budget, **plan_options).widths)

    def compression_budget(self, compression: float, **budget_options: Any) -> Budget:
        """The parameter budget that removes ``compression`` (in ``[0, 1)``) of the original
        model's parameters (``original_parameters``: those its forward uses, BatchNorm
        included; modules it never calls are not counted); ``budget_options``: ``device``,
        ``dtype`` (the widths' default rounding, see :class:`inn.Budget`)."""
        if (
            isinstance(compression, bool)
            or not isinstance(compression, (int, float))
            or not 0 <= compression < 1
        ):
            raise InnError(f"compression must be in [0, 1), got {compression!r}")
        from inn.budget import Budget

        kept = (1 - compression) * self.original_parameters
        return Budget("params", absolute=kept, **budget_options)

    @contextmanager
    def widths_kept(self) -> Iterator[IntegralModel]:
        """A context in which the model may be resized freely: on exit every group gets back
        its width and its points (trained or selected ones included, not just uniform ones)."""
        saved = {name: p.snapshot() for name, p in self._partitions.items()}
        try:
            yield self
        finally:
            for name, snapshot in saved.items():
                self._partitions[name].restore(snapshot)

    def nest_channels(
        self, scores: Mapping[str, Tensor] | None = None, *, nested: bool = True
    ) -> list[str]:
        """Narrow widths keep original channels instead of resampling them: from now on
        resizing a group to ``n`` channels keeps its ``n`` strongest by ``scores`` (default
        :func:`inn.budget.channel_scores`, measured now: the L1 norm of the weights that make
        and read each channel), so every width's channels include every narrower width's, as
        in slimmable networks. Random-width training with ``channels="select"`` trains these.
        Saved in the state dict. ``nested=False`` goes back to resampled (uniform) points.

        Args:
            scores: ``{group: (full_size,) importances}``; groups absent keep their rule.

        Returns:
            The names of the groups changed.
        """
        groups = [g.name for g in self.resizable_groups]
        if not nested:
            for name in groups:
                self._partitions[name].nest(None)
            return groups
        if scores is None:
            from inn.budget import channel_scores

            scores = channel_scores(self)
        unknown = sorted(set(scores) - set(groups))
        if unknown:
            raise InnError(f"nest_channels: {unknown} are not resizable groups of this model")
        for name, values in scores.items():
            part = self._partitions[name]
            if tuple(values.shape) != (part.full_size,):
                raise InnError(
                    f"nest_channels: group {name!r} has {part.full_size} channels, got scores "
                    f"of shape {tuple(values.shape)}"
                )
            order = torch.sort(values.detach().double().cpu(), descending=True, stable=True)
            part.nest(order.indices.tolist())
        return list(scores)

    def plan(self, budget: Budget | Mapping[str, float], **options: Any) -> Plan:
        """The widths that meet ``budget`` and their predicted cost; the model is not changed.

        Args:
            budget: ``inn.Budget(kind, fraction=... | absolute=..., device=, batch_size=)`` or
                ``{kind: fraction}``, kind in ``"params"``, ``"macs"`` (at the example input's
                shape), ``"latency"`` (measured on the device at the batch size: the first
                call times the exported model at several widths, about 10-60 s).

        Keyword Args:
            sensitivity: how groups are ranked: ``"outputs"`` (the output change when each
                group alone is narrowed, on ``data`` or on seeded synthetic inputs),
                ``"weights"`` (data-free, no forward pass), ``"auto"`` (default: ``"outputs"``
                on ``data``; without data ``"uniform"`` on a model trained with random widths,
                else ``"outputs"`` on synthetic inputs where that costs a few CPU seconds, else
                ``"weights"``), ``"uniform"`` (same fraction), ``"magnitude"``
                (data-free: one threshold on the channels' normalised weight magnitudes).
            data: calibration batches for ``sensitivity="outputs"``.
            round_to: every width a multiple of this (or full; default: what the budget's
                device runs fast, :func:`inn.budget.device_round_to`).
            min_width: the narrowest width of a group.

        Returns:
            An :class:`inn.budget.Plan`: ``widths``, ``predicted`` cost, ``full`` cost, ``target``.
        """
        from inn.budget import plan

        return plan(self, budget, **options)

    def cost(self, kind: str = "params", **options: Any) -> float:
        """The current widths' cost: ``"params"``, ``"macs"`` or ``"latency"`` (seconds, from the
        fitted latency model; ``device=``, ``batch_size=``)."""
        from inn.budget import cost_model

        widths = np.array([float(g.size) for g in self.groups])
        return cost_model(self, kind, **options)(widths)

    # -- export -------------------------------------------------------------------------------
    def export(self, *, fold_batchnorm: bool = True) -> fx.GraphModule:
        """A plain ``torch.nn.Module`` (an ``fx.GraphModule`` of standard layers) at the current
        widths, with no reference to ``inn``: it runs, scripts, exports and pickles on its own.

        Args:
            fold_batchnorm: fold each BatchNorm that follows a conv/linear layer into it (eval
                semantics), as conversion does by default.
        """
        plain = copy.deepcopy(self.graph_module)
        for name, module in list(plain.named_modules()):
            if isinstance(module, IntegralLayer):
                parent, _, child = name.rpartition(".")
                owner = plain.get_submodule(parent) if parent else plain
                with torch.no_grad():
                    discrete = module.to_discrete()
                if isinstance(discrete, torch.Tensor):  # a tensor attribute again
                    delattr(owner, child)
                    _set_tensor(owner, child, discrete)
                    for node in plain.graph.nodes:
                        if node.op == "call_module" and node.target == name:
                            node.op = "get_attr"
                    continue
                discrete.train(module.training)
                setattr(owner, child, discrete)
        for node in plain.graph.nodes:
            if node.op != "call_module":
                continue
            cut = plain.get_submodule(str(node.target))
            if not isinstance(cut, IntegralSplit):
                continue
            plain.delete_submodule(str(node.target))
            node.op = "call_function"
            if isinstance(cut, IntegralSlice):
                node.target, node.args = operator.getitem, (node.args[0], cut.current_index())
            else:
                node.target, node.args = torch.split, (node.args[0], cut.sizes(), cut.dim)
        plain._tracer_cls = plain.graph._tracer_cls = None  # pickling would reference inn's tracer
        plain.recompile()
        if fold_batchnorm:
            fold_batchnorms(plain)
        return plain.train(self.training)

    def export_folds(self) -> list[tuple[str, str]]:
        """``(layer, BatchNorm)`` module names: each BatchNorm that :meth:`export` folds into
        the conv / linear layer before it (its parameters vanish; the layer gets a bias)."""
        return [
            (str(layer.target), str(norm.target))
            for layer, norm in foldable(self.graph_module, _FOLD_INTO)
        ]

    def __repr__(self) -> str:
        """A short summary (a notebook cell ending in ``imodel.resize(...)`` prints this, not
        the whole traced network: ``imodel.graph_module`` has that)."""
        groups = self.resizable_groups
        changed = [g for g in groups if g.size != g.full_size]
        shown = ", ".join(f"{g.name}: {g.size}/{g.full_size}" for g in changed[:4])
        more = f", ... {len(changed) - 4} more" if len(changed) > 4 else ""
        return (
            f"IntegralModel({type(self.graph_module).__name__}, {len(self._partitions)} groups, "
            f"{len(groups)} resizable, {len(changed)} narrowed{': ' + shown if shown else ''}"
            f"{more}; {self.num_parameters():,} of {self.original_parameters:,} parameters)"
        )
