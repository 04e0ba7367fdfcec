"""The sampling points of one continuous channel axis, shared by every tensor that uses it."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from inn.continuous.trainable import TrainablePartition
from inn.errors import PartitionError
from inn.numerics import quadrature_weights, rule_needs_endpoints, uniform

__all__ = ["Partition", "memoised", "sampling_memo"]

_MEMO: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar(
    "inn_sampling_memo", default=None
)


@contextmanager
def sampling_memo() -> Iterator[None]:
    """Within one forward pass, compute each trainable partition's points, quadrature weights
    and interpolation taps once, however many layers and tensors share them (with autograd on,
    sampled weights are not cached, and a group is read by several layers)."""
    if _MEMO.get() is not None:  # nested: the outer pass owns the memo
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def memoised(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, once per ``key`` inside :func:`sampling_memo`, every time outside it."""
    memo = _MEMO.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


class Partition(nn.Module):
    """Points on [0, 1] for a channel axis of ``full_size`` channels, currently ``size`` of them.

    By default the points are uniform (:func:`inn.numerics.uniform`); after :meth:`select` they
    are chosen lattice nodes (the original channels, no resampling); after :meth:`nest` every
    :meth:`resize` selects the first nodes of a ranking, so that the channels of a width include
    those of every narrower one (as in slimmable networks); after
    :meth:`make_trainable` they are the parameters of a :class:`~inn.continuous.TrainablePartition`.
    The size, the selection, the ranking and whether the points are trainable are saved in the
    state dict, so a resized, selected or tuned model is restored exactly by ``load_state_dict``.

    Args:
        full_size: number of channels of the original (discrete) axis = number of lattice nodes.
        rule: the quadrature rule of this axis; trapezoid and Simpson use closed partitions.
            Where the number of points does not allow the rule (Simpson needs an odd count >= 3,
            the closed rules at least 2 points), the next rule that does is used: Simpson ->
            trapezoid -> rectangle. The weights stay a valid quadrature of lower order.
    """

    def __init__(self, full_size: int, *, rule: str = "rectangle") -> None:
        super().__init__()
        if full_size < 1:
            raise PartitionError(f"a channel axis needs at least one channel, got {full_size}")
        self.full_size = int(full_size)
        self.rule = rule
        self.closed = rule_needs_endpoints(rule)
        self.size = self.full_size
        self.trainable: TrainablePartition | None = None
        self.selected: tuple[int, ...] | None = None  # lattice nodes kept, in order
        self.order: tuple[int, ...] | None = None  # nested selection: size n keeps order[:n]
        self.version = 0  # bumped on every change that is not a parameter update

    @property
    def is_uniform(self) -> bool:
        """Whether the points are ``size`` uniform ones (not selected nodes, not trained)."""
        return self.trainable is None and self.selected is None

    @property
    def sampling_key(self) -> tuple[int, tuple[int, ...] | None]:
        """Which channels the axis currently has, up to trained points: its size and selection."""
        return self.size, self.selected

    def points(self, like: Tensor | None = None) -> Tensor:
        """Current points, shape ``(size,)``, in the dtype/device of ``like`` if given."""
        if self.trainable is not None:
            dtype = None if like is None else like.dtype
            return memoised(("points", id(self), dtype), lambda: self._trained_points(dtype))
        dtype = like.dtype if like is not None else None
        device = like.device if like is not None else None
        if self.selected is not None:
            nodes = uniform(self.full_size, closed=self.closed, dtype=dtype, device=device)
            return nodes[self._selected_index(nodes.device)]
        return uniform(self.size, closed=self.closed, dtype=dtype, device=device)

    def _selected_index(self, device: torch.device) -> Tensor:
        return torch.tensor(self.selected, dtype=torch.long, device=device)

    def _trained_points(self, dtype: torch.dtype | None) -> Tensor:
        pts = self.trainable()
        return pts if dtype is None else pts.to(dtype)

    def rule_for(self, size: int) -> str:
        """The rule used with ``size`` points (see the class docstring)."""
        rule = self.rule
        if rule == "simpson" and (size < 3 or size % 2 == 0):
            rule = "trapezoid"
        if rule == "trapezoid" and size < 2:
            rule = "rectangle"
        return rule

    def weights(self, like: Tensor | None = None) -> Tensor:
        """Quadrature weights at the current points, shape ``(size,)``. Selected nodes keep
        their weights in the full partition: the kept channels contribute exactly what they
        contributed before, the others nothing (pruning by selection)."""
        if self.selected is not None:
            full = self.full_weights(like)
            return full[self._selected_index(full.device)]
        if self.trainable is None:
            return _uniform_weights(
                self.size, self.rule_for(self.size), self.closed, *_placement(like)
            )
        key = ("weights", id(self), None if like is None else (like.dtype, like.device))
        return memoised(
            key, lambda: quadrature_weights(self.points(like), self.rule_for(self.size))
        )

    def full_weights(self, like: Tensor | None = None) -> Tensor:
        """Quadrature weights of the full-size uniform partition (the lattice nodes)."""
        return _uniform_weights(
            self.full_size, self.rule_for(self.full_size), self.closed, *_placement(like)
        )

    def resize(self, size: int) -> None:
        """Use ``size`` uniform points, or under :meth:`nest` the first ``size`` nodes of the
        ranking (drops trained points)."""
        if isinstance(size, bool) or not isinstance(size, int) or not size >= 1:
            raise PartitionError(f"a partition size must be a positive int, got {size!r}")
        self.size, self.trainable, self.selected = size, None, None
        if self.order is not None and size < self.full_size:
            self.selected = tuple(sorted(self.order[:size]))
        self.version += 1

    def nest(self, order: Sequence[int] | None) -> None:
        """From now on :meth:`resize` to ``n`` points keeps the lattice nodes ``order[:n]``
        (``order``: every node once, the most important first), so every width's channels
        include every narrower width's; ``None`` goes back to uniform points. The current size
        is kept and takes its points under the new rule."""
        if order is not None:
            order = tuple(int(i) for i in order)
            if sorted(order) != list(range(self.full_size)):
                raise PartitionError(
                    f"nest needs every node index in [0, {self.full_size}) once, got "
                    f"{list(order)[:8]}{'...' if len(order) > 8 else ''} ({len(order)} indices)"
                )
        self.order = order
        self.resize(self.size)

    def select(self, indices: Sequence[int]) -> None:
        """Keep the lattice nodes ``indices`` (the original channels at those positions of the
        permuted axis), sorted, instead of resampling: exactly the discrete network's channels,
        as channel-selection pruning keeps them."""
        kept = sorted({int(i) for i in indices})
        if not kept or kept[0] < 0 or kept[-1] >= self.full_size:
            raise PartitionError(
                f"select needs node indices in [0, {self.full_size}), got {list(indices)[:8]}"
            )
        self.size, self.trainable, self.selected = len(kept), None, tuple(kept)
        self.version += 1

    def snapshot(self) -> tuple[int, TrainablePartition | None, tuple[int, ...] | None]:
        """The state :meth:`restore` puts back: size, trained points (the same module), selection."""
        return self.size, self.trainable, self.selected

    def restore(
        self, snapshot: tuple[int, TrainablePartition | None, tuple[int, ...] | None]
    ) -> None:
        self.size, self.trainable, self.selected = snapshot
        self.version += 1

    def make_trainable(self, like: Tensor | None = None) -> TrainablePartition:
        """Turn the current points into trainable parameters (on the device of ``like``)."""
        if self.trainable is None:
            self.trainable = TrainablePartition(self.size, self.points(), closed=self.closed)
            self.selected = None  # the trained points start where the selected nodes are
            if like is not None:
                self.trainable.to(like.device)
            self.version += 1
        return self.trainable

    def cache_key(self) -> tuple[Any, ...]:
        """Changes whenever the points may have changed."""
        logits = None if self.trainable is None else self.trainable.logits
        return (id(self), self.version, self.size, None if logits is None else logits._version)

    def get_extra_state(self) -> dict[str, Any]:
        selected = None if self.selected is None else list(self.selected)
        order = None if self.order is None else list(self.order)
        return {"size": self.size, "trainable": self.trainable is not None, "selected": selected,
                "order": order}  # fmt: skip

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.order = None if state.get("order") is None else tuple(state["order"])
        self.resize(int(state["size"]))
        if state.get("selected") is not None:
            self.select(state["selected"])
        if state["trainable"]:
            device = next(iter(self.buffers()), torch.empty(0)).device
            self.make_trainable().to(device)

    def extra_repr(self) -> str:
        kind = (
            "trainable" if self.trainable is not None
            else "selected" if self.selected is not None
            else "uniform"
        )  # fmt: skip
        kind += ", nested" if self.order is not None else ""
        return f"size={self.size}, full_size={self.full_size}, rule={self.rule!r}, {kind}"


def _placement(like: Tensor | None) -> tuple[torch.dtype, torch.device]:
    if like is None:
        return torch.get_default_dtype(), torch.device("cpu")
    return like.dtype, like.device


@functools.lru_cache(maxsize=4096)
def _uniform_weights(
    size: int, rule: str, closed: bool, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Quadrature weights of a uniform partition (memoised: they are needed at every forward)."""
    with torch.inference_mode(False):  # memoised tensors must also serve autograd later
        return quadrature_weights(uniform(size, closed=closed, dtype=dtype, device=device), rule)
