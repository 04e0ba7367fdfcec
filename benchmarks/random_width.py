"""Random-width training: a sandwich step of the INN against the slimmable baseline's, and DDP
throughput on 2 processes against 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import inn
from benchmarks.common import interleaved, ratio_stats, summary
from inn.train import WidthSampler
from innlab import zoo
from innlab.experiments.slimmable import SlimmableNetwork


def _sandwich_step(model, sampler: WidthSampler, step: int, x, y, optimiser) -> None:
    optimiser.zero_grad(set_to_none=True)
    for draw in sampler.draw(step):
        model.resize(widths=draw)
        F.cross_entropy(model(x), y).backward()
    optimiser.step()


def _sandwich(smoke: bool) -> dict:
    torch.manual_seed(0)
    batch = 8 if smoke else 64
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    model = zoo.cifar_resnet18().eval()
    imodel = inn.convert(model, x[:1], permute=False).train()
    slim = SlimmableNetwork(model, x[:1]).train()
    sampler = WidthSampler.for_model(imodel, (0.25, 1.0), seed=0)
    opts = {
        "inn": torch.optim.SGD(imodel.parameters(), lr=1e-5),
        "slimmable": torch.optim.SGD(slim.parameters(), lr=1e-5),
    }
    counter = {"inn": 0, "slimmable": 0}

    def runner(name: str, net):
        def run() -> None:
            # the same draws for both, cycling over 8 steps (resampling plans cached, as in a
            # long run)
            _sandwich_step(net, sampler, counter[name] % 8, x, y, opts[name])
            counter[name] += 1

        return run

    samples = interleaved(
        {"inn": runner("inn", imodel), "slimmable": runner("slimmable", slim)},
        repeats=2 if smoke else 24,
    )
    return {
        "batch": batch,
        "widths_per_step": len(sampler.draw(0)),
        "inn_step_s": summary(samples["inn"]),
        "slimmable_step_s": summary(samples["slimmable"]),
        **ratio_stats(samples["inn"], samples["slimmable"]),
    }


def _compiled(repeats: int = 10) -> dict:
    """One training step at 50 % width, eager against ``torch.compile`` (after compiling)."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    imodel = inn.convert(zoo.cifar_resnet18().eval(), x[:1], permute=False).train()
    imodel.resize(widths={g.name: g.full_size // 2 for g in imodel.resizable_groups})
    compiled = torch.compile(imodel)
    start = time.perf_counter()
    try:
        F.cross_entropy(compiled(x), y).backward()
    except Exception as error:  # dynamo errors have no common base class to catch
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    compile_s = time.perf_counter() - start
    samples = interleaved(
        {
            "eager": lambda: F.cross_entropy(imodel(x), y).backward(),
            "compiled": lambda: F.cross_entropy(compiled(x), y).backward(),
        },
        repeats=repeats,
    )
    return {"compile_s": compile_s, **ratio_stats(samples["compiled"], samples["eager"])}


DDP_TRAIN = [
    "--model", "innlab.zoo:cifar_resnet18", "--model-kwargs", '{"width": 8, "in_channels": 1}',
    "--data", "innlab.data:mnist_splits", "--from", "scratch",
]  # fmt: skip
"""The demo network at width 8 from scratch on the MNIST digits."""


def _ddp(processes: int, steps: int) -> float:
    """Samples per second of ``inn train`` on ``processes`` gloo ranks (torchrun)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            "--master_port", str(29500 + processes), "-m", "inn.cli", "train", *DDP_TRAIN,
            "--steps", str(steps), "--out", tmp,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // processes))}
        subprocess.run(command, check=True, env=env, capture_output=True, timeout=900)
        return json.loads((Path(tmp) / "train.json").read_text())["samples_per_s"]


def run(smoke: bool = False) -> dict:
    torch.set_num_threads(2)
    result = {"sandwich": _sandwich(smoke)}
    if not smoke:
        one, two = _ddp(1, 40), _ddp(2, 40)
        result["ddp"] = {"samples_per_s_1": one, "samples_per_s_2": two, "ratio": two / one}
        result["compile"] = _compiled()
    return result


def markdown(result: dict) -> str:
    s = result["sandwich"]
    lines = [
        f"Sandwich step ({s['widths_per_step']} widths, batch {s['batch']}, demo network): INN "
        f"{1e3 * s['inn_step_s']['median']:.0f} ms, slimmable baseline (plain network, first "
        f"channels) {1e3 * s['slimmable_step_s']['median']:.0f} ms: ratio "
        f"{s['ratio_median']:.2f} [{s['ratio_min']:.2f}, {s['ratio_max']:.2f}]."
    ]
    if "ddp" in result:
        d = result["ddp"]
        lines.append(
            f"\nDDP (`torchrun`, gloo, `inn train {' '.join(DDP_TRAIN)}`): "
            f"{d['samples_per_s_1']:.0f} samples/s on 1 process, {d['samples_per_s_2']:.0f} on 2 "
            f"(x{d['ratio']:.2f}; both share the same 2 cores)."
        )
    if "compile" in result and "error" in result["compile"]:
        lines.append(
            f"\n`torch.compile` of the integral model (step at 50 % width) failed: "
            f"{result['compile']['error']}: kept off."
        )
    elif "compile" in result:
        c = result["compile"]
        lines.append(
            f"\n`torch.compile` of the integral model (step at 50 % width): {c['compile_s']:.0f} s "
            f"to compile, then {c['ratio_median']:.2f}x [{c['ratio_min']:.2f}, "
            f"{c['ratio_max']:.2f}] the eager step: kept off."
        )
    return "\n".join(lines)
