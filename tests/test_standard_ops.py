"""Every standard operation is decided: each ``nn.Module`` class exported by ``torch.nn``, each
function of ``torch.nn.functional`` and each pointwise ATen op reachable as ``torch.<name>`` or
``Tensor.<name>`` has an entry in the catalogue below, and every entry that is a layer is
checked by a real conversion of a tiny network around it.

An entry is a list of cases (how to place the op in a network, and the correct outcome) or, for
what is not a layer in a network's channel path (containers, losses, ...), a one-line why. The
outcome is what is correct, not what the library happens to do:

- ``resizable``: every channel group inside the network (the producer's channels around the op,
  and the op's own where it makes channels) can shrink; the conversion is exact at full width,
  the export at smaller widths computes what the integral model computes, has no ``inn`` module
  and fewer parameters, and the user's model is left as it was;
- ``pinned``: the producer's channels stay at full width, with a reason that names the op and
  says why (its channels);
- ``either``: both are right: an op resizable in principle that may as well be pinned with such a
  reason (a fixed rearrangement of channels into blocks, a reduction of the channels to one
  number, a kernel that needs widths in multiples of 16 bytes).

A torch upgrade that adds a layer, a function or a pointwise op fails
``test_catalogue_covers_torch`` until it is decided here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import inn

# --------------------------------------------------------------------------------------------
# what torch offers


def torch_nn_modules() -> set[str]:
    """Public ``nn.Module`` subclasses exported by ``torch.nn``."""
    return {
        name
        for name in dir(nn)
        if not name.startswith("_")
        and inspect.isclass(obj := getattr(nn, name))
        and issubclass(obj, nn.Module)
    }


_FUNCTIONAL_HOMES = {"torch.nn.functional", "torch._C._nn", "torch"}


def torch_functional() -> set[str]:
    """Public functions of ``torch.nn.functional`` (defined there or torch's own kernels; the
    helpers it imports from elsewhere, like ``handle_torch_function``, are not its API)."""
    return {
        name
        for name in dir(F)
        if not name.startswith("_")
        and (inspect.isfunction(obj := getattr(F, name)) or inspect.isbuiltin(obj))
        and getattr(obj, "__module__", None) in _FUNCTIONAL_HOMES
    }


def torch_pointwise() -> set[str]:
    """ATen ops with an overload tagged pointwise that exist as ``torch.<name>`` or as
    ``Tensor.<name>`` (from the dispatcher's list of every registered op: ``dir(torch.ops.aten)``
    lists only the ops loaded so far)."""
    names = set()
    for full in torch._C._dispatch_get_all_op_names():
        namespace, _, rest = full.partition("::")
        name, _, overload = rest.partition(".")
        if namespace != "aten" or name.startswith("_") or name in names:
            continue
        if not (hasattr(torch, name) or hasattr(Tensor, name)):
            continue
        if (
            torch.Tag.pointwise
            in getattr(getattr(torch.ops.aten, name), overload or "default").tags
        ):
            names.add(name)
    return names


# --------------------------------------------------------------------------------------------
# tiny networks: first -> op -> last

SHAPES = {"1d": (2, 3, 12), "2d": (2, 3, 8, 8), "3d": (2, 3, 6, 6, 6), "last": (2, 5, 3)}
WIDTH = 8  # channels of the producer
_CONVS = {3: nn.Conv1d, 4: nn.Conv2d, 5: nn.Conv3d}


class Net(nn.Module):
    """``last(op(first(x)))``: ``first`` makes :data:`WIDTH` channels (a convolution, or a
    Linear for channels last), ``fn(self, h)`` (traced: a function call in the forward) or the
    module ``op`` acts on them, ``last`` reads what comes out (a convolution of the output's
    rank, or a Linear on its last axis)."""

    def __init__(self, layout: str, x: Tensor, op: nn.Module | None = None,
                 fn: Callable | None = None, first: nn.Module | None = None,
                 tensors: dict[str, Tensor] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.layout = layout
        self.first = (
            first
            if first is not None
            else (
                nn.Linear(3, WIDTH)
                if layout == "last"
                else _CONVS[len(SHAPES[layout])](3, WIDTH, 3)
            )
        )
        self.op = op
        self.fn = fn
        for name, t in (tensors or {}).items():
            if t.is_floating_point():
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)
        with torch.no_grad():
            h = self.body(x)  # also materialises lazy modules
        if layout != "last" and h.ndim in _CONVS:
            kernel = 3 if min(h.shape[2:]) >= 3 else 1
            self.last = _CONVS[h.ndim](h.shape[1], 4, kernel)
        else:
            self.last = nn.Linear(h.shape[-1], 4)

    def body(self, x: Tensor) -> Tensor:
        h = self.first(x)
        return self.fn(self, h) if self.fn is not None else self.op(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.last(self.body(x))


def _randomise(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial per-channel tensors (zero biases, unit scales and default statistics would
    hide a wrong resampling): 1-d parameters in [0.3, 0.9], running statistics random."""
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            if name.endswith("running_mean"):
                t.copy_(0.3 * torch.randn(t.shape, generator=gen))
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif isinstance(t, nn.Parameter) and t.ndim == 1:
                t.copy_(0.3 + 0.6 * torch.rand(t.shape, generator=gen))


# the producer's output range: real (default initialisation), in [0.2, 0.8] or in [1.2, 1.8]
_DOMAINS = {"real": None, "unit": 0.2, "above1": 1.2}


@dataclass(frozen=True)
class Case:
    """One placement of an op and its correct outcome."""

    layout: str
    op: Callable[[], nn.Module] | None = None  # a factory (fresh module per build)
    fn: Callable | None = None  # fn(net, h)
    expect: str = "resizable"  # "resizable" | "pinned" | "either"
    words: tuple[str, ...] = ()  # what the reason of a pin must contain besides the op's name
    first: Callable[[], nn.Module] | None = None
    x: Callable[[torch.Generator], Tensor] | None = None
    tensors: Callable[[torch.Generator], dict[str, Tensor]] | None = None
    domain: str = "real"
    note: str = ""  # tells cases of one key apart
    groups: tuple[str, ...] = field(default=("first:out",))
    named: str = ""  # what the reason names where a layer inside the op pins (else the op)

    def build(self) -> tuple[nn.Module, Tensor]:
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1)
        if self.x is not None:
            x = self.x(gen)
        elif self.domain != "real":
            x = torch.rand(SHAPES[self.layout], generator=gen)
        else:
            x = torch.randn(SHAPES[self.layout], generator=gen)
        tensors = self.tensors(gen) if self.tensors else None
        first = self.first() if self.first else None
        model = Net(self.layout, x, self.op() if self.op else None, self.fn, first, tensors)
        _randomise(model, gen)
        low = _DOMAINS[self.domain]
        if low is not None:  # x in [0, 1): outputs in [low, low + 0.6]
            w = model.first.weight
            with torch.no_grad():
                w.copy_(torch.rand(w.shape, generator=gen) * 0.6 / w[0].numel())
                model.first.bias.fill_(low)
        return model.eval(), x


