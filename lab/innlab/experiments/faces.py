"""Networks from outside our zoo: MTCNN's RNet and ONet, pruned without fine-tuning.

The two refinement stages of the MTCNN face detector (Zhang et al., 2016) as shipped with their
trained weights inside the ``facenet-pytorch`` wheel (``pip install --no-deps
facenet-pytorch==2.6.0``): nobody here trained them. Both are convolutions with per-channel PReLU
and ceil-mode max pooling, a channels-last permute and flatten into a Linear layer, and heads
for the face probability (softmax of two), the box regression (four) and, in ONet, ten landmark
coordinates. RNet reads 24 x 24 crops, ONet 48 x 48, RGB as ``(x - 127.5) / 128``.

Crops (seeded, built from images that packages ship; nothing is downloaded):

* faces: the faces of ``astronaut``, ``grace_hopper`` and ``camera`` (boxes in
  :data:`FACE_BOXES`) under jittered square boxes (scale, shift, mirror), and the 100 faces of
  ``skimage.data.lfw_subset()`` (25 x 25 grey crops of 100 other people);
* near misses: crops whose IoU with one of those three faces is 0.1-0.3 (negatives by MTCNN's
  definition that still show part of a face);
* non-faces: random square crops (IoU < 0.3 with every face box) of the photographs, and the
  100 non-faces of ``lfw_subset`` (many are parts of faces too).

The calibration split (256 crops, inputs only: every loss is label-free) holds faces and near
misses of the three faces drawn with one seed each and non-face crops of ``chelsea``,
``coffee`` and ``china``. The evaluation split (800 crops) holds the same three faces under
other jitters (other seeds), all 200 ``lfw_subset`` crops (people and images calibration never
sees) and non-face crops of ``flower``, ``stereo_motorcycle``, ``astronaut``, ``grace_hopper``
and ``camera`` (away from the faces).

Methods at each compression (fraction of the parameters removed), the heads never pruned:

* ``inn``: :func:`inn.prune` with its defaults and the calibration crops (label-free: widths
  allocated by the output change on them, forward passes only);
* ``inn+tune``: the same, then partition tuning on them (150 steps, mean squared error to the
  original's outputs);
* ``inn-data-free``: :func:`inn.prune` without data;
* ``tp-lamp``, ``tp-l1``: Torch-Pruning's global ranking with LAMP or group L1 importance, in
  small steps until the parameter count is at most the target (no BatchNorm to re-estimate),
  on :class:`ChannelsFirst`, the same network with its channels-last flatten folded into the
  Linear layer (Torch-Pruning misreads the shipped layout); ``+calib``: then the biases
  trained on the calibration crops to match the original's outputs
  (:func:`inn.recover.calibrate_biases`, mean squared error, the same 150 steps);
* ``tp-l1-shipped``: ``tp-l1`` on the shipped layout, to measure what that misreading costs.

Every method prunes the network behind :class:`Heads`, which concatenates the heads into one
tensor, because the data-driven width allocation and the calibration helper read one output
tensor. Metrics are measured against the original network on the evaluation crops: agreement of
the face decision at 0.5 and at 0.7 (MTCNN's default RNet and ONet thresholds), the share of the
original's faces at 0.7 that stay faces, and mean absolute errors of the face probability, the
box regression and the landmarks. Only the public API of ``inn`` is used.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

import inn
from inn import InnError
from inn.budget import count_macs, count_parameters
from innlab.sr.data import load_image

__all__ = [
    "COMPRESSIONS",
    "FACE_BOXES",
    "METHODS",
    "NETWORKS",
    "ChannelsFirst",
    "Heads",
    "Row",
    "crops",
    "decisions",
    "layout_checks",
    "load_network",
    "markdown",
    "plot",
    "run",
    "save",
    "split_heads",
]

METHODS = (
    "inn", "inn+tune", "inn-data-free", "tp-lamp", "tp-l1", "tp-lamp+calib", "tp-l1+calib",
    "tp-l1-shipped",
)  # fmt: skip
COMPRESSIONS = (0.4, 0.6)
NETWORKS = {"rnet": 24, "onet": 48}  # name -> input crop size

# Face boxes (x1, y1, x2, y2), found once by running facenet_pytorch.MTCNN(keep_all=True)
# .detect(PIL image) (version 2.6.0, default thresholds, offline) on each image and rounding;
# each was the only detection, with probability > 0.999.
FACE_BOXES = {
    "astronaut": (181, 62, 268, 172),
    "grace_hopper": (174, 120, 356, 340),
    "camera": (199, 119, 254, 192),
}
# The same run's other detections, on stereo_motorcycle (probabilities 0.93 and 0.72): parts of
# the front wheel, no one is in that picture; as the detector's own false alarms they are
# neither faces nor clean non-faces, so non-face crops keep away from them too.
OTHER_BOXES = {"stereo_motorcycle": ((577, 332, 655, 436), (565, 294, 604, 344))}

FACE_IMAGES = ("astronaut", "grace_hopper", "camera")
CALIB_OTHER_IMAGES = ("chelsea", "coffee", "china")
EVAL_OTHER_IMAGES = ("flower", "stereo_motorcycle", "astronaut", "grace_hopper", "camera")
CALIB_COUNTS = (96, 64, 96)  # jittered faces, near misses, other crops
EVAL_COUNTS = (150, 150, 300)  # the same (plus lfw_subset's 100 faces and 100 non-faces)
CALIB_BATCH = 64
CALIB_STEPS = 150


# ---------------------------------------------------------------- networks


def load_network(name: str) -> nn.Module:
    """MTCNN's ``rnet`` or ``onet`` with the weights shipped in facenet-pytorch, in eval mode."""
    if name not in NETWORKS:
        raise InnError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    try:
        from facenet_pytorch.models.mtcnn import ONet, RNet
    except ImportError as error:
        raise InnError(
            "the faces experiment needs facenet-pytorch's MTCNN weights: "
            "pip install --no-deps facenet-pytorch==2.6.0 (and requests, which it imports)"
        ) from error
    return (RNet if name == "rnet" else ONet)().eval()


