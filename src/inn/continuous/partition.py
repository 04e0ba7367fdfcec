"""The sampling points of one continuous channel axis, shared by every tensor that uses it."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator
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

    By default the points are uniform (:func:`inn.numerics.uniform`); after
    :meth:`make_trainable` they are the parameters of a :class:`~inn.continuous.TrainablePartition`.
    The size and whether the points are trainable are saved in the state dict, so a resized or
    tuned model is restored exactly by ``load_state_dict``.

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
        self.version = 0  # bumped on every change that is not a parameter update

    def points(self, like: Tensor | None = None) -> Tensor:
        """Current points, shape ``(size,)``, in the dtype/device of ``like`` if given."""
        if self.trainable is not None:
            dtype = None if like is None else like.dtype
            return memoised(("points", id(self), dtype), lambda: self._trained_points(dtype))
        dtype = like.dtype if like is not None else None
        device = like.device if like is not None else None
        return uniform(self.size, closed=self.closed, dtype=dtype, device=device)

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
        """Quadrature weights at the current points, shape ``(size,)``."""
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
        """Use ``size`` uniform points (drops trained points)."""
        if isinstance(size, bool) or not isinstance(size, int) or not size >= 1:
            raise PartitionError(f"a partition size must be a positive int, got {size!r}")
        self.size, self.trainable = size, None
        self.version += 1

    def make_trainable(self, like: Tensor | None = None) -> TrainablePartition:
        """Turn the current points into trainable parameters (on the device of ``like``)."""
        if self.trainable is None:
            self.trainable = TrainablePartition(self.size, self.points(), closed=self.closed)
            if like is not None:
                self.trainable.to(like.device)
            self.version += 1
        return self.trainable

    def cache_key(self) -> tuple[Any, ...]:
        """Changes whenever the points may have changed."""
        logits = None if self.trainable is None else self.trainable.logits
        return (id(self), self.version, self.size, None if logits is None else logits._version)

    def get_extra_state(self) -> dict[str, Any]:
        return {"size": self.size, "trainable": self.trainable is not None}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.resize(int(state["size"]))
        if state["trainable"]:
            device = next(iter(self.buffers()), torch.empty(0)).device
            self.make_trainable().to(device)

    def extra_repr(self) -> str:
        kind = "trainable" if self.trainable is not None else "uniform"
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
