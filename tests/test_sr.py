"""Super-resolution: metrics against hand computations and scikit-image, the data protocol,
and SRCNN / EDSR through conversion, resizing, export and channel pruning (PixelShuffle)."""

import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio
from torch import nn

import inn
from innlab.baselines import prune_l1
from innlab.sr import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    SRPatches,
    bicubic_down,
    bicubic_up,
    edsr,
    load_image,
    psnr,
    rgb_to_y,
    srcnn,
    ssim,
)


# -- metrics -------------------------------------------------------------------------------------
def test_psnr_against_a_hand_computation_and_skimage():
    target = torch.zeros(1, 6, 6)
    pred = target.clone()
    pred[0, 2, 3] = 0.5  # one pixel off by 0.5 inside the 4x4 centre (border 1): MSE = 0.25 / 16
    assert psnr(pred, target, border=1) == pytest.approx(10 * math.log10(16 / 0.25))
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 20, 30, generator=g), torch.rand(1, 20, 30, generator=g)
    expected = peak_signal_noise_ratio(b[0, 3:-3, 3:-3].double().numpy(),
                                       a[0, 3:-3, 3:-3].double().numpy(), data_range=1.0)  # fmt: skip
    assert psnr(a, b, border=3) == pytest.approx(expected, rel=1e-9)
    assert psnr(b, b) == math.inf


def test_rgb_to_y_matches_skimage_bt601():
    image = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(1))
    expected = rgb2ycbcr(image.permute(1, 2, 0).double().numpy())[..., 0] / 255
    assert np.allclose(rgb_to_y(image.double())[0].numpy(), expected, atol=1e-9)


def test_psnr_of_rgb_is_measured_on_y():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 16, 16, generator=g), torch.rand(3, 16, 16, generator=g)
    assert psnr(a, b, 4) == pytest.approx(psnr(rgb_to_y(a), rgb_to_y(b), 4))


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    image = rgb_to_y(load_image("camera")[:, :64, :64])
    noisy = (image + 0.05 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0)))
    assert ssim(image, image, 3) == pytest.approx(1.0)
    assert 0.2 < ssim(noisy.clamp(0, 1), image, 3) < 0.95


def test_metrics_refuse_mismatched_images():
    with pytest.raises(inn.ShapeError, match="differ in size"):
        psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))
    with pytest.raises(inn.ShapeError, match="border"):
        psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8), border=4)


# -- data -----------------------------------------------------------------------------------------
def test_test_images_are_never_trained_on():
    assert len(TEST_IMAGES) >= 8 and not set(TEST_IMAGES) & set(TRAIN_IMAGES)
    with pytest.raises(inn.InnError, match="must not be trained on"):
        SRPatches(4, images=("coffee", TEST_IMAGES[0]))


def test_bicubic_keeps_constants_and_checks_the_crop():
    flat = torch.full((3, 12, 12), 0.3)
    assert torch.allclose(bicubic_down(flat, 4), torch.full((3, 3, 3), 0.3), atol=1e-6)
    assert bicubic_up(bicubic_down(flat, 3), 3).shape == (3, 12, 12)
    with pytest.raises(inn.InnError, match="multiple of the scale"):
        bicubic_down(torch.zeros(3, 10, 12), 4)


@pytest.mark.parametrize("luma", [False, True])
def test_patches_are_seeded_and_aligned(luma):
    data = SRPatches(3, patch=12, length=5, luma=luma, images=("coffee", "brick"))
    x, y = data[4]
    x2, _ = data[4]
    assert torch.equal(x, x2)
    assert y.shape == (1 if luma else 3, 36, 36)
    assert x.shape == ((1, 36, 36) if luma else (3, 12, 12))
    # the input is the degraded target of the same place (independent of the flips/turns)
    degraded = bicubic_up(bicubic_down(y, 3), 3) if luma else bicubic_down(y, 3)
    inner = (slice(None), slice(6, -6), slice(6, -6)) if luma else (slice(None), slice(2, -2),
                                                                    slice(2, -2))  # fmt: skip
    assert psnr(x[inner], degraded[inner]) > 30


# -- models through inn --------------------------------------------------------------------------
def _exact(model: nn.Module, x: torch.Tensor) -> inn.IntegralModel:
    imodel = inn.convert(model.eval(), x)
    ref = model(x)
    assert (imodel(x) - ref).abs().max() <= 1e-4 * ref.abs().max()
    return imodel


