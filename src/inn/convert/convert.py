"""DNN -> INN: trace, fold BatchNorm, reorder channels, replace layers by integral ones."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence

import torch
import torch.fx as fx
from torch import Tensor, nn

from inn.continuous import Partition
from inn.convert.model import ConversionReport, IntegralModel
from inn.errors import ConversionError
from inn.graph import GraphAnalysis, ModuleRoles, analyse, trace
from inn.graph.fold import fold_batchnorms
from inn.layers import (
    IntegralSlice,
    IntegralSplit,
    IntegralTensor,
    LayerRequest,
    integral_layer_for,
)
from inn.permute import permute_groups

__all__ = ["convert", "prepare"]

log = logging.getLogger(__name__)


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise ConversionError(f"convert needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ConversionError(
            f"{type(model).__name__} is in training mode; conversion folds BatchNorm with its running "
            "statistics (eval semantics): call model.eval() first"
        )
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ConversionError(
                f"tensor {name!r} of {type(model).__name__} has NaN or inf values"
            )


def _layer_request(
    roles: ModuleRoles, parts: dict[str, list[Partition] | None], rule: str
) -> LayerRequest:
    """What the layer registry needs to know of a module the analysis recorded."""
    spec = roles.wrapped
    return LayerRequest(
        roles.name,
        roles.kind,
        parts,
        rule=rule,
        groups=roles.groups,
        blocks={role: tuple(s.block for s in segments) for role, segments in roles.roles.items()},
        tensors=None if spec is None else spec.tensors,
        integrated={} if spec is None else spec.integrated,
        one_axis=True if spec is None else spec.one_axis,
    )


def _replace_layers(
    gm: fx.GraphModule, analysis: GraphAnalysis, partitions: dict[int, Partition], rule: str
) -> None:
    for name, roles in analysis.modules.items():
        parts: dict[str, list[Partition] | None] = {}
        for role, segments in roles.roles.items():
            groups = [analysis.group_of(s) for s in segments]
            continuous = any(g.resizable for g in groups)
            parts[role] = (
                [partitions[analysis.root(s.axis)] for s in segments] if continuous else None
            )
        if all(p is None for p in parts.values()):
            continue  # nothing of this layer can change: keep the original module
        parent, _, child = name.rpartition(".")
        owner = gm.get_submodule(parent) if parent else gm
        if roles.kind == "attribute":
            tensor = getattr(owner, child)
            delattr(owner, child)
            owner.add_module(child, IntegralTensor(tensor, roles.tensor_dims, parts, rule=rule))
            for node in gm.graph.nodes:
                if node.op == "get_attr" and node.target == name:
                    node.op = "call_module"
            continue
        request = _layer_request(roles, parts, rule)
        setattr(owner, child, integral_layer_for(getattr(owner, child), request))
    nodes = {node.name: node for node in gm.graph.nodes}
    # splits and ranges of channels: their sizes and bounds follow the partitions
    cuts = [("split", n, c) for n, c in analysis.splits.items()]
    cuts += [("slice", n, c) for n, c in analysis.slices.items()]
    for kind, name, (at, pieces) in cuts:
        if not any(analysis.group_of(s).resizable for piece in pieces for s in piece):
            continue
        layout = [[(partitions[analysis.root(s.axis)], s.block) for s in p] for p in pieces]
        node = nodes[name]
        cut = (
            IntegralSplit(layout, at)
            if kind == "split"
            else IntegralSlice(layout, at, node.args[1])
        )
        gm.add_submodule(f"{kind}_{name}", cut)
        node.op, node.target = "call_module", f"{kind}_{name}"
        node.args, node.kwargs = (node.args[0],), {}


def prepare(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    discrete: Sequence[str] = (),
    fold_batchnorm: bool = True,
) -> tuple[fx.GraphModule, GraphAnalysis, ConversionReport]:
    """Trace a copy of ``model``, fold its BatchNorms (if ``fold_batchnorm``) and find its
    channel groups.

    Shared by :func:`convert` and the discrete baselines, so that both see the same groups.
    """
    _check_model(model)
    report = ConversionReport()
    clock = time.perf_counter()
    own = copy.deepcopy(model)
    for module in own.modules():  # the user's hooks stay on the user's model, not in ours
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    gm = trace(own, example_inputs)
    report.kept_whole = {c.__name__: why for c, why in gm.meta["kept_whole"].items()}
    # the parameters the forward uses (the traced graph holds no module it never calls, such as
    # GoogLeNet's auxiliary heads in eval mode), BatchNorm included: what compression refers to
    gm.meta["original_parameters"] = sum(p.numel() for p in gm.parameters())
    report.seconds["trace"] = time.perf_counter() - clock

    clock = time.perf_counter()
    report.folded_batchnorms = fold_batchnorms(gm) if fold_batchnorm else []
    report.seconds["fold"] = time.perf_counter() - clock

    clock = time.perf_counter()
    analysis = analyse(gm)
    report.probed = dict(sorted(analysis.probed.items()))
    gm.recompile()  # the analysis may have made reshapes follow the channels (-1 sizes)
    names = {g.name for g in analysis.groups.values()}
    unknown = [n for n in discrete if n not in names]
    if unknown:
        raise ConversionError(
            f"discrete= names unknown groups {unknown}; groups are {sorted(names)[:10]}..."
        )
    for key, g in list(analysis.groups.items()):
        if g.name in discrete and g.resizable:
            analysis.groups[key] = type(g)(g.name, g.full_size, False, "kept discrete by the user")
    report.seconds["analyse"] = time.perf_counter() - clock

    return gm, analysis, report


def convert(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    rule: str = "rectangle",
    permute: bool = True,
    solver: str = "greedy-2opt",
    seed: int = 0,
    discrete: Sequence[str] = (),
    fold_batchnorm: bool = True,
) -> IntegralModel:
    """Convert a trained network into an :class:`IntegralModel` that reproduces it at full width.

    Steps: trace with ``torch.fx``; fold each BatchNorm into the layer before it where possible;
    find the channel groups (see :mod:`inn.graph`); reorder the channels of every resizable group
    along a short open travelling-salesman path (``permute``); replace convolutions, linear and
    remaining BatchNorm layers by integral layers sharing one partition per group. The model
    passed in is not modified.

    Args:
        model: a network in eval mode.
        example_inputs: a tensor or tuple of tensors the model accepts (used for shapes).
        rule: quadrature rule of the channel axes (``"rectangle"``, ``"trapezoid"``, ...).
        permute: reorder channels to minimise total variation (recommended).
        solver: permutation solver (``"greedy-2opt"``: deterministic; ``"fast-tsp"``;
            ``"auto"``), see :func:`inn.permute.open_path_order`.
        seed: seed of the permutation solver.
        discrete: names of groups to keep at full width (see ``IntegralModel.groups``).
        fold_batchnorm: fold BatchNorm into the layer before it (default). ``False`` keeps them
            as integral BatchNorms, whose statistics :func:`inn.reestimate_batchnorm` can
            measure again at a new width; :meth:`IntegralModel.export` folds them.

    Raises:
        ConversionError: the model cannot be traced or run on ``example_inputs``, is in training
            mode, has non-finite weights, or ``discrete`` names an unknown group.
    """
    gm, analysis, report = prepare(model, example_inputs, discrete, fold_batchnorm)

    clock = time.perf_counter()
    if permute:
        permutation = permute_groups(gm, analysis, solver=solver, seed=seed)
        report.total_variation = permutation.total_variation
        report.seconds["distances"] = permutation.distance_seconds
        report.seconds["order"] = permutation.order_seconds
        before = sum(b for b, _ in report.total_variation.values())
        after = sum(a for _, a in report.total_variation.values())
        log.info(
            "total variation of %d groups: %.4g -> %.4g", len(report.total_variation), before, after
        )
    report.seconds["permute"] = time.perf_counter() - clock

    clock = time.perf_counter()
    partitions = {key: Partition(g.full_size, rule=rule) for key, g in analysis.groups.items()}
    _replace_layers(gm, analysis, partitions, rule)
    gm.recompile()
    groups = {
        g.name: (partitions[key], g.resizable, g.reason) for key, g in analysis.groups.items()
    }
    inputs = (example_inputs,) if isinstance(example_inputs, Tensor) else tuple(example_inputs)
    imodel = IntegralModel(gm, groups, report, gm.meta["original_parameters"], inputs).eval()
    report.seconds["initialise"] = time.perf_counter() - clock
    return imodel
