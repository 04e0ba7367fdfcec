"""Why the MobileNetV2 twin fails at narrow widths: resampled against selected channels.

Writes ``results/narrow-channels-mobilenet_v2/results.{json,md}`` (run from the repository
root, about 10 min on 2 cores)::

    python lab/scripts/narrow_channels.py

The zoo's trained MobileNetV2 is converted (permutation seed 0) and measured at 35 / 50 / 75 %
of every group: first as converted, then after one epoch of random-width training (sandwich,
widths [35 %, 100 %], lr 0.01), once with resampled channels (the library's default, smoothness
3) and once with each group's strongest channels by L1 selected after every resize
(:func:`inn.recover.select_channels`, no smoothness penalty: selected channels are not
resampled). Accuracy on the 1,000 test digits, with no data (width buckets) and with the
BatchNorm statistics re-estimated on 256 training digits.

The committed results were measured when :func:`inn.recover.channel_scores` ranked channels by
their producing kernels alone; it now also counts the weights that read them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

import inn
from inn.train import at_widths, train
from innlab.data import mnist_splits
from innlab.experiments.narrow_channels import FRACTIONS, markdown
from innlab.experiments.pruning import accuracy
from innlab.zoo import load_pretrained

OUT = Path("results") / "narrow-channels-mobilenet_v2"


def measure(imodel: inn.IntegralModel, test: list, calib: list) -> dict[str, dict[float, float]]:
    no_data = at_widths(imodel, FRACTIONS, lambda m: accuracy(m, test))

    def re_estimated(m: inn.IntegralModel) -> float:
        inn.reestimate_batchnorm(m, calib)
        return accuracy(m, test)

    return {"no data": no_data, "re-estimated": at_widths(imodel, FRACTIONS, re_estimated)}


def selecting(imodel: inn.IntegralModel) -> None:
    """Every later ``resize(widths=...)`` of ``imodel`` keeps the strongest channels by L1."""
    resize = imodel.resize

    def resize_and_select(*args: Any, **kwargs: Any) -> inn.IntegralModel:
        out = resize(*args, **kwargs)
        if kwargs.get("widths") is not None:
            inn.recover.select_channels(imodel)
        return out

    imodel.resize = resize_and_select  # type: ignore[method-assign]


def main() -> None:
    train_set, test_set = mnist_splits(seed=0)
    xt, yt = test_set.tensors
    x, y = train_set.tensors
    test = [(xt[i : i + 250], yt[i : i + 250]) for i in range(0, len(xt), 250)]
    calib = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
    net = load_pretrained("mobilenet_v2").eval()
    rows = []
    for channels, smoothness in (("resampled", 3.0), ("selected", 0.0)):
        torch.manual_seed(0)
        imodel = inn.convert(net, x[:1], fold_batchnorm=False, seed=0)
        if channels == "selected":
            selecting(imodel)
        rows.append({"channels": channels, "stage": "converted", **measure(imodel, test, calib)})
        start = time.perf_counter()
        train(
            imodel, train_set, epochs=1, widths=(0.35, 1.0), lr=0.01, smoothness=smoothness,
            clip_norm=5.0, seed=0, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        rows.append({"channels": channels, "stage": "1 epoch", "train_s": seconds,
                     **measure(imodel, test, calib)})  # fmt: skip
        print(rows[-2], rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    command = "python lab/scripts/narrow_channels.py"
    title = "MobileNetV2 at narrow widths: resampled against selected channels"
    payload = {"title": title, "command": command, "rows": rows}
    (OUT / "results.json").write_text(json.dumps(payload, indent=1))
    payload = json.loads((OUT / "results.json").read_text())  # the widths as JSON keys
    text = f"# {title}\n\n`{command}` (see the script's docstring)\n\n{markdown(payload['rows'])}\n"
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
