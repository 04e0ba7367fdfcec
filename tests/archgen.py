"""Random tiny CNN architectures for fuzzing :func:`inn.convert` (used by the fuzz tests).

An architecture is an :class:`Arch`: the input size, a weight seed, a list of :class:`Op` (each
a kind and a few integer parameters) and a :class:`Head`. Its ``repr`` is valid Python
(``Arch(hw=8, seed=0, ops=(Op('conv', src=0, out=4, ...), ...), head=Head(...))``), so a failing
example printed by hypothesis can be pasted into a reproducer; :meth:`Arch.to_json` and
:meth:`Arch.from_json` serialise it.

Values are numbered: value 0 is the model input (``1 x 3 x hw x hw``), every op appends its
output(s) (a ``chunk``/``split`` appends one value per piece). Ops read their inputs by these
numbers (``src``, ``a``, ``b``, ``c``); the head reads the last value. :func:`build` returns an
``nn.Module`` whose ``forward`` interprets the spec with plain Python loops, so ``torch.fx``
traces it into a flat graph. :func:`arches` is the hypothesis strategy; it tracks the channels
and the spatial size of every value so that each drawn architecture runs.

Op kinds and their parameters (all ints; flags are 0/1; ``style`` picks between equivalent
spellings: module, ``torch.nn.functional`` or tensor method):

* ``conv(src, out, k, stride, pad, dil, bias)``: dense ``Conv2d``.
* ``dw(src, k, stride, pad, dil, bias)``: depthwise ``Conv2d`` (groups = channels).
* ``gconv(src, out, k, stride, bias)``: grouped ``Conv2d`` with 2 groups (``k = 3`` pads 1).
* ``bn(src)``: ``BatchNorm2d`` with random running statistics and affine parameters.
* ``act(src, fn, style)``: ``fn`` 0 ReLU, 1 SiLU, 2 Hardswish.
* ``add(a, b, style)``: residual addition of two values of equal shape.
* ``cat(a, b, c, style)``: ``torch.cat`` along channels (``c = -1``: two operands).
* ``se(src, hidden, pool, gate, style)``: squeeze-excitation,
  ``x * sigmoid(fc2(relu(fc1(pool(x)))))``.
* ``pool(src, fn, mode, style)``: ``fn`` 0 max, 1 avg; ``mode`` 0 ``k=2, s=2``, 1 ``k=3, s=1, p=1``.
* ``chunk(src, n, style)``: ``torch.chunk`` into ``n`` pieces (torch's sizes, maybe fewer).
* ``split(src, size, style)``: ``torch.split`` along channels: ``style`` 0/1 split in pieces of
  ``size`` (function/method), 2 split into ``[size, channels - size]``.
* ``again(src, op)``: call the module of earlier op number ``op`` (a ``conv``, ``dw``, ``gconv``
  or ``bn``) a second time, on value ``src`` (shared weights).

Head: ``Head(kind, style, hidden, act, bn, out)``: ``kind`` 0 adaptive average pool + flatten,
1 flatten of ``C x H x W``, 2 ``x.view(x.size(0), -1)``; then ``Linear(features, out)``, or with
``hidden > 0``: ``Linear(features, hidden)`` [-> ReLU if ``act``] [-> ``BatchNorm1d`` if ``bn``]
-> ``Linear(hidden, out)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import Tensor, nn

__all__ = [
    "KINDS",
    "Arch",
    "Head",
    "Op",
    "arches",
    "build",
    "example_input",
    "shapes",
]

MAX_CHANNELS = 12  # widest layer a conv produces
MAX_CAT_CHANNELS = 24  # widest concatenation
KINDS = ("conv", "bn", "act", "add", "cat", "pool", "dw", "se", "gconv", "chunk", "split", "again")
_REUSABLE = ("conv", "dw", "gconv", "bn")  # kinds whose module ``again`` may call a second time
# relative frequencies of the op kinds (others: 1)
_WEIGHTS = {"conv": 4, "bn": 2, "act": 2, "add": 2, "cat": 2, "gconv": 2}
_PARAMS = {
    "conv": ("src", "out", "k", "stride", "pad", "dil", "bias"),
    "dw": ("src", "k", "stride", "pad", "dil", "bias"),
    "gconv": ("src", "out", "k", "stride", "bias"),
    "bn": ("src",),
    "act": ("src", "fn", "style"),
    "add": ("a", "b", "style"),
    "cat": ("a", "b", "c", "style"),
    "se": ("src", "hidden", "pool", "gate", "style"),
    "pool": ("src", "fn", "mode", "style"),
    "chunk": ("src", "n", "style"),
    "split": ("src", "size", "style"),
    "again": ("src", "op"),
}


class Op:
    """One operation: ``kind`` and integer parameters (see the module docstring)."""

    __slots__ = ("kind", "params")

    def __init__(self, kind: str, **params: int) -> None:
        if kind not in _PARAMS:
            raise ValueError(f"unknown op kind {kind!r}")
        if set(params) != set(_PARAMS[kind]):
            raise ValueError(f"{kind} takes {_PARAMS[kind]}, got {sorted(params)}")
        self.kind = kind
        self.params = tuple((name, int(params[name])) for name in _PARAMS[kind])

    def __getattr__(self, name: str) -> int:
        for key, value in object.__getattribute__(self, "params"):
            if key == name:
                return value
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Op) and (self.kind, self.params) == (other.kind, other.params)

    def __hash__(self) -> int:
        return hash((self.kind, self.params))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"Op({self.kind!r}, {args})"

    def inputs(self) -> list[int]:
        if self.kind == "add":
            return [self.a, self.b]
        if self.kind == "cat":
            return [self.a, self.b] + ([self.c] if self.c >= 0 else [])
        return [self.src]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.params)}


@dataclass(frozen=True)
class Head:
    kind: int = 0  # 0 adaptive avg pool + flatten, 1 flatten C x H x W, 2 x.view(x.size(0), -1)
    style: int = 0  # flatten spelling: 0 torch.flatten, 1 Tensor.flatten, 2 nn.Flatten
    hidden: int = 0  # 0: a single Linear; else Linear -> [ReLU] -> [BatchNorm1d] -> Linear
    act: int = 0
    bn: int = 0
    out: int = 4


@dataclass(frozen=True)
class Arch:
    hw: int = 8
    seed: int = 0
    ops: tuple[Op, ...] = ()
    head: Head = field(default_factory=Head)
    in_channels: int = 3

    def __repr__(self) -> str:
        ops = "".join(f"\n    {op!r}," for op in self.ops)
        return (
            f"Arch(hw={self.hw}, seed={self.seed}, in_channels={self.in_channels}, ops=({ops}\n), "
            f"head={self.head!r})"
        )

    def kinds(self) -> set[str]:
        return {op.kind for op in self.ops}

    def to_json(self) -> str:
        return json.dumps(
            {
                "hw": self.hw,
                "seed": self.seed,
                "in_channels": self.in_channels,
                "ops": [op.to_dict() for op in self.ops],
                "head": self.head.__dict__,
            }
        )

    @staticmethod
    def from_json(text: str) -> Arch:
        d = json.loads(text)
        ops = tuple(Op(o.pop("kind"), **o) for o in d["ops"])
        return Arch(d["hw"], d["seed"], ops, Head(**d["head"]), d["in_channels"])


# -- shapes ------------------------------------------------------------------------------------
def _conv_size(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _chunk_sizes(channels: int, n: int) -> list[int]:
    step = -(-channels // n)
    return [min(step, channels - start) for start in range(0, channels, step)]


def _split_sizes(channels: int, size: int, style: int) -> list[int]:
    if style == 2:
        return [size, channels - size]
    return [min(size, channels - start) for start in range(0, channels, size)]


def _reapplied(op: Op, ops: tuple[Op, ...] | list[Op]) -> Op:
    """The op whose module ``again`` calls, reading ``again``'s source."""
    ref = ops[op.op]
    return Op(ref.kind, **{**dict(ref.params), "src": op.src})