def r(layout: str, op=None, fn=None, **kw) -> Case:
    return Case(layout, op, fn, "resizable", **kw)


def p(layout: str, op=None, fn=None, words: tuple[str, ...] = ("channel",), **kw) -> Case:
    return Case(layout, op, fn, "pinned", words, **kw)


def e(layout: str, op=None, fn=None, **kw) -> Case:
    return Case(layout, op, fn, "either", ("channel",), **kw)


def _t(h: Tensor) -> Tensor:
    """A second operand derived from the first, channel for channel (in (0, 1))."""
    return torch.sigmoid(h)


def _bool(h: Tensor, at: float = 0.0) -> Tensor:
    """A mask channel for channel (a cast: no comparison, which is an op under test)."""
    return (h - at).relu().to(torch.bool)


def _int(h: Tensor) -> Tensor:
    """Small integers channel for channel."""
    return h.relu().mul(3).to(torch.int32)


def _float(t: Tensor) -> Tensor:
    return t.to(torch.float32)


def _randn(*shape: int) -> Callable[[torch.Generator], Tensor]:
    return lambda gen: torch.randn(shape, generator=gen)


def _ints(*shape: int, high: int = 10) -> Callable[[torch.Generator], Tensor]:
    return lambda gen: torch.randint(0, high, shape, generator=gen)


def _params(**shapes: tuple[int, ...]) -> Callable[[torch.Generator], dict[str, Tensor]]:
    """Random parameters: per-channel ones (1-d) in [0.3, 0.9], others scaled to the fan-in."""

    def make(gen: torch.Generator) -> dict[str, Tensor]:
        out = {}
        for name, shape in shapes.items():
            if len(shape) == 1:
                out[name] = 0.3 + 0.6 * torch.rand(shape, generator=gen)
            else:
                out[name] = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
        return out

    return make


# --------------------------------------------------------------------------------------------
# the catalogue: torch.nn modules

LOSS = "a loss: reduces predictions and targets to a number, the end of a network, not a layer"
CONTAINER = "a container: holds layers, each decided on its own"


def _pick(i: int):
    return lambda m, h: m.op(h)[i]


_ENC = dict(d_model=WIDTH, nhead=2, dim_feedforward=12, dropout=0.0, batch_first=True)
_TF = dict(
    d_model=WIDTH,
    nhead=2,
    num_encoder_layers=1,
    num_decoder_layers=1,
    dim_feedforward=12,
    dropout=0.0,
    batch_first=True,
)


def _instance_norms(n: int, layout: str, lazy: bool = False) -> list[Case]:
    cls = getattr(nn, f"{'Lazy' if lazy else ''}InstanceNorm{n}d")
    args = () if lazy else (WIDTH,)
    return [
        r(
            layout,
            lambda a=a, t=t: cls(*args, affine=a, track_running_stats=t),
            note=f"affine={a},track={t}",
        )
        for a in (False, True)
        for t in (False, True)
    ]


def _convs(name: str, n: int) -> list[Case]:
    """A convolution of 8 channels into 6 (a lazy one is told only its output), and grouped."""
    cls = getattr(nn, name)
    if name.startswith("Lazy"):
        return [r(f"{n}d", lambda: cls(6, 2))]
    return [
        r(f"{n}d", lambda: cls(WIDTH, 6, 2)),
        r(f"{n}d", lambda: cls(WIDTH, 6, 2, groups=2), note="groups=2"),
    ]


def _pads(kind: str) -> dict[str, list[Case]]:
    extra = (0.5,) if kind == "Constant" else ()
    return {
        f"{kind}Pad{n}d": [r(f"{n}d", lambda n=n: getattr(nn, f"{kind}Pad{n}d")(1, *extra))]
        for n in (1, 2, 3)
    }


def _unpool(n: int) -> Callable[[], nn.Module]:
    """A max pool that returns its indices and the unpool that reads them (see _unpooled)."""
    return lambda: nn.ModuleList(
        [getattr(nn, f"MaxPool{n}d")(2, return_indices=True), getattr(nn, f"MaxUnpool{n}d")(2)]
    )


def _unpooled(m, h):
    pooled = m.op[0](h)
    return m.op[1](pooled[0], pooled[1])


