"""Channel axes, their layouts in tensors, and the union-find that ties them into groups.

An *axis* is a run of channels with one partition. A tensor's channels are a tuple of
*segments* (one per axis, in order; several after a concatenation; ``block`` consecutive features
per channel after a flatten). Axes are merged where the network ties them, and *split* where a
layer needs finer pieces than a producer made (a grouped convolution reads ``g`` equal pieces
of one convolution's output; ``torch.split`` cuts a tensor in two): splitting an axis splits every
axis tied to it the same way, so a group is always a set of whole, equal-sized axes. An axis can
also be *factored* into channels of several features each (before a ``PixelShuffle(r)``, every
``r^2`` consecutive channels are one channel of the shuffled tensor).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["Attribute", "Axes", "ChannelCount", "Layout", "Segment", "ShapeOf"]


@dataclass(frozen=True)
class Segment:
    """``size`` channels of one axis, each ``block`` consecutive features wide."""

    axis: int
    size: int
    block: int = 1


@dataclass(frozen=True)
class Layout:
    """Where a tensor's channels are: dimension ``dim`` of an ``ndim``-dimensional tensor."""

    dim: int
    ndim: int
    segments: tuple[Segment, ...]

    @property
    def channels(self) -> int:
        return sum(s.size * s.block for s in self.segments)

    @property
    def blocked(self) -> bool:
        """Some channel spans several features (after a flatten): only a Linear reads those."""
        return any(s.block != 1 for s in self.segments)

    def with_segments(self, segments: Sequence[Segment]) -> Layout:
        return Layout(self.dim, self.ndim, tuple(segments))


