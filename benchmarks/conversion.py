"""Conversion cost per torchvision model: wall time split by stage, relative to one forward pass,
the resident memory it adds at its peak (a fresh process per model), and the total variation of
the permuted groups.

Total variation is measured the same way whatever ``inn`` version converts: the exact L1 total
variation of every permuted group (all member slices, float64 sums) of the traced, folded network
just before and just after ``permute_groups`` runs (the time of that measurement is taken out of
the conversion time). The version's own ``report.total_variation`` is recorded too; before
2026-12 it was computed on a random subset of the columns of wide groups, so it is only an
estimate (biased low after ordering: the search fits the sample).

``python -m benchmarks.conversion --baseline REV --repeats 3`` also converts every model with
the current source tree in which the permutation step (the package ``src/inn/permute/``, or
before it ``src/inn/permute.py`` and ``src/inn/convert/permutation.py``) is taken from the git
revision ``REV`` (one fresh process per model, version and repeat,
baseline and new alternating), and reports new / baseline ratios of the median times measured
side by side in that run (other work on the machine slows single runs several times over: the
times of every run are kept). Results go to ``benchmarks/results/conversion-cpu`` by default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

from benchmarks.common import describe, machine, memory_mb, reset_peak_memory, summary

#: torchvision classification models of at most 100 M parameters (random weights, 224 x 224).
MODELS = [
    "vit_b_16",
    "convnext_tiny",
    "resnet50",
    "vgg11_bn",
    "efficientnet_b0",
    "regnet_y_1_6gf",
    "swin_t",
    "densenet121",
    "mobilenet_v2",
]
SMOKE_MODELS = ["mobilenet_v3_small"]

#: Paths that make up the permutation step, in its layouts before and after it became a package
#: (those of the current tree are replaced by those the baseline revision has).
PERMUTATION_PATHS = ["src/inn/permute", "src/inn/permute.py", "src/inn/convert/permutation.py"]

#: A file that only the layout before the package has (``permute_groups`` lived in it).
_OLD_LAYOUT = "src/inn/convert/permutation.py"

#: The line of ``src/inn/convert/convert.py`` that imports the permutation step.
_IMPORT = re.compile(r"^from inn(\.\w+)+ import permute_groups$", re.MULTILINE)

ROOT = Path(__file__).resolve().parents[1]


def build(name: str) -> torch.nn.Module:
    """A torchvision model or ``timm:NAME``, random weights."""
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[5:], pretrained=False).eval()
    return torchvision.models.get_model(name, weights=None).eval()


def _one(name: str, size: int, queue: mp.Queue, source: str | None) -> None:
    try:
        if source is not None:  # before the first import of inn in this fresh process
            sys.path.insert(0, source)
        _measure(name, size, queue)
    except Exception as error:  # reported in the table instead of hanging the parent
        queue.put({"model": name, "error": f"{type(error).__name__}: {error}"[:300]})


def _exact_total_variation(gm: torch.nn.Module, analysis) -> dict[str, float]:
    """Exact L1 total variation, in the current channel order, of every group that
    ``permute_groups`` orders (resizable, at least 3 channels), summed over its member slices."""
    from inn.graph import group_members

    out = {}
    with torch.no_grad():
        for key, members in group_members(gm, analysis).items():
            group = analysis.groups[key]
            if not group.resizable or group.full_size < 3:
                continue
            total = 0.0
            for m in members:
                tensor = getattr(gm.get_submodule(m.module), m.tensor)
                part = tensor.narrow(m.dim, m.offset, m.size * m.block).movedim(m.dim, 0)
                rows = part.reshape(m.size, -1)
                step = max(1, (1 << 22) // max(1, rows.shape[1]))
                for row in range(0, rows.shape[0] - 1, step):
                    block = rows[row : row + step + 1]
                    total += float((block[1:] - block[:-1]).abs().sum(dtype=torch.float64))
            out[group.name] = total
    return out


def _measure(name: str, size: int, queue: mp.Queue) -> None:
    import importlib

    import inn

    # ``inn.convert`` is also the name of the function, so the module is looked up by name.
    convert_module = importlib.import_module("inn.convert.convert")

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build(name)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        model(x)
        forwards = []
        for _ in range(3):
            start = time.perf_counter()
            model(x)
            forwards.append(time.perf_counter() - start)

    permute_groups = convert_module.permute_groups
    exact: dict[str, dict[str, float]] = {}
    overhead = [0.0]

    def measured_permute_groups(gm, analysis, **kwargs):
        clock = time.perf_counter()
        exact["before"] = _exact_total_variation(gm, analysis)
        overhead[0] += time.perf_counter() - clock
        result = permute_groups(gm, analysis, **kwargs)
        clock = time.perf_counter()
        exact["after"] = _exact_total_variation(gm, analysis)
        overhead[0] += time.perf_counter() - clock
        return result

    convert_module.permute_groups = measured_permute_groups
    reset_peak_memory()
    before = memory_mb()["rss"]
    start = time.perf_counter()
    imodel = inn.convert(model, x)
    total = time.perf_counter() - start - overhead[0]
    peak = memory_mb()["peak"]
    stages = dict(imodel.report.seconds)
    stages["permute"] = stages.get("permute", 0.0) - overhead[0]
    forward = summary(forwards)["median"]
    full = imodel.num_parameters()
    reported = imodel.report.total_variation
    imodel.resize(widths={g.name: max(1, g.full_size // 2) for g in imodel.resizable_groups})
    queue.put(
        {
            "coverage": imodel.coverage().share,
            "parameters_at_half_width": imodel.num_parameters() / full,
            "model": name,
            "input": [1, 3, size, size],
            "convert_s": total,
            "stages_s": stages,
            "forward_s": forward,
            "convert_over_forward": total / forward,
            "groups": len(imodel.groups),
            "resizable_groups": len(imodel.resizable_groups),
            "permuted_groups": len(reported),
            "tv_identity": sum(exact.get("before", {}).values()),
            "tv_after": sum(exact.get("after", {}).values()),
            "tv_after_by_group": exact.get("after", {}),
            "reported_tv_before": sum(b for b, _ in reported.values()),
            "reported_tv_after": sum(a for _, a in reported.values()),
            "rss_before_convert_mb": before,
            "peak_rss_during_convert_mb": peak,
            "convert_extra_peak_mb": peak - before,
            "model_parameters_mb": sum(p.numel() * p.element_size() for p in model.parameters())
            / 2**20,
            "model_parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        }
    )


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def _baseline_source(revision: str, folder: Path) -> Path:
    """A copy of ``src/`` with the permutation step of ``revision`` (whichever of
    ``PERMUTATION_PATHS`` it has) in place of the current one, and conversion importing
    ``permute_groups`` from where ``revision`` has it; returns the folder to put first on
    ``sys.path``."""
    source = folder / "src"
    shutil.copytree(ROOT / "src", source, ignore=shutil.ignore_patterns("__pycache__", "*.pt"))
    for path in PERMUTATION_PATHS:
        current = folder / path
        if current.is_dir():
            shutil.rmtree(current)
        elif current.exists():
            current.unlink()
    files = _git("ls-tree", "-r", "--name-only", revision, "--", *PERMUTATION_PATHS).split()
    if not files:
        raise SystemExit(f"revision {revision} has none of {PERMUTATION_PATHS}")
    for name in (f.decode() for f in files):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(_git("show", f"{revision}:{name}"))
    module = "inn.convert.permutation" if _OLD_LAYOUT.encode() in files else "inn.permute"
    convert = source / "inn" / "convert" / "convert.py"
    text, count = _IMPORT.subn(f"from {module} import permute_groups", convert.read_text())
    if count != 1:
        raise SystemExit(f"{convert} has no line 'from ... import permute_groups' to redirect")
    convert.write_text(text)
    return source


def _run_one(ctx, name: str, size: int, source: str | None) -> dict:
    queue = ctx.Queue()
    proc = ctx.Process(target=_one, args=(name, size, queue, source))
    proc.start()
    result = queue.get(timeout=1800)
    proc.join()
    return result


def _median_run(runs: list[dict]) -> dict:
    """The run of median conversion time (the lower one for an even count), with the times of
    all runs under ``convert_s_runs`` (a busy machine slows some runs several times over)."""
    if any("error" in r for r in runs):
        return next(r for r in runs if "error" in r)
    ranked = sorted(runs, key=lambda r: r["convert_s"])
    row = dict(ranked[(len(ranked) - 1) // 2])
    row["convert_s_runs"] = [r["convert_s"] for r in runs]
    row["forward_s_runs"] = [r["forward_s"] for r in runs]
    return row


def run(
    smoke: bool = False,
    models: list[str] | None = None,
    baseline: str | None = None,
    repeats: int = 1,
) -> list[dict]:
    """One row per model (the run of median conversion time among ``repeats``); with
    ``baseline`` (a git revision), each row also holds the same measurements with the
    permutation files of that revision (``row["baseline"]``), each baseline run made just
    before the corresponding new one."""
    results = []
    ctx = mp.get_context("spawn")
    size = 32 if smoke else 224
    with tempfile.TemporaryDirectory() as folder:
        source = str(_baseline_source(baseline, Path(folder))) if baseline else None
        for name in models or (SMOKE_MODELS if smoke else MODELS):
            olds, news = [], []
            for _ in range(max(1, repeats)):
                if source:
                    olds.append(_run_one(ctx, name, size, source))
                news.append(_run_one(ctx, name, size, None))
            row = _median_run(news)
            if olds:
                row["baseline"] = _median_run(olds)
            results.append(row)
    return results


def markdown(results: list[dict]) -> str:
    lines = [
        "| model | convert (s) | trace | fold BN | analyse | permute | (distances | order) "
        "| initialise | forward (s) "
        "| convert / forward | model (MB) | RSS before (MB) | peak added (MB) | resizable groups |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | refused: {r['error']} |" + "|" * 14)
            continue
        s = r["stages_s"]
        lines.append(
            f"| {r['model']} | {r['convert_s']:.2f} | {s['trace']:.2f} | {s['fold']:.2f} | "
            f"{s['analyse']:.2f} | {s['permute']:.2f} | {s['distances']:.2f} | {s['order']:.2f} | "
            f"{s['initialise']:.2f} | {r['forward_s']:.3f} | "
            f"{r['convert_over_forward']:.0f} | "
            f"{r['model_parameters_mb']:.0f} | {r['rss_before_convert_mb']:.0f} | "
            f"{r['convert_extra_peak_mb']:.0f} | {r['resizable_groups']}/{r['groups']} |"
        )
    lines += [
        "",
        "Total variation (exact L1 over all member slices, summed over the permuted groups):",
        "",
        "| model | params (M) | groups | identity | after | after / identity |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            continue
        lines.append(
            f"| {r['model']} | {r['model_parameters_m']:.1f} | {r['permuted_groups']} | "
            f"{r['tv_identity']:.6g} | {r['tv_after']:.6g} | "
            f"{r['tv_after'] / max(r['tv_identity'], 1e-300):.4f} |"
        )
    compared = [r for r in results if "error" not in r and "error" not in r.get("baseline", {})]
    compared = [r for r in compared if "baseline" in r]
    if compared:
        lines += [
            "",
            "Against the baseline permutation (same run, one fresh process per model and "
            "version, baseline and new alternating; median of the runs, the times of all runs "
            "listed; exact total variation after ordering):",
            "",
            "| model | baseline convert (s) | new convert (s) | new / baseline time "
            "| baseline runs (s) | new runs (s) "
            "| baseline TV | new TV | new / baseline TV | baseline reported TV |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in compared:
            b = r["baseline"]
            runs = (
                " ".join(f"{t:.1f}" for t in b.get("convert_s_runs", [])),
                " ".join(f"{t:.1f}" for t in r.get("convert_s_runs", [])),
            )
            lines.append(
                f"| {r['model']} | {b['convert_s']:.2f} | {r['convert_s']:.2f} | "
                f"{r['convert_s'] / b['convert_s']:.3f} | {runs[0]} | {runs[1]} | "
                f"{b['tv_after']:.6g} | "
                f"{r['tv_after']:.6g} | {r['tv_after'] / b['tv_after']:.5f} | "
                f"{b['reported_tv_after']:.6g} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conversion")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    parser.add_argument("--models", nargs="+", help="torchvision model names")
    parser.add_argument("--baseline", help="git revision of the permutation files to compare")
    parser.add_argument("--repeats", type=int, default=1, help="runs per model and version")
    parser.add_argument("--out", default="benchmarks/results/conversion-cpu", help="folder")
    args = parser.parse_args(argv)
    command = " ".join(["python -m benchmarks.conversion", *(argv or sys.argv[1:])])
    info = machine()
    info["threads"] = 2  # each model runs in a fresh process with torch.set_num_threads(2)
    start = time.perf_counter()
    results = run(
        smoke=args.smoke, models=args.models, baseline=args.baseline, repeats=args.repeats
    )
    report = {
        "command": command,
        "machine": info,
        "smoke": args.smoke,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "baseline": args.baseline,
        "conversion": results,
    }
    text = [
        "# inn benchmarks",
        "",
        f"`{command}`, {report['date']}, {describe(info)}.",
        "",
        f"## conversion ({time.perf_counter() - start:.0f} s)",
        "",
        markdown(results),
        "",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "summary.md").write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