MODULES: dict[str, list[Case] | str] = {
    # activations: channel-wise
    "CELU": [r("2d", lambda: nn.CELU(0.7))],
    "ELU": [r("2d", lambda: nn.ELU(0.8))],
    "GELU": [r("2d", nn.GELU), r("2d", lambda: nn.GELU("tanh"), note="tanh")],
    "GLU": [r("2d", lambda: nn.GLU(dim=1), note="two halves of the producer's channels tied")],
    "Hardshrink": [r("2d", lambda: nn.Hardshrink(0.3))],
    "Hardsigmoid": [r("2d", nn.Hardsigmoid)],
    "Hardswish": [r("2d", nn.Hardswish)],
    "Hardtanh": [r("2d", lambda: nn.Hardtanh(-0.5, 0.5))],
    "LeakyReLU": [r("2d", lambda: nn.LeakyReLU(0.1))],
    "LogSigmoid": [r("2d", nn.LogSigmoid)],
    "Mish": [r("2d", nn.Mish)],
    "PReLU": [r("2d", lambda: nn.PReLU(WIDTH), note="per channel"),
              r("2d", nn.PReLU, note="one shared slope")],
    "RReLU": [r("2d", lambda: nn.RReLU(0.1, 0.3))],
    "ReLU": [r("2d", nn.ReLU)],
    "ReLU6": [r("2d", nn.ReLU6)],
    "SELU": [r("2d", nn.SELU)],
    "SiLU": [r("2d", nn.SiLU)],
    "Sigmoid": [r("2d", nn.Sigmoid)],
    "Softplus": [r("2d", lambda: nn.Softplus(2.0, 1.0))],
    "Softshrink": [r("2d", lambda: nn.Softshrink(0.3))],
    "Softsign": [r("2d", nn.Softsign)],
    "Tanh": [r("2d", nn.Tanh)],
    "Tanhshrink": [r("2d", nn.Tanhshrink)],
    "Threshold": [r("2d", lambda: nn.Threshold(0.1, -1.0))],
    "Identity": [r("2d", nn.Identity)],
    # softmax-like: over the channels they mix them; over another axis they keep them
    "Softmax": [p("2d", lambda: nn.Softmax(dim=1), note="channels"),
                r("2d", lambda: nn.Softmax(dim=-1), note="width")],
    "LogSoftmax": [p("2d", lambda: nn.LogSoftmax(dim=1), note="channels"),
                   r("2d", lambda: nn.LogSoftmax(dim=-1), note="width")],
    "Softmin": [p("2d", lambda: nn.Softmin(dim=1), note="channels"),
                r("2d", lambda: nn.Softmin(dim=-1), note="width")],
    "Softmax2d": [p("2d", nn.Softmax2d)],
    "LocalResponseNorm": [p("2d", lambda: nn.LocalResponseNorm(3))],
    "CrossMapLRN2d": [p("2d", lambda: nn.CrossMapLRN2d(3))],
    # dropout: identity in eval
    "Dropout": [r("2d", lambda: nn.Dropout(0.3))],
    "Dropout1d": [r("1d", lambda: nn.Dropout1d(0.3))],
    "Dropout2d": [r("2d", lambda: nn.Dropout2d(0.3))],
    "Dropout3d": [r("3d", lambda: nn.Dropout3d(0.3))],
    "AlphaDropout": [r("2d", lambda: nn.AlphaDropout(0.3))],
    "FeatureAlphaDropout": [r("2d", lambda: nn.FeatureAlphaDropout(0.3))],
    # pooling over the spatial axes
    **{f"{kind}Pool{n}d": [r(f"{n}d", lambda kind=kind, n=n: getattr(nn, f"{kind}Pool{n}d")(2))]
       for kind in ("Avg", "Max") for n in (1, 2, 3)},
    "MaxPool2d": [r("2d", lambda: nn.MaxPool2d(2)),
                  r("2d", lambda: nn.MaxPool2d(2, return_indices=True), _pick(0),
                    note="with indices")],
    **{f"Adaptive{kind}Pool{n}d": [r(f"{n}d", lambda kind=kind, n=n:
                                     getattr(nn, f"Adaptive{kind}Pool{n}d")(3))]
       for kind in ("Avg", "Max") for n in (1, 2, 3)},
    **{f"LPPool{n}d": [r(f"{n}d", lambda n=n: getattr(nn, f"LPPool{n}d")(2, 2))] for n in (1, 2, 3)},
    **{f"MaxUnpool{n}d": [r(f"{n}d", _unpool(n), _unpooled, note=f"after MaxPool{n}d")]
       for n in (1, 2, 3)},
    "FractionalMaxPool2d": [e("2d", lambda: nn.FractionalMaxPool2d(2, output_size=4))],
    "FractionalMaxPool3d": [r("3d", lambda: nn.FractionalMaxPool3d(2, output_size=2))],
    # padding of the spatial axes
    **_pads("Circular"), **_pads("Constant"), **_pads("Reflection"), **_pads("Replication"),
    **_pads("Zero"),
    # resampling the spatial axes
    "Upsample": [r("2d", lambda: nn.Upsample(scale_factor=2), note="nearest"),
                 r("2d", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), note="bilinear")],
    "UpsamplingBilinear2d": [r("2d", lambda: nn.UpsamplingBilinear2d(scale_factor=2))],
    "UpsamplingNearest2d": [r("2d", lambda: nn.UpsamplingNearest2d(scale_factor=2))],
    # normalisation per channel, or over the channels (channels last)
    "BatchNorm1d": [r("1d", lambda: nn.BatchNorm1d(WIDTH))],
    "BatchNorm2d": [r("2d", lambda: nn.BatchNorm2d(WIDTH))],
    "BatchNorm3d": [r("3d", lambda: nn.BatchNorm3d(WIDTH))],
    "LazyBatchNorm1d": [r("1d", nn.LazyBatchNorm1d)],
    "LazyBatchNorm2d": [r("2d", nn.LazyBatchNorm2d)],
    "LazyBatchNorm3d": [r("3d", nn.LazyBatchNorm3d)],
    "SyncBatchNorm": [r("2d", lambda: nn.SyncBatchNorm(WIDTH))],
    "GroupNorm": [r("2d", lambda: nn.GroupNorm(2, WIDTH))],
    "InstanceNorm1d": _instance_norms(1, "1d"),
    "InstanceNorm2d": _instance_norms(2, "2d"),
    "InstanceNorm3d": _instance_norms(3, "3d"),
    "LazyInstanceNorm1d": _instance_norms(1, "1d", lazy=True)[3:],
    "LazyInstanceNorm2d": _instance_norms(2, "2d", lazy=True)[3:],
    "LazyInstanceNorm3d": _instance_norms(3, "3d", lazy=True)[3:],
    "LayerNorm": [r("last", lambda: nn.LayerNorm(WIDTH)),
                  r("last", lambda: nn.LayerNorm(WIDTH, bias=False), note="no bias")],
    "RMSNorm": [r("last", lambda: nn.RMSNorm(WIDTH))],
    # channel rearrangements
    "ChannelShuffle": [e("2d", lambda: nn.ChannelShuffle(2))],
    "PixelShuffle": [r("2d", lambda: nn.PixelShuffle(2), note="4 channels per output channel")],
    "PixelUnshuffle": [e("2d", lambda: nn.PixelUnshuffle(2))],
    "Flatten": [r("2d", nn.Flatten, note="into a Linear")],
    "Unflatten": [r("1d", lambda: nn.Unflatten(2, (4, 4)), x=_randn(2, 3, 18),
                    note="the length into height and width")],
    "Unfold": [e("2d", lambda: nn.Unfold(2, stride=2), note="blocks of 4 per channel",
                 named="convolution")],
    "Fold": [r("1d", lambda: nn.Fold((4, 4), 2, stride=2), x=_randn(2, 3, 6),
               first=lambda: nn.Conv1d(3, 4 * WIDTH, 3), note="blocks of 4 per channel")],
    # layers that make channels
    "Linear": [r("last", lambda: nn.Linear(WIDTH, 6))],
    "LazyLinear": [r("last", lambda: nn.LazyLinear(6))],
    "Bilinear": [e("last", lambda: nn.Bilinear(WIDTH, WIDTH, 6), lambda m, h: m.op(h, _t(h)))],
    **{f"{lazy}{kind}{n}d": _convs(f"{lazy}{kind}{n}d", n)
       for kind in ("Conv", "ConvTranspose") for n in (1, 2, 3) for lazy in ("", "Lazy")},
    "Embedding": [r("last", first=lambda: nn.Embedding(10, WIDTH), op=nn.ReLU, x=_ints(2, 5))],
    "EmbeddingBag": [r("last", first=lambda: nn.EmbeddingBag(10, WIDTH), op=nn.ReLU,
                       x=_ints(2, 5))],
    # recurrent and attention layers
    "LSTM": [r("last", lambda: nn.LSTM(WIDTH, 6, batch_first=True), _pick(0))],
    "GRU": [r("last", lambda: nn.GRU(WIDTH, 6, batch_first=True), _pick(0))],
    "RNN": [r("last", lambda: nn.RNN(WIDTH, 6, batch_first=True), _pick(0))],
    "LSTMCell": [r("last", lambda: nn.LSTMCell(WIDTH, 6), _pick(0), x=_randn(2, 3))],
    "GRUCell": [r("last", lambda: nn.GRUCell(WIDTH, 6), x=_randn(2, 3))],
    "RNNCell": [r("last", lambda: nn.RNNCell(WIDTH, 6), x=_randn(2, 3))],
    "MultiheadAttention": [r("last", lambda: nn.MultiheadAttention(WIDTH, 2, batch_first=True),
                             lambda m, h: m.op(h, h, h, need_weights=False)[0],
                             note="self-attention")],
    "TransformerEncoderLayer": [r("last", lambda: nn.TransformerEncoderLayer(**_ENC))],
    "TransformerDecoderLayer": [e("last", lambda: nn.TransformerDecoderLayer(**_ENC),
                                  lambda m, h: m.op(h, h), named="multihead_attn")],
    "TransformerEncoder": [r("last", lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**_ENC), 2, enable_nested_tensor=False))],
    "TransformerDecoder": [e("last", lambda: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(**_ENC), 2), lambda m, h: m.op(h, h), named="multihead_attn")],
    "Transformer": [e("last", lambda: nn.Transformer(**_TF), lambda m, h: m.op(h, h),
                       named="multihead_attn")],
    # similarities: along another axis they keep the channels; over the channels they reduce
    "CosineSimilarity": [
        r("2d", lambda: nn.CosineSimilarity(dim=-1), lambda m, h: m.op(h, _t(h)), note="width"),
        e("2d", lambda: nn.CosineSimilarity(dim=1), lambda m, h: m.op(h, _t(h)).unsqueeze(1),
          note="channels")],
    "PairwiseDistance": [
        r("2d", nn.PairwiseDistance, lambda m, h: m.op(h, _t(h)), note="width"),
        e("last", nn.PairwiseDistance, lambda m, h: m.op(h, _t(h)), note="channels")],
    # not layers in a channel path
    "Module": "the base class of every layer",
    "Container": "a deprecated base class of containers",
    "RNNBase": "the base class of RNN, LSTM and GRU (each decided)",
    "RNNCellBase": "the base class of RNNCell, LSTMCell and GRUCell (each decided)",
    "Sequential": CONTAINER, "ModuleList": CONTAINER, "ModuleDict": CONTAINER,
    "ParameterList": "a container of parameters, used by the layers that read them",
    "ParameterDict": "a container of parameters, used by the layers that read them",
    "DataParallel": "a multi-GPU wrapper that runs the model it holds: convert that model",
    "AdaptiveLogSoftmaxWithLoss": LOSS + " (its targets choose the clusters)",
    **{name: LOSS for name in (
        "BCELoss", "BCEWithLogitsLoss", "CTCLoss", "CosineEmbeddingLoss", "CrossEntropyLoss",
        "GaussianNLLLoss", "HingeEmbeddingLoss", "HuberLoss", "KLDivLoss", "L1Loss",
        "LinearCrossEntropyLoss", "MSELoss", "MarginRankingLoss", "MultiLabelMarginLoss",
        "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss", "NLLLoss2d", "PoissonNLLLoss",
        "SmoothL1Loss", "SoftMarginLoss", "TripletMarginLoss", "TripletMarginWithDistanceLoss")},
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# the catalogue: torch.nn.functional