class Axes:
    """Union-find over channel axes, with pinning and splitting."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.name: list[str] = []
        self.pin_reason: dict[int, str] = {}
        self.members: dict[int, list[int]] = {}  # root -> axes of its class
        self.children: dict[int, tuple[int, ...]] = {}  # split axis -> its pieces
        self.block: dict[int, int] = {}  # factored axis's child -> features per channel

    def new(self, size: int, name: str, pinned: str = "") -> int:
        axis = len(self.parent)
        self.parent.append(axis)
        self.size.append(size)
        self.name.append(name)
        self.members[axis] = [axis]
        if pinned:
            self.pin_reason[axis] = pinned
        return axis

    def root(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def pin(self, axis: int, reason: str) -> None:
        for leaf in self.leaves(axis):
            self.pin_reason.setdefault(self.root(leaf), reason)

    def reason(self, axis: int) -> str:
        return self.pin_reason.get(self.root(axis), "")

    def union(self, a: int, b: int) -> None:
        """Tie two unsplit axes; axes of different sizes cannot be tied and get pinned."""
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        if self.size[ra] != self.size[rb]:
            self.pin(a, "tied to an axis of another size")
            self.pin(b, "tied to an axis of another size")
            return
        keep, drop = (ra, rb) if ra < rb else (rb, ra)
        self.parent[drop] = keep
        self.members[keep] += self.members.pop(drop)
        reason = self.pin_reason.pop(drop, "") or self.pin_reason.get(keep, "")
        if reason:
            self.pin_reason[keep] = reason

    # -- splitting ------------------------------------------------------------------------------
    def split(self, axis: int, sizes: Sequence[int]) -> tuple[int, ...]:
        """Cut an unsplit axis (and every axis tied to it) into pieces of ``sizes``."""
        root = self.root(axis)
        assert axis not in self.children and sum(sizes) == self.size[root]
        reason = self.pin_reason.get(root, "")
        first: tuple[int, ...] = ()
        for member in list(self.members[root]):
            pieces = tuple(
                self.new(n, f"{self.name[member]}[{lo}:{lo + n}]", reason)
                for lo, n in zip(accumulate(sizes, initial=0), sizes, strict=False)
            )
            self.children[member] = pieces
            first = first or pieces
            for mine, theirs in zip(pieces, first, strict=True):
                self.union(mine, theirs)
        return self.children[axis]

    def factor(self, axis: int, block: int) -> int:
        """Regroup an unsplit axis (and every axis tied to it) into channels of ``block``
        consecutive features (``n`` channels become ``n / block``: the sub-pixel channels before a
        ``PixelShuffle``); returns the coarse axis of ``axis``."""
        root = self.root(axis)
        assert axis not in self.children and self.size[root] % block == 0
        reason = self.pin_reason.get(root, "")
        first = None
        for member in list(self.members[root]):
            coarse = self.new(self.size[root] // block, f"{self.name[member]}/{block}", reason)
            self.children[member], self.block[coarse] = (coarse,), block
            first = coarse if first is None else first
            self.union(coarse, first)
        return self.children[axis][0]

    def leaves(self, axis: int) -> list[int]:
        return [leaf for leaf, _ in self._leaves(axis)]

    def _leaves(self, axis: int) -> list[tuple[int, int]]:
        """Unsplit axes under ``axis`` with their features per channel, relative to it."""
        if axis not in self.children:
            return [(axis, 1)]
        return [
            (leaf, block * self.block.get(child, 1))
            for child in self.children[axis]
            for leaf, block in self._leaves(child)
        ]

    def expand(self, segments: Sequence[Segment]) -> tuple[Segment, ...]:
        """``segments`` in terms of unsplit axes."""
        out: list[Segment] = []
        for s in segments:
            out += [Segment(a, self.size[a], s.block * b) for a, b in self._leaves(s.axis)]
        return tuple(out)

    def refine(self, segments: Sequence[Segment], cuts: set[int]) -> tuple[Segment, ...] | None:
        """``segments`` with an axis boundary at every feature offset in ``cuts`` (splitting
        axes where needed); None where a cut falls inside a block of features."""
        out: list[Segment] = []
        start = 0
        todo = list(self.expand(segments))[::-1]
        while todo:
            s = todo.pop()
            if s.axis in self.children:  # split earlier in this loop (an axis seen twice)
                todo += list(self.expand([s]))[::-1]
                continue
            end = start + s.size * s.block
            inner = sorted(c - start for c in cuts if start < c < end)
            if any(c % s.block for c in inner):
                return None
            if inner:
                bounds = [0, *(c // s.block for c in inner), s.size]
                pieces = self.split(s.axis, [b - a for a, b in itertools.pairwise(bounds)])
                out += [Segment(p, self.size[p], s.block) for p in pieces]
            else:
                out.append(s)
            start = end
        return tuple(out)

    def boundaries(self, segments: Sequence[Segment]) -> set[int]:
        """Feature offsets where one axis ends and the next begins."""
        ends = accumulate(s.size * s.block for s in self.expand(segments))
        return set(ends)

    def tie(self, a: Sequence[Segment], b: Sequence[Segment], reason: str) -> bool:
        """Tie two runs of channels axis by axis (refining both to common boundaries); pins
        both with ``reason`` where their channels do not line up."""
        cuts = self.boundaries(a) | self.boundaries(b)
        fine_a, fine_b = self.refine(a, cuts), self.refine(b, cuts)
        if (
            fine_a is None
            or fine_b is None
            or [(s.size, s.block) for s in fine_a] != [(s.size, s.block) for s in fine_b]
        ):
            for s in (*a, *b):
                self.pin(s.axis, reason)
            return False
        for x, y in zip(fine_a, fine_b, strict=True):
            self.union(x.axis, y.axis)
        return True

    def tied_pieces(
        self, segments: Sequence[Segment], parts: int, reason: str
    ) -> list[tuple[Segment, ...]] | None:
        """:meth:`pieces`, each tied to the first (the groups of a grouped convolution share
        one partition); None where they cannot be cut or tied."""
        pieces = self.pieces(segments, parts)
        if pieces is None or not all(self.tie(pieces[0], p, reason) for p in pieces[1:]):
            return None
        return pieces

    def pieces(self, segments: Sequence[Segment], parts: int) -> list[tuple[Segment, ...]] | None:
        """Split a run of channels into ``parts`` equal runs (None where they cannot be)."""
        total = sum(s.size * s.block for s in segments)
        if total % parts:
            return None
        step = total // parts
        fine = self.refine(segments, {step * i for i in range(1, parts)})
        if fine is None:
            return None
        out: list[list[Segment]] = [[] for _ in range(parts)]
        offset = 0
        for s in fine:
            out[offset // step].append(s)
            offset += s.size * s.block
        return [tuple(p) for p in out]


@dataclass(frozen=True)
class Attribute:
    """A tensor attribute of the model (``get_attr``), possibly expanded or cast on the way;
    it joins a group when combined with a tensor whose channels line up with one of its dims."""

    target: str
    shape: tuple[int, ...]  # as used here (after a reshape, maybe)
    is_parameter: bool
    source_dims: tuple[int | None, ...] | None = None  # dim here -> dim of the tensor itself

    def source_dim(self, dim: int) -> int | None:
        return dim if self.source_dims is None else self.source_dims[dim]


@dataclass(frozen=True)
class ShapeOf:
    """``x.shape`` / ``x.size()`` of a tensor with channels ``layout``."""

    layout: Layout


@dataclass(frozen=True)
class ChannelCount:
    """A number read from a tensor's shape that is (or contains) its channel count, divided by
    ``divisor`` (``C // radix``): whatever uses it depends on the width, so the analysis pins
    those channels (see :meth:`~inn.graph.context.RuleContext.pin_reads`) unless a rule knows
    the use (a reshape's size)."""

    layout: Layout
    divisor: int = 1
