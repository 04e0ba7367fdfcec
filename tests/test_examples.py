"""Every script in examples/ runs at its tiny size (in this process: torch is imported once)."""

import runpy
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "digits.py")


def test_every_guide_has_its_example():
    assert SCRIPTS == [
        "budget.py", "custom_layer.py", "export.py", "prune_own_model.py",
        "prune_torchvision.py", "train_twin.py",
    ]  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_tiny(script, monkeypatch, capsys, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # the examples import their shared digits.py
    monkeypatch.setattr(sys, "argv", [script, "--tiny"])
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster than two busy ones
    try:
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert out.strip(), f"{script} printed nothing"
    assert "False" not in out, f"{script} reported a failed check:\n{out}"
