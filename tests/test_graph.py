"""Channel groups found by tracing, on small models whose groups are known by hand."""

import operator

import pytest
import torch
from torch import nn

import inn
from inn.graph import analyse, trace


def groups_of(model: nn.Module, x: torch.Tensor) -> dict[str, inn.graph.ChannelGroup]:
    analysis = analyse(trace(model.eval(), x))
    return {g.name: g for g in analysis.groups.values()}


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 6, 3, padding=1)
        self.b = nn.Conv2d(6, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = h + self.b(torch.relu(self.a(h)))
        return self.fc(h.view(h.size(0), -1))


def test_residual_flatten_and_io():
    groups = groups_of(Residual(), torch.randn(1, 3, 4, 4))
    assert set(groups) == {"x:out", "stem:out", "a:out", "fc:out"}  # b:out merged into stem:out
    assert groups["stem:out"].resizable and groups["stem:out"].full_size == 8
    assert groups["a:out"].resizable and groups["a:out"].full_size == 6
    assert not groups["x:out"].resizable and groups["x:out"].reason == "model input"
    assert not groups["fc:out"].resizable and groups["fc:out"].reason == "model output"
    analysis = analyse(trace(Residual().eval(), torch.randn(1, 3, 4, 4)))
    (segment,) = analysis.modules["fc"].roles["in"]
    assert segment.block == 16  # the Linear sees 8 channels of 4 x 4 features


class Branches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 4, 1)
        self.right = nn.Conv2d(3, 5, 1)
        self.dw = nn.Conv2d(9, 9, 3, padding=1, groups=9)
        self.bn = nn.BatchNorm2d(9)
        self.se_down = nn.Conv2d(9, 2, 1)
        self.se_up = nn.Conv2d(2, 9, 1)
        self.head = nn.Conv2d(9, 3, 1)

    def forward(self, x):
        h = self.bn(self.dw(torch.cat([self.left(x), self.right(x)], dim=1)))
        if not self.gated:
            return self.head(h)
        gate = torch.sigmoid(self.se_up(torch.relu(self.se_down(h.mean((2, 3), keepdim=True)))))
        return self.head(h * gate)


def test_cat_makes_a_composite_axis_through_depthwise_and_batchnorm():
    model = Branches()
    model.gated = False
    analysis = analyse(trace(model.eval(), torch.randn(1, 3, 6, 6)))
    head_in = analysis.modules["head"].roles["in"]
    assert [s.size for s in head_in] == [4, 5]  # a composite axis: two segments
    assert [analysis.group_of(s).name for s in head_in] == ["left:out", "right:out"]
    assert all(analysis.group_of(s).resizable for s in head_in)
    assert analysis.modules["dw"].roles["in"] == analysis.modules["dw"].roles["out"] == head_in
    assert analysis.modules["bn"].roles["in"] == head_in


def test_gate_over_a_concatenation_splits_the_gate_axis():
    model = Branches()
    model.gated = True
    analysis = analyse(trace(model.eval(), torch.randn(1, 3, 6, 6)))
    # se_up writes one 9-channel axis while h has two segments (4 + 5): se_up's output is split
    # into the same two pieces, each tied to its branch
    head_in = analysis.modules["head"].roles["in"]
    se_out = analysis.modules["se_up"].roles["out"]
    assert [s.size for s in se_out] == [4, 5]
    assert [analysis.root(s.axis) for s in se_out] == [analysis.root(s.axis) for s in head_in]
    assert [analysis.group_of(s).name for s in head_in] == ["left:out", "right:out"]
    assert all(analysis.group_of(s).resizable for s in (*head_in, *se_out))
    assert analysis.group_of(analysis.modules["se_down"].roles["out"][0]).resizable


class SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.down, self.up = nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = self.conv(x)
        return self.out(
            h * torch.sigmoid(self.up(torch.relu(self.down(h.mean((2, 3), keepdim=True)))))
        )


