"""Every common mistake on the command line: a non-zero exit, one or two lines that name the
problem and the fix, no traceback. Most run :func:`inn.cli.main` in this process; the ones that
need a fresh interpreter (a missing package, ``--debug``, ``--quiet``) run ``python -m inn.cli``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inn.cli.models import parse_shape
from inn.errors import InnError
from tests.cli_models import tiny
from tests.cli_run import run_inn

PRUNE = ["prune", "tests.cli_models:tiny", "--compression", "0.3"]
ENTRY = [sys.executable, "-m", "inn.cli"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    """A fresh interpreter: for what one process cannot undo (imports, warnings, exit paths)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.save(tiny(10).state_dict(), folder / "ten.pt")
    torch.save(tiny(7).state_dict(), folder / "seven.pt")
    torch.save(tiny(10), folder / "pickled.pt")  # a whole module, not a state_dict
    other = torch.nn.Linear(3, 2).state_dict()
    torch.save(other, folder / "other.pt")
    return folder


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input-shape", "1,3,abc"], "--input-shape '1,3,abc' is not a shape"),
        (["--input-shape", "1,3,8"], "do not run through"),
        (["--weights", "missing.pt"], "no weights file 'missing.pt'"),
        (["--weights", "{files}/pickled.pt"], "torch.save(model.state_dict(), path)"),
        (["--weights", "{files}/other.pt"], "Check the architecture name and --num-classes"),
        (["--compression", "0.999"], "floor"),
        (["--compression", "1.5"], "compression must be in [0, 1), got 1.5"),
    ],
)
def test_mistakes_end_in_one_line(extra, message, files):
    extra = [e.replace("{files}", str(files)) for e in extra]
    done = run_inn([*PRUNE, "--input-shape", "1,3,16,16", *extra, "-o", str(files / "out.pt")])
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr


def test_unknown_architecture_names_close_matches(files):
    done = run_inn(["prune", "resnet1", "--compression", "0.3"])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "resnet18" in done.stderr


def test_class_count_is_read_from_the_weights_and_folders_are_created(files):
    out = files / "new" / "folder" / "small.pt"
    command = [*PRUNE, "--weights", str(files / "seven.pt"), "--input-shape", "1x3x16x16"]
    done = run_inn([*command, "-o", str(out)])
    assert done.returncode == 0, done.stderr
    assert "the weights have 7 classes: using --num-classes 7" in done.stdout
    small = torch.load(out, weights_only=False)
    assert small(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    # rebuilt without unpickling: the architecture, the widths, the state_dict
    import json

    import inn

    recipe = json.loads((out.parent / "small.widths.json").read_text())
    assert recipe["num_classes"] == 7 and recipe["model_kwargs"] == {}
    model = tiny(recipe["num_classes"]).eval()
    imodel = inn.convert(model, torch.randn(recipe["input_shape"]))
    imodel.resize(widths=recipe["widths"])
    rebuilt = imodel.export()
    rebuilt.load_state_dict(torch.load(out.parent / "small.state_dict.pt", weights_only=True))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), small(x), atol=1e-6)


def test_model_kwargs_reach_the_callable(files):
    done = run_inn([*PRUNE, "--model-kwargs", '{"num_classes": 4}', "--input-shape", "1,3,16,16",
                "-o", str(files / "four.pt")])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert torch.load(files / "four.pt", weights_only=False)(torch.randn(1, 3, 16, 16)).shape == (
        1,
        4,
    )
    bad = run_inn([*PRUNE, "--model-kwargs", "{num_classes: 4}", "-o", str(files / "x.pt")])
    assert bad.returncode != 0 and "--model-kwargs is not JSON" in bad.stderr


def test_debug_shows_the_traceback(files):
    done = run([*ENTRY, "--debug", *PRUNE, "--weights", "missing.pt"])
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_timm_names_without_timm_say_what_to_install():
    code = (
        "import sys; sys.modules['timm'] = None; from inn.cli import main; "
        "sys.exit(main(['inspect', 'timm:resnet18']))"
    )
    done = run([sys.executable, "-c", code])
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "pip install timm" in done.stderr + done.stdout


@pytest.mark.parametrize(
    "text", ["1,3,224,224", "1x3x224x224", "1 3 224 224", "(1, 3, 224, 224)", "[1,3,224,224]"]
)
def test_input_shape_forms(text):
    assert parse_shape(text) == (1, 3, 224, 224)


@pytest.mark.parametrize("text", ["", "a,b", "1,0,3", "1.5,3"])
def test_input_shape_mistakes(text):
    with pytest.raises(InnError, match="is not a shape"):
        parse_shape(text)


def test_missing_extras_are_named_before_any_work():
    commands = [["demo"], ["experiment", "pruning"], ["experiment", "sr"]]
    code = (  # one interpreter for the three commands: each must stop before any work
        "import sys; sys.modules['matplotlib'] = None; from inn.cli import main\n"
        f"for c in {commands!r}:\n"
        "    try: main(c)\n"
        "    except SystemExit as e: print(e, file=sys.stderr)\n"
        "    else: sys.exit('no error')\n"
    )
    done = run([sys.executable, "-c", code])
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(commands), done.stderr
    for command, line in zip(commands, lines, strict=True):
        assert line.startswith(f"inn {command[0]}"), line
        assert "pip install -e lab" in line and "matplotlib" in line, line


