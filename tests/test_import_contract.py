"""The import contracts (tests/import_contract.py) hold for the repository, and each of them
fails on a fabricated violation."""

from pathlib import Path

import pytest

from tests.import_contract import check_library, check_public_use

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "src"


def test_the_library_keeps_its_layers_and_has_no_cycles():
    assert [str(v) for v in check_library(LIBRARY)] == []


@pytest.mark.parametrize(
    "root, package", [(ROOT / "lab", "innlab"), (ROOT, "benchmarks")]
)
def test_code_beside_the_library_uses_only_its_public_api(root, package):
    assert [str(v) for v in check_public_use(root, package, LIBRARY)] == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_each_contract_fails_on_a_violation(tmp_path):
    lib = _write(tmp_path / "src", {
        "inn/__init__.py": '__all__ = ["convert"]\nfrom inn.convert import convert\n',
        "inn/numerics/__init__.py": "from inn.layers import conv\n",  # upward: a layer violation
        "inn/layers/__init__.py": "__all__ = []\n",
        "inn/layers/conv.py": "",
        "inn/convert/__init__.py": '__all__ = ["convert"]\nfrom inn.convert.a import convert\n',
        "inn/convert/a.py": "from inn.convert import b\ndef convert(): pass\n",
        "inn/convert/b.py": "def f():\n    from inn.convert import a\n",  # a cycle via a function
        "inn/budget/__init__.py": "import innlab\n",  # the library importing the experiments
    })  # fmt: skip
    found = [str(v) for v in check_library(lib)]
    assert any("layer 'numerics' imports inn.layers" in f for f in found), found
    assert any("import cycle among inn.convert.a, inn.convert.b" in f for f in found), found
    assert any("the library imports innlab" in f for f in found), found

    lab = _write(tmp_path / "lab", {
        "innlab/__init__.py": "",
        "innlab/good.py": "import inn\nfrom inn import convert\nx = inn.convert\n",
        "innlab/bad.py": "import inn\nfrom inn.convert.a import convert\nfrom inn.layers import conv\n"
                         "y = inn.permute\n",
    })  # fmt: skip
    found = [str(v) for v in check_public_use(lab, "innlab", lib)]
    assert all(f.startswith("innlab.bad") for f in found), found
    assert any("from inn.convert.a, a module that is not a public package" in f for f in found)
    assert any("imports conv from inn.layers, which does not export it" in f for f in found)
    assert any("uses inn.permute, which inn does not export" in f for f in found)


def test_type_checking_imports_do_not_count(tmp_path):
    lib = _write(tmp_path / "src", {
        "inn/__init__.py": "__all__ = []\n",
        "inn/numerics/__init__.py": "from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from inn.convert import x\n",
        "inn/convert/__init__.py": "",
    })  # fmt: skip
    assert check_library(lib) == []


def test_import_inn_gives_the_training_package():
    """``inn.train.train`` after a bare ``import inn`` (a fresh interpreter: in this one another
    test may have imported ``inn.train`` already), as the package docs and the lab use it."""
    import subprocess
    import sys

    code = "import inn; print(inn.train.train.__module__, inn.train.TrainSettings.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["inn.train.trainer", "TrainSettings"]