def test_squeeze_excitation_gate_shares_the_group():
    analysis = analyse(trace(SqueezeExcite().eval(), torch.randn(1, 3, 6, 6)))
    conv_out = analysis.group_of(analysis.modules["conv"].roles["out"][0])
    up_out = analysis.group_of(analysis.modules["up"].roles["out"][0])
    assert conv_out == up_out and conv_out.resizable


class Shuffle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = self.a(x)
        n, c, hh, ww = h.shape
        h = h.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)  # channel shuffle
        return self.b(h)


def test_channel_shuffle_is_pinned_not_guessed():
    groups = groups_of(Shuffle(), torch.randn(1, 3, 4, 4))
    assert not groups["a:out"].resizable
    # the channel count read from h.shape feeds the view: that alone pins the axis
    assert "channel count is read" in groups["a:out"].reason


class Reused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 1)
        self.shared = nn.Conv2d(6, 6, 3, padding=1)
        self.out = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.out(self.shared(torch.relu(self.shared(self.a(x)))))


def test_module_called_twice_ties_its_input_and_output():
    groups = groups_of(Reused(), torch.randn(1, 3, 5, 5))
    # shared's input is a:out on the first call and shared:out on the second: one group
    assert "shared:out" not in groups and groups["a:out"].resizable


class Custom(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x.flip(1)  # data-dependent: not traceable


class WithCustom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.c, self.b = nn.Conv2d(3, 4, 1), Custom(), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(self.c(self.a(x)))


def test_untraceable_module_is_kept_whole_then_probed_once_registered():
    warning = r"cannot trace the forward of Custom \(TraceError: .*register_leaf"
    with pytest.warns(UserWarning, match=warning):
        groups = groups_of(WithCustom(), torch.randn(1, 3, 4, 4))
    # kept whole, not probed: its channels stay at full width, and the reason says why
    assert not groups["a:out"].resizable and "Custom, kept whole" in groups["a:out"].reason
    inn.register_leaf_module(Custom)
    groups = groups_of(WithCustom(), torch.randn(1, 3, 4, 4))
    # an opaque module is probed: one of its branches reverses the channels
    assert not groups["a:out"].resizable and "mixes channels" in groups["a:out"].reason


class BranchingModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else x  # the model's own forward: nothing to keep whole


def test_a_model_whose_own_forward_is_untraceable_is_refused():
    with pytest.raises(inn.ConversionError, match=r"model.s own forward\).*torch\.fx"):
        trace(BranchingModel().eval(), torch.randn(1, 3, 4, 4))


def test_wrong_example_input_is_a_clear_error():
    with pytest.raises(inn.ConversionError, match=r"example inputs of shapes \[\(1, 5, 4, 4\)\]"):
        trace(Residual().eval(), torch.randn(1, 5, 4, 4))
    with pytest.raises(inn.ConversionError, match="tensor or a tuple"):
        trace(Residual().eval(), [1, 2])


class FlattenIntoConv(nn.Module):
    """Channels of 4 features each (a flatten) read by a 1x1 convolution: no rule but a
    Linear's reads blocks of features, so the convolution's input stays at full width."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(24, 5, 1)

    def forward(self, x):
        h = self.a(x).flatten(1)
        return self.b(h.view(h.shape[0], -1, 1, 1))


def test_blocks_of_features_are_not_read_as_channels():
    x = torch.randn(2, 3, 2, 2)
    model = FlattenIntoConv().eval()
    imodel = inn.convert(model, x)
    assert not {g.name: g for g in imodel.groups}["a:out"].resizable
    with torch.no_grad():
        assert torch.allclose(imodel(x), model(x), atol=1e-5)


class Shifted(nn.Module):
    """A cyclic shift and a flip of the spatial axes keep the channels; a roll of the channels
    does not."""

    def __init__(self, over_channels: bool = False) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 6, 1), nn.Conv2d(6, 2, 1)
        self.over_channels = over_channels

    def forward(self, x):
        h = self.a(x)
        if self.over_channels:
            return self.b(torch.roll(h, shifts=1, dims=1))
        return self.b(torch.roll(h, shifts=(1, -1), dims=(2, 3)) + torch.flip(h, dims=[3]))


def test_roll_and_flip_of_spatial_axes_keep_the_channels():
    x = torch.randn(2, 3, 5, 5)
    imodel = inn.convert(Shifted().eval(), x)
    imodel.resize(widths={"a:out": 4})
    with torch.no_grad():
        assert torch.allclose(imodel.export()(x), imodel(x), atol=1e-6)
    pinned = {g.name: g for g in inn.convert(Shifted(True).eval(), x).groups}["a:out"]
    assert not pinned.resizable and "roll of the channels" in pinned.reason


def _converted_exactly(model: nn.Module, x: torch.Tensor) -> inn.IntegralModel:
    imodel = inn.convert(model.eval(), x)
    with torch.no_grad():
        assert torch.allclose(imodel(x), model(x), atol=1e-5)
    return imodel


class ChannelRanges(nn.Module):
    """ReXNet's partial residual (the shortcut added to the first channels only), a range taken
    through an Ellipsis, and a range across a concatenation (DPN's paths); or a stepped range."""

    def __init__(self, stepped: bool = False) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1)
        self.c, self.head = nn.Conv2d(12, 6, 1), nn.Linear(6, 4)
        self.stepped = stepped

    def forward(self, x):
        s = torch.relu(self.a(x))
        y = torch.relu(self.b(s))
        if self.stepped:
            return self.head(self.c(torch.cat([y[:, ::2], y[:, 1::2]], 1)).mean((2, 3)))
        y = torch.cat([y[:, 0:8] + s, y[:, 8:]], dim=1)
        z = self.c(y)[..., :4, :, :]
        return self.head(torch.cat([z, z], 1)[:, 2:8].mean((2, 3)))


def test_ranges_of_channels_resize_with_bounds_that_follow_the_widths():
    x = torch.randn(2, 3, 6, 6)
    imodel = _converted_exactly(ChannelRanges(), x)
    # b's first 8 channels are a's (the shortcut); c's first 4 are cut at 2 by the last range
    assert {g.name: g.full_size for g in imodel.resizable_groups} == {
        "a:out": 8, "b:out[8:12]": 4, "c:out[0:4][0:2]": 2, "c:out[0:4][2:4]": 2, "c:out[4:6]": 2,
    }  # fmt: skip
    small = imodel.resize(widths={"a:out": 5, "b:out[8:12]": 2, "c:out[0:4][0:2]": 1}).export()
    with torch.no_grad():
        assert torch.allclose(small(x), imodel(x), atol=1e-5)
    # by hand: b makes 5 + 2 channels, c reads 7 and makes 1 + 2 + 2, z is c's first 3, and the
    # head reads channels 1 to 6 of [z, z]
    assert (small.b.out_channels, small.c.in_channels, small.c.out_channels) == (7, 7, 5)
    assert small.head.in_features == 5
    ranges = [n.args[1][1] for n in small.graph.nodes if n.target is operator.getitem]
    assert ranges == [slice(0, 5), slice(5, 7), slice(0, 3), slice(1, 6)]
    assert not any(type(m).__module__.startswith("inn") for m in small.modules())
    pinned = {g.name: g for g in inn.convert(ChannelRanges(True).eval(), x).groups}["b:out"]
    assert not pinned.resizable and "an index of channels with a step" in pinned.reason


class SplitAttention(nn.Module):
    """ResNeSt's split attention, radix 2: a grouped convolution's two runs of channels stacked
    by a reshape whose size is read from the shape (``C // radix``), attention over the radix
    from a dense layer's output cut into two runs (a literal size), summed back."""

    def __init__(self, channels: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2 * channels, 3, padding=1, groups=1)
        self.split = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2)
        self.fc1, self.fc2 = nn.Conv2d(channels, 4, 1), nn.Conv2d(4, 2 * channels, 1)
        self.out, self.channels = nn.Conv2d(channels, 5, 1), channels

    def forward(self, x):
        x = torch.relu(self.split(self.conv(x)))
        b, rc, h, w = x.shape
        x = x.reshape((b, 2, rc // 2, h, w))
        gap = torch.relu(self.fc1(x.sum(dim=1).mean((2, 3), keepdim=True)))
        attn = self.fc2(gap).view(b, 1, 2, self.channels).transpose(1, 2)
        attn = torch.softmax(attn, dim=1).reshape(b, -1).view(b, -1, 1, 1)
        return self.out((x * attn.reshape((b, 2, rc // 2, 1, 1))).sum(dim=1))


def test_runs_of_channels_stacked_by_a_reshape_are_tied_and_resize():
    x = torch.randn(2, 3, 5, 5)
    imodel = _converted_exactly(SplitAttention(), x)
    # conv's output is two blocks of 6 (the grouped conv ties them); the grouped conv's two
    # runs, fc2's two runs and what `out` reads are one group of 6; fc1's output is another
    sizes = {g.name: g.full_size for g in imodel.resizable_groups}
    assert sizes == {"conv:out": 6, "split:out": 6, "fc1:out": 4}
    small = imodel.resize(widths={"split:out": 4}).export()
    with torch.no_grad():
        assert torch.allclose(small(x), imodel(x), atol=1e-5)
    # by hand: the grouped conv and fc2 make two runs of 4, `out` reads 4, conv still makes 12
    shapes = (small.conv.out_channels, small.split.out_channels, small.fc2.out_channels)
    assert shapes == (12, 8, 8) and small.out.in_channels == 4
    assert not any(type(m).__module__.startswith("inn") for m in small.modules())


class HeadsAttention(nn.Module):
    """LeViT-style attention: one linear makes q, k and v per head (a reshape stacks the heads,
    a split cuts q, k, v); ``q @ k`` sums over channels, ``attn @ v`` does not. Then a global
    context (GCNet): the channels as rows of a product with a spatial attention map."""

    def __init__(self, heads: int = 2, key: int = 3, value: int = 4) -> None:
        super().__init__()
        self.heads, self.key, self.value = heads, key, value
        self.qkv = nn.Linear(6, heads * (2 * key + value))
        self.proj = nn.Linear(heads * value, 8)
        self.attn_map = nn.Conv2d(8, 1, 1)
        self.head = nn.Conv2d(8, 5, 1)

    def forward(self, x):  # (B, N = 16, 6)
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, self.heads, -1).split([self.key, self.key, self.value], 3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1), v.permute(0, 2, 1, 3)
        attn = torch.softmax(q @ k, dim=-1)
        y = self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1))  # (B, N, 8)
        y = y.transpose(1, 2).reshape(b, 8, 4, 4)
        context = y.reshape(b, 8, n).unsqueeze(1) @ torch.softmax(
            self.attn_map(y).reshape(b, 1, n), dim=-1
        ).unsqueeze(3)
        return self.head(y + context.view(b, 8, 1, 1))


def test_matrix_products_keep_the_channels_they_do_not_sum_over():
    x = torch.randn(2, 16, 6)
    imodel = _converted_exactly(HeadsAttention(), x)
    groups = {g.name: g for g in imodel.groups}
    # qkv's output: per head a run of q (3), k (3), v (4), the heads tied; q and k are summed
    # over by q @ k and pinned, v is not; proj's 8 channels pass the global context as rows
    resizable = {g.name: g.full_size for g in imodel.resizable_groups}
    assert resizable == {"qkv:out[0:10][6:10]": 4, "proj:out": 8}
    assert "a matrix product that sums over channels" in groups["qkv:out[0:10][0:3]"].reason
    small = imodel.resize(widths={"qkv:out[0:10][6:10]": 2, "proj:out": 5}).export()
    with torch.no_grad():
        assert torch.allclose(small(x), imodel(x), atol=1e-5)
    # by hand: qkv makes 2 heads x (3 + 3 + 2), proj reads 2 x 2 and makes 5, the map reads 5
    assert (small.qkv.out_features, small.proj.in_features, small.proj.out_features) == (16, 4, 5)
    assert small.attn_map.in_channels == 5 and small.head.in_channels == 5
