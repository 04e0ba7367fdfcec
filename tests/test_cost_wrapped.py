"""The cost model counts every layer resized through its own forward (``IntegralWrapped``: timm's
Conv2dSame and norm + activation layers, LayerNorm, GroupNorm, users' registered layers):
parameters and MACs at the current widths equal the exported model's parameter count and
torch's FlopCounterMode count, after ``resize(compression=...)`` and at explicit widths."""

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import BatchNormAct2d, Conv2dSame, LayerNorm2d, RmsNorm
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import inn
from inn.budget import count_parameters
from inn.layers import IntegralWrapped

X = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
TOKENS = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
FEATURES = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))


def flop_counter_macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def _randomise(model: nn.Module) -> nn.Module:
    """Non-trivial affine tensors and statistics everywhere (so no channel is a copy)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if t.is_floating_point():
                noise = torch.rand(t.shape, generator=g)
                t.copy_(0.5 + noise if name.endswith("running_var") else t + 0.2 * noise)
    return model.eval()


class ChannelScale(nn.Module):
    """A user's per-channel scale, registered ``"elementwise"``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.weight[:, None, None]


class DenseConv(nn.Module):
    """A user's convolution, registered ``"dense"`` (weight ``(out, in, k, k)``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=1)


class StandardisedConv(DenseConv):
    """A user's weight-standardised convolution: the MACs are on a tensor computed from the
    weight, still charged to the weight."""

    def forward(self, x):
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        return F.conv2d(x, w / (w.std(dim=(1, 2, 3), keepdim=True) + 1e-5), self.bias, padding=1)


class DenseMatmul(nn.Module):
    """A user's linear layer by a matrix product, registered ``"dense"``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x):
        return x @ self.weight.t() + self.bias


inn.register_channel_rule(ChannelScale, "elementwise", tensors={"weight": 0})
inn.register_channel_rule(DenseConv, "dense")
inn.register_channel_rule(StandardisedConv, "dense")
inn.register_channel_rule(DenseMatmul, "dense")


class Convs(nn.Module):
    """conv -> ``middle`` (on 16 channels) -> ReLU -> conv."""

    def __init__(self, middle: nn.Module, first: nn.Module | None = None) -> None:
        super().__init__()
        self.first = first or nn.Conv2d(3, 16, 3, padding=1)
        self.middle = middle
        self.last = nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x):
        return self.last(torch.relu(self.middle(self.first(x))))


class Tokens(nn.Module):
    """Channels-last: linear -> ``middle`` -> GELU -> linear."""

    def __init__(self, middle: nn.Module, first: nn.Module | None = None) -> None:
        super().__init__()
        self.first = first or nn.Linear(8, 16)
        self.middle = middle
        self.last = nn.Linear(16, 4)

    def forward(self, x):
        return self.last(F.gelu(self.middle(self.first(x))))


class LSTMNet(nn.Module):
    """linear -> LSTM (its hidden size a group of its own) -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.lstm, self.last = (
            nn.Linear(8, 16),
            nn.LSTM(16, 12, batch_first=True),
            nn.Linear(12, 4),
        )

    def forward(self, x):
        return self.last(self.lstm(self.first(x))[0])


def _tiny_timm_swin():
    """timm's window attention (head dim a role of its own: q . k is fitted, not assumed)."""
    return timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, num_classes=10, img_size=16,
        window_size=4, depths=(1, 1), num_heads=(2, 4), embed_dim=24,
    )  # fmt: skip


def _tiny_tf_efficientnetv2():
    """timm's tf_efficientnetv2_b0 (Conv2dSame + BatchNormAct2d), narrow and shallow."""
    return timm.create_model(
        "tf_efficientnetv2_b0", pretrained=False, num_classes=10,
        channel_multiplier=0.25, depth_multiplier=0.2,
    )  # fmt: skip


CASES = {
    # name: (model, example input, wrapped module type that must be resized)
    "timm_tf_efficientnetv2": (_tiny_tf_efficientnetv2, X, Conv2dSame),
    "conv2d_same": (lambda: Convs(nn.Identity(), Conv2dSame(3, 16, 3, stride=2)), X, Conv2dSame),
    "batchnorm_act": (lambda: Convs(BatchNormAct2d(16)), X, BatchNormAct2d),
    "layernorm_channels_last": (lambda: Tokens(nn.LayerNorm(16)), TOKENS, nn.LayerNorm),
    "groupnorm": (lambda: Convs(nn.GroupNorm(4, 16)), X, nn.GroupNorm),
    "timm_layernorm2d": (lambda: Convs(LayerNorm2d(16)), X, LayerNorm2d),
    "timm_rmsnorm": (lambda: Tokens(RmsNorm(16)), TOKENS, RmsNorm),
    "user_elementwise": (lambda: Convs(ChannelScale(16)), X, ChannelScale),
    "user_dense_conv": (lambda: Convs(nn.Identity(), DenseConv(3, 16)), X, DenseConv),
    "user_dense_standardised": (
        lambda: Convs(nn.Identity(), StandardisedConv(3, 16)),
        X,
        StandardisedConv,
    ),
    "user_dense_matmul": (lambda: Tokens(nn.Identity(), DenseMatmul(8, 16)), FEATURES, DenseMatmul),
    "timm_window_attention": (_tiny_timm_swin, X, timm.models.swin_transformer.WindowAttention),
    # layers found channel-wise by probing, and a recurrent layer
    "prelu": (lambda: Convs(nn.PReLU(16)), X, nn.PReLU),
    "instancenorm": (lambda: Convs(nn.InstanceNorm2d(16, affine=True)), X, nn.InstanceNorm2d),
    "lstm": (LSTMNet, TOKENS, nn.LSTM),
}


def _check_costs(imodel: inn.IntegralModel, x: torch.Tensor) -> None:
    small = imodel.export()
    assert not any(isinstance(m, IntegralWrapped) for m in small.modules())
    params = count_parameters(small)
    widths = {g.name: g.size for g in imodel.groups}
    assert imodel.num_parameters() == params
    assert imodel.cost("params") == params
    assert round(imodel.cost("macs")) == flop_counter_macs(small, x)
    assert {g.name: g.size for g in imodel.groups} == widths  # counting changes nothing
    small(x)


@pytest.mark.parametrize("name", list(CASES))
def test_wrapped_layers_are_counted(name):
    build, x, kind = CASES[name]
    torch.manual_seed(0)
    imodel = inn.convert(_randomise(build()), x, permute=False)
    wrapped = [m for m in imodel.modules() if isinstance(m, IntegralWrapped)]
    assert any(isinstance(m.module, kind) for m in wrapped), "not resized through its forward"
    _check_costs(imodel, x)  # full width
    imodel.resize(compression=0.3)
    assert imodel.num_parameters() < imodel.original_parameters
    assert any(g.size < g.full_size for g in imodel.resizable_groups)
    _check_costs(imodel, x)
    # every group narrower: the wrapped layers of this kind are resized too
    imodel.resize(widths={g.name: max(1, g.full_size * 5 // 8) for g in imodel.resizable_groups})
    assert any(isinstance(m.module, kind) and m.widths() != m.full_sizes for m in wrapped), (
        "the wrapped layer kept its width"
    )
    _check_costs(imodel, x)