def _outputs(
    op: Op, values: list[tuple[int, int]], ops: tuple[Op, ...] | list[Op] = ()
) -> list[tuple[int, int]]:
    """(channels, spatial size) of the value(s) ``op`` appends (``ops``: the ops before it)."""
    if op.kind == "again":
        return _outputs(_reapplied(op, ops), values)
    c, s = values[op.inputs()[0]]
    k = op.kind
    if k == "conv":
        return [(op.out, _conv_size(s, op.k, op.stride, op.pad, op.dil))]
    if k == "dw":
        return [(c, _conv_size(s, op.k, op.stride, op.pad, op.dil))]
    if k == "gconv":
        return [(op.out, _conv_size(s, op.k, op.stride, op.k // 2, 1))]
    if k == "pool":
        return [(c, s // 2 if op.mode == 0 else s)]
    if k == "cat":
        return [(sum(values[i][0] for i in op.inputs()), s)]
    if k == "chunk":
        return [(n, s) for n in _chunk_sizes(c, op.n)]
    if k == "split":
        return [(n, s) for n in _split_sizes(c, op.size, op.style)]
    return [(c, s)]  # bn, act, add, se


def shapes(arch: Arch) -> list[tuple[int, int]]:
    """(channels, spatial size) of every value of ``arch`` (value 0 is the input)."""
    values = [(arch.in_channels, arch.hw)]
    for i, op in enumerate(arch.ops):
        values.extend(_outputs(op, values, arch.ops[:i]))
    return values


# -- the model ---------------------------------------------------------------------------------
_ACT_MODULES = (nn.ReLU, nn.SiLU, nn.Hardswish)
_ACT_FUNCTIONS = (F.relu, F.silu, F.hardswish)


def _act(fn: int, style: int, module: nn.Module | None, x: Tensor) -> Tensor:
    if module is not None:
        return module(x)
    if style == 2 and fn == 0:
        return torch.relu(x)
    return _ACT_FUNCTIONS[fn](x)


def _flatten(style: int, module: nn.Module | None, x: Tensor) -> Tensor:
    if module is not None:
        return module(x)
    return torch.flatten(x, 1) if style == 0 else x.flatten(1)


class SpecNet(nn.Module):
    """The network of an :class:`Arch`; submodules are named ``op<i>_<kind>[_<part>]``."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        self.channels = [c for c, _ in shapes(arch)]  # Python ints: constants for fx
        self.pieces: dict[int, int] = {}  # op index -> number of values it appends
        values = [(arch.in_channels, arch.hw)]
        for i, op in enumerate(arch.ops):
            c, _ = values[op.inputs()[0]]
            name = f"op{i}_{op.kind}"
            if op.kind == "conv":
                conv = nn.Conv2d(c, op.out, op.k, op.stride, op.pad, op.dil, bias=bool(op.bias))
                self.add_module(name, conv)
            elif op.kind == "dw":
                dw = nn.Conv2d(c, c, op.k, op.stride, op.pad, op.dil, groups=c, bias=bool(op.bias))
                self.add_module(name, dw)
            elif op.kind == "gconv":
                g = nn.Conv2d(c, op.out, op.k, op.stride, op.k // 2, groups=2, bias=bool(op.bias))
                self.add_module(name, g)
            elif op.kind == "bn":
                self.add_module(name, nn.BatchNorm2d(c))
            elif op.kind == "act" and op.style == 0:
                self.add_module(name, _ACT_MODULES[op.fn]())
            elif op.kind == "se":
                self.add_module(f"{name}_fc1", nn.Conv2d(c, op.hidden, 1))
                self.add_module(f"{name}_fc2", nn.Conv2d(op.hidden, c, 1))
                if op.style == 0:
                    self.add_module(f"{name}_pool", nn.AdaptiveAvgPool2d(1))
                    self.add_module(f"{name}_relu", nn.ReLU())
                    self.add_module(f"{name}_gate", nn.Sigmoid())
            elif op.kind == "pool" and op.style == 0:
                cls = (nn.MaxPool2d, nn.AvgPool2d)[op.fn]
                self.add_module(name, cls(2, 2) if op.mode == 0 else cls(3, 1, 1))
            outputs = _outputs(op, values, arch.ops[:i])
            self.pieces[i] = len(outputs)
            values.extend(outputs)
        c, s = values[-1]
        h = arch.head
        if h.kind == 0 and h.style == 2:
            self.head_pool = nn.AdaptiveAvgPool2d(1)
        if h.kind in (0, 1) and h.style == 2:
            self.head_flatten = nn.Flatten()
        features = c if h.kind == 0 else c * s * s
        if h.hidden:
            self.head_fc1 = nn.Linear(features, h.hidden)
            if h.act:
                self.head_relu = nn.ReLU()
            if h.bn:
                self.head_bn = nn.BatchNorm1d(h.hidden)
            self.head_fc2 = nn.Linear(h.hidden, h.out)
        else:
            self.head_fc = nn.Linear(features, h.out)

    def _m(self, name: str) -> nn.Module | None:
        return self._modules.get(name)

    def forward(self, x: Tensor) -> Tensor:
        values = [x]
        for i, op in enumerate(self.arch.ops):
            name = f"op{i}_{op.kind}"
            k = op.kind
            if k in _REUSABLE:
                values.append(self._modules[name](values[op.src]))
            elif k == "again":
                module = self._modules[f"op{op.op}_{self.arch.ops[op.op].kind}"]
                values.append(module(values[op.src]))
            elif k == "act":
                values.append(_act(op.fn, op.style, self._m(name), values[op.src]))
            elif k == "add":
                a, b = values[op.a], values[op.b]
                if op.style == 0:
                    values.append(a + b)
                elif op.style == 1:
                    values.append(torch.add(a, b))
                else:
                    values.append(a.add(b))
            elif k == "cat":
                parts = [values[j] for j in op.inputs()]
                values.append(torch.cat(parts, dim=1) if op.style == 0 else torch.cat(parts, 1))
            elif k == "se":
                values.append(self._se(name, op, values[op.src]))
            elif k == "pool":
                values.append(self._pool(name, op, values[op.src]))
            elif k == "chunk":
                y = values[op.src]
                pieces = torch.chunk(y, op.n, dim=1) if op.style == 0 else y.chunk(op.n, 1)
                values.extend(pieces[j] for j in range(self.pieces[i]))
            elif k == "split":
                y = values[op.src]
                if op.style == 0:
                    pieces = torch.split(y, op.size, dim=1)
                elif op.style == 1:
                    pieces = y.split(op.size, 1)
                else:
                    pieces = torch.split(y, [op.size, self.channels[op.src] - op.size], 1)
                values.extend(pieces[j] for j in range(self.pieces[i]))
        return self._head(values[-1])

    def _se(self, name: str, op: Op, x: Tensor) -> Tensor:
        fc1, fc2 = self._modules[f"{name}_fc1"], self._modules[f"{name}_fc2"]
        if op.style == 0:
            s = self._modules[f"{name}_pool"](x)
        elif op.pool == 0:
            s = F.adaptive_avg_pool2d(x, 1)
        else:
            s = x.mean((2, 3), keepdim=True)
        s = fc1(s)
        s = self._modules[f"{name}_relu"](s) if op.style == 0 else F.relu(s)
        s = fc2(s)
        if op.style == 0:
            s = self._modules[f"{name}_gate"](s)
        else:
            s = torch.sigmoid(s) if op.gate == 0 else s.sigmoid()
        return x * s if op.gate == 0 or op.style == 0 else torch.mul(x, s)

    def _pool(self, name: str, op: Op, x: Tensor) -> Tensor:
        module = self._m(name)
        if module is not None:
            return module(x)
        fn = (F.max_pool2d, F.avg_pool2d)[op.fn]
        return fn(x, 2, 2) if op.mode == 0 else fn(x, 3, 1, 1)

    def _head(self, x: Tensor) -> Tensor:
        h = self.arch.head
        if h.kind == 0:
            x = self.head_pool(x) if h.style == 2 else F.adaptive_avg_pool2d(x, 1)
            x = _flatten(h.style, self._m("head_flatten"), x)
        elif h.kind == 1:
            x = _flatten(h.style, self._m("head_flatten"), x)
        else:
            x = x.view(x.size(0), -1)
        if not h.hidden:
            return self.head_fc(x)
        x = self.head_fc1(x)
        if h.act:
            x = self.head_relu(x)
        if h.bn:
            x = self.head_bn(x)
        return self.head_fc2(x)


def _randomise(net: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters (so folding matters)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) * 1.75 + 0.25)
                m.weight.copy_(torch.randn(n, generator=generator) * 0.5 + 1.0)
                m.bias.copy_(torch.randn(n, generator=generator) * 0.5)


def build(arch: Arch) -> SpecNet:
    """The network of ``arch`` in eval mode, with weights drawn from ``arch.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        net = SpecNet(arch)
    _randomise(net, torch.Generator().manual_seed(arch.seed + 1))
    return net.eval()


def example_input(arch: Arch, batch: int = 1, seed: int = 1234) -> Tensor:
    g = torch.Generator().manual_seed(seed + arch.seed)
    return torch.randn(batch, arch.in_channels, arch.hw, arch.hw, generator=g)


# -- the strategy --------------------------------------------------------------------------------
def _recent(draw: Any, n: int, candidates: list[int] | None = None) -> int:
    """A value index, the most recent one half of the time (shrinks towards the most recent)."""
    pool = candidates if candidates is not None else list(range(n))
    back = draw(st.one_of(st.just(0), st.integers(0, len(pool) - 1)))
    return pool[len(pool) - 1 - back]


def _channels(draw: Any, same: int) -> int:
    """An output width: the input's half of the time (so residual adds become possible)."""
    return draw(st.one_of(st.just(min(same, MAX_CHANNELS)), st.integers(1, MAX_CHANNELS)))


def _kernel(draw: Any, size: int) -> tuple[int, int, int, int]:
    """(k, stride, pad, dil) that keep the output at least 1 x 1."""
    k = draw(st.sampled_from((3, 1)))
    stride = draw(st.sampled_from((1, 2)))
    dil = draw(st.sampled_from((1, 2))) if k == 3 else 1
    pad = draw(st.sampled_from((dil, 0))) if k == 3 else draw(st.sampled_from((0, 1)))
    if _conv_size(size, k, stride, pad, dil) < 1:
        stride, pad = 1, dil * (k // 2)
    return k, stride, pad, dil


@st.composite
def _op(draw: Any, values: list[tuple[int, int]], ops: list[Op], kinds: tuple[str, ...]) -> Op:
    n = len(values)
    options = []
    reuses = _reuses(values, ops)
    for kind in kinds:
        if kind == "again" and not reuses:
            continue
        if kind == "add" and not _add_pairs(values):
            continue
        if kind == "cat" and not _cat_pairs(values):
            continue
        if kind == "gconv" and not any(c % 2 == 0 for c, _ in values):
            continue
        if kind in ("chunk", "split") and not any(c >= 2 for c, _ in values):
            continue
        options.append(kind)
    kind = draw(st.sampled_from([k for k in options for _ in range(_WEIGHTS.get(k, 1))]))
    if kind == "again":
        src, i = draw(st.sampled_from(reuses[::-1]))
        return Op("again", src=src, op=i)
    if kind == "add":
        a, b = draw(st.sampled_from(_add_pairs(values)[::-1]))
        return Op("add", a=a, b=b, style=draw(st.integers(0, 2)))
    if kind == "cat":
        a, b = draw(st.sampled_from(_cat_pairs(values)[::-1]))
        _, s = values[a]
        total = values[a][0] + values[b][0]
        thirds = [
            i for i, (c, si) in enumerate(values) if si == s and total + c <= MAX_CAT_CHANNELS
        ]
        c = draw(st.sampled_from([-1, *thirds])) if thirds else -1
        return Op("cat", a=a, b=b, c=c, style=draw(st.integers(0, 1)))
    if kind == "gconv":
        src = _recent(draw, n, [i for i, (c, _) in enumerate(values) if c % 2 == 0])
        k = draw(st.sampled_from((3, 1)))
        stride = draw(st.sampled_from((1, 2)))
        out = 2 * draw(st.integers(1, MAX_CHANNELS // 2))
        return Op("gconv", src=src, out=out, k=k, stride=stride, bias=draw(st.integers(0, 1)))
    if kind in ("chunk", "split"):
        src = _recent(draw, n, [i for i, (c, _) in enumerate(values) if c >= 2])
        c = values[src][0]
        if kind == "chunk":
            return Op(
                "chunk", src=src, n=draw(st.integers(2, min(3, c))), style=draw(st.integers(0, 1))
            )
        size = draw(st.integers(1, c - 1))
        return Op("split", src=src, size=size, style=draw(st.integers(0, 2)))
    src = _recent(draw, n)
    c, size = values[src]
    if kind == "conv":
        k, stride, pad, dil = _kernel(draw, size)
        out = _channels(draw, c)
        return Op(
            "conv",
            src=src,
            out=out,
            k=k,
            stride=stride,
            pad=pad,
            dil=dil,
            bias=draw(st.integers(0, 1)),
        )
    if kind == "dw":
        k, stride, pad, dil = _kernel(draw, size)
        return Op("dw", src=src, k=k, stride=stride, pad=pad, dil=dil, bias=draw(st.integers(0, 1)))
    if kind == "bn":
        return Op("bn", src=src)
    if kind == "act":
        return Op("act", src=src, fn=draw(st.integers(0, 2)), style=draw(st.integers(0, 2)))
    if kind == "se":
        hidden = draw(st.integers(1, max(1, c // 2)))
        return Op(
            "se",
            src=src,
            hidden=hidden,
            pool=draw(st.integers(0, 1)),
            gate=draw(st.integers(0, 1)),
            style=draw(st.integers(0, 1)),
        )
    if kind == "pool":
        mode = draw(st.integers(0, 1)) if size >= 2 else 1
        return Op(
            "pool", src=src, fn=draw(st.integers(0, 1)), mode=mode, style=draw(st.integers(0, 1))
        )
    raise AssertionError(kind)


def _reuses(values: list[tuple[int, int]], ops: list[Op]) -> list[tuple[int, int]]:
    """(value, op) pairs such that the op's module accepts the value (not its own input)."""
    out = []
    for i, op in enumerate(ops):
        if op.kind not in _REUSABLE:
            continue
        for j, (c, _) in enumerate(values):
            if j == op.src or c != values[op.src][0]:
                continue
            if all(s >= 1 for _, s in _outputs(Op("again", src=j, op=i), values, ops)):
                out.append((j, i))
    return out


def _add_pairs(values: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(i, j) for j in range(len(values)) for i in range(j) if values[i] == values[j]]


def _cat_pairs(values: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for j in range(len(values))
        for i in range(len(values))
        if i != j
        and values[i][1] == values[j][1]
        and values[i][0] + values[j][0] <= MAX_CAT_CHANNELS
    ]


@st.composite
def arches(
    draw: Any,
    kinds: tuple[str, ...] = KINDS,
    max_ops: int = 10,
    hw: tuple[int, int] = (8, 16),
) -> Arch:
    """Random architectures made of ``kinds`` (see the module docstring), 2 to ``max_ops`` ops
    (1 if ``max_ops`` is 1); convolutions are drawn most often, then BatchNorm, activations,
    additions and concatenations."""
    size = draw(st.integers(*hw))
    seed = draw(st.integers(0, 2**16))
    values = [(3, size)]
    ops = []
    for _ in range(draw(st.integers(min(2, max_ops), max_ops))):
        op = draw(_op(values, ops, kinds))
        values.extend(_outputs(op, values, ops))
        ops.append(op)
    hidden = draw(st.one_of(st.just(0), st.integers(1, MAX_CHANNELS)))
    head = Head(
        kind=draw(st.integers(0, 2)),
        style=draw(st.integers(0, 2)),
        hidden=hidden,
        act=draw(st.integers(0, 1)) if hidden else 0,
        bn=draw(st.integers(0, 1)) if hidden else 0,
        out=draw(st.integers(1, 10)),
    )
    return Arch(hw=size, seed=seed, ops=tuple(ops), head=head)
