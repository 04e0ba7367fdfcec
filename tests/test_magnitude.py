"""Magnitude allocation: LAMP scores by hand, and plans against global magnitude pruning done
by brute force on a tiny network."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import inn
from inn.budget import cost_model, magnitude_table, output_errors
from inn.budget.allocate import Table, level_widths
from inn.budget.magnitude import lamp_scores


def test_lamp_scores_by_hand():
    """[3, 1, 2] sorted is [1, 2, 3]; the sums of the scores not smaller are [6, 5, 3]."""
    got = lamp_scores(torch.tensor([3.0, 1.0, 2.0]))
    assert torch.allclose(got, torch.tensor([1 / 6, 2 / 5, 1.0], dtype=torch.float64))


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(),
        nn.Linear(5, 3),
    ).eval()  # fmt: skip


def _brute_force(model: nn.Sequential, fraction: float) -> list[int]:
    """Hidden widths after removing channels one at a time, lowest LAMP score of all first,
    until the parameters (weights and biases of the plain MLP) fit ``fraction`` of the full."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    lamp = []
    for made, read in itertools.pairwise(linears):
        score = [
            float(made.weight[c].detach().abs().sum() + read.weight[:, c].detach().abs().sum())
            for c in range(made.out_features)
        ]
        ordered = sorted(score)
        lamp.append([s / sum(ordered[i:]) for i, s in enumerate(ordered)])

    def params(hidden: list[int]) -> int:
        sizes = [linears[0].in_features, *hidden, linears[-1].out_features]
        return sum(a * b + b for a, b in itertools.pairwise(sizes))

    widths = [len(s) for s in lamp]
    target = fraction * params(widths)
    queue = sorted((s, g) for g, scores in enumerate(lamp) for s in scores)
    for _, g in queue:
        if params(widths) <= target:
            break
        widths[g] -= 1
    return widths


@pytest.mark.parametrize("fraction", [0.8, 0.5, 0.3])
def test_magnitude_plan_is_global_magnitude_pruning(fraction):
    model = _mlp()
    imodel = inn.convert(model, torch.randn(1, 4), permute=False)
    groups = imodel.groups
    expected = _brute_force(model, fraction)
    hidden = [g for g in groups if g.resizable]
    assert [g.full_size for g in hidden] == [8, 6, 5]

    cost = cost_model(imodel, "params")
    full = np.array([g.full_size for g in groups], dtype=float)
    resizable = np.array([g.resizable for g in groups])
    table = magnitude_table(imodel)
    names = [g.name for g in groups]
    tables = Table(
        [table.widths.get(n, np.array([f])) for n, f in zip(names, full, strict=True)],
        [table.errors.get(n, np.array([0.0])) for n in names],
    )
    lowest = np.where(resizable, 1.0, full)
    target = fraction * cost(full)
    level = level_widths(cost, target, full, resizable, lowest, 1, tables)
    assert [int(level[i]) for i in np.flatnonzero(resizable)] == expected

    plan = imodel.plan({"params": fraction}, sensitivity="magnitude")
    assert plan.sensitivity == "magnitude"
    assert plan.predicted <= plan.target
    assert plan.predicted >= cost(level)  # refine only fills what the level left under budget


def test_output_errors_of_selected_channels_against_the_network_sliced_by_hand():
    """The ``"select"`` error at a width is the output change of the plain network with that
    many of the group's channels kept, the strongest by the L1 norm of the weights that make and
    read them, sliced by hand; with both samplings the table is the lower of the two."""
    model = _mlp()
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    imodel = inn.convert(model, x[:1], permute=False)
    first = next(g for g in imodel.resizable_groups if g.full_size == 8)
    select = output_errors(imodel, [x], samplings=("select",))
    resample = output_errors(imodel, [x])
    both = output_errors(imodel, [x], samplings=("resample", "select"))

    a, b = model[0], model[2]
    with torch.no_grad():
        score = a.weight.abs().sum(1) + b.weight.abs().sum(0)
        reference = model(x)
        for width in (1, 2, 4, 6):
            keep = torch.topk(score, width).indices
            hidden = torch.relu(x @ a.weight[keep].T + a.bias[keep])
            rest = torch.relu(hidden @ b.weight[:, keep].T + b.bias)
            y = model[4:](rest)
            expected = float((y - reference).square().sum() / reference.square().sum())
            assert select.error(first.name, width) == pytest.approx(expected, rel=1e-4, abs=1e-9)
    for name in both.errors:
        assert np.allclose(
            both.errors[name], np.minimum(select.errors[name], resample.errors[name])
        )


def test_output_errors_refuses_an_unknown_sampling():
    imodel = inn.convert(_mlp(), torch.randn(1, 4), permute=False)
    with pytest.raises(inn.InnError, match="samplings"):
        output_errors(imodel, [torch.randn(4, 4)], samplings=("nearest",))


def test_allocation_tables_markdown_by_hand():
    """Two seeds per table: the cell is their mean and sample standard deviation."""
    from innlab.experiments.allocation_tables import TABLES, markdown

    rows = [
        {"model": "m", "budget": "macs:0.5", "table": label, "seed": seed, "accuracy": acc}
        for label in TABLES
        for seed, acc in ((0, 0.90), (1, 0.94))
    ]
    text = markdown(rows)
    assert "| table | m macs:0.5 |" in text
    assert "| lower of the two | 92.0 ± 2.8 |" in text  # std of 90, 94: 2.83
