"""Operations without a channel rule are probed: channel-wise ones resize (with their
per-channel tensors), channel-mixing ones pin with a reason naming them."""

import copy
import itertools

import pytest
import torch
from torch import nn

import inn
from inn.graph.probe import Operand, channel_sets, probe


def _run(fn):
    return lambda values, tensors, width: fn(*values, **tensors)


@pytest.mark.parametrize("channels", [2, 3, 5, 8, 13])
def test_channel_sets_separate_every_pair(channels):
    # brute force: for every output channel i and other channel k, some set holds k but not i
    masks = channel_sets(channels)
    for i, k in itertools.permutations(range(channels), 2):
        assert any(m[k] and not m[i] for m in masks)


def test_probe_against_hand_made_operations():
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    w = torch.rand(6, dtype=torch.float64)
    found = probe(_run(lambda x, w: x * w[:, None]), [Operand(x, 1)], {"w": w}, 6)
    assert found.channelwise and found.out_dims == (1,) and found.tensors == {"w": 0}
    # channels moved to the last axis: found there
    found = probe(_run(lambda x: torch.tanh(x).transpose(1, 2)), [Operand(x, 1)], {}, 6)
    assert found.out_dims == (2,)
    for mixing in (lambda x: x.flip(1), lambda x: x.cumsum(1), lambda x: x.softmax(1)):
        found = probe(_run(mixing), [Operand(x, 1)], {}, 6)
        assert not found.channelwise and "mixes channels" in found.reason
    m = torch.randn(6, 6, dtype=torch.float64)
    found = probe(_run(lambda x, m: torch.einsum("bcl,dc->bdl", x, m)), [Operand(x, 1)], {"m": m}, 6)
    assert not found.channelwise
    # a per-channel tensor of the wrong length at fewer channels: caught by the resized run
    found = probe(_run(lambda x: x * torch.arange(6.0, dtype=x.dtype)[:, None]), [Operand(x, 1)],
                  {}, 6)
    assert not found.channelwise and "fewer channels" in found.reason


class Gain(nn.Module):
    """A user's channel-wise layer the tracer cannot see into (data-dependent control flow)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(channels) + 0.5)
        self.beta = nn.Parameter(torch.randn(channels))

    def forward(self, x):
        scale = 2.0 if x.abs().max().item() > 1e6 else 1.0
        return torch.nn.functional.softplus(x) * self.gamma[:, None, None] * scale + self.beta[
            :, None, None
        ]


class Mixer(nn.Module):
    """A user's layer that mixes channels (a cumulative sum over them)."""

    def forward(self, x):
        return x.cumsum(1) if x.abs().max().item() < 1e6 else x


def _sandwich(layer: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), layer, nn.Conv2d(8, 4, 3)).eval()


