"""Probing an operation for how it treats channels: which output channels move when input
channel ``j`` moves.

An operation is *channel-wise* along an axis when output channel ``i`` depends on channel ``i``
of each input alone (an activation, a per-channel scale, a pooling over other axes, a norm per
channel). Such an operation can be run at any width: at ``n`` channels it computes what it
computed for those ``n`` channels at full width. Probing decides this from the operation itself,
with no list of known operations: perturb a set ``S`` of input channels of a random input and
see which output channels change. With the ``2 ceil(log2 C)`` sets "bit ``b`` of ``j`` is 1" and
their complements, a channel-wise operation changes only channels inside ``S`` every time,
while an output channel that depends on any other channel ``k`` is caught by the set that holds
``k`` but not ``i``. The same is done for every tensor of a module with a dim of ``C`` entries
(a per-channel weight), and at the end the operation is run at fewer channels, with those
tensors sliced, and must give the matching channels of its full-width output.

Everything here is plain tensor code in float64; :mod:`inn.graph.rules_probe` applies it to
graph nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["Operand", "ProbeResult", "channel_sets", "probe"]

# run(operands, tensors, width) -> output; ``width`` is the channel count of this call
Runner = Callable[[Sequence[Tensor], Mapping[str, Tensor], int], object]


@dataclass(frozen=True)
class Operand:
    """An input whose channels lie on dim ``dim`` of ``value``."""

    value: Tensor
    dim: int


@dataclass(frozen=True)
class ProbeResult:
    """What probing found.

    Attributes:
        out_dim: the output's channel dim (None where the operation is not channel-wise).
        tensors: the per-channel tensors of a module: name -> their channel dim.
        reason: why the operation is not channel-wise ("" when it is).
    """

    out_dim: int | None
    tensors: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    @property
    def channelwise(self) -> bool:
        return self.out_dim is not None


def channel_sets(channels: int) -> list[Tensor]:
    """Masks of the channels whose bit ``b`` of the index is 1, and their complements."""
    index = torch.arange(channels)
    bits = max(1, math.ceil(math.log2(channels))) if channels > 1 else 1
    masks = []
    for b in range(bits):
        mask = (index >> b) & 1 == 1
        masks += [mask, ~mask]
    return [m for m in masks if m.any()]


def probe(
    run: Runner,
    operands: Sequence[Operand],
    tensors: Mapping[str, Tensor],
    channels: int,
    *,
    seed: int = 0,
) -> ProbeResult:
    """Decide whether ``run`` is channel-wise in its ``operands`` (each with ``channels``
    channels) and which of ``tensors`` (a module's, by name) run along those channels.

    Args:
        run: ``run(operand values, tensors, width)`` computes the operation; ``width`` is the
            channel count of the call (a module sets its size attributes from it).
        operands: the inputs whose channels are probed (float64).
        tensors: a module's floating tensors by name (float64; others stay as they are).
        channels: the channel count ``C``.

    Returns:
        A :class:`ProbeResult`: the output dim that carries the channels and the per-channel
        tensors, or the reason the operation is not channel-wise.
    """
    gen = torch.Generator().manual_seed(seed)
    values = [o.value for o in operands]
    try:
        base = run(values, tensors, channels)
    except Exception as err:  # any failure means: cannot be probed
        return ProbeResult(None, reason=f"fails on random inputs ({_first_line(err)})")
    if not isinstance(base, Tensor) or not base.is_floating_point():
        return ProbeResult(None, reason="does not return one floating-point tensor")
    candidates = [d for d, n in enumerate(base.shape) if n == channels]
    if not candidates:
        return ProbeResult(
            None, reason=f"has no axis of the {channels} channels in its output {tuple(base.shape)}"
        )
    masks = channel_sets(channels)

    def valid_dims(
        perturb: Callable[[Tensor], tuple[list[Tensor], dict[str, Tensor]]], must_move: bool
    ) -> set:
        """The candidate dims along which every set moves only its own channels (none where
        ``must_move`` and nothing moved: a tensor the operation ignored on these inputs)."""
        ok, any_moved = set(candidates), False
        for mask in masks:
            vals, tens = perturb(mask)
            out = run(vals, tens, channels)
            if not isinstance(out, Tensor) or out.shape != base.shape:
                return set()
            moved = _moved(out, base)
            any_moved = any_moved or bool(moved.any())
            for d in list(ok):
                others = [i for i in range(base.ndim) if i != d]
                per_channel = moved.any(dim=others) if others else moved
                if (per_channel & ~mask).any():
                    ok.discard(d)
            if not ok:
                break
        return ok if any_moved or not must_move else set()

    dims = set(candidates)
    for k, operand in enumerate(operands):

        def perturb(mask: Tensor, k: int = k, operand: Operand = operand):
            vals = list(values)
            vals[k] = _perturbed(operand.value, operand.dim, mask, gen)
            return vals, dict(tensors)

        dims &= valid_dims(perturb, must_move=False)  # zeros_like(x) follows x's width
        if not dims:
            return ProbeResult(None, reason="mixes channels (probed: an output channel moves with "
                               "other input channels)")
    out_dim = _preferred(dims, base.ndim, operands)

    per_channel: dict[str, int] = {}
    for name, tensor in tensors.items():
        if not tensor.is_floating_point() or channels not in tensor.shape:
            continue  # shared by every channel (one PReLU slope): kept whole
        for dim in (d for d, n in enumerate(tensor.shape) if n == channels):

            def perturb(mask: Tensor, name: str = name, tensor: Tensor = tensor, dim: int = dim):
                return list(values), {**tensors, name: _perturbed(tensor, dim, mask, gen)}

            if out_dim in valid_dims(perturb, must_move=True):
                per_channel[name] = dim
                break
        else:
            return ProbeResult(
                None,
                reason=f"mixes channels through its tensor {name!r} {tuple(tensor.shape)} (or "
                "ignored it on random inputs: a branch of its code the probe did not take)",
            )
    problem = _resized_mismatch(run, operands, tensors, per_channel, channels, base, out_dim)
    if problem:
        return ProbeResult(None, reason=problem)
    return ProbeResult(out_dim, per_channel)


def _resized_mismatch(
    run: Runner,
    operands: Sequence[Operand],
    tensors: Mapping[str, Tensor],
    per_channel: Mapping[str, int],
    channels: int,
    base: Tensor,
    out_dim: int,
) -> str:
    """Run at every other channel: "" if the output is those channels of the full output."""
    if channels < 2:
        return ""
    keep = torch.arange(0, channels, 2)
    values = [o.value.index_select(o.dim, keep) for o in operands]
    sliced = {
        n: t.index_select(per_channel[n], keep) if n in per_channel else t
        for n, t in tensors.items()
    }
    try:
        out = run(values, sliced, len(keep))
    except Exception as err:
        return f"does not run at fewer channels ({_first_line(err)})"
    want = base.index_select(out_dim, keep)
    if not isinstance(out, Tensor) or out.shape != want.shape:
        return "gives another shape at fewer channels"
    if not torch.allclose(out, want, rtol=1e-6, atol=1e-9, equal_nan=True):
        return "gives other values at fewer channels than at full width"
    return ""


def _perturbed(value: Tensor, dim: int, mask: Tensor, gen: torch.Generator) -> Tensor:
    shape = [1] * value.ndim
    shape[dim] = -1
    noise = torch.randn(value.shape, generator=gen, dtype=value.dtype)
    return value + noise * mask.reshape(shape).to(value.dtype)


def _moved(out: Tensor, base: Tensor) -> Tensor:
    both_nan = out.isnan() & base.isnan()
    return ((out - base).abs() > 1e-12 * (1 + base.abs())) & ~both_nan | (
        out.isnan() ^ base.isnan()
    )


def _preferred(dims: set[int], ndim: int, operands: Sequence[Operand]) -> int:
    """Where several output dims qualify: the one aligned with the first operand's channels
    (counted from the right, as broadcasting does), else the first."""
    first = operands[0]
    aligned = ndim - (first.value.ndim - first.dim)
    return aligned if aligned in dims else min(dims)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:120]}" if text else type(err).__name__
