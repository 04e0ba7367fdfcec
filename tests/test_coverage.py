"""Every common channel axis on real architectures (torchvision and timm, small configurations
of the same code, random weights): exact at full width, resized and exported consistently, and
what share of the parameters resizing reaches."""

import copy
import re

import pytest
import timm
import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models.convnext import CNBlockConfig
from torchvision.models.resnet import Bottleneck

import inn
from tests.conftest import randomise_batchnorm

X32 = (2, 3, 32, 32)


def _timm(name: str, **kwargs):
    return lambda: timm.create_model(name, pretrained=False, num_classes=10, **kwargs)


# name -> (builder, input shape, least share of parameters in resizable layers)
MODELS = {
    "resnext": (lambda: tvm.resnet.ResNet(Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=4,
                                          num_classes=10), X32, 0.9),
    "regnet_y_400mf": (lambda: tvm.regnet_y_400mf(num_classes=10), X32, 0.9),
    "convnext": (lambda: tvm.convnext.ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)],
                                               num_classes=10), X32, 0.9),
    "vit": (lambda: tvm.VisionTransformer(32, 8, 2, 3, 48, 96, num_classes=10), X32, 0.9),
    "timm_convnext": (_timm("convnext_atto", depths=(1, 1, 1, 1), dims=(16, 32, 48, 64)), X32, 0.9),
    "timm_vit": (_timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2), X32, 0.9),
    "timm_deit": (_timm("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, depth=2),
                  X32, 0.9),
    "timm_cs3darknet": (_timm("cs3darknet_s"), X32, 0.9),
    "timm_mixnet": (_timm("mixnet_s"), X32, 0.9),
    "timm_tf_mobilenetv3": (_timm("tf_mobilenetv3_small_minimal_100"), X32, 0.9),
    # its MobileVitBlocks are kept whole (torch.fx cannot trace their forward): the rest resizes
    "timm_mobilevit": (_timm("mobilevit_xxs"), X32, 0.05),
    # a known gap (see README "Coverage"): channel shuffle after a pass-through half
    "shufflenet": (lambda: tvm.ShuffleNetV2([1, 1, 1], [8, 16, 32, 64, 128], num_classes=10),
                   X32, 0.85),
    "swin": (lambda: tvm.SwinTransformer([4, 4], 24, [1, 1], [2, 4], [4, 4], num_classes=10),
             X32, 0.9),
    "timm_swin": (_timm("swin_tiny_patch4_window7_224", img_size=32, window_size=4, depths=(1, 1),
                        num_heads=(2, 4), embed_dim=24), X32, 0.9),
    "maxvit": (lambda: tvm.MaxVit((32, 32), 16, 2, [16, 32], [1, 1], 8, 0.0, num_classes=10),
               X32, 0.9),
}  # fmt: skip


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    build, shape, _ = MODELS[name]
    model = randomise_batchnorm(build())
    with torch.no_grad():  # zero-initialised heads and biases would hide errors
        for p in model.parameters():
            if not p.abs().any():
                p.normal_(0, 0.1)
    return model.eval(), torch.randn(shape, generator=torch.Generator().manual_seed(1))


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("name", list(MODELS))
def test_exact_resizable_and_exported(name):
    model, x = _build(name)
    before = copy.deepcopy(model.state_dict())
    imodel = inn.convert(model, x)
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-4
        report = imodel.coverage()
        assert report.share >= MODELS[name][2], str(report)
        imodel.resize(widths={g.name: max(1, g.full_size // 2) for g in imodel.resizable_groups})
        small = imodel.export()
        assert _relative(small(x), imodel(x)) <= 1e-4
    assert imodel.num_parameters() == sum(p.numel() for p in small.parameters())
    for sub_name, sub in small.named_modules():
        assert not type(sub).__module__.startswith("inn"), sub_name
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["swin", "timm_swin", "maxvit", "vit", "timm_vit"])
def test_attention_is_exact_under_any_quadrature_rule(name):
    """The q . k quadrature (and the inputs' integrals) are divided out at conversion: exact
    at full width whatever the rule's weights."""
    model, x = _build(name)
    imodel = inn.convert(model, x, rule="trapezoid", permute=False)
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-4


def test_grouped_convolution_keeps_groups_whole():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, groups=4, padding=1),
                          nn.ReLU(), nn.Conv2d(12, 5, 1)).eval()  # fmt: skip
    x = torch.randn(2, 3, 6, 6)
    imodel = inn.convert(model, x)
    groups = {g.name: g for g in imodel.groups}
    # per group of the grouped convolution: 2 input and 3 output channels, one partition each
    assert groups["0:out"].full_size == 2 and groups["2:out"].full_size == 3
    imodel.resize(widths={"0:out": 1, "2:out": 2})
    small = imodel.export()
    conv = small.get_submodule("2")
    assert (conv.in_channels, conv.out_channels, conv.groups) == (4, 8, 4)
    with torch.no_grad():
        assert _relative(small(x), imodel(x)) <= 1e-5


