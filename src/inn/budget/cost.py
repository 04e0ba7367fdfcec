"""Parameter and MAC counts of an integral model as functions of its group widths.

Each count is a :class:`~inn.budget.polynomial.CostModel`: a sum of ``c * A(w) * B(w)`` terms
over the widths ``w`` of ``imodel.groups``. Convolutions and linear layers are counted from
their weights and output positions. Every other layer (one resized through its own
``forward``: timm's ``Conv2dSame``, a norm, a user's layer, attention) is counted by what it
does: its forward pass at the example input runs under
:class:`~inn.budget.attribution.MacAttribution`, which charges each multiply-accumulate to the
layer's tensor it multiplies. A tensor's MACs are its size times a count of uses that the widths
do not change (output positions), so they join the model as ``uses * A(w) * B(w)`` terms like
any weight.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from inn.budget.attribution import MacAttribution
from inn.budget.polynomial import CostModel, CostTerms
from inn.errors import InnError
from inn.layers import (
    IntegralConv1d,
    IntegralConv2d,
    IntegralConv3d,
    IntegralConvTranspose1d,
    IntegralConvTranspose2d,
    IntegralConvTranspose3d,
    IntegralLayer,
    IntegralLinear,
)

if TYPE_CHECKING:
    from inn.convert.model import IntegralModel

__all__ = ["counted_costs"]

_CONV = (IntegralConv1d, IntegralConv2d, IntegralConv3d)
_CONV_TRANSPOSE = (IntegralConvTranspose1d, IntegralConvTranspose2d, IntegralConvTranspose3d)
_MAC_LAYERS = (*_CONV, IntegralLinear, *_CONV_TRANSPOSE)
_PLAIN_MAC_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)
# counted once per model: they depend on its structure and example input, not on its widths
_COUNTED: weakref.WeakKeyDictionary[nn.Module, dict[str, CostModel]] = weakref.WeakKeyDictionary()


def _tensor_axes(layer: IntegralLayer, name: str) -> tuple[float, list[list]]:
    """Constant part of a tensor's size and the partitions of each of its channel axes."""
    roles = layer.channel_axes()[name]
    shape = getattr(layer, f"{name}_function").values.shape
    constant = prod(n for d, n in enumerate(shape) if d not in roles)
    return float(constant), [layer.segment_partitions(r) for _, r in sorted(roles.items())]


@dataclass
class _LayerCount:
    """MACs of one layer that runs its own forward, over its calls at the example input."""

    macs: dict[str, float] = field(default_factory=dict)  # per tensor of the layer
    numel: dict[str, int] = field(default_factory=dict)  # its size when counted
    other: float = 0.0  # MACs that multiply no tensor of the layer (activation by activation)
    # ``other`` as ``coefficient * axis_a * axis_b`` (see _fit_other)
    other_fit: tuple[float, tuple[list | None, list | None]] = (0.0, (None, None))
    outputs: float = 0.0  # elements of its outputs
    out_width: int = 1  # its "out" channels when counted


def _inside(name: str, outer: Mapping[str, Any]) -> bool:
    """Whether module ``name`` lies inside one of the modules named in ``outer``."""
    parts = name.split(".")
    return any(".".join(parts[:i]) in outer for i in range(1, len(parts)))


def _counted_separately(imodel: IntegralModel) -> dict[str, nn.Module]:
    """Integral layers that run their own forward (not nested in another integral layer):
    their MACs are counted by running them."""
    layers: dict[str, nn.Module] = {}
    for name, module in imodel.graph_module.named_modules():
        inner = _inside(name, layers)
        if isinstance(module, IntegralLayer) and not isinstance(module, _MAC_LAYERS) and not inner:
            layers[name] = module
    return layers