def test_user_channelwise_layer_resizes_without_a_rule():
    inn.register_leaf_module(Gain)
    model = _sandwich(Gain(8))
    x = torch.randn(2, 3, 9, 9)
    before = copy.deepcopy(model.state_dict())
    imodel = inn.convert(model, x)
    assert torch.allclose(imodel(x), model(x), atol=1e-5)
    assert {g.name: g for g in imodel.groups}["0:out"].resizable
    assert imodel.report.probed == {"Gain": 1}
    imodel.resize(widths={"0:out": 5})
    small = imodel.export()
    assert small.get_submodule("1").gamma.shape == (5,) and torch.allclose(small(x), imodel(x), atol=1e-5)
    assert not any(type(m).__module__.startswith("inn") for m in small.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_user_mixing_layer_is_pinned_with_its_name_and_why():
    inn.register_leaf_module(Mixer)
    imodel = inn.convert(_sandwich(Mixer()), torch.randn(2, 3, 9, 9))
    group = {g.name: g for g in imodel.groups}["0:out"]
    assert not group.resizable
    assert "module '1' (Mixer), which mixes channels" in group.reason


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN written as timm writes it (addcmul, a mean over channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(channels))
        self.bias = nn.Parameter(torch.randn(channels))

    def forward(self, x):  # (N, H, W, C)
        gx = x.norm(p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        shape = (1, 1, 1, -1)
        return x + torch.addcmul(self.bias.view(shape), self.weight.view(shape), x * nx)


class GRNBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 1)
        self.fc1, self.grn, self.fc2 = nn.Linear(8, 16), GlobalResponseNorm(16), nn.Linear(16, 8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = self.stem(x).permute(0, 2, 3, 1)
        h = h + self.fc2(self.grn(torch.relu(self.fc1(h))))
        return self.head(h.permute(0, 3, 1, 2))


def test_grn_and_averages_over_channels_stay_resizable():
    torch.manual_seed(0)
    model, x = GRNBlock().eval(), torch.randn(2, 3, 6, 6)
    imodel = inn.convert(model, x)
    assert torch.allclose(imodel(x), model(x), atol=1e-5)
    groups = {g.name: g for g in imodel.groups}
    assert groups["fc1:out"].resizable and groups["stem:out"].resizable
    imodel.resize(widths={"fc1:out": 9, "stem:out": 5})
    small = imodel.export()
    assert small.grn.weight.shape == (9,) and torch.allclose(small(x), imodel(x), atol=1e-5)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_resize_input_and_hidden_and_export_as_themselves(cls):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed, self.head = nn.Linear(3, 8), nn.Linear(12, 4)
            self.rnn = cls(8, 6, num_layers=2, batch_first=True, bidirectional=True)

        def forward(self, x):
            return self.head(self.rnn(self.embed(x))[0][:, -1])

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(2, 5, 3)
    imodel = inn.convert(model, x)
    assert torch.allclose(imodel(x), model(x), atol=1e-5)
    imodel.resize(widths={"embed:out": 5, "rnn:hidden": 4})
    copy.deepcopy(imodel)  # after a forward with autograd
    small = imodel.export()
    assert type(small.rnn) is cls and (small.rnn.input_size, small.rnn.hidden_size) == (5, 4)
    assert torch.allclose(small(x), imodel(x), atol=1e-5)


class MixerBlock(nn.Module):
    """An MLP-Mixer/ResMLP block: a Linear over the tokens (channels elsewhere), a layer scale
    viewed with a literal channel count, a boolean mask that cannot be probed."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.tokens, self.head = nn.Linear(3, 8), nn.Linear(5, 5), nn.Linear(8, 4)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x):  # (N, 5 tokens, 3)
        h = self.embed(x)
        h = h + self.tokens(h.transpose(1, 2)).transpose(1, 2) * self.scale.view(1, 1, 8)
        return self.head(torch.where(h > 0, h, 0.1 * h))


def test_token_mixing_linear_and_literal_layer_scale_keep_channels_resizable():
    torch.manual_seed(0)
    model, x = MixerBlock().eval(), torch.randn(2, 5, 3)
    imodel = inn.convert(model, x)
    assert torch.allclose(imodel(x), model(x), atol=1e-5)
    assert {g.name: g for g in imodel.groups}["embed:out"].resizable
    imodel.resize(widths={"embed:out": 5})
    small = imodel.export()
    assert small.scale.shape == (5,) and torch.allclose(small(x), imodel(x), atol=1e-5)


class Conv3DSimple(nn.Conv3d):
    """As torchvision's video ResNets write it: a subclass that keeps Conv3d's forward."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, (1, 3, 3), padding=(0, 1, 1), bias=False)


def test_subclass_of_a_layer_keeping_its_forward_is_that_layer():
    torch.manual_seed(0)
    model = nn.Sequential(Conv3DSimple(3, 8), nn.ReLU(), Conv3DSimple(8, 4)).eval()
    x = torch.randn(1, 3, 2, 6, 6)
    imodel = inn.convert(model, x)
    assert torch.allclose(imodel(x), model(x), atol=1e-5)
    imodel.resize(widths={"0:out": 5})
    small = imodel.export()
    assert type(small.get_submodule("0")) is Conv3DSimple
    assert torch.allclose(small(x), imodel(x), atol=1e-5)
