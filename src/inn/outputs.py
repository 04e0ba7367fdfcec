"""The tensors of a model's output, whatever its structure (a detector returns a tuple)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from inn.errors import InnError

__all__ = ["flat_output", "output_tensors"]


def output_tensors(output: Any) -> list[Tensor]:
    """The tensors of a model's output: itself, or those of a tuple, list or dict, in order."""
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    raise InnError(f"a model output must be tensors, got {type(output).__name__}")


def flat_output(output: Any) -> Tensor:
    """A model's output (a tensor, or a tuple of them: a detector's) as one float64 vector."""
    return torch.cat([t.double().reshape(-1) for t in output_tensors(output)])
