"""Teach inn a layer of your own: a channel rule, and optionally your own integral layer.

python examples/custom_layer.py          # a second or two after the imports
python examples/custom_layer.py --tiny   # the same (it is already tiny)
"""

import argparse

import torch
from torch import nn

import inn
from inn.layers import IntegralLayer, IntegralWrapped, LayerRequest


class Gain(nn.Module):
    """A per-channel gain of ``(N, C, H, W)`` inputs: ``gain`` has one entry per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain[:, None, None]


class Mixer(nn.Module):
    """A user's 1x1 convolution written by hand: weight ``(out, in)``, bias ``(out,)``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / c_in**0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oi,nihw->nohw", self.weight, x) + self.bias[:, None, None]


# 1. the channel rules: Gain resizes with its channels (gain along dim 0); Mixer is dense
inn.register_channel_rule(Gain, "elementwise", tensors={"gain": 0})
inn.register_channel_rule(Mixer, "dense")


# 2. optional: the integral layer that replaces Gain (here the generic wrapper, which samples
#    the tensors the rule named and calls Gain's own forward with them)
@inn.register_integral_layer(Gain)
def gain_layer(module: nn.Module, request: LayerRequest) -> IntegralLayer:
    print(f"  building the integral layer of {request.name!r} ({request.kind})")
    return IntegralWrapped(module, request.tensors, request.partitions, rule=request.rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="accepted for symmetry: already tiny")
    parser.parse_args()

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), Gain(32), nn.ReLU(), Mixer(32, 24), nn.ReLU(),
        nn.Conv2d(24, 10, 1),
    ).eval()  # fmt: skip
    x = torch.randn(2, 3, 16, 16)
    imodel = inn.convert(model, x)
    for g in imodel.groups:
        print(f"{g.name:10s} {g.size:3d} channels, " + ("resizable" if g.resizable else g.reason))
    with torch.no_grad():
        print(f"full width: max difference {(imodel(x) - model(x)).abs().max():.1e}")
        imodel.resize(widths={"0:out": 16, "3:out": 12})
        small = imodel.export()
        gain, mixer = small.get_submodule("1"), small.get_submodule("3")  # still Gain and Mixer
        print(f"exported: {type(gain).__name__} of {gain.gain.numel()} channels, ", end="")
        print(f"{type(mixer).__name__} weight {tuple(mixer.weight.shape)}")
        print(f"export == integral model: {torch.allclose(small(x), imodel(x), atol=1e-5)}")


if __name__ == "__main__":
    main()
