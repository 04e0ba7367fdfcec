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
        out_dims: per output tensor (one, or each of a tuple), its channel dim; None where the
            operation is not channel-wise.
        tensors: the per-channel tensors: name -> their channel dim.
        reason: why the operation is not channel-wise ("" when it is).
    """

    out_dims: tuple[int, ...] | None
    tensors: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    @property
    def channelwise(self) -> bool:
        return self.out_dims is not None


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
        base = _outputs(run(values, tensors, channels))
        again = _outputs(run(values, tensors, channels))
    except Exception as err:  # any failure means: cannot be probed
        return ProbeResult(
            None, reason=f"fails on random inputs, so its channels cannot be probed "
            f"({_first_line(err)})"
        )
    if base is None:
        return ProbeResult(None, reason="does not return a tensor or a tuple of tensors whose "
                           "channels can be followed")
    if any(_moved(a, b).any() for a, b in zip(again, base, strict=True)):
        return ProbeResult(None, reason="gives other outputs for the same inputs (random)")
    candidates = {(i, d) for i, t in enumerate(base) for d, n in enumerate(t.shape) if n == channels}
    if {i for i, _ in candidates} != set(range(len(base))):
        shapes = [tuple(t.shape) for t in base]
        return ProbeResult(
            None, reason=f"has no axis of the {channels} channels in its output {shapes}"
        )
    masks = channel_sets(channels)

    def valid_dims(
        perturb: Callable[[Tensor], tuple[list[Tensor], dict[str, Tensor]]], must_move: bool
    ) -> set[tuple[int, int]]:
        """The candidate (output, dim) along which every set moves only its own channels (none
        where ``must_move`` and nothing moved: a tensor the operation ignored here)."""
        ok, any_moved = set(candidates), False
        for mask in masks:
            vals, tens = perturb(mask)
            out = _outputs(run(vals, tens, channels))
            if out is None or [t.shape for t in out] != [t.shape for t in base]:
                return set()
            for i, (o, b) in enumerate(zip(out, base, strict=True)):
                moved = _moved(o, b)
                any_moved = any_moved or bool(moved.any())
                for d in [d for j, d in ok if j == i]:
                    others = [k for k in range(b.ndim) if k != d]
                    per_channel = moved.any(dim=others) if others else moved
                    if (per_channel & ~mask).any():
                        ok.discard((i, d))
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
        if {i for i, _ in dims} != set(range(len(base))):
            return ProbeResult(None, reason="mixes channels (probed: an output channel moves with "
                               "other input channels)")
    out_dims = tuple(_preferred({d for j, d in dims if j == i}, t.ndim, operands)
                     for i, t in enumerate(base))  # fmt: skip

    per_channel: dict[str, int] = {}
    for name, tensor in tensors.items():
        if channels not in tensor.shape:
            continue  # shared by every channel (one PReLU slope): kept whole
        for dim in (d for d, n in enumerate(tensor.shape) if n == channels):

            def perturb(mask: Tensor, name: str = name, tensor: Tensor = tensor, dim: int = dim):
                return list(values), {**tensors, name: _perturbed(tensor, dim, mask, gen)}

            if all((i, d) in valid_dims(perturb, must_move=True) for i, d in enumerate(out_dims)):
                per_channel[name] = dim
                break
        else:
            return ProbeResult(
                None,
                reason=f"mixes channels through its tensor {name!r} {tuple(tensor.shape)} (or "
                "ignored it on random inputs: a branch of its code the probe did not take)",
            )
    problem = _resized_mismatch(run, operands, tensors, per_channel, channels, base, out_dims)
    if problem:
        return ProbeResult(None, reason=problem)
    return ProbeResult(out_dims, per_channel)


def _outputs(result: object) -> list[Tensor] | None:
    """The operation's output tensors: one, or the elements of a tuple of tensors."""
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)) and result and all(isinstance(t, Tensor) for t in result):
        return list(result)
    return None


def _resized_mismatch(
    run: Runner,
    operands: Sequence[Operand],
    tensors: Mapping[str, Tensor],
    per_channel: Mapping[str, int],
    channels: int,
    base: list[Tensor],
    out_dims: tuple[int, ...],
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
        out = _outputs(run(values, sliced, len(keep)))
    except Exception as err:
        return f"does not run at fewer channels ({_first_line(err)})"
    want = [b.index_select(d, keep) for b, d in zip(base, out_dims, strict=True)]
    if out is None or [t.shape for t in out] != [t.shape for t in want]:
        return "gives another shape at fewer channels"
    for o, w in zip(out, want, strict=True):
        if not torch.allclose(o.double(), w.double(), rtol=1e-6, atol=1e-9, equal_nan=True):
            return "gives other values at fewer channels than at full width"
    return ""


def _perturbed(value: Tensor, dim: int, mask: Tensor, gen: torch.Generator) -> Tensor:
    """``value`` with random changes in the channels of ``mask`` (flips for a boolean)."""
    shape = [1] * value.ndim
    shape[dim] = -1
    mask = mask.reshape(shape)
    if value.dtype == torch.bool:
        return value ^ ((torch.rand(value.shape, generator=gen) < 0.5) & mask)
    if not value.is_floating_point():  # indices stay valid: the tensor's own values, shuffled
        flat = value.flatten()
        shuffled = flat[torch.randperm(flat.numel(), generator=gen)].reshape(value.shape)
        return torch.where(mask, shuffled, value)
    noise = torch.randn(value.shape, generator=gen, dtype=torch.float64)
    return value + (noise * mask).to(value.dtype)


def _moved(out: Tensor, base: Tensor) -> Tensor:
    if not out.is_floating_point():
        return out != base
    both_nan = out.isnan() & base.isnan()
    return ((out - base).abs() > 1e-12 * (1 + base.abs())) & ~both_nan | (
        out.isnan() ^ base.isnan()
    )


def _preferred(dims: set[int], ndim: int, operands: Sequence[Operand]) -> int:
    """Where several output dims qualify: the one aligned with the first operand's channels
    (counted from the right, as broadcasting does), else the first."""
    if operands:
        first = operands[0]
        aligned = ndim - (first.value.ndim - first.dim)
        if aligned in dims:
            return aligned
    return min(dims)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:120]}" if text else type(err).__name__