class Heads(nn.Module):
    """``net``'s outputs (a tuple of heads) concatenated along the feature axis, in the order
    the network returns them (RNet: box, probabilities; ONet: box, landmarks, probabilities)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self.net(x), 1)


class ChannelsFirst(nn.Module):
    """The same function as ``Heads(net)`` with the channels-last permute folded into the
    hidden Linear layer's columns, so the flatten reads channel-major.

    Torch-Pruning maps a pruned channel ``c`` to the Linear columns ``c * H * W ... (c + 1) *
    H * W - 1`` (a channel-major flatten); behind MTCNN's ``permute(0, 3, 2, 1)`` channel ``c``
    owns columns ``c, c + C, c + 2 C, ...``, so on the shipped layout it silently removes the
    wrong columns. This rewrite gives it a layout it indexes correctly.
    """

    def __init__(self, net: nn.Module, example: Tensor) -> None:
        super().__init__()
        net = copy.deepcopy(net)
        children = list(net.named_children())
        first = next(i for i, (_, m) in enumerate(children) if isinstance(m, nn.Linear))
        self.features = nn.Sequential(OrderedDict(children[:first]))
        self.hidden = nn.Sequential(OrderedDict(children[first : first + 2]))  # Linear, PReLU
        linears = [m for _, m in children[first + 2 :] if isinstance(m, nn.Linear)]
        # facenet-pytorch returns (box, [landmarks,] probabilities): the class head is the first
        self.heads = nn.ModuleList([*linears[1:], linears[0]])
        with torch.no_grad():
            c, h, w = self.features(example[:1]).shape[1:]
            dense = self.hidden[0]
            # column of (channel k, row i, column j) in the shipped layout: (j * h + i) * c + k
            k, i, j = torch.meshgrid(
                torch.arange(c), torch.arange(h), torch.arange(w), indexing="ij"
            )
            dense.weight.copy_(dense.weight[:, ((j * h + i) * c + k).reshape(-1)])
        self.train(net.training)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.hidden(self.features(x).flatten(1))
        outputs = [head(hidden) for head in self.heads]
        outputs[-1] = outputs[-1].softmax(1)
        return torch.cat(outputs, 1)


def split_heads(output: Tensor | Sequence[Tensor]) -> dict[str, Tensor]:
    """``{"bbox", "prob", ("landmarks")}`` of a network's output or of :class:`Heads`'s;
    ``prob`` is the face probability (the second softmax output)."""
    out = torch.cat(tuple(output), 1) if not isinstance(output, Tensor) else output
    if out.shape[1] == 6:
        return {"bbox": out[:, :4], "prob": out[:, 5]}
    if out.shape[1] == 16:
        return {"bbox": out[:, :4], "landmarks": out[:, 4:14], "prob": out[:, 15]}
    raise InnError(f"expected RNet's 6 or ONet's 16 output features, got {out.shape[1]}")


@torch.no_grad()
def decisions(net: nn.Module, x: Tensor, batch: int = 256) -> dict[str, Tensor]:
    """:func:`split_heads` of ``net`` on ``x``, in batches."""
    parts = [split_heads(net(chunk)) for chunk in x.split(batch)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------- crops


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _image255(name: str) -> Tensor:
    """``(3, H, W)`` RGB in [0, 255] (grey images repeated in R, G and B)."""
    return load_image(name) * 255.0


def _crop(image: Tensor, box: Sequence[float], size: int, flip: bool) -> Tensor:
    """The square ``box`` (x1, y1, x2, y2), moved inside the image, resized like MTCNN does
    (area interpolation), mirrored if ``flip``, normalised as MTCNN's input."""
    _, h, w = image.shape
    x1, y1, x2 = box[:3]
    side = round(min(x2 - x1, h, w))
    left = round(min(max(x1, 0), w - side))
    top = round(min(max(y1, 0), h - side))
    patch = image[None, :, top : top + side, left : left + side].contiguous()
    patch = F.interpolate(patch, size=(size, size), mode="area")[0]
    if flip:
        patch = patch.flip(-1)
    return (patch - 127.5) / 128.0


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _face_crops(
    images: Sequence[str], count: int, size: int, seed: int, near: bool = False
) -> Tensor:
    """``count`` crops around the faces of ``images``, mirrored half of the time.

    Faces (``near=False``): a square of the face box's longer side times a log-uniform scale in
    [0.8, 1.3], its centre shifted by up to 20 % of the side on each axis (MTCNN's positives and
    part faces, IoU about 0.4-1). Near misses (``near=True``): scale in [0.7, 1.5], shift up to
    90 %, kept where the IoU with the face box is in [0.1, 0.3): negatives by MTCNN's
    definition that still show part of a face, the hard cases.
    """
    rng = np.random.default_rng(seed)
    loaded = {name: _image255(name) for name in images}
    scale, shift = ((0.7, 1.5), 0.9) if near else ((0.8, 1.3), 0.2)
    out: list[Tensor] = []
    while len(out) < count:
        name = images[len(out) % len(images)]
        face = FACE_BOXES[name]
        x1, y1, x2, y2 = face
        side = max(x2 - x1, y2 - y1) * math.exp(rng.uniform(*np.log(scale)))
        cx = (x1 + x2) / 2 + rng.uniform(-shift, shift) * side
        cy = (y1 + y2) / 2 + rng.uniform(-shift, shift) * side
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        flip = bool(rng.integers(2))
        if not near or 0.1 <= _iou(box, face) < 0.3:
            out.append(_crop(loaded[name], box, size, flip))
    return torch.stack(out)


