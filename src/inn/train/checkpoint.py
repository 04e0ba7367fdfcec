"""Training checkpoints: everything a resumed run needs to continue as if never stopped.

A checkpoint holds the model, optimiser, schedule and AMP scaler states, the step, the RNG
states and the width sampler, with a fingerprint of the model (its channel groups and tensor
shapes) so that resuming into another model fails with a clear error instead of loading
mismatched tensors. Written atomically (a temporary file renamed), by one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from inn.convert import IntegralModel
from inn.errors import InnError

__all__ = ["FORMAT", "fingerprint", "load_checkpoint", "save_checkpoint"]

FORMAT = "inn-train/1"


def fingerprint(model: IntegralModel) -> str:
    """A hash of ``model``'s channel groups (names, full sizes) and state tensor shapes."""
    groups = [(g.name, g.full_size) for g in model.groups]
    shapes = [(k, list(v.shape)) for k, v in model.state_dict().items() if hasattr(v, "shape")]
    return hashlib.sha256(json.dumps([groups, shapes]).encode()).hexdigest()[:16]


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, model: IntegralModel, **state: Any) -> Path:
    """Write ``model``'s state and ``state`` (optimiser, schedule, step, ...) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "fingerprint": fingerprint(model),
        "model": model.state_dict(),
        "rng": rng_states(),
        **state,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, model: IntegralModel) -> dict[str, Any]:
    """Load ``path`` into ``model`` and return the rest of the checkpoint (RNG states restored).

    Raises:
        InnError: the file is not an ``inn`` training checkpoint, or was written for a model
            with other channel groups or tensor shapes.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise InnError(f"cannot read the checkpoint {str(path)!r}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InnError(
            f"{str(path)!r} is not an inn training checkpoint (written by inn.train.train); "
            "pass another checkpoint path or resume=False"
        )
    if payload["fingerprint"] != fingerprint(model):
        raise InnError(
            f"the checkpoint {str(path)!r} was written for another model (its channel groups or "
            "tensor shapes differ from this one's): convert the same architecture as the run "
            "that wrote it, or start a new run with another checkpoint path (or resume=False)"
        )
    model.load_state_dict(payload["model"])  # copied into the model's tensors, on its device
    set_rng_states(payload["rng"])
    return payload