def test_quiet_prints_no_progress(files):
    done = run([*ENTRY, "--quiet", *PRUNE, "--input-shape", "1,3,16,16",
                "-o", str(files / "quiet.pt")])  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "pruned model saved" in done.stdout


@pytest.mark.parametrize(
    "data, message",
    [
        ("nodots", "is not module:callable"),
        ("tests.cli_models:nothing", "module 'tests.cli_models' has no 'nothing'"),
        ("no_such_module:x", "cannot import 'no_such_module'"),
        ("tests.cli_models:tiny", "must return (train, test) datasets"),
    ],
)
def test_train_data_mistakes_end_in_one_line(data, message, tmp_path):
    done = run_inn(["train", "--model", "tests.cli_models:gray_net", "--data", data,
                    "--steps", "1", "--out", str(tmp_path)])  # fmt: skip
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_installed_command_finds_a_model_in_the_current_folder(tmp_path):
    """A console script does not put the current folder on sys.path; ``inn`` does."""
    (tmp_path / "mynet.py").write_text(
        "from torch import nn\n"
        "def net():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))\n"
    )
    command = Path(sys.executable).with_name("inn")
    done = subprocess.run([str(command), "inspect", "mynet:net", "--input-shape", "1,3,8,8"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "resizable" in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "m", "--data", "d", "--epochs", "-1"], "--epochs: must be above 0"),
        (["train", "--model", "m", "--data", "d", "--steps", "0"], "--steps: must be at least 1"),
        ([*PRUNE, "--budget", "macs:0.5"], "--budget: not allowed with argument --compression"),
        (["prune", "tests.cli_models:tiny"], "one of the arguments --compression --widths"),
        ([*PRUNE, "--calib-size", "-3"], "--calib-size: must be at least 1"),
    ],
)
def test_usage_mistakes_exit_2_in_one_line(args, message):
    """Found by the parser before any work: exit code 2, one line with the way to --help."""
    done = run_inn(args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "--help" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_global_options_are_taken_after_the_command_too(files, tmp_path):
    """``--quiet`` after the command hides the progress (stderr stays empty); an error found
    while working exits with 1 (the budget floor), a missing input file with 2."""
    common = [*PRUNE, "--input-shape", "1,3,16,16", "-o", str(tmp_path / "o.pt")]
    done = run_inn([*common, "--quiet"])
    assert done.returncode == 0 and done.stderr == "", done.stderr
    floor = run_inn(["prune", "tests.cli_models:tiny", "--compression", "0.999",
                     "--input-shape", "1,3,16,16", "-o", str(tmp_path / "o.pt")])  # fmt: skip
    assert floor.returncode == 1 and "floor" in floor.stderr
    missing = run_inn([*common, "--weights", str(tmp_path / "none.pt")])
    assert missing.returncode == 2 and "no weights file" in missing.stderr


def test_help_shows_every_default_one_way():
    text = " ".join(run_inn(["train", "--help"]).stdout.split())
    assert "(default: 3.0)" in text and "(default: out/train)" in text
    assert "(default: None)" not in text and "default " not in text.replace("(default: ", "")


def test_each_experiment_is_a_subcommand_with_its_own_options():
    """`inn experiment budget` takes --budgets, `inn experiment reconstruction` does not; both
    take -o/--output and the global options; a count below 1 is refused before any work."""
    budget = " ".join(run_inn(["experiment", "budget", "--help"]).stdout.split())
    assert "--budgets" in budget and "--output" in budget and "--quiet" in budget
    assert "(default: 150)" in budget
    done = run_inn(["experiment", "reconstruction", "--budgets", "params:0.5"])
    assert done.returncode == 2 and "unrecognized arguments: --budgets" in done.stderr
    done = run_inn(["experiment", "budget", "--seeds", "0"])
    assert done.returncode == 2 and "--seeds: must be at least 1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_train_runs_end_to_end_and_reports_every_width(tmp_path):
    """With no flags BatchNorm is kept (its statistics tracked per width) and the channels of
    narrow widths are selected; the loaded model would be the teacher, but this one is untrained
    (at chance), which is said; a run that ends at chance says so too."""
    done = run_inn(["train", "--model", "tests.cli_models:gray_net", "--data",
                    "tests.cli_models:digit_splits", "--steps", "2", "-o", str(tmp_path)])  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["steps"] == 2 and len(summary["accuracy_at_width"]) == 7
    assert summary["channels"] == "select" and summary["teacher"] is False
    assert "the loaded model is at chance level on the test data, so it is not" in done.stderr
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert any(k.endswith("running_mean_function.values") for k in state)
    # the ranking of the selected channels is saved with the model
    partitions = [v for k, v in state.items() if k.endswith("_extra_state") and "order" in v]
    assert partitions and all(v["order"] is not None for v in partitions)
    assert "at full width is chance level (10 %): the network did not learn" in done.stderr
    done = run_inn(["train", "--model", "m", "--data", "d", "--fold-batchnorm",
                    "--keep-batchnorm"])  # fmt: skip
    assert done.returncode == 2 and "contradict each other" in done.stderr
    done = run_inn(["train", "--model", "m", "--data", "d", "--teacher", "--from", "scratch"])
    assert done.returncode == 2 and "--teacher needs --from pretrained" in done.stderr
