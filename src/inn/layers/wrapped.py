"""Integral versions of layers that have no class of their own here: any module whose tensors
run along its channels (timm's norm + activation layers, LayerNorm, GroupNorm, a user's layer),
and tensor attributes of a model (a layer scale, a position embedding, a class token)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from inn.continuous import Partition
from inn.errors import ConversionError
from inn.layers.base import IntegralLayer, PartitionSpec
from inn.layers.narrow_statistics import NarrowStatistics
from inn.layers.registry import LayerFactory, LayerRequest, register_integral_layer
from inn.module_sizes import set_size_attributes, size_attributes

__all__ = ["IntegralSlice", "IntegralSplit", "IntegralTensor", "IntegralWrapped", "wrapped_layer"]


_STATISTICS = ("running_mean", "running_var")


class IntegralWrapped(NarrowStatistics, IntegralLayer):
    """A module whose named tensors are continuous along their channel dims; it runs its own
    ``forward`` with the tensors sampled at the current partitions.

    Args:
        module: the discrete module (its listed tensors are moved into this layer).
        tensors: ``{tensor name: {dim: role}}`` (dotted names reach submodules).
        integrated: ``{tensor name: dim}`` summed over by the module (an input axis).
        partitions: ``{role: partitions}``; roles ``"out"`` and ``"in"``.

    Size attributes of the module (``num_features``, ``in_channels``, ``normalized_shape``,
    a depthwise convolution's ``groups``...) follow the widths in ``forward`` and in the export.

    A module whose forward updates ``running_mean`` and ``running_var`` (a BatchNorm subclass
    such as timm's ``BatchNormAct2d``) keeps its statistics at narrow widths as an integral
    BatchNorm does (:class:`~inn.layers.narrow_statistics.NarrowStatistics`): measured ones,
    and width buckets that random-width training records from the module's own update.
    """

    def __init__(
        self,
        module: nn.Module,
        tensors: Mapping[str, Mapping[int, str]],
        partitions: PartitionSpec,
        *,
        integrated: Mapping[str, int] | None = None,
        rule: str = "rectangle",
    ) -> None:
        super().__init__(rule)
        module = copy.deepcopy(module)
        present = {}
        full_sizes: dict[str, int] = {}
        for name, dims in tensors.items():
            tensor = _pop_tensor(module, name)
            present[name] = tensor
            for dim, role in dims.items():
                if tensor is not None:
                    full_sizes[role] = tensor.shape[dim]
        for role, given in partitions.items():  # a role of size attributes only
            if given is not None and role not in full_sizes:
                parts = [given] if isinstance(given, Partition) else list(given)
                full_sizes[role] = sum(p.full_size for p in parts)
        self._set_partitions(
            {r: p for r, p in partitions.items() if r in full_sizes}, full_sizes, rule
        )
        self.full_sizes = full_sizes
        self.tensor_names = {name: name.replace(".", "__") for name in tensors}
        for name, tensor in present.items():
            self._register(
                self.tensor_names[name],
                tensor,
                dict(tensors[name]),
                integrated=(integrated or {}).get(name),
                trainable=isinstance(tensor, nn.Parameter),
            )
        self.module = module
        self._originals = size_attributes(module)
        self.track_statistics = False  # set by random-width training (see ``tensors``)
        batchnorm_like = sorted(self.tracked_buffers) == sorted(_STATISTICS) and all(
            self.channel_axes()[n] == {0: "out"} for n in _STATISTICS
        )
        self._init_narrow_statistics(present["running_mean"] if batchnorm_like else None)

    def _statistics_eps(self) -> float:
        return self.module.eps

    def _statistics_momentum(self) -> float | None:
        return self.module.momentum

    def widths(self) -> dict[str, int]:
        return {role: self.size(role, n) for role, n in self.full_sizes.items()}

    def fit_sizes(self, module: nn.Module) -> None:
        """Set ``module``'s channel-count attributes to the current widths."""
        set_size_attributes(module, self._originals, self.widths())

    @property
    def tracked_buffers(self) -> list[str]:
        """The module's continuous buffers that its forward updates in training (a BatchNorm's
        running statistics): buffers of a module that has a ``momentum``."""
        if not hasattr(self.module, "momentum"):
            return []
        return [
            name
            for name, key in self.tensor_names.items()
            if (f := getattr(self, f"{key}_function")) is not None
            and not isinstance(f.values, nn.Parameter)
        ]

    def tensors(self) -> dict[str, Tensor]:
        """The module's tensors at the current widths, by their names in the module. In
        training the module's update of its running statistics is dropped (it normalises by
        the batch), except while ``track_statistics`` is set at full uniform width: then the
        running statistics are the node values themselves, so that the update lands in them
        (as an integral BatchNorm's does)."""
        t = self.sampled()
        out = {name: t[key] for name, key in self.tensor_names.items() if t.get(key) is not None}
        if not self.training:
            return out
        tracking = self.track_statistics and self.at_full_width()
        for name in self.tracked_buffers:
            function = getattr(self, f"{self.tensor_names[name]}_function")
            out[name] = function.values if tracking else out[name].detach().clone()
        return out

    def _evaluated(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """``tensors`` with the statistics of :meth:`narrow_statistics` where the module keeps
        them (in eval mode and in the export)."""
        return self.narrow_statistics(tensors) if self.keeps_narrow_statistics else tensors

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.fit_sizes(self.module)
        tensors = self.tensors() if self.training else self._evaluated(self.tensors())
        # recording a narrow width: the module's update of zeroed running statistics is its
        # batch statistics times its averaging factor
        zeroed = {n: torch.zeros_like(tensors[n]) for n in _STATISTICS} if self._recording() else {}
        tensors.update(zeroed)
        out = functional_call(self.module, tensors, args, kwargs)
        _forget_sampled(self.module)
        factor = self._averaging_factor() if zeroed else 0.0
        if factor > 0:
            self._record_width(zeroed["running_mean"] / factor, zeroed["running_var"] / factor)
        return out

    def _averaging_factor(self) -> float:
        """The weight of the batch in the module's last update of its running statistics
        (its momentum; with ``momentum=None``, one over the batches tracked, as BatchNorm)."""
        if self.module.momentum is not None:
            return float(self.module.momentum)
        tracked = getattr(self.module, "num_batches_tracked", None)
        return 1.0 / float(tracked) if tracked is not None and tracked > 0 else 0.0

    def to_discrete(self) -> nn.Module:
        plain = copy.deepcopy(self.module)
        for name, value in self._evaluated(self.tensors()).items():
            key = self.tensor_names[name]
            owner_name, _, attr = name.rpartition(".")
            owner = plain.get_submodule(owner_name)
            value = value.detach().clone()
            if getattr(self, f"{key}_function").values.requires_grad:
                setattr(owner, attr, nn.Parameter(value))  # (an RNN's __setattr__ notes it)
            else:
                owner.register_buffer(attr, value)
        self.fit_sizes(plain)
        return plain


@register_integral_layer("wrapped")
def wrapped_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    """A module resampled through its own ``forward``, its tensors laid out as its channel rule
    declared (``request.tensors``; tensors the module does not hold, a missing bias, are
    skipped)."""
    if request.tensors is None:
        raise ConversionError(
            f"{request.name!r} ({type(module).__name__}): its rule recorded kind "
            f"{request.kind!r} without the layout of its tensors"
        )
    parts = request.partitions
    if request.one_axis:
        parts = {"out": parts.get("out") or parts.get("in")}
    tensors = {n: d for n, d in request.tensors.items() if _has_tensor(module, n)}
    return IntegralWrapped(module, tensors, parts, integrated=request.integrated, rule=request.rule)


def _has_tensor(module: nn.Module, name: str) -> bool:
    owner, _, attr = name.rpartition(".")
    return getattr(module.get_submodule(owner), attr, None) is not None


def _as_standard_layer(
    tensors: Mapping[str, Mapping[int, str]], integrated: Mapping[str, int], one_axis: bool
) -> LayerFactory:
    """The entry of a standard layer's kind, for its subclasses (whose ``forward`` may differ
    from the standard one's): resampled through their own ``forward`` with the standard
    layout of the tensors."""

    def subclass_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
        layout = replace(request, tensors=tensors, integrated=integrated, one_axis=one_axis)
        return wrapped_layer(module, layout)

    return subclass_layer


_DENSE = {"weight": {0: "out", 1: "in"}, "bias": {0: "out"}}
register_integral_layer("conv", "linear")(_as_standard_layer(_DENSE, {"weight": 1}, False))
register_integral_layer("depthwise")(
    _as_standard_layer({"weight": {0: "out"}, "bias": {0: "out"}}, {}, True)
)
register_integral_layer("norm")(
    _as_standard_layer(
        {n: {0: "out"} for n in ("weight", "bias", "running_mean", "running_var")}, {}, True
    )
)


def _forget_sampled(module: nn.Module) -> None:
    """Drop sampled tensors a module kept from the last call (an RNN lists its weights in
    ``_flat_weights``): they hold the sampling graph, which ``deepcopy`` cannot copy; the next
    call sets them again."""
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, list):
                for i, t in enumerate(value):
                    if isinstance(t, Tensor) and t.grad_fn is not None:
                        value[i] = None


class IntegralTensor(IntegralLayer):
    """A tensor attribute continuous along one dim (its channels); calling it returns the tensor
    sampled at the current partition."""

    def __init__(
        self, tensor: Tensor, dim: int, partitions: PartitionSpec, *, rule: str = "rectangle"
    ) -> None:
        super().__init__(rule)
        self._set_partitions(partitions, {"out": tensor.shape[dim]}, rule)
        self.is_parameter = isinstance(tensor, nn.Parameter)
        self._register("value", tensor, {dim: "out"}, trainable=self.is_parameter)

    def forward(self) -> Tensor:
        return self.sampled()["value"]

    def to_discrete(self) -> Tensor:
        value = self.sampled()["value"].detach().clone()
        return nn.Parameter(value) if self.is_parameter else value


def _pop_tensor(module: nn.Module, name: str) -> Tensor | None:
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    if attr in owner._parameters:
        return owner._parameters.pop(attr)
    if attr in owner._buffers:
        return owner._buffers.pop(attr)
    raise AttributeError(f"{type(module).__name__} has no parameter or buffer {name!r}")


class IntegralSplit(nn.Module):
    """``torch.split`` along the channels, with piece sizes that follow the partitions.

    Args:
        pieces: per piece, its ``(partition, block)`` segments in order.
        dim: the channel dim.
    """

    def __init__(self, pieces: list[list[tuple[Partition, int]]], dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.partitions = nn.ModuleList(p for piece in pieces for p, _ in piece)
        self.layout = [[block for _, block in piece] for piece in pieces]

    def sizes(self) -> list[int]:
        parts = iter(self.partitions)
        return [sum(next(parts).size * block for block in piece) for piece in self.layout]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return torch.split(x, self.sizes(), self.dim)


class IntegralSlice(IntegralSplit):
    """``x[index]`` taking a range of the channels, with bounds that follow the partitions.

    Args:
        pieces: the ``(partition, block)`` segments before the range, then those in it.
        position: where the channels' slice sits in ``index``.
        index: the index (no ``Ellipsis``), its entry at ``position`` replaced by the bounds.
    """

    def __init__(
        self, pieces: list[list[tuple[Partition, int]]], position: int, index: tuple
    ) -> None:
        super().__init__(pieces, dim=position)  # a split's dim; a slice reads `position`
        self.position, self.index = position, index

    def current_index(self) -> tuple:
        """``index`` with the channels' range at the current widths."""
        before, taken = self.sizes()
        at = self.position
        return (*self.index[:at], slice(before, before + taken), *self.index[at + 1 :])

    def forward(self, x: Tensor) -> Tensor:
        return x[self.current_index()]