def _fn(f: Callable, *args, **kwargs) -> Callable:
    """``f(h, *args, **kwargs)``."""
    return lambda m, h: f(h, *args, **kwargs)


def _first_of(f: Callable, *args, **kwargs) -> Callable:
    return lambda m, h: f(h, *args, **kwargs)[0]


def _grid(m, h):
    grid = F.affine_grid(m.theta, [2, WIDTH, 6, 6], align_corners=False)
    return F.grid_sample(h, grid, align_corners=False)


_THETA = dict(
    tensors=lambda gen: {
        "theta": torch.tensor([[1.0, 0.1, 0.05], [-0.1, 0.9, 0.0]]).expand(2, 2, 3).clone()
    }
)
_MHA = _params(in_w=(3 * WIDTH, WIDTH), in_b=(3 * WIDTH,), out_w=(WIDTH, WIDTH), out_b=(WIDTH,))


def _mha(m, h):
    return F.multi_head_attention_forward(
        h,
        h,
        h,
        WIDTH,
        2,
        m.in_w,
        m.in_b,
        None,
        None,
        False,
        0.0,
        m.out_w,
        m.out_b,
        training=False,
        need_weights=False,
    )[0]


FUNCTIONAL: dict[str, list[Case] | str] = {
    # activations
    **{name: [r("2d", fn=_fn(getattr(F, name)))] for name in (
        "celu", "celu_", "elu", "elu_", "gelu", "hardsigmoid", "hardswish", "hardtanh",
        "hardtanh_", "leaky_relu", "leaky_relu_", "logsigmoid", "mish", "relu", "relu6", "relu_",
        "selu", "selu_", "sigmoid", "silu", "softplus", "softsign", "tanh", "tanhshrink")},
    "hardshrink": [r("2d", fn=_fn(F.hardshrink, 0.3))],
    "softshrink": [r("2d", fn=_fn(F.softshrink, 0.3))],
    "threshold": [r("2d", fn=_fn(F.threshold, 0.1, -1.0))],
    "threshold_": [r("2d", fn=_fn(F.threshold_, 0.1, -1.0))],
    "rrelu": [r("2d", fn=_fn(F.rrelu, 0.1, 0.3, training=False))],
    "rrelu_": [r("2d", fn=_fn(F.rrelu_, 0.1, 0.3, training=False))],
    "glu": [r("2d", fn=_fn(F.glu, 1))],
    "prelu": [r("2d", fn=lambda m, h: F.prelu(h, m.w), tensors=_params(w=(WIDTH,)),
                note="per channel"),
              r("2d", fn=lambda m, h: F.prelu(h, m.w), tensors=_params(w=(1,)), note="shared")],
    "softmax": [p("2d", fn=_fn(F.softmax, 1), note="channels"),
                r("2d", fn=_fn(F.softmax, -1), note="width")],
    "log_softmax": [p("2d", fn=_fn(F.log_softmax, 1), note="channels"),
                    r("2d", fn=_fn(F.log_softmax, -1), note="width")],
    "softmin": [p("2d", fn=_fn(F.softmin, 1), note="channels"),
                r("2d", fn=_fn(F.softmin, -1), note="width")],
    "gumbel_softmax": [p("2d", fn=_fn(F.gumbel_softmax, dim=1), note="channels"),
                       e("2d", fn=_fn(F.gumbel_softmax, dim=-1), note="width")],
    "local_response_norm": [p("2d", fn=_fn(F.local_response_norm, 3))],
    # dropout (not training)
    **{name: [r(layout, fn=_fn(getattr(F, name), 0.3, training=False))] for name, layout in (
        ("dropout", "2d"), ("dropout1d", "1d"), ("dropout2d", "2d"), ("dropout3d", "3d"),
        ("alpha_dropout", "2d"), ("feature_alpha_dropout", "2d"))},
    # pooling
    **{f"{kind}_pool{n}d": [r(f"{n}d", fn=_fn(getattr(F, f"{kind}_pool{n}d"), 2))]
       for kind in ("avg", "max") for n in (1, 2, 3)},
    **{f"max_pool{n}d_with_indices": [r(f"{n}d", fn=_first_of(
        getattr(F, f"max_pool{n}d_with_indices"), 2))] for n in (1, 2, 3)},
    **{f"adaptive_{kind}_pool{n}d": [r(f"{n}d", fn=_fn(getattr(F, f"adaptive_{kind}_pool{n}d"), 3))]
       for kind in ("avg", "max") for n in (1, 2, 3)},
    **{f"adaptive_max_pool{n}d_with_indices": [r(f"{n}d", fn=_first_of(
        getattr(F, f"adaptive_max_pool{n}d_with_indices"), 3))] for n in (1, 2, 3)},
    **{f"lp_pool{n}d": [r(f"{n}d", fn=_fn(getattr(F, f"lp_pool{n}d"), 2.0, 2))] for n in (1, 2, 3)},
    **{f"max_unpool{n}d": [r(f"{n}d", fn=lambda m, h, n=n: (lambda pi: getattr(
        F, f"max_unpool{n}d")(pi[0], pi[1], 2))(getattr(F, f"max_pool{n}d_with_indices")(h, 2)))]
       for n in (1, 2, 3)},
    "fractional_max_pool2d": [e("2d", fn=_fn(F.fractional_max_pool2d, 2, output_size=4))],
    "fractional_max_pool2d_with_indices": [e("2d", fn=_first_of(
        F.fractional_max_pool2d_with_indices, 2, output_size=4))],
    "fractional_max_pool3d": [r("3d", fn=_fn(F.fractional_max_pool3d, 2, output_size=2))],
    "fractional_max_pool3d_with_indices": [r("3d", fn=_first_of(
        F.fractional_max_pool3d_with_indices, 2, output_size=2))],
    # spatial padding and resampling
    "pad": [r("2d", fn=_fn(F.pad, (1, 1, 1, 1)), note="constant"),
            r("2d", fn=_fn(F.pad, (1, 1, 1, 1), mode="reflect"), note="reflect")],
    "interpolate": [r("2d", fn=_fn(F.interpolate, scale_factor=2, mode="bilinear"))],
    "upsample": [r("2d", fn=_fn(F.upsample, scale_factor=2))],
    "upsample_bilinear": [r("2d", fn=_fn(F.upsample_bilinear, scale_factor=2))],
    "upsample_nearest": [r("2d", fn=_fn(F.upsample_nearest, scale_factor=2))],
    "grid_sample": [e("2d", fn=_grid, **_THETA)],
    "affine_grid": [e("2d", fn=_grid, **_THETA, note="its grid samples the channels")],
    # normalisation
    "batch_norm": [r("2d", fn=lambda m, h: F.batch_norm(h, m.rm, m.rv, m.w, m.b),
                     tensors=lambda gen: {"rm": 0.3 * torch.randn(WIDTH, generator=gen),
                                          "rv": 0.5 + torch.rand(WIDTH, generator=gen),
                                          **_params(w=(WIDTH,), b=(WIDTH,))(gen)})],
    "instance_norm": [r("2d", fn=lambda m, h: F.instance_norm(h, weight=m.w, bias=m.b),
                        tensors=_params(w=(WIDTH,), b=(WIDTH,)))],
    "group_norm": [e("2d", fn=lambda m, h: F.group_norm(h, 2, m.w, m.b),
                     tensors=_params(w=(WIDTH,), b=(WIDTH,)))],
    "layer_norm": [e("last", fn=lambda m, h: F.layer_norm(h, (WIDTH,), m.w, m.b),
                     tensors=_params(w=(WIDTH,), b=(WIDTH,)))],
    "rms_norm": [e("last", fn=lambda m, h: F.rms_norm(h, (WIDTH,), m.w),
                   tensors=_params(w=(WIDTH,)))],
    "normalize": [e("2d", fn=_fn(F.normalize, dim=1), note="channels (an RMS norm up to a "
                                                           "constant)"),
                  r("2d", fn=_fn(F.normalize, dim=-1), note="width")],
    # channel rearrangements
    "channel_shuffle": [e("2d", fn=_fn(F.channel_shuffle, 2))],
    "native_channel_shuffle": [e("2d", fn=_fn(F.native_channel_shuffle, 2))],
    "pixel_shuffle": [r("2d", fn=_fn(F.pixel_shuffle, 2))],
    "pixel_unshuffle": [e("2d", fn=_fn(F.pixel_unshuffle, 2))],
    "unfold": [e("2d", fn=_fn(F.unfold, 2, stride=2), named="convolution")],
    "fold": [r("1d", fn=_fn(F.fold, (4, 4), 2, stride=2), x=_randn(2, 3, 6),
               first=lambda: nn.Conv1d(3, 4 * WIDTH, 3))],
    # layers that make channels, their weights passed as tensors: their modules resize; the
    # functions may pin (the channels of a weight handed in cannot follow a partition)
    "linear": [e("last", fn=lambda m, h: F.linear(h, m.w, m.b), tensors=_params(w=(6, WIDTH),
                                                                                b=(6,)))],
    "bilinear": [e("last", fn=lambda m, h: F.bilinear(h, _t(h), m.w, m.b),
                   tensors=_params(w=(6, WIDTH, WIDTH), b=(6,)))],
    **{f"conv{n}d": [e(f"{n}d", fn=lambda m, h, n=n: getattr(F, f"conv{n}d")(h, m.w, m.b),
                       tensors=_params(w=(6, WIDTH, *(2,) * n), b=(6,)))] for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": [e(f"{n}d", fn=lambda m, h, n=n: getattr(
        F, f"conv_transpose{n}d")(h, m.w, m.b), tensors=_params(w=(WIDTH, 6, *(2,) * n), b=(6,)))]
       for n in (1, 2, 3)},
    "conv_tbc": [e("last", fn=lambda m, h: F.conv_tbc(h, m.w, m.b, 1),
                   tensors=_params(w=(3, WIDTH, 6), b=(6,)), note="time, batch, channels")],
    "embedding": [r("last", first=nn.Identity, x=_ints(2, 5), tensors=_params(w=(10, WIDTH)),
                    fn=lambda m, i: F.embedding(i, m.w), groups=())],
    "embedding_bag": [r("last", first=nn.Identity, x=_ints(2, 5), tensors=_params(w=(10, WIDTH)),
                        fn=lambda m, i: F.embedding_bag(i, m.w), groups=())],
    # widths in multiples of 16 bytes only (the kernel's strides)
    "grouped_mm": [e("last", fn=lambda m, h: F.grouped_mm(h, m.w, offs=m.offs), x=_randn(6, 3),
                     tensors=lambda gen: {**_params(w=(2, WIDTH, WIDTH))(gen),
                                          "offs": torch.tensor([3, 6], dtype=torch.int32)},
                     note="two experts, like a Linear each")],
    # attention
    "scaled_dot_product_attention": [e("last", fn=lambda m, h: F.scaled_dot_product_attention(
        h, _t(h), h))],
    "multi_head_attention_forward": [e("last", fn=_mha, tensors=_MHA, x=_randn(5, 2, 3),
                                       note="self-attention")],
    # similarities
    "cosine_similarity": [
        r("2d", fn=lambda m, h: F.cosine_similarity(h, _t(h), dim=-1), note="width"),
        e("2d", fn=lambda m, h: F.cosine_similarity(h, _t(h), dim=1).unsqueeze(1),
          note="channels")],
    "pairwise_distance": [
        r("2d", fn=lambda m, h: F.pairwise_distance(h, _t(h)), note="width"),
        e("last", fn=lambda m, h: F.pairwise_distance(h, _t(h)), note="channels")],
    "pdist": [e("last", fn=lambda m, h: F.pdist(h).unsqueeze(0), x=_randn(6, 3),
                note="rows of channels")],
    # not layers in a channel path
    "assert_int_or_pair": "an argument check, not an operation on tensors",
    "one_hot": "takes integer class indices (a new axis of classes), not channels",
    "scaled_mm": "an fp8 matrix product with scales (CUDA kernels for quantised tensors)",
    "scaled_grouped_mm": "an fp8 grouped matrix product with scales (CUDA kernels for "
                         "quantised tensors)",
    **{name: LOSS for name in (
        "binary_cross_entropy", "binary_cross_entropy_with_logits", "cosine_embedding_loss",
        "cross_entropy", "ctc_loss", "gaussian_nll_loss", "hinge_embedding_loss", "huber_loss",
        "kl_div", "l1_loss", "linear_cross_entropy", "margin_ranking_loss", "mse_loss",
        "multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss", "nll_loss",
        "poisson_nll_loss", "smooth_l1_loss", "soft_margin_loss", "triplet_margin_loss",
        "triplet_margin_with_distance_loss")},
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# the catalogue: pointwise ops. Each is called as f(h, ...) with f = torch.<name> or
# h.<name>(...) (both where both exist); all are channel-wise, so all resizable. A pointwise op
# applied channel for channel to the producer's output (and a second operand derived from it)
# must let those channels shrink.

