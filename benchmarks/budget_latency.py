"""Is a pruned export faster where it runs? Latency of the model exported at 80/60/40 % MAC
budgets and at 80/60/40 % latency budgets (plans with the device's default rounding,
``inn.budget.device_round_to``; a latency budget fitted and its plans timed at the batch it
runs at) against the original, interleaved: on the CPU at batch 1 and 32, and on CUDA at batch
1/32/256 in channels_last with float16 autocast when a GPU is present.

Target (issue 23): every ratio exported / original at most the MAC fraction + 0.10, and never
above 1.0. Both references are timed: the original as given, and with its BatchNorms folded
(``torch.fx.experimental.optimization.fuse``), since the export folds them too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torchvision
from torch.fx.experimental.optimization import fuse

import inn
from benchmarks.common import interleaved, ratio_stats, summary

MODELS = ["resnet18", "mobilenet_v2", "efficientnet_b0"]
FRACTIONS = [0.8, 0.6, 0.4]
SLACK = 0.10
"""How far above its MAC fraction a ratio may be (issue 23's target)."""
FITTED = "latency, fitted model only"
"""Latency plans as the fitted model alone makes them (``measure=False``): the reference."""


def _settings(smoke: bool) -> dict[str, tuple[int, ...]]:
    """Device -> batch sizes."""
    if smoke:
        return {"cpu": (1,)}
    cuda = {"cuda": (1, 32, 256)} if torch.cuda.is_available() else {}
    return {"cpu": (1, 32), **cuda}


def _call(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    """``model(x)`` that returns once the device is done (float16 autocast on CUDA)."""
    if x.device.type != "cuda":
        return lambda: model(x)

    def run() -> None:
        with torch.autocast("cuda", torch.float16):
            model(x)
        torch.cuda.synchronize()

    return run


def _exports(
    imodel: inn.IntegralModel,
    kind: str,
    device: str,
    sensitivity: str,
    batch: int = 1,
    measure: bool = True,
) -> dict[float, tuple[torch.nn.Module, float, float | None]]:
    """Per fraction of ``FRACTIONS``: the export planned for a ``kind`` budget on ``device`` (at
    ``batch``, for latency), the share of the full width's MACs it counts, and the latency
    fraction its plan measured (latency budgets, unless ``measure=False``: the fitted model's
    plan, not timed)."""
    x = imodel.example_inputs[0]
    dtype = torch.float16 if device == "cuda" else torch.float32
    full_macs = imodel.cost("macs")  # imodel is at full width: plans leave it there
    exports = {}
    for fraction in FRACTIONS:
        budget = inn.Budget(kind, fraction, device=device, dtype=dtype, batch_size=batch)
        try:
            plan = imodel.plan(budget, sensitivity=sensitivity, measure=measure)
        except inn.InnError:
            if measure:
                raise
            continue  # below the fitted model's floor: the reference has no plan to time
        with imodel.widths_kept():
            small = imodel.resize(widths=plan.widths).export().eval()
        exports[fraction] = (small, inn.budget.count_macs(small, x) / full_macs, plan.measured)
    return exports


def run(smoke: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    size = 32 if smoke else 224
    rows = []
    for name in ["mobilenet_v3_small"] if smoke else MODELS:
        torch.manual_seed(0)
        model = torchvision.models.get_model(name, weights=None).eval()
        # the smoke run checks the plumbing only; the real one plans with inn's defaults
        sensitivity = "uniform" if smoke else "auto"
        imodel = inn.convert(model, torch.randn(1, 3, size, size), permute=not smoke)
        for device, batches in _settings(smoke).items():
            macs = _exports(imodel, "macs", device, sensitivity)
            memory = torch.channels_last if device == "cuda" else torch.contiguous_format
            for batch in batches:
                # latency budgets are planned (fitted, then timed) at the batch they run at
                latency, fitted = {}, {}
                if not smoke:
                    latency = _exports(imodel, "latency", device, sensitivity, batch)
                    fitted = _exports(imodel, "latency", device, sensitivity, batch, False)
                kinds = {"macs": macs, "latency": latency, FITTED: fitted}
                models = {"original": model, "original, BN folded": fuse(model).eval()}
                models |= {(k, f): m for k, e in kinds.items() for f, (m, *_) in e.items()}
                models = {k: m.to(device, memory_format=memory) for k, m in models.items()}
                x = torch.randn(batch, 3, size, size, device=device).to(memory_format=memory)
                fns = {k: _call(m, x) for k, m in models.items()}
                repeats = 2 if smoke else (15 if batch == 1 else 5)
                with torch.no_grad():
                    samples = interleaved(fns, repeats=repeats)
                for kind, exports in kinds.items():
                    for fraction, (_, kept, planned) in exports.items():
                        ratio = ratio_stats(samples[kind, fraction], samples["original"])
                        rows.append({
                            "model": name, "device": device, "batch": batch, "kind": kind,
                            "budget": fraction, "mac_fraction": kept,
                            "plan_measured": planned,
                            "latency_s": summary(samples[kind, fraction]),
                            "original_s": summary(samples["original"])["median"],
                            "vs_original": ratio,
                            "vs_folded": ratio_stats(samples[kind, fraction],
                                                     samples["original, BN folded"]),
                            "meets_target": ratio["ratio_median"] <= min(1.0, fraction + SLACK),
                        })  # fmt: skip
    return rows


def _ratio(stats: dict[str, float]) -> str:
    return f"{stats['ratio_median']:.2f} [{stats['ratio_min']:.2f}, {stats['ratio_max']:.2f}]"


# per table: the rows' kind, the budget's name, and what the table's first line adds before and
# after its target
_TABLES = (
    ("macs", "MAC", "", ""),
    ("latency", "latency", "", " A latency plan is timed against the full width's export while it "
     "is planned (`inn.budget.meet_measured`): that fraction is the column 'plan measured'."),
    (FITTED, "latency", "The same latency budgets planned by the fitted latency model alone, not "
     "timed (`plan(..., measure=False)`, as every latency plan was before 2026-12-06); a budget "
     "below the fitted model's floor is refused by it and has no row. ", ""),
)  # fmt: skip


def markdown(rows: list[dict]) -> str:
    lines = []
    for kind, label, before, after in _TABLES:
        chosen = [r for r in rows if r["kind"] == kind]
        if chosen:
            lines += [*_table(chosen, label, before, after, timed=kind == "latency"), ""]
    return "\n".join(lines).rstrip()


def _table(rows: list[dict], label: str, before: str, after: str, timed: bool) -> list[str]:
    met = sum(r["meets_target"] for r in rows)
    lines = [
        f"{before}Exported / original latency at {label} budgets (median [min, max] over "
        f"interleaved rounds); target: at most the budget + {SLACK:.2f} and never above 1.00. "
        f"Met by {met} of {len(rows)} rows.{after}",
        "",
        f"| model | device | batch | {label} budget | MACs kept | exported (ms) | original (ms) "
        "| exported / original | exported / original, BN folded |"
        + (" plan measured |" if timed else "")
        + " target met |",
        "|---|---|---:|---:|---:|---:|---:|---|---|" + ("---:|" if timed else "") + "---|",
    ]
    for r in rows:
        planned = f" {r['plan_measured']:.2f} |" if timed else ""
        lines.append(
            f"| {r['model']} | {r['device']} | {r['batch']} | {r['budget']:.0%} | "
            f"{r['mac_fraction']:.1%} | {1e3 * r['latency_s']['median']:.1f} | "
            f"{1e3 * r['original_s']:.1f} | {_ratio(r['vs_original'])} | "
            f"{_ratio(r['vs_folded'])} |{planned} {'yes' if r['meets_target'] else 'no'} |"
        )
    return lines
