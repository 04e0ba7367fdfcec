"""The README keeps its promises: its Python quick start runs as written, and every file it (or
the lab notebook in the docs) names is in the repository."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
PATH = re.compile(r"`((?:results|benchmarks|docs|examples|lab|src|tests)/[^`\s*]+)`")


def test_the_python_quick_start_runs_as_written(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Prune your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    small = torch.load(tmp_path / "small.pt", weights_only=False)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("page", ["README.md", "docs/notebook.md"])
def test_every_file_named_exists(page):
    names = {m.rstrip(".,;:)") for m in PATH.findall((ROOT / page).read_text())}
    # MODEL stands for any model; {pt,json}: the first of the alternatives
    patterns = {n: re.sub(r"\{([^},]*)[^}]*\}", r"\1", n.replace("MODEL", "*")) for n in names}
    missing = sorted(n for n, pattern in patterns.items() if not any(ROOT.glob(pattern)))
    assert not missing, f"{page} names files that are not in the repository: {missing}"


def test_the_headline_table_is_the_one_the_results_give():
    """README's comparison table equals what lab/scripts/budget_summary.py generates from the
    committed results JSON."""
    from innlab.experiments import budget

    found = budget.load_networks(ROOT / "results")
    assert list(found) == list(budget.NETWORKS)
    generated = budget.against_peers({name: rows for name, (rows, _) in found.items()})
    text = (ROOT / "README.md").read_text().split("## How it compares", 1)[1]
    published = "\n".join(line for line in text.split("\n## ", 1)[0].splitlines()
                          if line.startswith("|"))  # fmt: skip
    assert published == generated