_CALLS: dict[str, tuple[str, Callable]] = {}  # name -> (domain, call(f, h))


def _pointwise(domain: str, names: str, call: Callable) -> None:
    for name in names.split():
        _CALLS[name] = (domain, call)


_pointwise(
    "real",
    """abs angle asinh atan ceil ceil_ celu celu_ clone conj_physical
           conj_physical_ cos cos_ cosh cosh_ deg2rad deg2rad_ erf erf_ erfc erfc_ exp exp2 exp2_
           exp_ expm1 expm1_ floor floor_ frac frac_ hardshrink i0 i0_ nan_to_num nan_to_num_ neg
           neg_ positive rad2deg rad2deg_ relu relu_ round round_ selu selu_ sgn sgn_ sigmoid
           sigmoid_ sign sign_ sin sin_ sinc sinc_ sinh sinh_ square square_ tan tan_ tanh tanh_
           trunc trunc_ asinh_ atan_""",
    lambda f, h: f(h),
)
_pointwise(
    "unit",
    """acos acos_ asin asin_ atanh atanh_ digamma digamma_ erfinv erfinv_ lgamma
           lgamma_ log log10 log10_ log1p log1p_ log2 log2_ log_ logit logit_ reciprocal
           reciprocal_ rsqrt rsqrt_ sqrt sqrt_""",
    lambda f, h: f(h),
)
_pointwise("above1", "acosh acosh_", lambda f, h: f(h))
_pointwise("real", "isfinite isinf isnan isneginf isposinf signbit", lambda f, h: _float(f(h)))
_pointwise(
    "real",
    """add add_ atan2 atan2_ copysign div div_ fmax fmin fmod fmod_ heaviside hypot
           hypot_ ldexp ldexp_ logaddexp logaddexp2 max maximum min minimum mul mul_ nextafter
           nextafter_ remainder remainder_ rsub sub sub_ true_divide xlogy xlogy_""",
    lambda f, h: f(h, _t(h)),
)
_pointwise("unit", "igamma igamma_ igammac igammac_ pow pow_", lambda f, h: f(h, _t(h)))
_pointwise("real", "ge gt le lt", lambda f, h: _float(f(h, _t(h))))
_pointwise("real", "eq ne", lambda f, h: _float(f(h.round(), _t(h).round())))
_pointwise(
    "real",
    """logical_and logical_and_ logical_or logical_or_ logical_xor logical_xor_
           bitwise_and bitwise_and_ bitwise_or bitwise_or_ bitwise_xor bitwise_xor_""",
    lambda f, h: _float(f(_bool(h), _bool(_t(h), 0.6))),
)
_pointwise(
    "real", "logical_not logical_not_ bitwise_not bitwise_not_", lambda f, h: _float(f(_bool(h)))
)
_pointwise(
    "real",
    """bitwise_left_shift bitwise_left_shift_ bitwise_right_shift
           bitwise_right_shift_""",
    lambda f, h: _float(f(_int(h), 1)),
)
_pointwise("real", "gcd lcm", lambda f, h: _float(f(_int(h) + 2, _int(_t(h)) + 3)))
_pointwise("real", "addcmul addcmul_ addcdiv addcdiv_", lambda f, h: f(h, h, _t(h), value=0.5))
_pointwise("real", "lerp lerp_", lambda f, h: f(h, _t(h), 0.3))
_pointwise("real", "masked_fill", lambda f, h: f(h, _bool(h), 0.5))
_pointwise("real", "clamp clamp_ clip clip_", lambda f, h: f(h, -0.3, 0.3))
_pointwise("real", "clamp_min clamp_min_ clamp_max clamp_max_", lambda f, h: f(h, 0.1))
_pointwise("real", "threshold", lambda f, h: f(h, 0.1, -1.0))
_pointwise("real", "frexp", lambda f, h: f(h)[0])
_pointwise("unit", "mvlgamma mvlgamma_", lambda f, h: f(h, 1))
_pointwise(
    "unit",
    "float_power float_power_",
    lambda f, h: _float(f(h.to(torch.float64), _t(h).to(torch.float64))),
)
_pointwise("real", "rrelu", lambda f, h: f(h, 0.1, 0.3, training=False))
# the condition or order comes first in torch.<name>: (torch form, method form)
_ORDERED: dict[str, tuple[Callable, Callable]] = {
    "where": (lambda h: torch.where(_bool(h), h, _t(h)), lambda h: h.where(_bool(h), _t(h))),
    "polygamma": (lambda h: torch.polygamma(1, h), lambda h: h.polygamma(1)),
    "polygamma_": (None, lambda h: h.polygamma_(1)),
}
_pointwise("real", "where", None)
_pointwise("unit", "polygamma polygamma_", None)


