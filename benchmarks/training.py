"""Training step time of an integral model against the plain model of the same width."""

from __future__ import annotations

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
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = zoo.cifar_resnet18().eval()
    batch = 8 if smoke else 64
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    results = []
    for fraction in (1.0,) if smoke else (1.0, 0.75, 0.5, 0.25):
        imodel = inn.convert(model, x[:1], permute=False)
        imodel.resize(
            widths={g.name: max(1, round(fraction * g.full_size)) for g in imodel.resizable_groups}
        )
        plain = imodel.export().train()
        imodel.train()
        opt_inn = torch.optim.SGD(imodel.parameters(), lr=1e-4)
        opt_plain = torch.optim.SGD(plain.parameters(), lr=1e-4)
        layers = [m for m in imodel.modules() if isinstance(m, IntegralLayer)]

        def sample_only(layers=layers) -> None:
            sum(t.sum() for m in layers for t in m._sample().values()).backward()

        samples = interleaved(
            {
                "plain": lambda m=plain, o=opt_plain: _step(m, x, y, o),
                "inn": lambda m=imodel, o=opt_inn: _step(m, x, y, o),
                "sampling": sample_only,
            },
            repeats=2 if smoke else 30,
        )
        results.append(
            {
                "width": fraction,
                "batch": batch,
                "plain_step_s": summary(samples["plain"]),
                "inn_step_s": summary(samples["inn"]),
                "sampling_fwd_bwd_s": summary(samples["sampling"]),
                # per interleaved round, so that a slow round of the machine cancels out
                "rest_of_overhead_s": summary(
                    [
                        i - p - s
                        for i, p, s in zip(
                            samples["inn"], samples["plain"], samples["sampling"], strict=True
                        )
                    ]
                ),
                **ratio_stats(samples["inn"], samples["plain"]),
            }
        )
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| width | batch | plain step (ms) | INN step (ms) | ratio (median, [min, max]) "
        "| weight sampling fwd+bwd (ms) | rest of the overhead (ms) |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['width']:.0%} | {r['batch']} | {1e3 * r['plain_step_s']['median']:.1f} | "
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
