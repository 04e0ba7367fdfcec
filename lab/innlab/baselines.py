"""Discrete structured pruning without fine-tuning (the paper's Pipeline C), on the same channel
groups as the integral path so that every method is compared at the same widths.

Each function returns a plain ``nn.Module`` keeping, in every resizable group, the channels its
criterion ranks highest (in their original order):

* :func:`prune_l1`: L1 norm of each channel's kernels in the layers that produce the group;
* :func:`prune_activation`: mean absolute value (or variance) of each channel's feature map
  on calibration data, at the outputs of the layers that produce the group;
* :func:`prune_random`: a seeded random choice.

The fair control for partition tuning, a step budget spent on the biases and normalisation
parameters of a pruned model, is the library's :func:`inn.recover.calibrate_biases`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import Tensor, nn

from inn import InnError
from inn.convert import convert, prepare
from inn.graph import GraphAnalysis, Member, fold_batchnorms, group_members
from inn.layers import fit_size_attributes, plain_attention
from inn.recover import as_batches

__all__ = [
    "fold_batchnorms",
    "plan_widths",
    "prune_activation",
    "prune_l1",
    "prune_random",
    "select_channels",
]

Scores = dict[int, Tensor]  # group root axis -> a score per channel


def plan_widths(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    compression: float,
    **plan_options: Any,
) -> dict[str, int]:
    """The widths per group that ``IntegralModel.resize(compression=..., **plan_options)``
    chooses (e.g. ``sensitivity="uniform"``: every group keeps the same fraction)."""
    imodel = convert(model, example_inputs, permute=False)
    imodel.resize(compression=compression, **plan_options)
    return {g.name: g.size for g in imodel.groups}


def _producers(gm: fx.GraphModule, analysis: GraphAnalysis) -> dict[int, list[Member]]:
    """Per group, the members that are a producing layer's output weights (a convolution's or
    linear layer's output rows, an attention's q/k/v rows per head dimension)."""
    producing = set()
    for roles in analysis.modules.values():
        one_axis = roles.kind in ("norm", "depthwise", "attribute") or (
            roles.kind == "wrapped" and roles.wrapped.one_axis
        )
        if one_axis:
            continue
        for role in ("out", "qkv_head_dim"):
            for path, dim in roles.tensor_axes().get(role, []):
                prefix, _, tensor = path.rpartition(".")
                if tensor == "weight" or tensor.endswith("_weight"):
                    producing.add((".".join(p for p in (roles.owner, prefix) if p), tensor, dim))
    out: dict[int, list[Member]] = defaultdict(list)
    for key, members in group_members(gm, analysis).items():
        out[key] += [m for m in members if (m.module, m.tensor, m.dim) in producing]
    return out


def select_channels(
    gm: fx.GraphModule, analysis: GraphAnalysis, keep: Mapping[int, Tensor]
) -> fx.GraphModule:
    """Keep channels ``keep[group]`` (sorted indices) of every listed group, in place."""
    by_tensor: dict[tuple[str, str, int], list[tuple[Member, Tensor]]] = defaultdict(list)
    for key, members in group_members(gm, analysis).items():
        if key in keep:
            for m in members:
                by_tensor[(m.module, m.tensor, m.dim)].append((m, keep[key]))
    for (module_name, tensor_name, dim), items in by_tensor.items():
        module = gm.get_submodule(module_name)
        tensor: Tensor = getattr(module, tensor_name)
        pieces, cursor = [], 0
        for m, kept in sorted(items, key=lambda item: item[0].offset):
            pieces.append(torch.arange(cursor, m.offset))
            pieces.append(m.offset + (kept[:, None] * m.block + torch.arange(m.block)).reshape(-1))
            cursor = m.offset + m.size * m.block
        pieces.append(torch.arange(cursor, tensor.shape[dim]))
        index = torch.cat(pieces).to(tensor.device)
        selected = tensor.detach().index_select(dim, index)
        if isinstance(tensor, nn.Parameter):
            setattr(module, tensor_name, nn.Parameter(selected, requires_grad=tensor.requires_grad))
        else:
            setattr(module, tensor_name, selected)
    for roles in analysis.modules.values():
        if roles.kind == "attention":
            parent, _, child = roles.name.rpartition(".")
            setattr(gm.get_submodule(parent), child, plain_attention(gm.get_submodule(roles.name)))
        elif roles.kind == "wrapped":
            module = gm.get_submodule(roles.name)
            fit_size_attributes(module, _wrapped_widths(module, roles))
        elif roles.kind != "attribute":
            _fix_attributes(gm.get_submodule(roles.name))
    for name, (_, pieces) in analysis.splits.items():
        node = next(n for n in gm.graph.nodes if n.name == name)
        sizes = [
            sum(len(keep.get(analysis.root(s.axis), range(s.size))) * s.block for s in piece)
            for piece in pieces
        ]
        node.args = (node.args[0], sizes, *node.args[2:])
    return gm


def _wrapped_widths(module: nn.Module, roles: Any) -> dict[str, int]:
    widths = {}
    for tensor, dims in roles.wrapped.tensors.items():
        owner, _, attr = tensor.rpartition(".")
        value = getattr(module.get_submodule(owner), attr, None)
        if value is not None:
            widths.update({role: value.shape[dim] for dim, role in dims.items()})
    return widths


def _fix_attributes(module: nn.Module) -> None:
    """Make ``in_channels``, ``out_channels``... agree with the (sliced) tensors."""
    w = getattr(module, "weight", None)
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        module.in_channels, module.out_channels = w.shape[0], w.shape[1] * module.groups
    elif isinstance(module, nn.modules.conv._ConvNd):
        if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
            module.groups = w.shape[0]
        module.out_channels, module.in_channels = w.shape[0], w.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = w.shape
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        module.num_features = (
            module.running_mean.shape[0] if module.running_mean is not None else w.shape[0]
        )


def _prune(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    compression: float | None,
    widths: Mapping[str, int] | None,
    scorer: Callable[[fx.GraphModule, GraphAnalysis], Scores],
    keep_batchnorm: bool = False,
) -> fx.GraphModule:
    if (compression is None) == (widths is None):
        raise InnError("give exactly one of compression=... or widths={...}")
    if widths is None:
        widths = plan_widths(model, example_inputs, compression)
    gm, analysis, _ = prepare(model, example_inputs, fold_batchnorm=not keep_batchnorm)
    names = {g.name: key for key, g in analysis.groups.items()}
    unknown = set(widths) - set(names)
    if unknown:
        raise InnError(f"unknown groups {sorted(unknown)}")
    scores = scorer(gm, analysis)
    keep = {}
    for name, width in widths.items():
        key, group = names[name], analysis.groups[names[name]]
        if width >= group.full_size:
            continue
        if not group.resizable:
            raise InnError(f"group {name!r} cannot be pruned: {group.reason}")
        if key not in scores:
            raise InnError(f"group {name!r} has no score (no producing layer)")
        keep[key] = torch.topk(scores[key], width).indices.sort().values.cpu()
    select_channels(gm, analysis, keep)
    gm._tracer_cls = gm.graph._tracer_cls = None
    gm.recompile()
    return gm.eval()


def _l1_scores(gm: fx.GraphModule, analysis: GraphAnalysis) -> Scores:
    scores: Scores = {}
    for key, members in _producers(gm, analysis).items():
        total = 0
        for m in members:
            w = getattr(gm.get_submodule(m.module), m.tensor).detach()
            part = w.narrow(m.dim, m.offset, m.size * m.block).movedim(m.dim, 0)
            total = total + part.reshape(m.size, -1).abs().sum(1)
        scores[key] = total
    return scores


def prune_l1(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    compression: float | None = None,
    *,
    widths: Mapping[str, int] | None = None,
    keep_batchnorm: bool = False,
) -> nn.Module:
    """Keep the channels whose producing kernels have the largest L1 norm (BN folded first,
    unless ``keep_batchnorm``: then the BatchNorms are pruned alongside and their statistics
    can be re-estimated with :func:`inn.reestimate_batchnorm`)."""
    return _prune(model, example_inputs, compression, widths, _l1_scores, keep_batchnorm)


def prune_random(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    compression: float | None = None,
    *,
    widths: Mapping[str, int] | None = None,
    seed: int = 0,
    keep_batchnorm: bool = False,
) -> nn.Module:
    """Keep a seeded random choice of channels in every group."""
    generator = torch.Generator().manual_seed(seed)

    def scorer(gm: fx.GraphModule, analysis: GraphAnalysis) -> Scores:
        return {
            key: torch.rand(g.full_size, generator=generator) for key, g in analysis.groups.items()
        }

    return _prune(model, example_inputs, compression, widths, scorer, keep_batchnorm)


def prune_activation(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    data: Iterable,
    compression: float | None = None,
    *,
    widths: Mapping[str, int] | None = None,
    statistic: str = "mean_abs",
    keep_batchnorm: bool = False,
) -> nn.Module:
    """Keep the channels with the largest feature-map statistic on ``data``.

    Args:
        statistic: ``"mean_abs"`` (mean absolute activation) or ``"variance"``, measured at the
            output of the layers producing each group (after BatchNorm folding) and summed over
            those layers.
    """
    if statistic not in ("mean_abs", "variance"):
        raise InnError(f"statistic must be 'mean_abs' or 'variance', got {statistic!r}")
    batches = as_batches(data)

    def scorer(gm: fx.GraphModule, analysis: GraphAnalysis) -> Scores:
        producers = _producers(gm, analysis)
        sums: dict[tuple[str, int], list[Tensor]] = {}
        hooks = []
        for members in producers.values():
            for m in members:
                module = gm.get_submodule(m.module)
                channel_dim = 1 if not isinstance(module, nn.Linear) else -1

                def hook(
                    mod: nn.Module, _: object, out: Tensor, m: Member = m, cd: int = channel_dim
                ) -> None:
                    x = out.detach().movedim(cd, 0).narrow(0, m.offset, m.size).reshape(m.size, -1)
                    stat = x.abs().mean(1) if statistic == "mean_abs" else x.var(1)
                    sums.setdefault((m.module, m.offset), []).append(stat)

                hooks.append(module.register_forward_hook(hook))
        try:
            with torch.no_grad():
                for x, _ in batches:
                    gm(x)
        finally:
            for h in hooks:
                h.remove()
        return {
            key: sum(torch.stack(sums[(m.module, m.offset)]).mean(0) for m in members)
            for key, members in producers.items()
        }

    return _prune(model, example_inputs, compression, widths, scorer, keep_batchnorm)
