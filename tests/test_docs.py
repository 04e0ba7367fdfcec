"""The published results page is what docs/generate_results.py makes of the committed JSON."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_results", ROOT / "docs" / "generate_results.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_equals_the_results_json():
    generator = _generator()
    expected = generator.generate()
    committed = (ROOT / "docs" / "results.md").read_text()
    assert committed == expected, (
        "docs/results.md differs from results/*/results.json: run `python docs/generate_results.py`"
    )


def test_every_results_file_has_its_section():
    page = (ROOT / "docs" / "results.md").read_text()
    for path in sorted((ROOT / "results").glob("*/results.json")):
        assert f"(`{path.relative_to(ROOT).as_posix()}`)" in page, path