class Gain(nn.Module):
    """A custom per-channel layer whose forward cannot be traced (data-dependent branch)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        if x.abs().sum() > 0:  # torch.fx cannot trace this
            return x * self.gain[:, None, None]
        return x


def test_register_channel_rule_teaches_a_custom_layer():
    inn.register_channel_rule(Gain, "elementwise", tensors={"gain": 0})
    model = nn.Sequential(nn.Conv2d(3, 6, 1), Gain(6), nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(2, 3, 4, 4)
    imodel = inn.convert(model, x)
    assert {g.name: g for g in imodel.groups}["0:out"].resizable
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-5
        imodel.resize(widths={"0:out": 4})
        small = imodel.export()
        assert _relative(small(x), imodel(x)) <= 1e-5
    gain = small.get_submodule("1")
    assert type(gain) is Gain and gain.gain.shape == (4,)


class Widen(nn.Module):
    """Doubles the channels: a rule that calls it elementwise contradicts the traced shapes."""

    def forward(self, x):
        return torch.cat([x, x], dim=1)


def test_a_rule_that_contradicts_the_shapes_is_refused():
    inn.register_channel_rule(Widen, "elementwise")
    model = nn.Sequential(nn.Conv2d(3, 4, 1), Widen(), nn.Conv2d(8, 2, 1)).eval()
    with pytest.raises(inn.ConversionError, match="rule registered for '1'"):
        inn.convert(model, torch.randn(1, 3, 4, 4))


class FusedAttention(nn.Module):
    """Stands for an attention kernel the tracer cannot see through."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(torch.nn.functional.scaled_dot_product_attention(q, k, v))


def test_opaque_attention_is_pinned_with_its_reason():
    inn.register_leaf_module(FusedAttention)
    model = nn.Sequential(nn.Linear(8, 16), FusedAttention(16), nn.Linear(16, 3)).eval()
    imodel = inn.convert(model, torch.randn(2, 5, 8))
    group = {g.name: g for g in imodel.groups}["0:out"]
    assert not group.resizable and "module '1' (FusedAttention), which mixes" in group.reason


def test_cross_attention_and_masks_are_pinned():
    class Cross(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 8)
            self.mha = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            q, kv = self.a(x), self.b(x)
            return self.mha(q, kv, kv, need_weights=False)[0]

    imodel = inn.convert(Cross().eval(), torch.randn(2, 5, 4))
    assert not {g.name: g for g in imodel.groups}["a:out"].resizable


