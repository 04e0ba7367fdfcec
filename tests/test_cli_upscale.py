"""``inn upscale``: a user's image through the committed EDSR / SRCNN at a chosen width, and
its mistakes (a clear one-line error, exit code 2)."""

import numpy as np
import pytest
from PIL import Image

from tests.cli_run import run_inn


def run(args):
    return run_inn(["upscale", *args])


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / "small.png")
    (folder / "notes.png").write_text("not an image")
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png"], "no such image file: 'missing.png'"),
        (["{d}/notes.png"], "is not an image PIL can read"),
        (["{d}/small.png", "--scale", "2"], "no model for scale 2"),
        (["{d}/small.png", "--compression", "1.5"], "--compression must be in [0, 1)"),
        (["{d}/small.png", "-o", "{d}/out.txt"], "give an image file name"),
    ],
)
def test_mistakes_get_one_clear_line(picture, args, message):
    result = run([a.format(d=picture) for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("scale", [4, 3])
def test_upscales_a_users_image_at_a_smaller_width(picture, scale):
    out = picture / f"big{scale}.png"
    result = run([str(picture / "small.png"), "--scale", str(scale), "--compression", "0.4",
                  "-o", str(out)])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (24 * scale, 20 * scale)
    assert "removed" in result.stdout and " s;" in result.stdout