def _unit_x(gen: torch.Generator) -> Tensor:
    """One input for every pointwise op (in [0, 1): the domains' producers need it)."""
    return torch.rand(SHAPES["1d"], generator=gen)


def _pointwise_cases(name: str) -> list[Case]:
    domain, call = _CALLS[name]
    cases = []
    for form in ("torch", "Tensor"):
        if not hasattr(torch if form == "torch" else Tensor, name):
            continue
        if name in _ORDERED:
            g = _ORDERED[name][form == "Tensor"]
            fn = lambda m, h, g=g: g(h)  # noqa: E731
        elif form == "torch":
            f = getattr(torch, name)
            fn = lambda m, h, f=f, call=call: call(f, h)  # noqa: E731
        else:
            fn = lambda m, h, n=name, call=call: call(  # noqa: E731
                lambda t, *a, **k: getattr(t, n)(*a, **k), h
            )
        cases.append(r("1d", fn=fn, domain=domain, note=f"{form}.{name}", x=_unit_x))
    return cases


POINTWISE: dict[str, list[Case] | str] = {
    **{name: _pointwise_cases(name) for name in _CALLS},
    "equal": "compares two whole tensors into one Python bool (a test, not a layer)",
}


# --------------------------------------------------------------------------------------------
# the checks

CATALOGUES = {"torch.nn": (MODULES, torch_nn_modules), "torch.nn.functional": (FUNCTIONAL,
              torch_functional), "pointwise": (POINTWISE, torch_pointwise)}  # fmt: skip


