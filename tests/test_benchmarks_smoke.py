"""The benchmarks run end to end at tiny sizes, so they never rot (timings are not checked)."""

import json
import sys

from benchmarks.__main__ import main


def test_benchmarks_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["benchmarks"])
    assert main(["--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results-smoke.json").read_text())
    assert {"permutation", "conversion", "inference", "training", "tuning", "budget"} <= set(report)
    assert report["random_width"]["sandwich"]["ratio_median"] > 0
    assert report["budget"]["planning"][0]["predicted_fraction"] <= 0.5
    assert report["budget"]["tuning_step"]["ratio_median"] > 0
    assert report["training"][0]["ratio_median"] > 0 and report["tuning"][0]["steps"] == 5
    assert report["conversion"][0]["resizable_groups"] > 0
    assert all(
        r["vs_original"]["ratio_median"] > 0 and r["vs_folded"]["ratio_median"] > 0
        for r in report["inference"]
    )
    worst = max(r["worst_ratio_to_optimum"] for r in report["permutation"]["brute_force"])
    assert worst <= 1.05  # within 5 % of the brute-force optimum for n <= 9
    for row in report["permutation"]["trained"]:  # a permutation never adds total variation
        assert row["greedy-2opt"] <= row["identity"] and row["fast-tsp"] <= row["identity"]
    upscale = {r["width"]: r for r in report["upscale"]}
    assert upscale["60 % params"]["parameter_ratio"] < 0.7 and upscale["full"]["mac_ratio"] == 1
    assert "| model |" in (tmp_path / "summary-smoke.md").read_text()
