"""Training step time of an integral model against the plain model of the same width."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

import inn
from benchmarks.common import interleaved, ratio_stats, summary
from inn.layers import IntegralLayer
from innlab import zoo


def _step(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimiser: torch.optim.Optimizer
) -> None:
    optimiser.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimiser.step()


def run(smoke: bool = False) -> list[dict]:
    """Per width: one plain step of the exported network, and one step of the integral model
    with selected channels (the training default) and with resampled ones, interleaved."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = zoo.cifar_resnet18().eval()
    batch = 8 if smoke else 64
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    results = []
    for fraction in (1.0,) if smoke else (1.0, 0.75, 0.5, 0.25):
        imodels = {}
        for channels in CHANNELS:
            imodel = inn.convert(model, x[:1], permute=False)
            if channels == "select":
                imodel.nest_channels()
            imodel.resize(widths=inn.train.uniform_widths(imodel, fraction))
            imodels[channels] = imodel.train()
        plain = imodels["resample"].export().train()  # the same shapes as either
        steps = {"plain": _stepper(plain)}
        for channels, imodel in imodels.items():
            steps[channels] = _stepper(imodel)
            steps[f"{channels} sampling"] = _sampling_only(imodel)
        samples = interleaved(
            {k: (lambda f=f: f(x, y)) for k, f in steps.items()}, repeats=2 if smoke else 30
        )
        for channels in CHANNELS:
            inn_s, sampling_s = samples[channels], samples[f"{channels} sampling"]
            results.append(
                {
                    "width": fraction,
                    "channels": channels,
                    "batch": batch,
                    "plain_step_s": summary(samples["plain"]),
                    "inn_step_s": summary(inn_s),
                    "sampling_fwd_bwd_s": summary(sampling_s),
                    # per interleaved round, so that a slow round of the machine cancels out
                    "rest_of_overhead_s": summary(
                        [
                            i - p - s
                            for i, p, s in zip(inn_s, samples["plain"], sampling_s, strict=True)
                        ]
                    ),
                    **ratio_stats(inn_s, samples["plain"]),
                }
            )
    return results


CHANNELS = ("select", "resample")


def _stepper(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], None]:
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-4)
    return lambda x, y: _step(model, x, y, optimiser)


def _sampling_only(imodel: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], None]:
    layers = [m for m in imodel.modules() if isinstance(m, IntegralLayer)]

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        sum(t.sum() for m in layers for t in m._sample().values()).backward()

    return run


def markdown(results: list[dict]) -> str:
    lines = [
        "| width | channels | batch | plain step (ms) | INN step (ms) | ratio (median, [min, max]) "
        "| weight sampling fwd+bwd (ms) | rest of the overhead (ms) |",
        "|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['width']:.0%} | {r.get('channels', 'resample')} | {r['batch']} | "
            f"{1e3 * r['plain_step_s']['median']:.1f} | "
            f"{1e3 * r['inn_step_s']['median']:.1f} | "
            f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}] | "
            f"{1e3 * r['sampling_fwd_bwd_s']['median']:.1f} | "
            f"{1e3 * r['rest_of_overhead_s']['median']:.1f} |"
        )
    lines.append(
        "\nRest of the overhead: INN step - plain step - sampling, median over the interleaved "
        "rounds (the layers' Python code, the optimiser over node values instead of weights)."
    )
    return "\n".join(lines)