def _positions(
    imodel: IntegralModel, only: set[str] | None = None
) -> tuple[dict[str, float], dict[str, _LayerCount]]:
    """Output positions (batch x spatial) of every conv / linear module at the example input,
    summed over its calls (a module called twice works twice): its MACs are its weight's size
    times this. And the counts of every layer that runs its own forward (see
    :class:`~inn.budget.attribution.MacAttribution`); ``only``: count just these layers (no
    positions)."""
    positions: dict[str, float] = {}
    counts: dict[str, _LayerCount] = {}
    handles = []

    def hook(name: str, transposed: bool):
        def record(module: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
            if transposed:
                x = inputs[0]
                positions[name] = positions.get(name, 0.0) + x.numel() / x.shape[1]
            else:
                channels = (
                    out.shape[-1]
                    if isinstance(module, (IntegralLinear, nn.Linear))
                    else out.shape[1]
                )
                positions[name] = positions.get(name, 0.0) + out.numel() / channels

        return record

    active: list[MacAttribution] = []

    def enter(layer: IntegralLayer, args: tuple, kwargs: dict) -> None:
        tensors = tree_leaves((args, kwargs))
        # its resampled tensors, then any other tensor it holds (a fixed-size one: "\0" + name)
        sources: dict[str, Tensor] = dict(layer.sampled())
        for key, t in [*layer.named_parameters(), *layer.named_buffers()]:
            sources["\0" + key] = t
        mode = MacAttribution(sources, [t for t in tensors if isinstance(t, Tensor)])
        mode.__enter__()
        active.append(mode)

    def leave(name: str, layer: IntegralLayer):
        def record(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            mode = active.pop()
            mode.__exit__(None, None, None)
            count = counts.setdefault(name, _LayerCount())
            for key, macs in mode.macs.items():
                count.macs[key] = count.macs.get(key, 0.0) + macs
                if key in layer.channel_axes():
                    count.numel[key] = layer.sampled()[key].numel()
            count.other += mode.other
            first = next((t for t in tree_leaves(out) if isinstance(t, Tensor)), None)
            count.outputs += 0.0 if first is None else first.numel()
            count.out_width = layer.size("out", 1)

        return record

    separate = _counted_separately(imodel)
    for name, module in imodel.graph_module.named_modules():
        if _inside(name, separate):
            continue  # a plain module inside a layer that is counted as a whole
        if only is not None:
            if name in only:
                handles.append(module.register_forward_pre_hook(enter, with_kwargs=True))
                handles.append(module.register_forward_hook(leave(name, module), with_kwargs=True))
        elif name in separate:
            handles.append(module.register_forward_pre_hook(enter, with_kwargs=True))
            handles.append(module.register_forward_hook(leave(name, module), with_kwargs=True))
        elif isinstance(module, _MAC_LAYERS + _PLAIN_MAC_LAYERS):
            transposed = isinstance(module, (*_CONV_TRANSPOSE, nn.modules.conv._ConvTransposeNd))
            handles.append(module.register_forward_hook(hook(name, transposed)))
    try:
        device = next(imodel.parameters()).device
        with torch.no_grad():
            imodel(*[x.to(device) for x in imodel.example_inputs])
    finally:
        for h in handles:
            h.remove()
        while active:  # a forward that raised inside a layer
            active.pop().__exit__(None, None, None)
    return positions, counts


def _output_factor(layer: IntegralLayer, continuous: bool) -> float:
    """Output channels of ``layer`` per point of its ``"out"`` axis (all of them if discrete)."""
    if not continuous:
        return float(getattr(layer, "out_features", None) or layer.out_channels)
    if isinstance(layer, _CONV) and layer.mode == "grouped":
        return float(layer.groups_full)
    return 1.0


def _axes(layer: IntegralLayer) -> dict[str, list]:
    """The layer's channel axes by role, each once (roles sharing partitions are one axis)."""
    axes: dict[str, list] = {}
    for role in layer.partitions:
        parts = layer.segment_partitions(role)
        if parts and all(list(map(id, parts)) != list(map(id, a)) for a in axes.values()):
            axes[role] = parts
    return axes


# steps of the low-discrepancy sequences of group widths of the two counts that fit ``other``
_PROBES = (0.61803, 0.41421)


def _fit_other(imodel: IntegralModel, counts: dict[str, _LayerCount]) -> None:
    """Fit each layer's ``other`` MACs (activation by activation, as attention's ``q @ k``) as
    ``c``, ``c * axis`` or ``c * axis * axis'`` over its channel axes: counted again at two
    other widths of every group (each group its own fraction), the form whose ratio to the
    counts is the same at all three is taken; the widths and points are restored afterwards.
    Without a fit (a form outside these) it is taken as proportional to the layer's first axis.
    """
    layers = {n: imodel.graph_module.get_submodule(n) for n, c in counts.items() if c.other}
    if not layers:
        return

    def sizes(layer: IntegralLayer) -> dict[str, int]:
        return {r: sum(p.size for p in parts) for r, parts in _axes(layer).items()}

    samples = {n: [(counts[n].other, sizes(layer))] for n, layer in layers.items()}
    groups = imodel.resizable_groups
    with imodel.widths_kept():
        for step in _PROBES:  # fractions in [0.3, 0.9), spread over the groups
            fractions = [0.3 + 0.6 * ((i + 1) * step % 1.0) for i in range(len(groups))]
            try:
                imodel.resize(
                    widths={
                        g.name: max(1, round(g.full_size * f))
                        for g, f in zip(groups, fractions, strict=True)
                    }
                )
            except InnError:  # widths this model refuses: no fit
                break
            _, probe = _positions(imodel, only=set(layers))
            for n, layer in layers.items():
                samples[n].append((probe[n].other if n in probe else 0.0, sizes(layer)))
    for n, layer in layers.items():
        axes = _axes(layer)
        roles = list(axes)
        forms = [(), *((r,) for r in roles)]
        forms += [(r, q) for i, r in enumerate(roles) for q in roles[i:]]
        complete = len(samples[n]) == 1 + len(_PROBES)
        fit = next((f for f in forms if complete and _proportional(samples[n], f)), (*roles[:1],))
        first, widths = samples[n][0]
        pair = [axes[r] for r in fit] + [None] * (2 - len(fit))
        counts[n].other_fit = (first / _product(fit, widths), (pair[0], pair[1]))


def _product(form: tuple[str, ...], widths: Mapping[str, int]) -> float:
    return float(prod(widths[r] for r in form))


def _proportional(samples: list[tuple[float, dict[str, int]]], form: tuple[str, ...]) -> bool:
    """Whether the counts of ``samples`` (``(count, widths by role)``) are one constant times the
    product of the widths of ``form``'s roles."""
    (m0, w0), *rest = samples
    return all(
        abs(m * _product(form, w0) - m0 * _product(form, w))
        <= 1e-9 * max(m0 * _product(form, w), 1)
        for m, w in rest
    )


def _add_layer_count(
    layer: IntegralLayer, count: _LayerCount, macs: CostTerms, acts: CostTerms
) -> None:
    """The terms of a layer counted by running it, but those of its resampled tensors (added
    with the tensors): MACs on its fixed-size tensors (constant), MACs that multiply none of its
    tensors, and its output elements."""
    macs.add(sum(m for k, m in count.macs.items() if k not in count.numel), None, None)
    if count.other:
        macs.add(count.other_fit[0], *count.other_fit[1])
    if count.macs or count.other:
        out_axis = layer.segment_partitions("out")
        acts.add(count.outputs / count.out_width, out_axis, None)


def counted_costs(imodel: IntegralModel) -> dict[str, CostModel]:
    """``{"params": ..., "macs": ..., "activations": ...}`` of ``imodel``: parameters of the
    exported model, its multiply-accumulates at the example input (those ``FlopCounterMode``
    counts: convolutions, matrix products, attention), and the elements of the outputs of the
    layers that do them (a memory-traffic proxy used by the latency model),
    as functions of the widths of ``imodel.groups``. Counted once per model and kept while it
    lives (they depend on its structure and example input only; counting runs one forward
    pass, and two more where a layer multiplies activations by activations, see
    :func:`_fit_other`)."""
    if imodel not in _COUNTED:
        _COUNTED[imodel] = _count(imodel)
    return _COUNTED[imodel]


def _count(imodel: IntegralModel) -> dict[str, CostModel]:
    names = tuple(g.name for g in imodel.groups)
    index = {id(imodel.partition(n)): i for i, n in enumerate(names)}
    params, macs, acts = (CostTerms(index, len(names)) for _ in range(3))
    positions, counts = _positions(imodel)
    _fit_other(imodel, counts)
    # BatchNorms that export() folds: their parameters vanish, the layer before gets a bias
    pairs = imodel.export_folds()
    folded = {norm for _, norm in pairs}
    for layer_name, _ in pairs:
        layer = imodel.graph_module.get_submodule(layer_name)
        if isinstance(layer, IntegralLayer) and layer.bias_function is None:
            out = layer.segment_partitions("out")
            params.add(_output_factor(layer, bool(out)), out, None)
        elif not isinstance(layer, IntegralLayer) and layer.bias is None:
            params.add(layer.weight.shape[0], None, None)
    seen: set[int] = set()
    for name, module in imodel.graph_module.named_modules():
        if name in folded:
            seen.update(id(p) for p in module.parameters())
            continue
        if isinstance(module, IntegralLayer):
            seen.update(id(p) for n, p in module.named_parameters() if not n.startswith("module."))
            for tensor in module.channel_axes():
                values = getattr(module, f"{tensor}_function").values
                constant, axes = _tensor_axes(module, tensor)
                axes += [None] * (2 - len(axes))
                if isinstance(values, nn.Parameter):
                    params.add(constant, *axes)
                if name in counts and tensor in counts[name].numel:
                    count = counts[name]
                    macs.add(constant * count.macs[tensor] / count.numel[tensor], *axes)
                if tensor == "weight" and isinstance(module, _MAC_LAYERS):
                    macs.add(constant * positions[name], *axes)
                    out_axis = module.segment_partitions("out")
                    acts.add(
                        positions[name] * _output_factor(module, bool(out_axis)), out_axis, None
                    )
            if name in counts:
                _add_layer_count(module, counts[name], macs, acts)
        elif isinstance(module, _PLAIN_MAC_LAYERS) and name in positions:
            macs.add(module.weight.numel() * positions[name], None, None)
            channels = module.weight.shape[
                1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
            ]
            acts.add(positions[name] * channels, None, None)
    params.constant += sum(p.numel() for p in imodel.graph_module.parameters() if id(p) not in seen)
    return {
        "params": params.model(names),
        "macs": macs.model(names),
        "activations": acts.model(names),
    }
