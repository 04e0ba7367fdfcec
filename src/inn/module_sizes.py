"""The attributes of a ``torch.nn`` module that hold a channel count (``num_features``,
``in_channels``, ``normalized_shape``, a depthwise convolution's ``groups``...), so that a
module whose tensors were resized can be told its new widths."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["fit_size_attributes", "set_size_attributes", "size_attributes"]

# attribute -> the role ("out": the channels it writes, "in": those it reads) whose width it holds
_SIZE_ATTRIBUTES = {
    "num_features": "out",
    "num_channels": "out",
    "num_parameters": "out",
    "out_channels": "out",
    "out_features": "out",
    "embedding_dim": "out",
    "hidden_size": "hidden",
    "in_channels": "in",
    "in_features": "in",
    "input_size": "in",
}


def size_attributes(module: nn.Module) -> dict[str, Any]:
    """The module's attributes that hold a channel count, with their current values."""
    names = [a for a in _SIZE_ATTRIBUTES if isinstance(getattr(module, a, None), int)]
    if hasattr(module, "normalized_shape"):
        names.append("normalized_shape")
    groups = getattr(module, "groups", 1)
    if isinstance(groups, int) and groups > 1 and groups == getattr(module, "in_channels", 0):
        names.append("groups")  # depthwise: one group per channel
    return {a: copy.copy(getattr(module, a)) for a in names}


def set_size_attributes(
    module: nn.Module, originals: Mapping[str, Any], widths: Mapping[str, int]
) -> None:
    """Set the attributes in ``originals`` (from :func:`size_attributes`) to ``widths``
    (role -> channels; a module with one channel axis may give only ``"out"`` or ``"in"``)."""
    out = widths.get("out", widths.get("in"))
    inp = widths.get("in", out)
    for attr, original in originals.items():
        if attr == "normalized_shape":
            value: Any = (*original[:-1], out)
        elif attr == "groups":
            value = out
        else:
            role = _SIZE_ATTRIBUTES[attr]
            value = widths.get(role, original) if role == "hidden" else (
                out if role == "out" else inp
            )
        setattr(module, attr, value)


def fit_size_attributes(module: nn.Module, widths: Mapping[str, int]) -> None:
    """Make a module's channel-count attributes agree with ``widths`` (role -> channels), e.g.
    after its tensors were sliced."""
    set_size_attributes(module, size_attributes(module), widths)