@pytest.mark.parametrize("namespace", list(CATALOGUES))
def test_catalogue_covers_torch(namespace):
    catalogue, enumerate_torch = CATALOGUES[namespace]
    offered = enumerate_torch()
    undecided = sorted(offered - catalogue.keys())
    gone = sorted(catalogue.keys() - offered)
    assert not undecided, f"undecided {namespace} ops (add them to the catalogue): {undecided}"
    assert not gone, f"gone from {namespace} (remove them from the catalogue): {gone}"
    for name, entry in catalogue.items():
        assert entry, f"{name}: no case and no reason"
        if isinstance(entry, str):
            continue
        labels = [c.note for c in entry]
        assert len(set(labels)) == len(labels), f"{name}: cases need distinct notes"


pytestmark = pytest.mark.usefixtures("one_thread")


def _cases(namespaces: tuple[str, ...]) -> list[tuple[str, str, Case]]:
    """(test id, name, case) of every case in those catalogues."""
    out = []
    for namespace in namespaces:
        for name, entry in CATALOGUES[namespace][0].items():
            if isinstance(entry, str):
                continue
            for case in entry:
                if namespace == "pointwise":
                    label = case.note
                else:
                    label = f"{name}[{case.note}]" if case.note else name
                    label = ("F." if namespace == "torch.nn.functional" else "") + label
                out.append((label, name, case))
    return out


