"""MACs of the operations a layer runs, charged to the layer's tensors they multiply.

The formulas and decompositions are those of :class:`torch.utils.flop_counter.FlopCounterMode`;
what this adds is the attribution, so that a layer resized through its own ``forward`` can be
counted as ``uses * A(w) * B(w)`` per tensor (see :mod:`inn.budget.cost`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry

__all__ = ["MacAttribution"]


def _storage(t: Tensor) -> tuple[Any, int]:
    return t.device, t.untyped_storage().data_ptr()


class MacAttribution(TorchDispatchMode):
    """Counts the MACs of the operations run under it, as ``FlopCounterMode`` does (same
    formulas, same decompositions), and charges each to the tensor of ``sources`` it multiplies.

    A tensor computed from ``sources`` without an input activation (a reshape, a scaled or
    concatenated weight, a standardised weight) counts as its source; storages identify tensors
    (views share them), and every tensor marked is kept alive so that no storage is reused.

    Attributes:
        macs: MACs per name of ``sources``.
        other: MACs that multiply none of them (activation by activation).
    """

    def __init__(self, sources: Mapping[str, Tensor], inputs: Sequence[Tensor]) -> None:
        super().__init__()
        self.owner: dict[tuple[Any, int], str] = {}
        self.activation: set[tuple[Any, int]] = set()
        self.keep: list[Tensor] = []
        self.macs: dict[str, float] = {}
        self.other = 0.0
        for name, t in sources.items():
            if isinstance(t, Tensor) and t.numel():
                self.owner.setdefault(_storage(t), name)
                self.keep.append(t)
        for t in inputs:
            if t.numel():
                self.activation.add(_storage(t))
                self.keep.append(t)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not torch.ops.prim.device.default:  # as FlopCounterMode: decompose first
            with self:
                out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
        out = func(*args, **kwargs)
        operands = [t for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor) and t.numel()]
        keys = [_storage(t) for t in operands]
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            macs = formula(*args, **kwargs, out_val=out) / 2
            owned = [(t.numel(), self.owner[k]) for t, k in zip(operands, keys, strict=True)
                     if k in self.owner]  # fmt: skip
            if owned:
                name = max(owned)[1]
                self.macs[name] = self.macs.get(name, 0.0) + macs
            else:
                self.other += macs
        results = [t for t in tree_leaves(out) if isinstance(t, Tensor) and t.numel()]
        if any(k in self.activation for k in keys):
            for t in results:
                self.activation.add(_storage(t))
                self.keep.append(t)
        else:
            owners = [self.owner[k] for k in keys if k in self.owner]
            if owners:
                for t in results:
                    self.owner.setdefault(_storage(t), owners[0])
                    self.keep.append(t)
        return out
