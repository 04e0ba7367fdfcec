"""Built-in channel rules for tensor algebra: elementwise operations of two tensors,
concatenation, reshapes, reductions, permutations, splits, indexing and shape reads."""

from __future__ import annotations

import operator
from math import prod
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from inn.graph.context import RuleContext
from inn.graph.layout import Attribute, ChannelCount, Layout, Segment, ShapeOf
from inn.graph.rules import function_rule, module_rule

__all__: list[str] = []

_BINARY = (
    operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
    operator.truediv, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div,
    torch.maximum, torch.minimum, "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_",
)  # fmt: skip


@function_rule(getattr, "size", "dim")
def shape_of(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    x = ctx.input(node)
    if not isinstance(x, Layout) or node.target == "dim":
        return None
    if node.target is getattr and node.args[1] != "shape":
        return None
    dim = ctx.argument(node, 1, "dim") if node.target == "size" else None
    if dim is None:
        return ShapeOf(x)
    return ChannelCount(x) if isinstance(dim, int) and dim % x.ndim == x.dim else None


# -- tensor algebra -----------------------------------------------------------------------------
@function_rule(*_BINARY)
def binary(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Elementwise ops of two tensors tie their channels; a tensor attribute broadcast along the
    channels (a layer scale, a position embedding) joins the group."""
    operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
    values = [ctx.values.get(a) for a in operands]
    layouts = [v for v in values if isinstance(v, Layout)]
    attributes = [v for v in values if isinstance(v, Attribute)]
    if len(layouts) + len(attributes) != len(values) or not layouts:
        return ctx.unknown(node, "an elementwise operation on untracked tensors")
    out_ndim = len(ctx.shape(node) or ())
    if len(layouts) == 1:
        x = layouts[0]
        for attribute in attributes:
            bind_attribute(ctx, attribute, x)
        return Layout(x.dim + out_ndim - x.ndim, out_ndim, x.segments)
    a, b = layouts
    if a.ndim - a.dim != b.ndim - b.dim:
        return ctx.unknown(node, "an elementwise operation on misaligned channel axes")
    if a.channels == 1 or b.channels == 1:  # broadcast of a single channel
        ctx.pin_value(a if a.channels == 1 else b, "broadcast single channel")
        return b if a.channels == 1 else a
    if not ctx.axes.tie(a.segments, b.segments, f"operands of {node.name} split differently"):
        return ctx.fresh(
            node, f"{node.name} mixes differently split channels", out_ndim - (a.ndim - a.dim)
        )
    return a if a.ndim >= b.ndim else b


def bind_attribute(ctx: RuleContext, attribute: Any, x: Layout) -> None:
    """Make a tensor attribute combined with ``x`` (broadcast, right-aligned) a member of its
    channels' group, or pin them where its shape does not line up."""
    dim = x.dim - (x.ndim - len(attribute.shape))
    if dim < 0 or attribute.shape[dim] == 1:
        return  # the same value for every channel
    source = attribute.source_dim(dim)
    if attribute.shape[dim] != x.channels or source is None or x.blocked:
        ctx.pin_value(x, f"combined with tensor attribute {attribute.target!r}")
        return
    ctx.record(attribute.target, "attribute", {"out": x.segments}, tensor_dims=source)


@function_rule(torch.cat, "cat", torch.concat, torch.concatenate)
def cat(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    items = ctx.argument(node, 0, "tensors")
    dim = ctx.argument(node, 1, "dim", 0)
    values = [ctx.values.get(a) for a in items] if isinstance(items, (list, tuple)) else []
    layouts = [v for v in values if isinstance(v, Layout)]
    if not layouts or not all(isinstance(v, (Layout, Attribute)) for v in values):
        return ctx.unknown(node, "a concatenation of untracked tensors")
    first = layouts[0]
    if dim % first.ndim == first.dim:
        if len(layouts) != len(values):
            return ctx.unknown(node, "a concatenation of a tensor attribute along channels")
        return first.with_segments([s for x in layouts for s in x.segments])
    for v in values:
        if isinstance(v, Attribute):
            bind_attribute(ctx, v, first)
        elif v is not first:
            ctx.axes.tie(first.segments, v.segments, "concatenated along another axis")
    return first


@function_rule(operator.floordiv)
def floordiv(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """A channel count divided by a constant (``C // radix``) is known to a reshape's size."""
    count, k = ctx.input(node), node.args[1]
    if isinstance(count, ChannelCount) and isinstance(k, int) and not isinstance(k, bool) and k > 0:
        return ChannelCount(count.layout, count.divisor * k)
    ctx.pin_reads(node)
    return None


@function_rule(torch.flatten, torch.reshape, "flatten", "view", "reshape")
@module_rule(nn.Flatten)
def reshape(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Merging the channel axis with the axes right after it (a flatten) makes each channel a
    block of features; merging it with axes right before it (channels last) repeats the
    channels once per position of those axes. Splitting the channels, or any other mixing of
    channels with other axes, is not followed.

    The output's channel count may be given as ``-1`` (it follows the width) or as a channel
    count read from a shape (then the two tensors' channels are tied: equal at every width); a
    literal number is rewritten as ``-1`` where possible, else the axis is pinned."""
    x = ctx.input(node)
    shape_in, shape_out = ctx.shape(node.args[0]), ctx.shape(node)
    if isinstance(x, Attribute):
        return _reshaped_attribute(node, x, shape_out)
    if not isinstance(x, Layout) or shape_in is None or shape_out is None:
        ctx.pin_reads(node)
        return ctx.unknown(node, "a reshape of an untracked tensor")
    found = _merged_channels(shape_in, shape_out, x.dim)
    if found is None:
        stacked = _stacked_channels(shape_in, shape_out, x.dim)
        if stacked is not None:
            return _stack(ctx, node, x, *stacked, len(shape_out))
        ctx.pin_reads(node)
        return ctx.unknown(node, "a reshape that mixes channels with other axes")
    d_out, block, copies = found
    size = _size_argument(node, d_out)
    read = ctx.values.get(size) if isinstance(size, fx.Node) else None
    if isinstance(read, ChannelCount) and read.divisor == 1 and (block, copies) == (1, 1):
        # the channel count of another tensor (maybe this one): widths equal at every size
        ctx.axes.tie(read.layout.segments, x.segments, f"{node.name} sizes one by the other")
        ctx.pin_reads(node, allowed=size)
    else:
        ctx.pin_reads(node)
    if isinstance(size, int) and size != -1 and not _infer_channels(node, d_out):
        return ctx.unknown(node, "a reshape to a fixed channel count")
    segments = [Segment(s.axis, s.size, s.block * block) for s in x.segments] * copies
    return Layout(d_out, len(shape_out), tuple(segments))


def _merged_channels(
    shape_in: tuple[int, ...], shape_out: tuple[int, ...], dim: int
) -> tuple[int, int, int] | None:
    """``(output dim, features per channel, copies)`` where the reshape keeps the channel axis
    whole: merged with the axes after it (``block`` features per channel) or before it
    (``copies`` repetitions of the channels), else None."""
    channels = shape_in[dim]
    for d_out, size in enumerate(shape_out):
        if size % channels:
            continue
        factor = size // channels
        before_out, after_out = prod(shape_out[:d_out]), prod(shape_out[d_out + 1 :])
        for end in range(dim + 1, len(shape_in) + 1):  # channels, then axes dim+1..end-1
            if (prod(shape_in[:dim]), prod(shape_in[dim + 1 : end]), prod(shape_in[end:])) == (
                before_out,
                factor,
                after_out,
            ):
                return d_out, factor, 1
        for start in range(dim + 1):  # axes start..dim-1, then the channels
            if (prod(shape_in[:start]), prod(shape_in[start:dim]), prod(shape_in[dim + 1 :])) == (
                before_out,
                factor,
                after_out,
            ):
                return d_out, 1, factor
    return None


def _stacked_channels(
    shape_in: tuple[int, ...], shape_out: tuple[int, ...], dim: int
) -> tuple[int, int] | None:
    """``(output dim, k)`` where the reshape cuts the channels into ``k > 1`` equal runs stacked
    along new axes before them (``(B, k * C, H, W)`` as ``(B, k, C, H, W)``), else None."""
    channels, before, after = shape_in[dim], prod(shape_in[:dim]), prod(shape_in[dim + 1 :])
    for d_out in range(1, len(shape_out)):
        size = shape_out[d_out]
        if size < 1 or channels % size or channels == size:
            continue
        k = channels // size
        for start in range(d_out):
            parts = (prod(shape_out[:start]), prod(shape_out[start:d_out]))
            if parts == (before, k) and prod(shape_out[d_out + 1 :]) == after:
                return d_out, k
    return None


def _stack(
    ctx: RuleContext, node: fx.Node, x: Layout, d_out: int, k: int, ndim: int
) -> Layout | None:
    """The channels of one group cut into ``k`` runs stacked on new axes (split attention's
    radix, attention heads): the runs are tied, equal at every width, and the channel axis is
    one run. The size asked for the runs follows the widths: ``-1``, a literal rewritten as
    ``-1``, or this tensor's channel count divided by ``k``."""
    if len({ctx.axes.root(s.axis) for s in x.segments}) > 1:
        # runs of different groups (ShuffleNet's shuffle of two branches): tying them would
        # join the groups, and the shuffle that follows pins what it reads
        ctx.pin_reads(node)
        return ctx.unknown(node, "a reshape that stacks the channels of different groups")
    run = x.channels // k
    fine = ctx.axes.refine(x.segments, set(range(run, x.channels, run)))
    if fine is None:
        ctx.pin_reads(node)
        return ctx.unknown(node, "a reshape that cuts blocks of features")
    runs: list[list[Segment]] = [[] for _ in range(k)]
    offset = 0
    for s in fine:
        runs[offset // run].append(s)
        offset += s.size * s.block
    for other in runs[1:]:
        if not ctx.axes.tie(runs[0], other, f"stacked by a reshape ({node.name})"):
            ctx.pin_reads(node)
            return ctx.unknown(node, "a reshape that stacks runs of channels that differ")
    size = _size_argument(node, d_out)
    read = ctx.values.get(size) if isinstance(size, fx.Node) else None
    if isinstance(read, ChannelCount) and read.divisor == k:
        ctx.axes.tie(read.layout.segments, x.segments, f"{node.name} sizes one by the other")
        ctx.pin_reads(node, allowed=size)
    else:
        ctx.pin_reads(node)
        if size != -1 and not _infer_channels(node, d_out):
            return ctx.unknown(node, "a reshape to a fixed channel count")
    return Layout(d_out, ndim, tuple(runs[0]))


def _size_argument(node: fx.Node, dim: int) -> Any:
    """The size a view/reshape asks for at output ``dim`` (None for ``flatten``)."""
    if node.target in (torch.flatten, "flatten") or node.op == "call_module":
        return None
    sizes = _flat_ints(node.args[1:]) or list(node.kwargs.get("shape", ()))
    return sizes[dim] if dim < len(sizes) else None


def _reshaped_attribute(node: fx.Node, x: Any, shape_out: tuple[int, ...] | None) -> Any:
    """A vector attribute viewed as ``(1, -1, 1, 1)`` (a layer scale) stays an attribute; the
    ``-1`` lets the reshape follow its width (a literal channel count would not)."""
    long_in = [d for d, n in enumerate(x.shape) if n != 1]
    long_out = [d for d, n in enumerate(shape_out or ()) if n != 1]
    if len(long_in) != 1 or len(long_out) != 1:
        return None
    if -1 not in _flat_ints(node.args[1:]) and not _infer_channels(node, long_out[0]):
        return None  # a literal length (``scale.view(64, 1, 1)``) is rewritten as -1 if it can
    dims: list[int | None] = [None] * len(shape_out)
    dims[long_out[0]] = x.source_dim(long_in[0])
    return Attribute(x.target, shape_out, x.is_parameter, tuple(dims))


def _indexed_attribute(x: Attribute, index: Any) -> Attribute | None:
    """``weight[:, None, None]``: an attribute given new axes (full slices and None only)."""
    index = index if isinstance(index, tuple) else (index,)
    if not all(i is None or i == slice(None) or i is Ellipsis for i in index):
        return None
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(x.shape) - sum(i is not None for i in index if i is not Ellipsis)
        index = (*index[:at], *[slice(None)] * fill, *index[at + 1 :])
    index = (*index, *[slice(None)] * (len(x.shape) - sum(i is not None for i in index)))
    shape, dims, d = [], [], 0
    for i in index:
        if i is None:
            shape.append(1)
            dims.append(None)
        else:
            shape.append(x.shape[d])
            dims.append(x.source_dim(d))
            d += 1
    return Attribute(x.target, tuple(shape), x.is_parameter, tuple(dims))


def _infer_channels(node: fx.Node, dim: int) -> bool:
    """Rewrite ``x.reshape(n, 768, h * w)`` as ``x.reshape(n, -1, h * w)`` (the same at full
    width, and it follows the channels at any other) where no other size is ``-1``. The graph
    is the analysis's own copy of the model."""
    if node.kwargs or len(node.args) < 2:
        return False
    packed = len(node.args) == 2 and isinstance(node.args[1], (list, tuple))
    sizes = list(node.args[1] if packed else node.args[1:])
    if -1 in sizes or not all(isinstance(n, (int, fx.Node)) for n in sizes):
        return False
    sizes[dim] = -1
    node.args = (node.args[0], type(node.args[1])(sizes)) if packed else (node.args[0], *sizes)
    return True


def _flat_ints(args: Any) -> list[Any]:
    return [b for a in args for b in (a if isinstance(a, (list, tuple)) else [a])]


_AVERAGES = (torch.mean, torch.amax, torch.amin, torch.var, torch.std, "mean", "amax", "amin",
             "var", "std")  # fmt: skip


@function_rule(*_AVERAGES, torch.sum, "sum")
def reduce(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """A reduction over other axes keeps the channels. An average over the channels (a mean, a
    variance, a maximum: a hand-written LayerNorm, GlobalResponseNorm) is what the network at
    that width computes (a mean is the rectangle rule's integral), so the channels stay
    resizable; the result, broadcast back, has one channel. A sum grows with the width: pinned."""
    x = ctx.input(node)
    dims = ctx.argument(node, 1, "dim")
    moments = node.target in (torch.var, torch.std, "var", "std")  # arg 2 is not keepdim
    keepdim = node.kwargs.get("keepdim", False) if moments else ctx.argument(node, 2, "keepdim")
    if not isinstance(x, Layout) or dims is None:
        return ctx.unknown(node, "a reduction over all axes")
    dims = [d % x.ndim for d in ([dims] if isinstance(dims, int) else dims)]
    if x.dim in dims:
        if node.target not in _AVERAGES or not keepdim:
            return ctx.unknown(node, "a sum over channels, or an average that drops their axis")
        return ctx.fresh(node, f"an average over channels ({node.name})", x.dim)
    if keepdim:
        return x
    return Layout(x.dim - sum(d < x.dim for d in dims), x.ndim - len(dims), x.segments)


@function_rule(torch.permute, "permute")
def permute(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    x = ctx.input(node)
    order = node.args[1:]
    if len(order) == 1 and isinstance(order[0], (list, tuple)):
        order = order[0]
    order = order or ctx.argument(node, 1, "dims", ())
    if not isinstance(x, Layout) or not all(isinstance(d, int) for d in order):
        return ctx.unknown(node, "a permutation of untracked axes")
    return Layout([d % x.ndim for d in order].index(x.dim), x.ndim, x.segments)


@function_rule(torch.transpose, torch.swapaxes, torch.swapdims, "transpose", "swapaxes", "swapdims")
def transpose(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    x = ctx.input(node)
    d0, d1 = ctx.argument(node, 1, "dim0"), ctx.argument(node, 2, "dim1")
    if not isinstance(x, Layout) or not isinstance(d0, int) or not isinstance(d1, int):
        return ctx.unknown(node, "a transpose of untracked axes")
    swap = {d0 % x.ndim: d1 % x.ndim, d1 % x.ndim: d0 % x.ndim}
    return Layout(swap.get(x.dim, x.dim), x.ndim, x.segments)


@function_rule(torch.roll, torch.flip, "roll", "flip")
def roll(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Shifting or flipping other axes (Swin's cyclic shift) keeps the channels."""
    x = ctx.input(node)
    flip = node.target in (torch.flip, "flip")
    dims = ctx.argument(node, 1 if flip else 2, "dims")
    dims = [dims] if isinstance(dims, int) else dims
    if not isinstance(x, Layout) or not dims or not all(isinstance(d, int) for d in dims):
        return ctx.unknown(node, f"a {'flip' if flip else 'roll'} of all axes or of channels")
    if x.dim in [d % x.ndim for d in dims]:
        return ctx.unknown(node, f"a {'flip' if flip else 'roll'} of the channels")
    return x


@function_rule(torch.softmax, F.softmax, "softmax")
def softmax(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    x = ctx.input(node)
    dim = ctx.argument(node, 1, "dim")
    if not isinstance(x, Layout) or not isinstance(dim, int) or dim % x.ndim == x.dim:
        return ctx.unknown(node, "a softmax over channels")
    return x


@function_rule("expand", "expand_as")
def expand(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Broadcasting other axes keeps the channels (an attribute stays an attribute)."""
    x = ctx.input(node)
    shape_in, shape_out = ctx.shape(node.args[0]), ctx.shape(node)
    if isinstance(x, Attribute):
        return x if shape_out is not None and len(shape_out) == len(x.shape) else None
    if not isinstance(x, Layout) or shape_in is None or shape_out is None:
        return ctx.unknown(node, "an expand of an untracked tensor")
    if len(shape_out) != len(shape_in) or shape_out[x.dim] != shape_in[x.dim]:
        return ctx.unknown(node, "an expand along channels")
    return x


@function_rule(torch.unsqueeze, "unsqueeze")
def unsqueeze(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    x = ctx.input(node)
    dim = ctx.argument(node, 1, "dim")
    if not isinstance(x, Layout) or not isinstance(dim, int):
        return ctx.unknown(node, "an unsqueeze of an untracked tensor")
    dim = dim % (x.ndim + 1)
    return Layout(x.dim + (dim <= x.dim), x.ndim + 1, x.segments)


@function_rule(torch.matmul, operator.matmul, torch.bmm, "matmul", "bmm")
def matmul(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """A matrix product keeps the channels it does not sum over: the first operand's rows, the
    second's columns, or a batch axis (against a single entry, or the other operand's tied
    channels). Summing over channels (attention's ``q @ k.transpose(-2, -1)``) pins them;
    pinned channels (those scores) are an ordinary axis. Where both operands keep channels on
    different axes, the output carries one (a free one), the other is pinned."""
    operands = node.args[:2]
    values = [ctx.values.get(a) if isinstance(a, fx.Node) else None for a in operands]
    shapes = [ctx.shape(a) if isinstance(a, fx.Node) else None for a in operands]
    shape_out = ctx.shape(node)
    if shape_out is None or any(s is None or len(s) < 2 for s in shapes):
        return ctx.unknown(node, "a matrix product with a vector or an untracked tensor")
    ndim = len(shape_out)
    layouts = [x if isinstance(x, Layout) else None for x in values]
    for i, x in enumerate(layouts):
        if x is not None and all(s.size == 1 for s in x.segments):
            # one channel (an attention map's), maybe read as copies on an axis of size 1
            ctx.pin_value(x, "broadcast single channel")
            layouts[i] = None
    kept: list[tuple[Layout, int]] = []  # an operand's channels and their output dim
    for i, (x, shape) in enumerate(zip(layouts, shapes, strict=True)):
        if x is None:
            continue
        if x.dim == len(shape) - 1 - i:  # the first's columns, the second's rows
            if all(ctx.axes.reason(s.axis) for s in x.segments):
                continue  # pinned (attention scores): a fixed axis, free to be summed over
            return ctx.unknown(node, "a matrix product that sums over channels")
        if x.dim == len(shape) - 2 + i:  # the first's rows, the second's columns
            kept.append((x, ndim - 2 + i))
            continue
        out = x.dim + ndim - len(shape)  # a batch axis, broadcast right-aligned
        other, other_shape = layouts[1 - i], shapes[1 - i]
        at = out - (ndim - len(other_shape))
        tied = other is not None and other.dim == at
        if 0 <= at < len(other_shape) - 2 and other_shape[at] != 1 and not tied:
            return ctx.unknown(node, "a matrix product that broadcasts channels against an axis")
        kept.append((x, out))
    if not kept:
        return ctx.unknown(node, "a matrix product of untracked tensors")
    if len(kept) == 2 and kept[0][1] == kept[1][1]:  # the same batch axis: tied channels
        (a, dim), (b, _) = kept
        if not ctx.axes.tie(a.segments, b.segments, f"operands of {node.name} split differently"):
            return ctx.fresh(node, f"{node.name} mixes differently split channels", dim)
        return Layout(dim, ndim, a.segments)
    # channels on two axes: the output carries one, the free one where the other is pinned
    kept.sort(key=lambda k: all(ctx.axes.reason(s.axis) for s in k[0].segments))
    (x, dim), *others = kept
    for other, _ in others:
        ctx.pin_value(other, f"a second channel axis of a matrix product ({node.name})")
    return Layout(dim, ndim, x.segments)


@function_rule(torch.split, torch.chunk, torch.tensor_split, "split", "chunk", "tensor_split")
def split(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """Pieces along the channels split their axes; along another axis each piece keeps them."""
    x = ctx.input(node)
    metas = node.meta.get("tensor_meta")
    dim = ctx.argument(node, 2, "dim", 0)
    if (
        not isinstance(x, Layout)
        or not isinstance(metas, (list, tuple))
        or not isinstance(dim, int)
    ):
        return ctx.unknown(node, "a split of an untracked tensor")
    if dim % x.ndim != x.dim:
        return [x] * len(metas)
    sizes = [int(m.shape[x.dim]) for m in metas]
    if sum(sizes) != x.channels:
        return ctx.unknown(node, "a split of channels")
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    fine = ctx.axes.refine(x.segments, set(bounds[1:-1]))
    if fine is None:
        return ctx.unknown(node, "a split inside a block of features")
    offset, pieces = 0, [[] for _ in sizes]
    for s in fine:
        pieces[max(i for i, b in enumerate(bounds[:-1]) if b <= offset)].append(s)
        offset += s.size * s.block
    out = [x.with_segments(p) for p in pieces]
    ctx.splits[node.name] = (x.dim, [p.segments for p in out])
    return out


@function_rule(operator.getitem)
def getitem(ctx: RuleContext, node: fx.Node, module: Any) -> Any:
    """An element of a split, or an index of a tensor that keeps (or slices) its channels."""
    x, index = ctx.input(node), node.args[1]
    if isinstance(x, ShapeOf):
        dims = range(x.layout.ndim)
        picked = [dims[index]] if isinstance(index, int) else dims[index]
        return ChannelCount(x.layout) if x.layout.dim in picked else None
    if isinstance(x, (list, tuple)):
        return x[index] if isinstance(index, int) and -len(x) <= index < len(x) else None
    if isinstance(x, Attribute):
        return _indexed_attribute(x, index)
    if not isinstance(x, Layout):
        return ctx.unknown(node, "an index of an untracked tensor")
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1 or any(isinstance(i, fx.Node) for i in index):
        return ctx.unknown(node, "an index by a tensor")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = x.ndim - sum(i is not None for i in index if i is not Ellipsis)
        index = (*index[:at], *[slice(None)] * fill, *index[at + 1 :])
    index = (*index, *[slice(None)] * (x.ndim - sum(i is not None for i in index)))
    dim_in = dim_out = 0
    new_dim, channels, position = None, None, None
    for at, i in enumerate(index):
        if i is None:
            dim_out += 1
            continue
        if dim_in == x.dim:
            if not isinstance(i, slice):
                return ctx.unknown(node, "an index that picks single channels")
            new_dim, channels, position = dim_out, i, at
        dim_in += 1
        dim_out += not isinstance(i, int)
    shape_out = ctx.shape(node)
    if new_dim is None or position is None or shape_out is None:
        return ctx.unknown(node, "an index of channels")
    bounds = (channels.start, channels.stop, channels.step)
    if not all(b is None or isinstance(b, int) for b in bounds):
        return ctx.unknown(node, "an index of channels by computed bounds")
    start, stop, step = channels.indices(x.channels)
    if (start, stop, step) == (0, x.channels, 1):
        return Layout(new_dim, len(shape_out), x.segments)
    return _channel_range(ctx, node, x, (start, stop, step), index, position, new_dim)


def _channel_range(
    ctx: RuleContext, node: fx.Node, x: Layout, bounds: tuple[int, int, int],
    index: tuple, position: int, new_dim: int,
) -> Any:  # fmt: skip
    """``x[:, a:b]``: the channels from ``a`` to ``b`` as their own axes (cut where needed, as
    a split cuts them), with bounds that follow the widths of the axes before and in the
    range (DPN's dense paths, ReXNet's partial residuals)."""
    start, stop, step = bounds
    if step != 1 or stop <= start:
        return ctx.unknown(node, "an index of channels with a step")
    fine = ctx.axes.refine(x.segments, {start, stop} - {0, x.channels})
    if fine is None:
        return ctx.unknown(node, "an index of a range inside a block of features")
    before: list[Segment] = []
    taken: list[Segment] = []
    offset = 0
    for s in fine:
        (before if offset < start else taken if offset < stop else []).append(s)
        offset += s.size * s.block
    node.args = (node.args[0], index)  # explicit (no Ellipsis): the range sits at `position`
    ctx.slices[node.name] = (position, [tuple(before), tuple(taken)])
    return Layout(new_dim, len(ctx.shape(node)), tuple(taken))