LAYERS = _cases(("torch.nn", "torch.nn.functional"))
# pointwise ops are checked a dozen to a network: each in a lane of its own (its own producer,
# group, consumer and output), so one conversion decides twelve
_POINTWISE = _cases(("pointwise",))
BATCHES = [_POINTWISE[i : i + 12] for i in range(0, len(_POINTWISE), 12)]


def _plain(text: str) -> str:
    """Lower case without spaces and underscores: "channel shuffle" names ChannelShuffle."""
    return text.lower().replace(" ", "").replace("_", "")


def _relative(got: Tensor, want: Tensor) -> float:
    scale = want.abs().max().clamp_min(1e-12)
    return ((got - want).abs().max() / scale).item()


def _run(model: nn.Module, x: Tensor) -> Any:
    torch.manual_seed(7)  # random pools draw the same samples in every model
    with torch.no_grad():
        return model(x)


def _state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("name", "case"), [pytest.param(n, c, id=i) for i, n, c in LAYERS])
def test_outcome(name: str, case: Case):
    _check(name, case)


@pytest.mark.parametrize("batch", [pytest.param(b, id=f"{b[0][0]}..{b[-1][0]}") for b in BATCHES])
def test_pointwise(batch: list[tuple[str, str, Case]]):
    failures = _check_lanes(batch)
    assert not failures, "wrong outcomes:\n" + "\n".join(f"{k}: {v}" for k, v in failures.items())


_ENDS = ("model input", "model output")


def _width(full: int) -> int:
    return 5 if full > 5 else max(1, full - 1)


def _check(name: str, case: Case) -> None:
    model, x = case.build()
    before = _state(model)
    want = _run(model, x)
    # reordering the channels is what costs most in a conversion: done where the op holds
    # tensors of its own, which must follow the order of the channels
    own = [t for n, t in model.state_dict().items() if not n.startswith(("first.", "last."))]
    imodel = inn.convert(model, x, permute=bool(own))
    error = _relative(_run(imodel, x), want)
    assert error <= 1e-4, f"{name}: not exact at full width (relative error {error:.2e})"

    groups = {g.name: g for g in imodel.groups}
    inner = [g for g in imodel.groups if g.reason not in _ENDS]
    for g in case.groups:
        assert g in groups, f"{name}: no group {g!r} among {sorted(groups)}"
    expect = case.expect
    primary = groups[case.groups[0]] if case.groups else None
    if expect == "either":
        expect = "resizable" if primary.resizable else "pinned"
    if expect == "pinned":
        assert not primary.resizable, f"{name}: {primary.name} should be pinned but is resizable"
        reason = _plain(primary.reason)
        for word in (case.named or name, *case.words):
            assert _plain(word) in reason, (
                f"{name}: the reason {primary.reason!r} of {primary.name} lacks {word!r}"
            )
    else:
        assert inner, f"{name}: no channel group inside the network: {sorted(groups)}"
        pinned = {g.name: g.reason for g in inner if not g.resizable}
        assert not pinned, f"{name}: should be resizable, pinned: {pinned}"
        imodel.resize(widths={g.name: _width(g.full_size) for g in inner})
        small = imodel.export()
        error = _relative(_run(small, x), _run(imodel, x))
        assert error <= 1e-4, f"{name}: export differs from the integral model ({error:.2e})"
        _plain_torch(small, name)
        count = sum(p.numel() for p in small.parameters())
        assert count < sum(p.numel() for p in model.parameters()), f"{name}: nothing removed"
    _unchanged(model, before, name)


class Lanes(nn.Module):
    """Networks side by side on one input, the outputs a tuple."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.count = len(nets)
        for i, net in enumerate(nets):
            self.add_module(f"lane{i}", net)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f"lane{i}")(x) for i in range(self.count))


def _check_lanes(batch: list[tuple[str, str, Case]]) -> dict[str, str]:
    """What is wrong with each op of ``batch`` (all expected resizable), by label; where the
    network as a whole cannot be converted, resized or exported, each op is checked alone."""
    built = [case.build() for _, _, case in batch]
    model = Lanes([m for m, _ in built]).eval()
    xs = built[0][1]  # the same input in every lane (see _pointwise_cases)
    before = _state(model)
    labels = [label for label, _, _ in batch]
    try:
        want = _run(model, xs)
        imodel = inn.convert(model, xs, permute=False)
        got = _run(imodel, xs)
    except Exception:
        return _singly(batch)
    failures = {}
    groups = {g.name: g for g in imodel.groups}
    for i, label in enumerate(labels):
        group = groups.get(f"lane{i}.first:out")
        error = _relative(got[i], want[i])
        if error > 1e-4:
            failures[label] = f"not exact at full width (relative error {error:.2e})"
        elif group is None:
            failures[label] = f"no group lane{i}.first:out among {sorted(groups)}"
        elif not group.resizable:
            failures[label] = f"should be resizable, pinned: {group.reason!r}"
    inner = [g for g in imodel.groups if g.reason not in _ENDS and g.resizable]
    try:
        imodel.resize(widths={g.name: _width(g.full_size) for g in inner})
        small = imodel.export()
        got, want = _run(small, xs), _run(imodel, xs)
    except Exception:
        return {**failures, **_singly([b for b in batch if b[0] not in failures])}
    for i, label in enumerate(labels):
        error = _relative(got[i], want[i])
        if label not in failures and error > 1e-4:
            failures[label] = f"export differs from the integral model ({error:.2e})"
    _plain_torch(small, "pointwise ops")
    _unchanged(model, before, "pointwise ops")
    return failures


def _singly(batch: list[tuple[str, str, Case]]) -> dict[str, str]:
    failures = {}
    for label, name, case in batch:
        try:
            _check(name, case)
        except Exception as err:  # an assertion, or the library's own failure
            failures[label] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    return failures


def _plain_torch(small: nn.Module, name: str) -> None:
    for sub_name, sub in small.named_modules():
        assert not type(sub).__module__.startswith("inn"), f"{name}: {sub_name} is inn's"


def _unchanged(model: nn.Module, before: dict[str, Tensor], name: str) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys(), f"{name}: conversion changed the model's state keys"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{name}: conversion changed the model's {changed}"