def test_srcnn_converts_exactly_and_resizes():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 24, 24)
    imodel = _exact(srcnn(), x)
    assert {g.name for g in imodel.resizable_groups} == {"conv1:out", "conv2:out"}
    imodel.resize(compression=0.5)
    assert torch.allclose(imodel.export()(x), imodel(x), atol=1e-5)


def test_edsr_converts_exactly_and_pixel_shuffle_blocks_stay_whole():
    torch.manual_seed(0)
    model = edsr().eval()
    x = torch.rand(1, 3, 10, 12)
    imodel = _exact(model, x)
    pinned = [g for g in imodel.groups if not g.resizable]
    assert all(g.full_size == 3 for g in pinned)  # only the RGB input and output
    assert {"upsample.0:out", "upsample.2:out"} <= {g.name for g in imodel.resizable_groups}
    imodel.resize(widths=inn.train.uniform_widths(imodel, 0.5))
    exported = imodel.export()
    out = exported(x)
    assert out.shape == (1, 3, 40, 48) and torch.allclose(out, imodel(x), atol=1e-5)
    for i in (0, 2):  # conv -> PixelShuffle(2): 4 sub-pixels per channel of the next layer
        conv, nxt = exported.get_submodule(f"upsample.{i}"), exported.get_submodule("tail")
        following = exported.get_submodule("upsample.2") if i == 0 else nxt
        assert conv.out_channels == 4 * following.in_channels == 4 * 16


def test_l1_pruning_keeps_or_drops_whole_sub_pixel_blocks():
    torch.manual_seed(1)
    model = edsr().eval()
    x = torch.rand(1, 3, 8, 8)
    pruned = prune_l1(model, x, widths={"upsample.0:out": 20})
    assert pruned(x).shape == (1, 3, 32, 32)
    full = model.upsample[0].weight.detach()
    kept = pruned.get_submodule("upsample.0").weight.detach()
    assert kept.shape == (80, 32, 3, 3) and pruned.get_submodule("upsample.2").in_channels == 20
    rows = [next(i for i in range(128) if torch.equal(full[i], row)) for row in kept]
    blocks = torch.tensor(rows).reshape(20, 4)  # whole blocks 4c..4c+3, in order
    assert torch.equal(blocks, blocks[:, :1] + torch.arange(4)) and (blocks[:, 0] % 4 == 0).all()
    norms = full.abs().reshape(32, -1).sum(1)  # l1 of each whole block
    assert set((blocks[:, 0] // 4).tolist()) == set(norms.topk(20).indices.tolist())


def test_shuffle_after_a_tensor_read_elsewhere_is_pinned_not_mis_resized():
    class Fork(nn.Module):  # the sub-pixel channels also feed a convolution: not resizable
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 16, 3, padding=1)
            self.b = nn.Conv2d(16, 4, 1)
            self.c = nn.Conv2d(4, 3, 1)
            self.ps = nn.PixelShuffle(2)

        def forward(self, x):
            h = self.a(x)
            return self.c(self.ps(h)) + nn.functional.interpolate(self.b(h), scale_factor=2)[:, :3]

    torch.manual_seed(0)
    x = torch.rand(1, 3, 6, 6)
    imodel = _exact(Fork(), x)
    group = next(g for g in imodel.groups if g.name.startswith("a:out"))
    assert not group.resizable and "blocks" in group.reason


def test_pixel_unshuffle_is_pinned():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.PixelUnshuffle(2), nn.Conv2d(32, 3, 1))
    imodel = _exact(model, torch.rand(1, 3, 8, 8))
    assert not any(g.resizable for g in imodel.groups)


# -- the committed networks -----------------------------------------------------------------------
@pytest.mark.parametrize("name, scale", [("srcnn", 3), ("edsr", 4)])
def test_committed_networks_beat_bicubic_on_unseen_images(name, scale):
    from innlab.sr import evaluate
    from innlab.zoo import load_pretrained, pretrained_info

    model = load_pretrained(name)
    images = ("chelsea", "camera")  # test images: never trained on
    ours, bicubic = evaluate(model, scale, images), evaluate("bicubic", scale, images)
    assert ours["psnr"] > bicubic["psnr"] + 0.3
    info = pretrained_info(name)
    assert info["test"]["psnr"] > info["bicubic"]["psnr"]


