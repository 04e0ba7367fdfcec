"""The integral-layer registry: a user's integral layer for their own module type is the one
``inn.convert`` builds (exact at full width, resized and exported), a kind of their own is
served by a kind entry, and a module without an entry is refused naming it and the fix."""

import pytest
import torch
import torch.fx as fx
from torch import nn

import inn
from inn.graph.layout import Layout
from inn.graph.wrapped import Wrapped
from inn.layers import (
    IntegralLayer,
    IntegralWrapped,
    LayerRequest,
    integral_layer_for,
    register_integral_layer,
)


class Scale(nn.Module):
    """A user's per-channel scale of ``(N, C, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        return x * self.gain[:, None, None]


class IntegralScale(IntegralLayer):
    """The user's own integral layer of :class:`Scale`: ``gain`` continuous along the channels."""

    def __init__(self, scale: Scale, partitions, *, rule: str) -> None:
        super().__init__(rule)
        self._set_partitions(partitions, {"out": scale.gain.shape[0]}, rule)
        self._register("gain", scale.gain, {0: "out"})

    def forward(self, x):
        return x * self.sampled()["gain"][:, None, None]

    def to_discrete(self) -> Scale:
        gain = self.sampled()["gain"].detach()
        plain = Scale(gain.shape[0])
        plain.gain.data.copy_(gain)
        return plain


REQUESTS: list[LayerRequest] = []


@register_integral_layer(Scale)
def scale_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    REQUESTS.append(request)
    return IntegralScale(module, {"out": request.partitions["out"]}, rule=request.rule)


inn.register_channel_rule(Scale, "elementwise", tensors={"gain": 0})


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def test_a_registered_layer_is_what_convert_builds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), Scale(6), nn.ReLU(), nn.Conv2d(6, 4, 1))
    x = torch.randn(2, 3, 8, 8)
    imodel = inn.convert(model.eval(), x, rule="trapezoid")
    layer = imodel.graph_module.get_submodule("1")
    assert type(layer) is IntegralScale
    request = REQUESTS[-1]
    assert (request.name, request.kind, request.rule) == ("1", "wrapped", "trapezoid")
    assert request.tensors == {"gain": {0: "out"}} and request.blocks == {"in": (1,), "out": (1,)}
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-5
        imodel.resize(widths={"0:out": 4})
        small = imodel.export()
        assert _relative(small(x), imodel(x)) <= 1e-5
    assert type(small.get_submodule("1")) is Scale and small.get_submodule("1").gain.shape == (4,)


class Subscale(Scale):
    """A subclass is not its parent's type: it falls to its kind's entry."""


def test_a_type_entry_matches_its_exact_type_only():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), Subscale(6), nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    imodel = inn.convert(model, x)
    assert type(imodel.graph_module.get_submodule("1")) is IntegralWrapped
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-5


class Shift(nn.Module):
    """A user's per-channel shift whose rule records a kind of its own, ``"shift"``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.linspace(-1.0, 1.0, channels))

    def forward(self, x):
        return x + self.offset[:, None, None]


def shift_rule(ctx, node: fx.Node, module: nn.Module):
    x = ctx.input(node)
    if not isinstance(x, Layout) or x.dim != 1:
        return ctx.unknown(node, f"shift {node.target!r} over another axis")
    roles = {"in": x.segments, "out": x.segments}
    ctx.record(str(node.target), "shift", roles, wrapped=Wrapped({"offset": {0: "out"}}))
    return x


inn.register_channel_rule(Shift, shift_rule)


def test_an_unknown_kind_is_refused_then_served_by_a_kind_entry():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), Shift(6), nn.Conv2d(6, 2, 1)).eval()
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(inn.ConversionError) as error:
        inn.convert(model, x)
    message = str(error.value)
    assert "no integral layer for '1' (Shift, kind 'shift')" in message
    assert "register_integral_layer(Shift)" in message

    @register_integral_layer("shift")
    def shift_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
        parts = {"out": request.partitions["out"]}
        return IntegralWrapped(module, request.tensors, parts, rule=request.rule)

    imodel = inn.convert(model, x)
    assert type(imodel.graph_module.get_submodule("1")) is IntegralWrapped
    with torch.no_grad():
        assert _relative(imodel(x), model(x)) <= 1e-5


class Bare(Shift):
    """The same layer, whose rule forgets to say which tensors run along the channels."""


def bare_rule(ctx, node: fx.Node, module: nn.Module):
    x = ctx.input(node)
    ctx.record(str(node.target), "bare", {"in": x.segments, "out": x.segments})
    return x


inn.register_channel_rule(Bare, bare_rule)


def test_a_kind_of_its_own_without_its_tensors_is_refused_with_the_fix():
    model = nn.Sequential(nn.Conv2d(3, 6, 1), Bare(6), nn.Conv2d(6, 2, 1)).eval()
    with pytest.raises(inn.ConversionError, match=r"module '1'.*kind 'bare'.*wrapped=Wrapped"):
        inn.convert(model, torch.randn(1, 3, 4, 4))


def test_a_type_entry_restricted_to_kinds_leaves_other_kinds_to_their_entries():
    request = LayerRequest("fc", "wrapped", {"out": None}, tensors={"bias": {0: "out"}})
    # nn.Linear's entry handles kind "linear" only: a user's rule recording it otherwise wins
    layer = integral_layer_for(nn.Linear(3, 4), request)
    assert type(layer) is IntegralWrapped and set(layer.tensor_names) == {"bias"}


def test_keys_are_module_types_or_kinds():
    with pytest.raises(ValueError, match=r"nn\.Module classes or kinds"):
        register_integral_layer(len)
    with pytest.raises(ValueError, match="restricts module types only"):
        register_integral_layer("shift", kinds=("shift",))
