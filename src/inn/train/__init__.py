"""Random-width training of integral networks (the paper's Algorithm 1, Pipeline A).

* :func:`train`: the training loop (one process or DDP under ``torchrun``, checkpoints with
  resume, AMP, JSON logs), on the one fit loop of :mod:`inn.loop`, set up by one
  :class:`TrainSettings` (or its fields as keywords: ``train(imodel, data, steps=100)``);
* :class:`WidthSampler`: the widths of each step (sandwich rule or one random width);
* :func:`save_checkpoint` / :func:`load_checkpoint`.
"""

from inn.train.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from inn.train.settings import TrainSettings
from inn.train.trainer import TrainReport, train
from inn.train.widths import SAMPLINGS, WidthRange, WidthSampler, at_widths, uniform_widths

__all__ = [
    "SAMPLINGS",
    "TrainReport",
    "TrainSettings",
    "WidthRange",
    "WidthSampler",
    "at_widths",
    "fingerprint",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    "uniform_widths",
]
