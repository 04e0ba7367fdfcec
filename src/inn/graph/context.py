"""What a channel rule may call: the contract between the analysis and rule authors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch.fx as fx

from inn.graph.layout import Axes, Layout, Segment

__all__ = ["RuleContext"]


class RuleContext(Protocol):
    """The analysis as a channel rule sees it: everything a rule may read or call.

    A rule is ``rule(ctx, node, module) -> value``: ``ctx`` is this context, ``node`` the
    ``torch.fx`` node being analysed (its arguments were analysed before it) and ``module`` the
    called module (None for a function or a method). It returns the channel layout of the
    node's output:

    * a :class:`~inn.graph.layout.Layout` (which dim of the output holds the channels, made of
      which axes), usually the input's (``ctx.input(node)``), the input's with new segments
      (``x.with_segments(...)``) or a new axis (``ctx.new_output`` / ``ctx.producer``);
    * a list of values for an output that is a tuple (``[out, None]``);
    * None for a value without channels.

    On the way it may tie axes (``ctx.axes.tie``: they share one partition), record which of a
    module's tensors run along which axes (``ctx.record``: that is what gets resampled), and pin
    what it cannot prove safe (``ctx.unknown``: every axis flowing in stays at full width). A
    rule must not resize on a guess: where in doubt, return ``ctx.unknown(node, reason)``. The
    analysis checks the returned layout against the traced shape; a user's rule that disagrees
    is refused with an error naming it.

    A rule uses only the members below; the analysis object that implements them
    (:class:`inn.graph.groups.Analyser`) is otherwise private.

    Example:
        >>> def scale_rule(ctx: RuleContext, node: fx.Node, module: nn.Module | None) -> Any:
        ...     x = ctx.input(node)  # channels pass: record the per-channel tensor with them
        ...     if not isinstance(x, Layout) or x.dim != 1:
        ...         return ctx.unknown(node, f"scale {node.target!r} over another axis")
        ...     ctx.record(str(node.target), "wrapped", {"in": x.segments, "out": x.segments},
        ...                wrapped=Wrapped({"gamma": {0: "out"}}))
        ...     return x
        >>> inn.register_channel_rule(MyScale, scale_rule)
    """

    # -- state a rule reads (and, for the bookkeeping ones, adds to) ---------------------------
    @property
    def gm(self) -> fx.GraphModule:
        """The traced model (``ctx.gm.get_submodule(name)`` reads a module's tensors)."""
        ...

    @property
    def axes(self) -> Axes:
        """The channel axes: ``new``, ``tie``, ``pieces``, ``tied_pieces``, ``refine``,
        ``factor``, ``expand`` and ``size`` (see :class:`~inn.graph.layout.Axes`)."""
        ...

    @property
    def values(self) -> Mapping[fx.Node, Any]:
        """The value of every node analysed so far: a Layout, an
        :class:`~inn.graph.layout.Attribute`, a :class:`~inn.graph.layout.ShapeOf` /
        :class:`~inn.graph.layout.ChannelCount`, a list of those, or None. Read-only."""
        ...

    @property
    def splits(self) -> dict[str, tuple[int, list[tuple[Segment, ...]]]]:
        """Split node name -> (channel dim, the segments of each piece): a rule that cuts the
        channels (``torch.split``) adds its pieces, whose sizes then follow the widths."""
        ...

    @property
    def slices(self) -> dict[str, tuple[int, list[tuple[Segment, ...]]]]:
        """Index node name -> (position of the channel range in its index, the segments
        (before the range, in it)): a rule that takes a range of the channels (``x[:, a:b]``)
        adds it, whose bounds then follow the widths."""
        ...

    @property
    def probed(self) -> dict[str, int]:
        """Operation found channel-wise by probing -> number of calls (reported to the user);
        the probing rule adds to it."""
        ...

    # -- reading the node ----------------------------------------------------------------------
    def input(self, node: fx.Node, i: int = 0) -> Any:
        """The value of the node's ``i``-th positional argument (None if not a node)."""
        ...

    def argument(self, node: fx.Node, i: int, name: str, default: Any = None) -> Any:
        """The node's argument at position ``i`` or keyword ``name`` (as written, not its value)."""
        ...

    def shape(self, node: Any) -> tuple[int, ...] | None:
        """The traced shape of a node's output (None for a non-tensor or a non-node)."""
        ...

    # -- making layouts ------------------------------------------------------------------------
    def fresh(self, node: fx.Node, reason: str, dim: int = 1) -> Layout | None:
        """A new axis on dimension ``dim`` of the node's output, pinned with ``reason``."""
        ...

    def new_output(
        self, name: str, channels: int, copies: int = 1, role: str = "out"
    ) -> tuple[Segment, ...]:
        """A new axis of ``channels`` owned by module ``name`` under ``role`` (the same axis at
        every call of the module), repeated ``copies`` times (a grouped layer's groups)."""
        ...

    def producer(self, name: str, kind: str, x: Layout, out_channels: int) -> Layout:
        """A dense layer ``name`` of ``kind`` (``"conv"``, ``"linear"``...) reading ``x`` and
        writing ``out_channels`` new channels: records its roles, returns the output layout."""
        ...

    def record(
        self, name: str, kind: str, roles: Mapping[str, Sequence[Segment]], **extra: Any
    ) -> None:
        """Note which axes module (or tensor attribute) ``name`` of ``kind`` runs along per role
        (``"in"``, ``"out"``...); ``extra`` fills :class:`~inn.graph.groups.ModuleRoles`
        (``wrapped=``, ``groups=``, ``tensor_dims=``). A second call ties the axes seen."""
        ...

    # -- pinning -------------------------------------------------------------------------------
    def unknown(self, node: fx.Node, what: str) -> Layout | None:
        """Pin every axis flowing into ``node`` (``what`` names it in the reason) and return the
        output's layout: the input's when the shape is unchanged, else a new pinned axis."""
        ...

    def pin_value(self, value: Any, reason: str) -> None:
        """Pin every axis in ``value`` (a layout, an attribute or a list of them)."""
        ...

    def pin_reads(self, node: fx.Node, allowed: fx.Node | None = None) -> None:
        """Pin the channels whose count ``node`` reads from a shape, except through ``allowed``."""
        ...
