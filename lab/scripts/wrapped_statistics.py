"""Statistics of normalisations that timm resizes through their own forward (``BatchNormAct2d``)
at the narrow widths of a twin: width buckets, the full width's statistics sampled, and
statistics re-estimated on data.

Writes ``results/wrapped-statistics-timm/results.{json,md}`` (run from the repository root,
about 3 min on 2 cores)::

    python lab/scripts/wrapped_statistics.py

timm's ``mobilenetv3_small_050`` (every normalisation a ``BatchNormAct2d``) is trained from
scratch on the 4,000 MNIST training digits (4 epochs, SGD, one-cycle), converted with its
BatchNorms kept, and trained with random widths in [35 %, 100 %] for 2 epochs (selected
channels, the discrete network as teacher, lr 0.01). Then, at uniform fractions of every group:
accuracy on the 1,000 test digits with no data (the width buckets random-width training
recorded and measured), with the buckets emptied (the full width's statistics sampled at the
width: what these layers had before they kept buckets), and with the statistics re-estimated on
256 training digits (:func:`innlab.experiments.workloads.training_data`'s calibration images).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

import inn
import inn.train
from inn.layers import IntegralWrapped, NarrowStatistics
from innlab.experiments.pruning import accuracy
from innlab.experiments.workloads import training_data
from innlab.experiments.wrapped_statistics import markdown

OUT = Path("results") / "wrapped-statistics-timm"
MODEL = "mobilenetv3_small_050"
FRACTIONS = (1.0, 0.75, 0.5, 0.35)


def train_discrete(train_set, epochs: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False, in_chans=1, num_classes=10)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=4e-5)  # fmt: skip
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=epochs * len(loader))
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            schedule.step()
    return model.eval()


def without_buckets(layers: list[NarrowStatistics], evaluate) -> float:
    """``evaluate()`` with the layers' width buckets emptied, then restored."""
    kept = [(m.width_counts.clone(), m.node_statistics.clone()) for m in layers]
    for m in layers:
        m.width_counts.zero_()
        m.node_statistics.zero_()
    try:
        return evaluate()
    finally:
        for m, (counts, nodes) in zip(layers, kept, strict=True):
            m.width_counts.copy_(counts)
            m.node_statistics.copy_(nodes)


def main() -> None:
    work = training_data("mnist")
    train_set, test, calib = work.train, work.test, work.calib
    net = train_discrete(train_set)
    discrete = accuracy(net, test)
    imodel = inn.convert(net, test[0][0][:1], fold_batchnorm=False, seed=0)
    layers = [
        m for m in imodel.modules() if isinstance(m, NarrowStatistics) and m.keeps_narrow_statistics
    ]
    wrapped = sum(isinstance(m, IntegralWrapped) for m in layers)
    start = time.perf_counter()
    inn.train.train(imodel, train_set, epochs=2, widths=(0.35, 1.0), lr=0.01, teacher=net,
                    progress=False, seed=0)  # fmt: skip
    seconds = time.perf_counter() - start
    rows = []
    for fraction in FRACTIONS:
        imodel.resize(widths=inn.train.uniform_widths(imodel, fraction))
        row = {"width": fraction, "buckets": accuracy(imodel, test)}
        row["sampled"] = without_buckets(layers, lambda: accuracy(imodel, test))
        inn.reestimate_batchnorm(imodel, calib)
        row["re-estimated"] = accuracy(imodel, test)
        for m in layers:
            m.set_statistics(None, None)
        rows.append(row)
        print(row, flush=True)
    command = "python lab/scripts/wrapped_statistics.py"
    title = f"Statistics of timm's BatchNormAct2d at a twin's narrow widths ({MODEL})"
    payload = {
        "title": title, "command": command, "discrete_accuracy": discrete,
        "wrapped_norms": wrapped, "train_s": seconds, "rows": rows,
    }  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    lines = [f"# {title}", "", f"`{command}` (see the script's docstring)", "", markdown(payload)]
    text = "\n".join(lines) + "\n"
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
