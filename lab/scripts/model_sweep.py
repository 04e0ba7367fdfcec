"""Architectures no issue or test names, through ``inn``'s public API: does each convert exactly,
prune to half its parameters, and train with random widths?

Writes ``results/model-sweep/results.{json,md}`` (run from the repository root; about 30 min on
2 cores)::

    python lab/scripts/model_sweep.py

Every model (torchvision's and timm's, random weights, 10 classes) runs in a fresh process with
a 10-minute limit: ``inn.convert`` (BatchNorm kept; outputs compared at full width),
``inn.prune`` to half the parameters with random calibration images, and ``inn.train.train`` for
2 steps, then resized to half the parameters with no data. A stage that raises ends the model's
row with the error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import inn
import inn.train
from innlab.experiments.model_sweep import markdown
from innlab.experiments.written import save_rows

OUT = Path("results") / "model-sweep"
# (name, input size): torchvision's as "tv:NAME", timm's by name; a size its design needs
MODELS = (
    ("tv:mobilenet_v3_small", 64), ("tv:squeezenet1_1", 64), ("tv:googlenet", 64),
    ("tv:mnasnet1_0", 64), ("tv:inception_v3", 96), ("ghostnet_100", 64), ("ghostnetv2_100", 64),
    ("mobilevit_xxs", 64), ("mobilevitv2_050", 64), ("lcnet_050", 64), ("rexnet_100", 64),
    ("tinynet_e", 64), ("mobilenetv4_conv_small", 64), ("repvit_m1", 64), ("fastvit_t8", 64),
    ("efficientvit_b0", 64), ("hardcorenas_a", 64), ("mobileone_s0", 64), ("levit_128s", 224),
    ("ese_vovnet19b_dw", 64), ("dla34", 64), ("hrnet_w18_small", 64), ("nf_resnet26", 64),
    ("gernet_s", 64), ("dpn68", 64), ("poolformer_s12", 64), ("edgenext_xx_small", 64),
    ("resnest14d", 64), ("skresnet18", 64),
)  # fmt: skip
LIMIT_S = 600


def build(name: str) -> nn.Module:
    if name.startswith("tv:"):
        import torchvision

        return torchvision.models.get_model(name[3:], weights=None, num_classes=10)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=10)


def one(name: str, size: int) -> dict:
    """Every stage on one model; the row (``ok`` False with the error where a stage raised)."""
    torch.manual_seed(0)
    row: dict = {"model": name, "size": size, "ok": False}
    try:
        model = build(name).eval()
        for m in model.modules():  # fresh BatchNorms are the identity: no check at all
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        x = torch.randn(2, 3, size, size)
        imodel = inn.convert(model, x[:1], fold_batchnorm=False)
        with torch.no_grad():
            want = model(x)
            row["conversion_error"] = float((imodel(x) - want).abs().max() / want.abs().max())
        row["groups"] = f"{len(imodel.resizable_groups)}/{len(imodel.groups)}"
        row["kept_whole"] = sorted(imodel.report.kept_whole)
        calib = [torch.randn(8, 3, size, size) for _ in range(2)]
        tick = time.perf_counter()
        small = inn.prune(model, x[:1], budget={"params": 0.5}, calib=calib)
        row["prune_s"] = time.perf_counter() - tick
        row["params_kept"] = inn.budget.count_parameters(small) / imodel.original_parameters
        data = torch.utils.data.TensorDataset(
            torch.randn(16, 3, size, size), torch.randint(0, 10, (16,))
        )
        tick = time.perf_counter()
        inn.train.train(imodel, data, steps=2, batch_size=8, progress=False)
        row["train_s"] = time.perf_counter() - tick
        imodel.eval().resize(compression=0.5)
        with torch.no_grad():
            if not torch.isfinite(imodel(x)).all():
                raise ValueError("non-finite outputs at half the parameters")
        row["ok"] = True
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        row["error"] = f"{type(err).__name__}: {first[:300]}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.one:
        print("ROW " + json.dumps(one(args.one[0], int(args.one[1]))), flush=True)
        return
    rows = []
    for name, size in MODELS:
        command = [sys.executable, __file__, "--one", name, str(size)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S)
            found = [line for line in done.stdout.splitlines() if line.startswith("ROW ")]
            row = json.loads(found[-1][4:]) if found else {
                "model": name, "size": size, "ok": False,
                "error": f"the process ended with status {done.returncode}",
            }  # fmt: skip
        except subprocess.TimeoutExpired:
            row = {"model": name, "size": size, "ok": False, "error": f"over {LIMIT_S} s"}
        rows.append(row)
        print(row, flush=True)
    title = "Architectures no issue names: converted, pruned and trained by inn's public API"
    print(save_rows(OUT, title, "python lab/scripts/model_sweep.py", rows, markdown(rows)))


if __name__ == "__main__":
    main()
