"""The registry of channel rules: one small entry per module type, function or method.

A *rule* says how an operation's channel axes relate: it receives the analysis context, the
``torch.fx`` node and (for modules) the module, and returns the channel layout of the node's
output (a :class:`~inn.graph.layout.Layout`, a list of them, or None for a non-tensor value),
tying, splitting or pinning axes through the context on the way. Built-in entries live in
:mod:`inn.graph.rules_torch` and :mod:`inn.graph.rules_timm`; users teach their own layers with
:func:`register_channel_rule`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch.fx as fx
from torch import nn

from inn.graph.trace import register_leaf_module

if TYPE_CHECKING:
    from inn.graph.groups import Analyser

__all__ = ["ChannelRule", "Wrapped", "module_rule", "register_channel_rule", "rule_for"]

ChannelRule = Callable[["Analyser", fx.Node, "nn.Module | None"], Any]

_MODULES: dict[type, ChannelRule] = {}
_FUNCTIONS: dict[Any, ChannelRule] = {}
_METHODS: dict[str, ChannelRule] = {}
_USER: set[Any] = set()  # targets whose rule a user registered: a contradiction is an error


@dataclass(frozen=True)
class Wrapped:
    """How a module without an integral counterpart of its own is resized: its tensors are
    resampled along their channel dims and passed to its own ``forward``.

    Attributes:
        tensors: ``{tensor name: {dim: role}}`` with roles ``"in"`` / ``"out"``.
        integrated: ``{tensor name: dim}`` summed over by the layer (an input axis).
        one_axis: input and output channels are one axis (elementwise layers and norms).
        groups: the channels form this many equal groups sharing one partition (GroupNorm).
    """

    tensors: Mapping[str, Mapping[int, str]]
    integrated: Mapping[str, int] = field(default_factory=dict)
    one_axis: bool = True
    groups: int = 1


def module_rule(*types: type) -> Callable[[ChannelRule], ChannelRule]:
    """Register a built-in rule for module ``types`` (subclasses included)."""

    def register(rule: ChannelRule) -> ChannelRule:
        for t in types:
            _MODULES[t] = rule
        return rule

    return register


def function_rule(*targets: Any) -> Callable[[ChannelRule], ChannelRule]:
    """Register a built-in rule for functions (objects) or methods (names, as strings)."""

    def register(rule: ChannelRule) -> ChannelRule:
        for t in targets:
            if isinstance(t, str):
                _METHODS[t] = rule
            else:
                _FUNCTIONS[t] = rule
        return rule

    return register


def rule_for(node: fx.Node, module: nn.Module | None) -> tuple[ChannelRule | None, bool]:
    """The rule of ``node`` (None if there is none) and whether a user registered it."""
    if module is not None:
        for cls in type(module).__mro__:
            if cls in _MODULES:
                return _MODULES[cls], cls in _USER
        return None, False
    if node.op == "call_method":
        return _METHODS.get(str(node.target)), node.target in _USER
    try:
        return _FUNCTIONS.get(node.target), node.target in _USER
    except TypeError:  # unhashable target
        return None, False


def register_channel_rule(
    target: type[nn.Module] | Callable[..., Any] | str,
    rule: str | ChannelRule = "elementwise",
    *,
    tensors: Mapping[str, int] | Mapping[str, Mapping[int, str]] | None = None,
    reason: str = "",
) -> None:
    """Teach the graph analysis how a custom layer (or function, or method name) treats channels.

    A module class registered here is traced as one call (its ``forward`` may hold control
    flow). Rules:

    * ``"elementwise"``: the output has the input's channels (an activation, a norm, a scale);
      ``tensors={"weight": 0, ...}`` names the per-channel tensors and their channel dim, which
      are resampled with the channels (the module's ``forward`` is called with them).
    * ``"dense"``: like ``nn.Linear`` / ``nn.Conv2d``: ``weight`` is ``(out, in, ...)``, ``bias``
      ``(out,)``; the output gets new channels and the input channels are integrated. Give
      ``tensors={"weight": {0: "out", 1: "in"}, ...}`` for another layout.
    * ``"pin"``: keep every channel axis flowing in and out at full width (``reason`` says why).
    * a callable ``rule(analyser, node, module)`` returning the output's layout (see
      :mod:`inn.graph.rules_torch` for examples).

    The analysis checks each rule against the traced shapes: a rule that contradicts them is
    refused with a :class:`~inn.errors.ConversionError` naming the module.

    Example:
        >>> inn.register_channel_rule(MyScale, "elementwise", tensors={"gamma": 0})
    """
    from inn.graph import rules_torch

    if isinstance(rule, str):
        if rule not in ("elementwise", "dense", "pin"):
            raise ValueError(
                f"rule must be 'elementwise', 'dense', 'pin' or a callable, got {rule!r}"
            )
        if rule != "pin" and not (isinstance(target, type) and issubclass(target, nn.Module)):
            raise ValueError(f"rule {rule!r} applies to nn.Module classes, got {target!r}")
        rule = rules_torch.declared_rule(rule, tensors, reason)
    elif not callable(rule):
        raise ValueError(f"rule must be a string or a callable, got {type(rule).__name__}")
    if isinstance(target, type) and issubclass(target, nn.Module):
        register_leaf_module(target)
        _MODULES[target] = rule
    elif isinstance(target, str):
        _METHODS[target] = rule
    else:
        _FUNCTIONS[target] = rule
    _USER.add(target)
