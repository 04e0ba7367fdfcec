"""`inn prune --calib`: images (ImageFolder layout or flat) and tensor files read as the model
expects them, checked by hand; the data-using pruning end to end; mistakes in one line."""

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

import inn
from inn.cli.calib import IMAGENET_MEAN, IMAGENET_STD, load_calibration
from tests.cli_models import tiny
from tests.cli_run import run_inn

SHAPE = (1, 3, 16, 16)


def _args(path, **changes) -> argparse.Namespace:
    options = {"calib": str(path), "calib_size": 256, "resize": None,
               "mean": IMAGENET_MEAN, "std": IMAGENET_STD, **changes}  # fmt: skip
    return argparse.Namespace(**options)


def _constant_image(path, colour, size=(24, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, dtype=np.uint8)).save(path)


@pytest.mark.parametrize("layout", ["imagefolder", "flat"])
def test_images_are_cropped_scaled_and_normalised_as_by_hand(tmp_path, layout):
    colours = [(255, 0, 0), (0, 128, 255), (10, 20, 30)]
    for i, colour in enumerate(colours):
        folder = tmp_path / (f"class{i % 2}" if layout == "imagefolder" else "")
        _constant_image(folder / f"img{i}.png", colour)
    batches = load_calibration(_args(tmp_path), SHAPE)
    inputs = torch.cat(batches)
    assert inputs.shape == (3, *SHAPE[1:])
    statistics = list(zip(IMAGENET_MEAN, IMAGENET_STD, strict=True))
    expected = {
        tuple(round((c / 255 - m) / s, 4) for c, (m, s) in zip(colour, statistics, strict=True))
        for colour in colours
    }
    found = {tuple(round(float(v), 4) for v in image[:, 0, 0]) for image in inputs}
    assert found == expected
    assert all(torch.allclose(image, image[:, :1, :1].expand_as(image)) for image in inputs)


def test_calib_size_takes_a_seeded_sample_and_grey_models_read_one_channel(tmp_path):
    for i in range(6):
        _constant_image(tmp_path / f"{i}.png", (40 * i, 40 * i, 40 * i))
    args = _args(tmp_path, calib_size=4, mean=(0.0,), std=(1.0,))
    first, again = (
        torch.cat(load_calibration(args, (1, 1, 8, 8))),
        torch.cat(load_calibration(args, (1, 1, 8, 8))),
    )
    assert first.shape == (4, 1, 8, 8) and torch.equal(first, again)
    assert set(first[:, 0, 0, 0].mul(255).round().tolist()) <= {40.0 * i for i in range(6)}


def test_tensor_files_in_every_accepted_form(tmp_path):
    inputs = torch.randn(40, 3, 16, 16)
    for i, payload in enumerate([inputs, (inputs, torch.zeros(40)), {"inputs": inputs}]):
        path = tmp_path / f"calib{i}.pt"
        torch.save(payload, path)
        batches = load_calibration(_args(path, calib_size=35), SHAPE)
        assert [len(b) for b in batches] == [32, 3]
        assert torch.equal(torch.cat(batches), inputs[:35])


def test_prune_with_calib_uses_the_data_and_its_recipe_rebuilds_the_export(tmp_path):
    torch.manual_seed(0)
    model = tiny(10).eval()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    torch.save(torch.randn(64, 3, 16, 16), tmp_path / "calib.pt")
    common = ["prune", "tests.cli_models:tiny", "--weights", str(tmp_path / "w.pt"),
              "--compression", "0.3", "--input-shape", "1,3,16,16"]  # fmt: skip
    done = run_inn([*common, "--calib", str(tmp_path / "calib.pt"), "-o", str(tmp_path / "a.pt")])
    assert done.returncode == 0, done.stderr
    assert run_inn([*common, "-o", str(tmp_path / "b.pt")]).returncode == 0
    with_data = torch.load(tmp_path / "a.pt", weights_only=False)
    without = torch.load(tmp_path / "b.pt", weights_only=False)
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(with_data(x), without(x))  # the data changed the result
    recipe = json.loads((tmp_path / "a.widths.json").read_text())
    imodel = inn.convert(model, torch.randn(recipe["input_shape"]))
    rebuilt = imodel.resize(widths=recipe["widths"]).export()
    rebuilt.load_state_dict(torch.load(tmp_path / "a.state_dict.pt", weights_only=True))
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), with_data(x), atol=1e-6)
    # the command prunes as the library's defaults do, widths and channels alike
    calib = load_calibration(_args(tmp_path / "calib.pt"), SHAPE)
    library = inn.prune(model, x[:1], compression=0.3, calib=calib)
    with torch.no_grad():
        assert torch.allclose(library(x), with_data(x), atol=1e-5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--calib", "nowhere"], "--calib 'nowhere': no such file or folder"),
        (["--calib", "{tmp}/empty"], "no image files"),
        (["--calib", "{tmp}/wrong.pt"], "do not match --input-shape 1,3,16,16"),
        (["--calib", "{tmp}/notes.pt"], "not a tensor file"),
        (["--calib", "{tmp}/empty", "--calib-size", "0"], "must be at least 1"),
        (["--calib", "{tmp}/img", "--mean", "0.5,0.5"], "--mean and --std need 3 values"),
    ],
)
def test_calib_mistakes_end_in_one_line(tmp_path, extra, message):
    (tmp_path / "empty").mkdir()
    torch.save(torch.randn(4, 3, 8, 8), tmp_path / "wrong.pt")
    (tmp_path / "notes.pt").write_text("not a tensor")
    _constant_image(tmp_path / "img" / "a.png", (1, 2, 3))
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    args = ["prune", "tests.cli_models:tiny", "--compression", "0.3", "--input-shape", "1,3,16,16"]
    done = run_inn([*args, *extra, "-o", str(tmp_path / "out.pt")])
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