def test_multihead_attention_head_dim_and_embedding_resize():
    model = tvm.VisionTransformer(32, 8, 1, 2, 16, 32, num_classes=3).eval()
    torch.nn.init.normal_(model.heads.head.weight)
    x = torch.randn(2, 3, 32, 32)
    imodel = inn.convert(model, x)
    names = [g.name for g in imodel.resizable_groups]
    head_dim = next(n for n in names if n.endswith(":head_dim"))
    assert {g.name: g for g in imodel.groups}[head_dim].full_size == 8
    imodel.resize(widths={head_dim: 5, "conv_proj:out": 12})
    small = imodel.export()
    with torch.no_grad():
        assert _relative(small(x), imodel(x)) <= 1e-5
    qkv = small.get_submodule("encoder.layers.encoder_layer_0.self_attention").qkv
    assert tuple(qkv.weight.shape) == (3 * 2 * 5, 12)


def pinned_model() -> nn.Module:
    """88 % of the parameters in a 64 -> 64 convolution between two LocalResponseNorms."""
    torch.manual_seed(0)
    lrn = nn.LocalResponseNorm
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 64, 3), lrn(2),
                         nn.Conv2d(64, 64, 3), lrn(2), nn.Conv2d(64, 2, 1)).eval()  # fmt: skip


def test_resize_that_cannot_meet_its_target_raises(capsys):
    imodel = inn.convert(pinned_model(), torch.randn(1, 3, 12, 12))
    with pytest.raises(inn.InnError, match=r"floor.*LocalResponseNorm"):
        imodel.resize(compression=0.3)
    imodel.resize(compression=0.05)  # reachable: met within 1 %
    assert imodel.num_parameters() <= 0.95 * 1.01 * imodel.original_parameters

    from inn.cli import main

    command = ["prune", "tests.test_coverage:pinned_model", "--input-shape", "1,3,12,12"]
    assert main([*command, "--compression", "0.3", "-o", "/dev/null"]) == 1  # a runtime error
    assert "floor" in capsys.readouterr().err


def test_inspect_command_lists_groups_and_share(capsys):
    from inn.cli import main

    assert main(["inspect", "timm:resnet10t", "--input-shape", "1,3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "layer1.0.conv1:out" in out and "no: model input" in out
    # every layer has a resizable axis (the stem's output, the classifier's input)
    assert re.search(r"100.0% of [\d,]+ parameters lie in layers with a resizable channel", out)


def test_inspect_names_probed_and_mixing_operations(capsys):
    from inn.cli import main

    assert main(["inspect", "tests.cli_models:prelu_net", "--input-shape", "1,3,12,12"]) == 0
    out = capsys.readouterr().out
    assert "probed and found channel-wise: PReLU x2" in out
    assert re.search(r"4:out +6 +no: used by module '5' \(Softmax2d\), which mixes channels", out)
    assert re.search(r"0:out +8 +yes", out)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.conv(x) if x.sum() > 0 else x  # data-dependent: torch.fx cannot trace it


def test_untraceable_module_is_kept_whole_and_the_rest_resizes():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), Branchy(), nn.Conv2d(4, 8, 1), nn.ReLU(), nn.Conv2d(8, 2, 1)
    ).eval()
    x = torch.randn(2, 3, 4, 4)
    with pytest.warns(UserWarning, match=r"Branchy .*kept whole") as caught:
        imodel = inn.convert(model, x)
    ours = [w for w in caught if "Branchy" in str(w.message)]
    assert [w.filename for w in ours] == [__file__]  # the user's line, not ours
    groups = {g.name: g for g in imodel.groups}
    assert not groups["0:out"].resizable and "Branchy, kept whole" in groups["0:out"].reason
    assert groups["2:out"].resizable and set(imodel.report.kept_whole) == {"Branchy"}
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-5
        imodel.resize(widths={"2:out": 3})
        small = imodel.export()
        assert small.get_submodule("2").out_channels == 3
        assert _relative(small(x), imodel(x)) <= 1e-5


def test_integral_model_repr_is_a_short_summary():
    model, x = _build("timm_vit")
    imodel = inn.convert(model, x, permute=False)
    imodel.resize(compression=0.3)
    text = repr(imodel)
    assert text.count("\n") == 0 and len(text) < 400
    assert "narrowed" in text and f"of {imodel.original_parameters:,} parameters" in text