def _other_crops(images: Sequence[str], count: int, size: int, seed: int) -> Tensor:
    """``count`` random square crops of ``images`` (side log-uniform from 24 pixels to half the
    shorter image side, mirrored half of the time) whose IoU with every face box (and every
    other detection) is below 0.3, MTCNN's definition of a negative."""
    rng = np.random.default_rng(seed)
    loaded = {name: _image255(name) for name in images}
    out: list[Tensor] = []
    while len(out) < count:
        name = images[len(out) % len(images)]
        image = loaded[name]
        _, h, w = image.shape
        side = math.exp(rng.uniform(math.log(24), math.log(min(h, w) / 2)))
        x1, y1 = rng.uniform(0, w - side), rng.uniform(0, h - side)
        box = (x1, y1, x1 + side, y1 + side)
        flip = bool(rng.integers(2))
        avoid = [FACE_BOXES[name]] if name in FACE_BOXES else []
        avoid += list(OTHER_BOXES.get(name, ()))
        if all(_iou(box, b) < 0.3 for b in avoid):
            out.append(_crop(image, box, size, flip))
    return torch.stack(out)


def _lfw_subset(size: int) -> tuple[Tensor, Tensor]:
    """skimage's ``lfw_subset``: 100 faces then 100 non-faces, 25 x 25 grey in [0, 1]."""
    import skimage.data

    grey = torch.from_numpy(skimage.data.lfw_subset()).float()[:, None] * 255.0
    rgb = F.interpolate(grey.expand(-1, 3, -1, -1), size=(size, size), mode="area")
    x = (rgb - 127.5) / 128.0
    return x[:100], x[100:]


