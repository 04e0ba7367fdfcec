"""The pruning experiment end to end on a small trained CNN: every method, outputs written."""

import json

import pytest

import inn
from innlab.experiments import pruning


def test_pruning_experiment_runs_every_method(trained_digits_cnn, digits, tmp_path):
    x, y, xt, yt = digits
    test = [(xt[:200], yt[:200]), (xt[200:], yt[200:])]
    calib = [(x[:64], y[:64]), (x[64:128], y[64:128])]
    results = pruning.run(
        trained_digits_cnn,
        test,
        calib,
        compressions=(0.0, 0.5),
        seeds=(0, 1),
        steps=3,
        progress=False,
    )
    summary = pruning.summarise(results)
    assert set(summary) == {*pruning.INN_METHODS, *pruning.BASELINE_METHODS, "unpruned"}
    base = summary["unpruned"][0.0]["mean"]
    for method in ("inn-tuned", "inn-uniform", "l1"):
        assert abs(summary[method][0.0]["mean"] - base) < 1e-9  # nothing removed: same accuracy
    assert summary["inn-tuned"][0.5]["n"] == 2 and summary["l1"][0.5]["n"] == 1
    full = summary["unpruned"][0.0]["parameters"]
    for method, rows in summary.items():
        if 0.5 in rows:
            assert abs(rows[0.5]["parameters"] / full - 0.5) < 0.01, method  # same compression
    pruning.save(results, tmp_path, "title", "inn experiment pruning")
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["command"] == "inn experiment pruning" and len(payload["results"]) == len(
        results
    )
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    assert "| inn-tuned |" in (tmp_path / "results.md").read_text()


def test_budget_experiment_meets_every_budget_for_every_method(
    trained_digits_cnn, digits, tmp_path
):
    """inn and Torch-Pruning side by side: every row at or under its budget, files written."""
    from innlab.experiments import budget

    x, y, xt, yt = digits
    test = [(xt[:200], yt[:200])]
    calib = [(x[:64], y[:64]), (x[64:128], y[64:128])]
    rows = budget.run(
        trained_digits_cnn,
        test,
        calib,
        budgets=(("params", 0.5), ("macs", 0.6)),
        seeds=(0,),
        steps=2,
        progress=False,
    )
    base = rows[0]
    assert base.method == "unpruned"
    assert {r.method for r in rows[1:]} == set(budget.METHODS)
    for r in rows[1:]:
        full = base.parameters if r.kind == "params" else base.macs
        cost = r.parameters if r.kind == "params" else r.macs
        assert cost <= r.fraction * full * 1.0001, r
        assert 0 <= r.accuracy <= 1 and r.latency_ms > 0
    budget.save(rows, tmp_path, "title", "inn experiment budget")
    assert len(json.loads((tmp_path / "results.json").read_text())["rows"]) == len(rows)
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000
    assert "| tp-lamp+bn |" in (tmp_path / "results.md").read_text()
    # the summary against the peers: the best Torch-Pruning row at each budget, by hand
    summary = budget.against_peers({"tiny": rows})
    peers = [r for r in rows if r.method.startswith("tp-") and r.kind == "params"]
    best = max(peers, key=lambda r: r.accuracy)
    ours = next(r for r in rows if r.method == "inn" and r.kind == "params")
    assert f"{100 * best.accuracy:.1f} ({best.method.removeprefix('tp-')})" in summary
    gap = round(100 * (ours.accuracy - best.accuracy), 1) + 0.0
    assert f"{gap:+.1f}" in summary.splitlines()[4]


def test_pruning_experiment_on_a_transformer(digits):
    """The zoo ViT (random weights: only the mechanics are checked here): the methods that
    apply to attention run at the same parameter count; activation statistics, the BatchNorm
    variants and Torch-Pruning are dropped."""
    import torch

    from innlab.zoo import vit

    x, y, xt, yt = digits
    resize = torch.nn.Upsample(size=(28, 28))  # the 8 x 8 digits at the ViT's input size
    torch.manual_seed(0)
    model = vit(dim=16).eval()
    methods = pruning.applicable(pruning.INN_METHODS + pruning.BASELINE_METHODS, model)
    assert "activation" not in methods and "l1+bn" not in methods and "l1+calib" in methods
    results = pruning.run(
        model,
        [(resize(xt[:100]), yt[:100])],
        [(resize(x[:32]), y[:32])],
        compressions=(0.4,),
        methods=methods,
        seeds=(0,),
        steps=2,
        progress=False,
    )
    summary = pruning.summarise(results)
    full = summary["unpruned"][0.0]["parameters"]
    for method in methods:
        assert abs(summary[method][0.4]["parameters"] / full - 0.6) < 0.01, method


def test_ablation_tables_cut_at_one_eighth_are_flat_below_it():
    import numpy as np

    from inn.budget import Sensitivity
    from innlab.experiments.prune_ablation import to_eighth

    table = Sensitivity(
        {"g": np.array([1.0, 20.0, 40.0, 160.0])}, {"g": np.array([0.9, 0.2, 0.1, 0.0])}, "outputs"
    )
    cut = to_eighth(table)
    assert cut.widths["g"].tolist() == [20.0, 40.0, 160.0]
    assert cut.error("g", 1) == 0.2 and table.error("g", 1) == 0.9


def test_against_peers_picks_among_the_peers_that_ran_at_each_budget():
    """A peer with no row at a budget is not its best (it used to be scored at the unpruned
    accuracy and leave the cell blank); with no peer at all the cells stay empty."""
    from innlab.experiments.budget import Row, against_peers

    def row(method, fraction, accuracy):
        return Row(method, "params", fraction, 0, accuracy, 5, 5, 1.0, 1.0)

    rows = [row("unpruned", 1.0, 0.99), row("inn", 0.5, 0.9), row("tp-a", 0.5, 0.8),
            row("tp-b", 0.8, 0.95), row("inn", 0.8, 0.97)]  # fmt: skip
    lines = against_peers({"x": rows}).splitlines()
    assert lines[3] == "| | best Torch-Pruning | 95.0 (b) | 80.0 (a) | |"
    assert lines[4] == "| | difference | +2.0 | +10.0 | |"
    alone = against_peers({"x": [r for r in rows if not r.method.startswith("tp-")]})
    assert alone.splitlines()[3] == "| | best Torch-Pruning |  |  | |"


def test_a_rerun_replaces_its_methods_rows_and_keeps_the_others(tmp_path):
    from innlab.experiments.budget import Row
    from innlab.experiments.rerun import merge_rerun

    def row(method: str, accuracy: float) -> Row:
        return Row(method, "params", 0.5, 0, accuracy, 1, 1, 1.0, 1.0)

    earlier = [row("unpruned", 0.9), row("inn", 0.1), row("tp-lamp+bn", 0.2)]
    rows = [row("unpruned", 0.91), row("inn", 0.3), row("inn-select", 0.4)]
    order = ("unpruned", "inn", "inn-select", "tp-lamp+bn")
    merged, command = merge_rerun(tmp_path, (earlier, "first"), rows, "second", order)
    assert [(r.method, r.accuracy) for r in merged] == [
        ("unpruned", 0.91), ("inn", 0.3), ("inn-select", 0.4), ("tp-lamp+bn", 0.2)
    ]  # fmt: skip
    assert command == "first && second"
    with pytest.raises(inn.InnError, match="--update needs earlier results"):
        merge_rerun(tmp_path, None, rows, "second", order)