def test_committed_edsr_twin_works_at_narrow_widths():
    """Figure 7's claim on one unseen image: at 60 % width the twin stays within 0.3 dB of its
    full width, which is within 0.1 dB of the discrete EDSR, where the discrete EDSR pruned by L1
    at the same widths collapses."""
    from innlab.baselines import prune_l1
    from innlab.sr import evaluate
    from innlab.zoo import example_input, load_integral, load_pretrained

    twin = load_integral("edsr")
    full = evaluate(twin, 4, ("chelsea",))["psnr"]
    widths = inn.train.uniform_widths(twin, 0.6)
    twin.resize(widths=widths)
    narrow = evaluate(twin.export(), 4, ("chelsea",))["psnr"]
    l1 = evaluate(prune_l1(load_pretrained("edsr"), example_input("edsr"), widths=widths), 4,
                  ("chelsea",))["psnr"]  # fmt: skip
    discrete = evaluate(load_pretrained("edsr"), 4, ("chelsea",))["psnr"]
    assert abs(full - discrete) < 0.1 and narrow > full - 0.3 and narrow > l1 + 3.0


def test_a_luma_model_changes_y_and_keeps_the_chroma():
    """SRCNN's output replaces Y of the bicubic upscaling; Cb and Cr (skimage) stay."""
    from innlab.sr import super_resolve

    class Brighter(nn.Module):  # a "luma model": adds 0.02 to Y
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            nn.init.ones_(self.conv.weight)
            nn.init.constant_(self.conv.bias, 0.02)

        def forward(self, y):
            return self.conv(y)

    low = 0.2 + 0.6 * torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(3))
    out, up = super_resolve(Brighter(), low, 2), bicubic_up(low, 2)
    ycc = [rgb2ycbcr(t.permute(1, 2, 0).double().numpy()) / 255 for t in (out, up)]
    assert np.allclose(ycc[0][..., 0], ycc[1][..., 0] + 0.02, atol=1e-5)
    assert np.allclose(ycc[0][..., 1:], ycc[1][..., 1:], atol=1e-5)


def test_sr_experiment_end_to_end(tmp_path):
    """``inn experiment sr``'s functions at a tiny size: every method, the width curve, the
    crops, and the files (the figures are read back)."""
    from innlab.experiments import sr

    rows = sr.run(("edsr",), (0.0, 0.5), steps=2, progress=False, images=("coins",))
    methods = {r.method for r in rows}
    assert methods == {"bicubic", "unpruned", *sr.METHODS}
    pruned = [r for r in rows if r.compression == 0.5]
    assert len({r.parameters for r in pruned}) == 1  # every method at the same widths
    unpruned = next(r for r in rows if r.method == "unpruned")
    assert all(r.parameters < 0.6 * unpruned.parameters for r in pruned)
    curve = sr.widths_curve((0.5, 1.0), progress=False, images=("coins",))
    assert curve["l1"][1.0] == pytest.approx(unpruned.psnr)
    shown = sr.crops(steps=2)
    sr.save(rows, curve, shown, tmp_path, "test", 1.0)
    assert "| inn+tune |" in (tmp_path / "results.md").read_text()
    from PIL import Image

    assert Image.open(tmp_path / "psnr.png").size[0] > 0 and Image.open(tmp_path / "crops.png")


def test_reconstruction_experiment_end_to_end(tmp_path):
    from innlab.experiments import reconstruction as rec

    rows, pictures = rec.run(("coins",), budgets=(60, 120), steps=3, size=24, progress=False)
    assert len(rows) == 2 * len(rec.METHODS) and set(pictures) == {*rec.METHODS, "original"}
    rec.save(rows, pictures, tmp_path, "test", 1.0)
    assert "| parameters |" in (tmp_path / "results.md").read_text()


def test_sr_experiment_without_edsr_and_with_an_unknown_model(tmp_path):
    from innlab.experiments import sr

    rows = sr.run(("srcnn",), (0.0, 0.5), ("inn", "l1"), steps=2, progress=False,
                  images=("coins",))  # fmt: skip
    sr.save(rows, {}, None, tmp_path, "test", 1.0)  # no Figure 7, no crops: EDSR's
    assert "**srcnn**" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "psnr.png").is_file() and not (tmp_path / "crops.png").exists()
    with pytest.raises(inn.InnError, match="no super-resolution network"):
        sr.run(("vit",))