def crops(size: int, split: str) -> tuple[Tensor, Tensor]:
    """``(inputs, kind)`` of the ``"calib"`` or ``"eval"`` split at ``size`` x ``size``.

    ``kind`` says where each crop came from (1: a face, 0: not a face, 2: a near miss of a
    face, IoU 0.1-0.3); it is never shown to a method: the metrics compare with the original.
    """
    with _threads(1):  # hundreds of tiny resizes: threads cost more than they save
        return _crops(size, split)


def _crops(size: int, split: str) -> tuple[Tensor, Tensor]:
    if split == "calib":
        parts = [
            (_face_crops(FACE_IMAGES, CALIB_COUNTS[0], size, seed=0), 1),
            (_face_crops(FACE_IMAGES, CALIB_COUNTS[1], size, seed=1, near=True), 2),
            (_other_crops(CALIB_OTHER_IMAGES, CALIB_COUNTS[2], size, seed=2), 0),
        ]
    elif split == "eval":
        lfw_faces, lfw_others = _lfw_subset(size)
        parts = [
            (_face_crops(FACE_IMAGES, EVAL_COUNTS[0], size, seed=10), 1),
            (lfw_faces, 1),
            (_face_crops(FACE_IMAGES, EVAL_COUNTS[1], size, seed=11, near=True), 2),
            (_other_crops(EVAL_OTHER_IMAGES, EVAL_COUNTS[2], size, seed=12), 0),
            (lfw_others, 0),
        ]
    else:
        raise InnError(f"unknown split {split!r}; choose 'calib' or 'eval'")
    kind = torch.cat([torch.full((len(x),), k, dtype=torch.long) for x, k in parts])
    return torch.cat([x for x, _ in parts]), kind


# ---------------------------------------------------------------- methods


def _torch_pruning(model: nn.Module, example: Tensor, target: int, importance: str) -> nn.Module:
    """Torch-Pruning's global ranking, in 200 steps of its linear schedule up to 95 % of the
    channels, stopped at the first step whose parameter count is at most ``target``; the heads
    (every Linear layer narrower than the widest, the hidden one) keep their outputs."""
    import torch_pruning as tp

    pruned = copy.deepcopy(model).eval()
    linears = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    width = max(m.out_features for m in linears)
    heads = [m for m in linears if m.out_features < width]
    scorer = (
        tp.importance.LAMPImportance(p=2)
        if importance == "lamp"
        else tp.importance.GroupMagnitudeImportance(p=1)
    )
    steps = 200
    pruner = tp.pruner.MetaPruner(
        pruned, example, importance=scorer, global_pruning=True, pruning_ratio=0.95,
        iterative_steps=steps, ignored_layers=heads,
    )  # fmt: skip
    for _ in range(steps):
        if count_parameters(pruned) <= target:
            break
        pruner.step()
    if count_parameters(pruned) > target:
        raise InnError(f"Torch-Pruning could not reach {target} parameters")
    return pruned.eval()


def prune(
    method: str, model: Heads, example: Tensor, calib: list[Tensor], compression: float,
    seed: int, steps: int = CALIB_STEPS,
) -> nn.Module:  # fmt: skip
    """``model`` pruned by ``method`` to remove ``compression`` of its parameters; the result
    computes what ``model`` computes (one tensor of all heads)."""
    if method == "inn":
        return inn.prune(model, example, compression=compression, calib=calib,
                         convert_options={"seed": seed})  # fmt: skip
    if method == "inn+tune":
        return inn.prune(model, example, compression=compression, calib=calib, tune=True,
                         convert_options={"seed": seed},
                         tune_options={"steps": steps, "loss": "mse"})  # fmt: skip
    if method == "inn-data-free":
        return inn.prune(model, example, compression=compression, convert_options={"seed": seed})
    if method.startswith("tp-"):
        importance = method.removeprefix("tp-").split("+")[0].removesuffix("-shipped")
        target = int((1 - compression) * count_parameters(model))
        layout = model if "-shipped" in method else ChannelsFirst(model.net, example)
        small = _torch_pruning(layout, example, target, importance)
        if method.endswith("+calib"):
            inn.recover.calibrate_biases(small, model, calib, steps=steps, loss="mse")
        return small
    raise InnError(f"unknown method {method!r}; choose one of {METHODS}")


