"""The benchmarks run end to end at tiny sizes, so they never rot (timings are not checked).
One test per section, so that the test workers share them."""

import json

import pytest

from benchmarks.__main__ import SECTIONS, main


def _smoke(section: str, out) -> dict:
    assert main(["--smoke", "--only", section, "--out", str(out)]) == 0
    assert f"## {section}" in (out / "summary-smoke.md").read_text()
    return json.loads((out / "results-smoke.json").read_text())[section]


def _permutation(report: dict) -> None:
    worst = max(r["worst_ratio_to_optimum"] for r in report["brute_force"])
    assert worst <= 1.05  # within 5 % of the brute-force optimum for n <= 9
    for row in report["trained"]:  # a permutation never adds total variation
        assert row["greedy-2opt"] <= row["identity"] and row["fast-tsp"] <= row["identity"]


def _conversion(report: list) -> None:
    assert report[0]["resizable_groups"] > 0


def _coverage(report: list) -> None:
    assert all(r["coverage"] > 0.9 for r in report)


def _inference(report: list) -> None:
    assert all(
        r["vs_original"]["ratio_median"] > 0 and r["vs_folded"]["ratio_median"] > 0 for r in report
    )


def _training(report: list) -> None:
    assert report[0]["ratio_median"] > 0


def _tuning(report: list) -> None:
    assert report[0]["steps"] == 5


def _budget(report: dict) -> None:
    assert report["planning"][0]["predicted_fraction"] <= 0.5
    assert report["tuning_step"]["ratio_median"] > 0


def _budget_latency(report: list) -> None:
    for row in report:  # timings are not checked; the MACs kept are
        assert row["kind"] == "macs" and row["mac_fraction"] <= row["budget"]
        assert row["vs_original"]["ratio_median"] > 0


def _channel_alignment(report: dict) -> None:
    convolutions = report["convolutions"]
    assert [r["channels"] for r in convolutions] == [[60], [56]]  # 64 - 4, 64 - 8
    assert all(r["per_mac_ratio"]["median"] > 0 for r in convolutions)
    assert report["plans"][0]["round_to_16"]["ratio_median"] > 0


def _random_width(report: dict) -> None:
    assert report["sandwich"]["ratio_median"] > 0


def _upscale(report: list) -> None:
    upscale = {r["width"]: r for r in report}
    assert upscale["60 % params"]["parameter_ratio"] < 0.7 and upscale["full"]["mac_ratio"] == 1


CHECKS = {
    "permutation": _permutation,
    "conversion": _conversion,
    "coverage": _coverage,
    "inference": _inference,
    "training": _training,
    "tuning": _tuning,
    "budget": _budget,
    "budget_latency": _budget_latency,
    "channel_alignment": _channel_alignment,
    "random_width": _random_width,
    "upscale": _upscale,
}


def test_every_section_is_checked():
    assert set(CHECKS) == set(SECTIONS)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_benchmark_section_smoke(section, tmp_path):
    CHECKS[section](_smoke(section, tmp_path))
