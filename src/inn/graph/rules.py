"""The registry of channel rules: one small entry per module type, function or method.

A *rule* says how an operation's channel axes relate: it receives the analysis context (what it
may call is the :class:`~inn.graph.context.RuleContext` contract), the ``torch.fx`` node and (for
modules) the module, and returns the channel layout of the node's output (a
:class:`~inn.graph.layout.Layout`, a list of them, or None for a non-tensor value), tying,
splitting or pinning axes through the context on the way. This module only holds the entries:
the built-in ones register themselves when their modules (:mod:`inn.graph.rules_torch`,
``rules_tensor``, ``rules_sequence``, ``rules_torchvision``, ``rules_timm``) are imported by
:mod:`inn.graph`; users teach their own layers with :func:`register_channel_rule`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.fx as fx
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.trace import register_leaf_module
from inn.graph.wrapped import Wrapped, wrapped

__all__ = [
    "ChannelRule",
    "declared_rule",
    "function_rule",
    "module_rule",
    "register_channel_rule",
    "rule_for",
]

ChannelRule = Callable[[RuleContext, fx.Node, "nn.Module | None"], Any]

_MODULES: dict[type, ChannelRule] = {}
_FUNCTIONS: dict[Any, ChannelRule] = {}
_METHODS: dict[str, ChannelRule] = {}
_USER: set[Any] = set()  # targets whose rule a user registered: a contradiction is an error


def module_rule(*types: type) -> Callable[[ChannelRule], ChannelRule]:
    """Register a built-in rule for module ``types`` (subclasses included); a user's rule for
    one of them stays (a library's rules are added lazily, maybe after the user's)."""

    def register(rule: ChannelRule) -> ChannelRule:
        for t in types:
            if t not in _USER:
                _MODULES[t] = rule
        return rule

    return register


def function_rule(*targets: Any) -> Callable[[ChannelRule], ChannelRule]:
    """Register a built-in rule for functions (objects) or methods (names, as strings); a
    user's rule for one of them stays."""

    def register(rule: ChannelRule) -> ChannelRule:
        for t in targets:
            if t in _USER:
                continue
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
    * a callable ``rule(ctx, node, module)`` returning the output's layout, calling only what
      :class:`~inn.graph.context.RuleContext` offers (see :mod:`inn.graph.rules_torch` for
      examples).

    The analysis checks each rule against the traced shapes: a rule that contradicts them is
    refused with a :class:`~inn.errors.ConversionError` naming the module.

    Example:
        >>> inn.register_channel_rule(MyScale, "elementwise", tensors={"gamma": 0})
    """
    if isinstance(rule, str):
        if rule not in ("elementwise", "dense", "pin"):
            raise ValueError(
                f"rule must be 'elementwise', 'dense', 'pin' or a callable, got {rule!r}"
            )
        if rule != "pin" and not (isinstance(target, type) and issubclass(target, nn.Module)):
            raise ValueError(f"rule {rule!r} applies to nn.Module classes, got {target!r}")
        rule = declared_rule(rule, tensors, reason)
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


def declared_rule(kind: str, tensors: Mapping[str, Any] | None, reason: str) -> ChannelRule:
    """The rule for ``register_channel_rule(target, kind, tensors=...)``."""
    if kind == "pin":

        def pin(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
            return ctx.unknown(node, reason or f"a pinned layer ({node.target})")

        return pin
    if kind == "elementwise":
        dims = {t: {int(d): "out"} for t, d in (tensors or {}).items()}
        spec = Wrapped(dims)
    else:
        spec = Wrapped(
            dict(tensors or {"weight": {0: "out", 1: "in"}, "bias": {0: "out"}}),
            integrated={"weight": 1} if tensors is None else {},
            one_axis=False,
        )

    def declared(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
        if not spec.tensors and spec.one_axis:
            return ctx.input(node)
        return wrapped(ctx, node, spec)

    return declared