# ---------------------------------------------------------------- experiment


@dataclass(frozen=True)
class Row:
    network: str
    method: str
    compression: float  # the fraction of parameters asked to be removed (0: the original)
    seed: int
    parameters: int
    macs: int
    seconds: float  # wall time of pruning (conversion, allocation, calibration included)
    agree_50: float  # share of evaluation crops with the same face decision at 0.5
    agree_70: float  # ... at 0.7
    faces_kept_70: float  # of the original's faces at 0.7, the share still faces at 0.7
    prob_mae: float
    bbox_mae: float
    landmarks_mae: float | None  # ONet only


def _metrics(reference: dict[str, Tensor], out: dict[str, Tensor]) -> dict[str, float | None]:
    p0, p = reference["prob"], out["prob"]
    found = p0 >= 0.7
    return {
        "agree_50": float(((p0 >= 0.5) == (p >= 0.5)).float().mean()),
        "agree_70": float(((p0 >= 0.7) == (p >= 0.7)).float().mean()),
        "faces_kept_70": float((p[found] >= 0.7).float().mean()),
        "prob_mae": float((p - p0).abs().mean()),
        "bbox_mae": float((out["bbox"] - reference["bbox"]).abs().mean()),
        "landmarks_mae": (
            float((out["landmarks"] - reference["landmarks"]).abs().mean())
            if "landmarks" in out
            else None
        ),
    }


_KINDS = {1: "faces", 2: "near_misses", 0: "others"}


def _original_summary(name: str, probs: Tensor, kind: Tensor) -> dict:
    """How the original network answers: per kind of crop, how many and the share it calls a
    face at 0.7."""
    return {
        "network": name,
        "eval_crops": len(probs),
        **{f"eval_{label}": int((kind == k).sum()) for k, label in _KINDS.items()},
        **{
            f"face_rate_70_{label}": float((probs[kind == k] >= 0.7).float().mean())
            for k, label in _KINDS.items()
        },
    }


def run(
    networks: Sequence[str] = tuple(NETWORKS),
    compressions: Sequence[float] = COMPRESSIONS,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = CALIB_STEPS,
    progress: bool = True,
    threads: int = 1,
) -> tuple[list[Row], list[dict]]:
    """Rows of every method at every compression for each network (``inn`` and
    ``inn-data-free`` at every permutation seed; ``inn+tune``, ten times dearer, and
    Torch-Pruning, deterministic, at the first), and a summary of how each
    original network answers on the evaluation crops. ``threads``: torch's intra-op threads
    during the run (one by default: these networks are too small for more to pay, and on a
    shared machine they cost several times the time)."""
    unknown = [n for n in networks if n not in NETWORKS] + [m for m in methods if m not in METHODS]
    if unknown:
        raise InnError(f"unknown {unknown}: networks {tuple(NETWORKS)}, methods {METHODS}")
    with _threads(threads):
        return _run(networks, compressions, methods, seeds, steps, progress)


