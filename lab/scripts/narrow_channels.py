"""Why the MobileNetV2 twin fails at narrow widths: resampled against selected channels.

Writes ``results/narrow-channels-mobilenet_v2/results.{json,md}`` (run from the repository
root, about 15 min on 2 cores)::

    python lab/scripts/narrow_channels.py

The zoo's trained MobileNetV2 is converted (permutation seed 0) and measured at 35 / 50 / 75 %
of every group: first as converted, then after one epoch of random-width training (sandwich,
widths [35 %, 100 %], lr 0.01), once with resampled channels (the paper's, smoothness 3), once
with each group's strongest channels by L1, ranked when training starts and nested
(``channels="select"``, no smoothness penalty: selected channels are not resampled), and, for
reference, as a universally slimmable network (first channels, the same loop and draws).
Accuracy on the 1,000 test digits, with no data (width buckets; the slimmable network's
full-width statistics, sliced) and with the BatchNorm statistics re-estimated on 256 training
digits.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import torch

import inn
from inn.train import WidthSampler, at_widths, train
from innlab.data import mnist_splits
from innlab.experiments.narrow_channels import FRACTIONS, markdown
from innlab.experiments.pruning import accuracy
from innlab.experiments.slimmable import SlimmableNetwork
from innlab.zoo import load_pretrained

OUT = Path("results") / "narrow-channels-mobilenet_v2"


def measure(model, test: list, calib: list, export=lambda m: m) -> dict[str, dict[float, float]]:
    """Accuracy at every fraction of ``model`` (an integral or slimmable network; ``export``
    gives the network to evaluate at its current width), with no data and re-estimated."""
    no_data = at_widths(model, FRACTIONS, lambda m: accuracy(export(m), test))

    def re_estimated(m) -> float:
        net = export(m)
        inn.reestimate_batchnorm(net, calib)
        return accuracy(net, test)

    return {"no data": no_data, "re-estimated": at_widths(model, FRACTIONS, re_estimated)}


def main() -> None:
    train_set, test_set = mnist_splits(seed=0)
    xt, yt = test_set.tensors
    x, y = train_set.tensors
    test = [(xt[i : i + 250], yt[i : i + 250]) for i in range(0, len(xt), 250)]
    calib = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
    net = load_pretrained("mobilenet_v2").eval()
    # channels=None: each model's channels as they are (resampled, or nested just below)
    recipe = dict(epochs=1, lr=0.01, clip_norm=5.0, seed=0, progress=False, channels=None)
    rows = []
    for channels, smoothness in (("resampled", 3.0), ("selected", 0.0)):
        torch.manual_seed(0)
        imodel = inn.convert(net, x[:1], fold_batchnorm=False, seed=0)
        if channels == "selected":
            imodel.nest_channels()
        rows.append({"channels": channels, "stage": "converted", **measure(imodel, test, calib)})
        start = time.perf_counter()
        train(imodel, train_set, widths=(0.35, 1.0), smoothness=smoothness, **recipe)
        seconds = time.perf_counter() - start
        rows.append({"channels": channels, "stage": "1 epoch", "train_s": seconds,
                     **measure(imodel, test, calib)})  # fmt: skip
        print(rows[-2], rows[-1], flush=True)
    slim = SlimmableNetwork(copy.deepcopy(net), x[:1])
    export = lambda s: s.export().eval()  # noqa: E731
    rows.append({"channels": "slimmable", "stage": "converted", **measure(slim, test, calib, export)})
    sampler = WidthSampler.for_groups(slim.groups, (0.35, 1.0), sampling="sandwich", seed=0)
    start = time.perf_counter()
    train(slim, train_set, widths=sampler, **recipe)
    rows.append({"channels": "slimmable", "stage": "1 epoch", "train_s": time.perf_counter() - start,
                 **measure(slim, test, calib, export)})  # fmt: skip
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
