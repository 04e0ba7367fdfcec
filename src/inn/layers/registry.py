"""The registry of integral layers: which layer replaces a module, keyed like the channel rules.

An entry is a *factory* ``factory(module, request) -> IntegralLayer``: it receives the discrete
module and a :class:`LayerRequest` (what the graph analysis found about the module) and returns
the integral layer that replaces it. Entries are keyed by module type, as the channel rules are,
or by *kind*, the string the module's channel rule recorded (``"conv"``, ``"wrapped"``,
``"attention"``...). The built-in entries register themselves where their layers are defined
(:mod:`inn.layers.conv`, ``linear``, ``norm``, ``attention``, ``wrapped``); a user who taught the
graph analysis a layer of their own (``inn.register_channel_rule``) can give it an integral layer
of its own with :func:`register_integral_layer`.

Example:
    >>> @register_integral_layer(MyScale)
    ... def my_scale(module, request):
    ...     return MyIntegralScale(module, request.partitions, rule=request.rule)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

from inn.continuous import Partition
from inn.errors import ConversionError
from inn.layers.base import IntegralLayer

__all__ = ["LayerFactory", "LayerRequest", "integral_layer_for", "register_integral_layer"]


@dataclass(frozen=True)
class LayerRequest:
    """What the conversion asks of a layer factory: one module as the graph analysis found it.

    Attributes:
        name: the module's path in the model.
        kind: what its channel rule recorded: ``"conv"``, ``"grouped"``, ``"conv_transpose"``,
            ``"linear"``, ``"norm"``, ``"depthwise"``, ``"wrapped"``, ``"attention"``,
            ``"window_attention"`` or a kind of a user's rule.
        partitions: role (``"in"``, ``"out"``, an attention's ``"qkv_head_dim"``...) -> the
            partitions of that channel axis, one per segment; None where the role keeps its
            full width. Every role the rule recorded is a key.
        rule: the quadrature rule of the channel axes.
        groups: a grouped convolution's groups (``partitions["out"]`` repeats one group's).
        blocks: role -> for each segment, how many consecutive features each channel spans
            (more than 1 after a flatten).
        tensors: for kinds that declare their tensors' layout (``"wrapped"``, the attention
            kinds): ``{tensor name: {dim: role}}``; None otherwise.
        integrated: ``{tensor name: dim}`` summed over by the module (an input axis).
        one_axis: input and output channels are one axis (elementwise layers and norms).
    """

    name: str
    kind: str
    partitions: Mapping[str, Sequence[Partition] | None]
    rule: str = "rectangle"
    groups: int = 1
    blocks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    tensors: Mapping[str, Mapping[int, str]] | None = None
    integrated: Mapping[str, int] = field(default_factory=dict)
    one_axis: bool = True


LayerFactory = Callable[[nn.Module, LayerRequest], IntegralLayer]

_TYPES: dict[type, tuple[LayerFactory, frozenset[str] | None]] = {}
_KINDS: dict[str, LayerFactory] = {}


def register_integral_layer(
    *keys: type[nn.Module] | str, kinds: Collection[str] | None = None
) -> Callable[[LayerFactory], LayerFactory]:
    """Register ``factory(module, request) -> IntegralLayer`` for module types or kinds.

    A module type matches modules of exactly that type: a subclass may change ``forward``, so
    it falls to its kind's entry (which resamples its tensors through its own ``forward``)
    unless it is registered itself. A string key is a kind, the entry of every module of that
    kind without an entry of its type. A later registration of a key replaces the earlier one.

    Args:
        keys: ``nn.Module`` subclasses and/or kinds (see :class:`LayerRequest`).
        kinds: for type keys, the kinds the factory handles; a module of such a type recorded
            with another kind (a user's channel rule for a standard layer) falls to that kind's
            entry. None: every kind.

    Example:
        >>> inn.register_channel_rule(MyScale, "elementwise", tensors={"gain": 0})
        >>> register_integral_layer(MyScale)(my_scale_factory)
    """
    for key in keys:
        is_module = isinstance(key, type) and issubclass(key, nn.Module)
        if not (is_module or isinstance(key, str)):
            raise ValueError(f"keys are nn.Module classes or kinds (strings), got {key!r}")
        if isinstance(key, str) and kinds is not None:
            raise ValueError(f"kinds= restricts module types only, got the kind {key!r}")
    restricted = None if kinds is None else frozenset(kinds)

    def register(factory: LayerFactory) -> LayerFactory:
        for key in keys:
            if isinstance(key, str):
                _KINDS[key] = factory
            else:
                _TYPES[key] = (factory, restricted)
        return factory

    return register


def integral_layer_for(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    """The integral layer replacing ``module``: its exact type's entry (if it handles
    ``request.kind``), else its kind's.

    Raises:
        ConversionError: no entry for the module's type nor for its kind.
    """
    entry = _TYPES.get(type(module))
    if entry is not None and (entry[1] is None or request.kind in entry[1]):
        return entry[0](module, request)
    factory = _KINDS.get(request.kind)
    if factory is None:
        cls = type(module).__name__
        raise ConversionError(
            f"no integral layer for {request.name!r} ({cls}, kind {request.kind!r}): register "
            f"one with inn.layers.register_integral_layer({cls})(factory), where "
            "factory(module, request) returns an IntegralLayer"
        )
    return factory(module, request)