def layout_checks(model: Heads, x: Tensor) -> dict[str, float]:
    """Three measurements on the evaluation crops ``x``:

    * ``convert_error``: the largest difference between the shipped network's heads and its
      conversion (``inn.convert``), relative to the head's largest value;
    * ``tp_dead_channels_{shipped,channels_first}``: the largest output change when
      Torch-Pruning removes five channels of the last convolution that are exactly zero (so
      removing them should change nothing), on the shipped layout and on :class:`ChannelsFirst`;
    * ``inn_layouts_difference``: the largest output difference between the conversions of the
      two layouts with every group at half its width (the same function if ``inn`` resamples
      the right Linear columns behind the permute).
    """
    import torch_pruning as tp

    example = x[:1]
    imodel = inn.convert(model.net, example)
    with torch.no_grad():
        error = max(
            float((got - want).abs().max() / want.abs().max())
            for got, want in zip(imodel(x), model.net(x), strict=True)
        )
    out = {"convert_error": error}
    dead = [1, 5, 7, 20, 33]
    for layout in ("shipped", "channels_first"):
        net = copy.deepcopy(model)
        net = net if layout == "shipped" else ChannelsFirst(net.net, example)
        last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
        with torch.no_grad():
            last.weight[dead] = 0.0
            last.bias[dead] = 0.0
            before = net(x)
        graph = tp.DependencyGraph().build_dependency(net, example_inputs=example)
        graph.get_pruning_group(last, tp.prune_conv_out_channels, idxs=dead).prune()
        with torch.no_grad():
            out[f"tp_dead_channels_{layout}"] = float((net(x) - before).abs().max())
    halves = []
    for layout in (model, ChannelsFirst(model.net, example)):
        converted = inn.convert(layout, example)
        converted.resize(widths={g.name: g.full_size // 2 for g in converted.resizable_groups})
        with torch.no_grad():
            halves.append(converted(x))
    out["inn_layouts_difference"] = float((halves[0] - halves[1]).abs().max())
    return out


def _run(
    networks: Sequence[str], compressions: Sequence[float], methods: Sequence[str],
    seeds: Sequence[int], steps: int, progress: bool,
) -> tuple[list[Row], list[dict]]:  # fmt: skip
    rows, originals = [], []
    for name in networks:
        size = NETWORKS[name]
        model = Heads(load_network(name)).eval()
        calib_x, _ = crops(size, "calib")
        eval_x, kind = crops(size, "eval")
        calib = list(calib_x.split(CALIB_BATCH))  # inputs alone: label-free
        example = eval_x[:1]
        reference = decisions(model, eval_x)
        summary = _original_summary(name, reference["prob"], kind)
        summary["parameters"] = count_parameters(model)
        summary["macs"] = count_macs(model, example)
        summary.update(layout_checks(model, eval_x))
        originals.append(summary)
        rows.append(Row(name, "original", 0.0, 0, summary["parameters"], summary["macs"], 0.0,
                        **_metrics(reference, reference)))  # fmt: skip
        jobs = [(m, c, s) for c in compressions for m in methods
                for s in (seeds if m in ("inn", "inn-data-free") else seeds[:1])]  # fmt: skip
        for method, compression, seed in tqdm(jobs, desc=f"faces {name}", disable=not progress):
            torch.manual_seed(seed)
            start = time.perf_counter()
            small = prune(method, model, example, calib, compression, seed, steps)
            seconds = time.perf_counter() - start
            small.eval()
            rows.append(Row(name, method, compression, seed, count_parameters(small),
                            count_macs(small, example), seconds,
                            **_metrics(reference, decisions(small, eval_x))))  # fmt: skip
    return rows, originals


# ---------------------------------------------------------------- reporting


def _select(rows: Sequence[Row], network: str, method: str, compression: float) -> list[Row]:
    return [
        r for r in rows
        if r.network == network and r.method == method and r.compression == compression
    ]  # fmt: skip


def _cell(sel: Sequence[Row], field: str, scale: float, digits: int) -> str:
    values = [scale * getattr(r, field) for r in sel]
    cell = f"{sum(values) / len(values):.{digits}f}"
    if len(values) > 1:
        cell += f" [{min(values):.{digits}f}, {max(values):.{digits}f}]"
    return cell


def markdown(rows: Sequence[Row], originals: Sequence[dict]) -> str:
    """One table per network: agreement with the original (%), errors, cost."""
    out = []
    for summary in originals:
        name = summary["network"]
        landmarks = name == "onet"
        out.append(
            f"**{name.upper()}** ({summary['parameters']:,} parameters, "
            f"{summary['macs'] / 1e6:.2f} M MACs; {summary['eval_crops']} evaluation crops: "
            f"{summary['eval_faces']} faces, {summary['eval_near_misses']} near misses, "
            f"{summary['eval_others']} others; at 0.7 the original calls "
            f"{100 * summary['face_rate_70_faces']:.1f} %, "
            f"{100 * summary['face_rate_70_near_misses']:.1f} % and "
            f"{100 * summary['face_rate_70_others']:.1f} % of them a face)\n"
        )
        out.append(
            f"Layout checks: converted exactly (largest difference "
            f"{summary['convert_error']:.1e} of the output's scale); Torch-Pruning removing five "
            f"all-zero channels of the last convolution changes the outputs by "
            f"{summary['tp_dead_channels_shipped']:.3f} on the shipped layout and "
            f"{summary['tp_dead_channels_channels_first']:.1g} on ChannelsFirst; inn at half "
            f"width on the two layouts differs by {summary['inn_layouts_difference']:.1g}.\n"
        )
        head = ("| removed | method | agree@0.5 (%) | agree@0.7 (%) | faces kept@0.7 (%) "
                "| prob MAE | bbox MAE |" + (" landmarks MAE |" if landmarks else "")
                + " parameters | MACs (M) | seconds |")  # fmt: skip
        out += [head, "|---|---|" + "---:|" * (head.count("|") - 3)]
        methods = list(dict.fromkeys(r.method for r in rows if r.network == name))
        compressions = sorted({r.compression for r in rows if r.network == name})
        for c in compressions:
            for method in methods:
                sel = _select(rows, name, method, c)
                if not sel:
                    continue
                cells = [
                    _cell(sel, "agree_50", 100, 1), _cell(sel, "agree_70", 100, 1),
                    _cell(sel, "faces_kept_70", 100, 1), _cell(sel, "prob_mae", 1, 3),
                    _cell(sel, "bbox_mae", 1, 3),
                ]  # fmt: skip
                if landmarks:
                    cells.append(_cell(sel, "landmarks_mae", 1, 4))
                cells += [
                    f"{sum(r.parameters for r in sel) / len(sel):,.0f}",
                    _cell(sel, "macs", 1e-6, 2), _cell(sel, "seconds", 1, 1),
                ]  # fmt: skip
                out.append(f"| {100 * c:.0f} % | {method} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(
        "inn and inn-data-free: mean over permutation seeds [min, max]; inn+tune: the first seed;"
        " Torch-Pruning is deterministic. Seconds: wall time to prune, one thread."
    )
    return "\n".join(out)


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    """Agreement at 0.7 and the probability's MAE against the parameters kept, one column per
    network; inn solid, Torch-Pruning dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r.network for r in rows))
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 7), squeeze=False)
    for column, name in enumerate(names):
        full = next(r.parameters for r in rows if r.network == name and r.method == "original")
        methods = [m for m in dict.fromkeys(r.method for r in rows if r.network == name)
                   if m != "original"]  # fmt: skip
        for row, (field, label) in enumerate(
            (("agree_70", "face decision agrees at 0.7 (%)"), ("prob_mae", "MAE of p(face)"))
        ):
            ax = axes[row, column]
            for method in methods:
                cs = sorted(
                    {r.compression for r in rows if r.network == name and r.method == method}
                )
                sels = [_select(rows, name, method, c) for c in cs]
                xs = [100 * np.mean([r.parameters for r in s]) / full for s in sels]
                scale = 100 if field == "agree_70" else 1
                ys = [scale * np.mean([getattr(r, field) for r in s]) for s in sels]
                style = "-" if method.startswith("inn") else "--"
                ax.plot(xs, ys, style, marker="o", ms=4, label=method)
            ax.set_xlabel("parameters kept (% of the original)")
            ax.set_ylabel(label)
            ax.set_title(name.upper(), fontsize=9)
            ax.invert_xaxis()
            ax.grid(alpha=0.3)
            if row == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(
    rows: Sequence[Row], originals: Sequence[dict], out_dir: Path, title: str, command: str,
    seconds: float,
) -> None:  # fmt: skip
    """Write ``results.json``, ``results.md`` and ``agreement.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "title": title, "seconds": round(seconds, 1),
               "originals": list(originals), "rows": [asdict(r) for r in rows]}  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    (out_dir / "results.md").write_text(
        f"{title}\n\n`{command}` ({seconds:.0f} s)\n\n{markdown(rows, originals)}\n"
    )
    plot(rows, out_dir / "agreement.png", title)


def main(args, command: str) -> int:
    """``inn experiment faces``: every network, method and compression; tables and a plot."""
    start = time.perf_counter()
    compressions = (
        tuple(float(c) for c in args.compressions.split(",")) if args.compressions else COMPRESSIONS
    )
    methods = tuple(args.methods.split(",")) if args.methods else METHODS
    networks = (args.model,) if args.model else tuple(NETWORKS)
    rows, originals = run(networks, compressions, methods, tuple(range(args.seeds)), args.steps)
    title = "MTCNN's RNet and ONet (facenet-pytorch's weights) pruned without fine-tuning"
    out = Path(args.out or "results/faces")
    seconds = time.perf_counter() - start
    save(rows, originals, out, title, command, seconds)
    print(f"\n{title}\n\n{markdown(rows, originals)}\n")
    print(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'agreement.png'}")
    print(f"done in {seconds:.0f} s")
    return 0
