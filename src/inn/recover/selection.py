"""Per group, resampled or selected channels: whichever loses less on the calibration data.

At a given width a group's channels can be *resampled* (the integral network's uniform points,
each new channel a blend of neighbouring old ones) or *selected* (a subset of the original
channels, as channel-selection pruning keeps them). Neither wins everywhere: on the zoo's
efficient networks selection loses less in narrow groups and resampling in wide ones
(``results/group-errors-mobilenet_v2``, ``results/budget-*``). :func:`choose_sampling` measures
both on the calibration data and keeps, group by group, the better one, so the result is never
worse on that data than either alternative alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from inn.budget.magnitude import channel_scores, keep_strongest
from inn.convert import IntegralModel
from inn.errors import InnError
from inn.outputs import flat_output
from inn.recover.batches import as_batches
from inn.recover.statistics import reestimate_batchnorm

__all__ = ["SAMPLINGS", "channel_scores", "check_sampling", "choose_sampling", "select_channels"]

SAMPLINGS = ("auto", "resample", "select")


def select_channels(imodel: IntegralModel, groups: Iterable[str] | None = None) -> list[str]:
    """Narrowed groups (all, or those named) keep their strongest original channels by
    :func:`channel_scores` at their current widths instead of resampling; returns the groups
    selected (those without scores keep their uniform points)."""
    scores = channel_scores(imodel)
    narrowed = {g.name: g.size for g in imodel.resizable_groups if g.size < g.full_size}
    chosen = [n for n in (narrowed if groups is None else groups) if n in scores and n in narrowed]
    for name in chosen:
        keep_strongest(imodel, name, scores[name])
    return chosen


def choose_sampling(
    imodel: IntegralModel,
    reference: nn.Module,
    data: Iterable,
    *,
    progress: bool = False,
) -> dict[str, str]:
    """For each narrowed group, resampled or selected channels, whichever gives outputs closer to
    ``reference``'s on ``data``, with the BatchNorm statistics measured again for each candidate.

    Starts from the better of all-resampled and all-selected, then tries each group the other
    way in graph order and keeps a change only if the relative output error falls: the result
    is never worse on ``data`` than either. Costs two passes over ``data`` per narrowed group.
    The model ends with the chosen points and its statistics measured at them.

    Args:
        imodel: an integral model at its new widths (uniform points).
        reference: the network the outputs should match (the unpruned original), in eval mode.
        data: calibration batches ``(inputs, targets)`` or ``inputs``.

    Returns:
        ``{group: "resample" | "select"}`` for every narrowed group.
    """
    batches = [x for x, _ in as_batches(data)]
    device = next((p.device for p in imodel.parameters()), torch.device("cpu"))
    batches = [x.to(device) for x in batches]
    with torch.no_grad():
        targets = [flat_output(reference(x)) for x in batches]
    energy = max(sum(float(t.square().sum()) for t in targets), 1e-30)

    def error() -> float:
        reestimate_batchnorm(imodel, batches)
        with torch.no_grad():
            return (
                sum(
                    float((flat_output(imodel(x)) - t).square().sum())
                    for x, t in zip(batches, targets, strict=True)
                )
                / energy
            )

    narrowed = [g for g in imodel.resizable_groups if g.size < g.full_size]
    uniform = {g.name: imodel.partition(g.name).snapshot() for g in narrowed}
    selectable = select_channels(imodel)
    if not selectable:
        return {g.name: "resample" for g in narrowed}
    selected = {n: imodel.partition(n).snapshot() for n in selectable}
    states = {"resample": uniform, "select": selected}

    def use(kinds: dict[str, str]) -> None:
        for name, kind in kinds.items():
            imodel.partition(name).restore(states[kind][name])

    choice = dict.fromkeys(selectable, "resample")
    use(choice)
    best = error()
    trial = dict.fromkeys(selectable, "select")
    for name in tqdm([None, *selectable], desc="choosing sampling", disable=not progress):
        if name is not None:
            trial = {**choice, name: "resample" if choice[name] == "select" else "select"}
        use(trial)
        if (e := error()) < best:
            best, choice = e, trial
    if choice is not trial:  # the statistics last measured were a rejected candidate's
        use(choice)
        reestimate_batchnorm(imodel, batches)
    return {g.name: choice.get(g.name, "resample") for g in narrowed}


def check_sampling(sampling: str) -> None:
    """Refuse a ``sampling`` that is not one of :data:`SAMPLINGS`."""
    if sampling not in SAMPLINGS:
        raise InnError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
