"""The networks of the paper's experiments, as plain, fx-traceable :class:`torch.nn.Module` s.

* :func:`cifar_resnet18`: the CIFAR-style ResNet-18 (3x3 stem without max-pool).
* :func:`nin`: Network-in-Network (three mlpconv blocks, global average pooling).
* :func:`mobilenet_v2`: torchvision's MobileNetV2 at half width.
* :func:`mobilenet_v3`: torchvision's MobileNetV3-Small at half width (hardswish, SE).
* :func:`efficientnet`: an EfficientNet-B0-style network at half width and depth (SiLU, SE).
* :func:`vit`: a small vision transformer (``nn.MultiheadAttention``, ``nn.LayerNorm``).
* :func:`srcnn`, :func:`edsr` (:data:`SR_ZOO`): super-resolution networks x3 and x4
  (:mod:`innlab.sr`), trained by ``lab/scripts/train_sr.py`` on image patches.

Both default to narrower widths than the paper's so that they train in minutes on a CPU; the
width is a constructor argument. :func:`load_pretrained` returns one of them with the weights
committed under ``lab/innlab/checkpoints/``, trained on the 4,000 training digits of
:func:`innlab.data.mnist_splits` by ``lab/scripts/train_zoo.py``.

The forward passes have no data-dependent control flow and no in-place operations, so
:func:`torch.fx.symbolic_trace` (and hence :func:`inn.convert`) sees every layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inn import InnError
from innlab.sr.models import EDSR, SRCNN, edsr, srcnn

__all__ = [
    "EDSR",
    "SRCNN",
    "SR_ZOO",
    "ZOO",
    "BasicBlock",
    "CifarResNet",
    "NetworkInNetwork",
    "PretrainedNotFoundError",
    "VisionTransformer",
    "checkpoint_dir",
    "cifar_resnet18",
    "edsr",
    "efficientnet",
    "example_input",
    "load_integral",
    "load_pretrained",
    "mobilenet_v2",
    "mobilenet_v3",
    "nin",
    "pretrained_info",
    "srcnn",
    "vit",
]

TRAIN_COMMAND = "python lab/scripts/train_zoo.py"
"""The command (from the repository root) that trains the zoo and writes the checkpoints."""
TWIN_COMMAND = "python lab/scripts/train_twin.py"
SR_TRAIN_COMMAND = "python lab/scripts/train_sr.py"

TWIN_RECIPE: dict[str, Any] = {
    "epochs": 15,
    "lr_factor": 1.0,
    "widths": (0.25, 1.0),
    "num_random": 2,
    "channels": "select",
    "teacher": True,
    "smoothness": 0.0,
    "clip_norm": 5.0,
}
"""How the random-width twins are fine-tuned from the zoo checkpoints (on top of each model's
own recipe, at ``lr_factor`` of its learning rate): the sandwich rule over [25 %, 100 %] of
every group, each group's strongest channels nested, the checkpoint itself as the teacher of
every width. Until 2026-12-06 it was a fifth of the rate, resampled channels and a roughness
penalty of 3, with no teacher: the narrow widths lagged (Pipeline A's ``+full-lr`` rows)."""


class PretrainedNotFoundError(InnError, ValueError):
    """A zoo name is unknown, or its checkpoint file has not been created."""


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN layers with an identity or a 1x1 conv + BN projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for small images: 3x3 stem, stages of :class:`BasicBlock`, GAP, Linear."""

    def __init__(
        self,
        blocks_per_stage: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_channels: int = 1,
        width: int = 16,
    ) -> None:
        super().__init__()
        if width < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError("CifarResNet: width, num_classes and in_channels must be >= 1")
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        stages: list[nn.Module] = []
        channels = width
        for i, count in enumerate(blocks_per_stage):
            out_channels = width * 2**i
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(count):
                blocks.append(BasicBlock(channels, out_channels, stride if j == 0 else 1))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def cifar_resnet18(num_classes: int = 10, in_channels: int = 1, width: int = 16) -> CifarResNet:
    """The CIFAR-style ResNet-18 of the paper's experiments.

    A 3x3 stride-1 stem conv (no max-pool), then four stages of two :class:`BasicBlock` s with
    ``width, 2*width, 4*width, 8*width`` channels and strides 1, 2, 2, 2 (1x1 conv + BN
    projection shortcuts where the shape changes), global average pooling and a Linear layer.

    ``width=64`` is the paper's network (about 11.2 M parameters on CIFAR-10). The default
    ``width=16`` (about 0.70 M parameters) is a CPU-sized version used for the MNIST-scale
    reproduction; the architecture is otherwise identical.
    """
    return CifarResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, width=width)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class NetworkInNetwork(nn.Module):
    """Network-in-Network (Lin et al., 2014) with BatchNorm.

    Three mlpconv blocks (a kxk conv followed by 1x1 convs, each with BN + ReLU), 3x3/2 max-pool
    and dropout between blocks; the last block ends with a 1x1 conv to ``num_classes`` channels
    whose global average is the output (no Linear layer).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        width: int = 96,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if width < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError("NetworkInNetwork: width, num_classes and in_channels must be >= 1")
        w = width
        self.block1 = nn.Sequential(
            *_conv_bn_relu(in_channels, w, 5), *_conv_bn_relu(w, w, 1), *_conv_bn_relu(w, w, 1)
        )
        self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.drop1 = nn.Dropout(dropout)
        self.block2 = nn.Sequential(
            *_conv_bn_relu(w, w, 5), *_conv_bn_relu(w, w, 1), *_conv_bn_relu(w, w, 1)
        )
        self.pool2 = nn.MaxPool2d(3, stride=2, padding=1)
        self.drop2 = nn.Dropout(dropout)
        self.block3 = nn.Sequential(*_conv_bn_relu(w, w, 3), *_conv_bn_relu(w, w, 1))
        self.classifier = nn.Conv2d(w, num_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.pool1(self.block1(x)))
        x = self.drop2(self.pool2(self.block2(x)))
        x = self.classifier(self.block3(x))
        return torch.flatten(self.pool(x), 1)


def nin(num_classes: int = 10, in_channels: int = 1, width: int = 96) -> NetworkInNetwork:
    """Network-in-Network, the paper's second CIFAR-10 architecture, at CPU scale.

    Blocks: (5x5, 1x1, 1x1) -> max-pool 3/2 + dropout -> (5x5, 1x1, 1x1) -> max-pool 3/2 +
    dropout -> (3x3, 1x1) -> 1x1 conv to ``num_classes`` -> global average pool. Every hidden
    conv has ``width`` channels and is followed by BN + ReLU. The original NIN uses 192 (and
    160/96) channels; the default ``width=96`` halves it so the network (about 0.33 M
    parameters) trains in minutes on a CPU.
    """
    return NetworkInNetwork(num_classes=num_classes, in_channels=in_channels, width=width)


def mobilenet_v2(num_classes: int = 10, in_channels: int = 1, width_mult: float = 0.5) -> nn.Module:
    """torchvision's MobileNetV2 (depthwise separable inverted residuals) at ``width_mult``,
    with a stem for ``in_channels``: the zoo's torchvision architecture. Needs torchvision."""
    model = _torchvision().models.mobilenet_v2(num_classes=num_classes, width_mult=width_mult)
    return _grey_stem(model, in_channels)


def _torchvision():
    try:
        import torchvision
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise InnError(
            "the torchvision zoo models need torchvision: pip install torchvision"
        ) from error
    return torchvision


def _grey_stem(model: nn.Module, in_channels: int) -> nn.Module:
    """Replace the first convolution of a torchvision mobile network (``features[0][0]``) by
    one with ``in_channels`` inputs and the same output channels, kernel and stride."""
    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(
        in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False
    )
    return model


def mobilenet_v3(num_classes: int = 10, in_channels: int = 1, width_mult: float = 0.5) -> nn.Module:
    """torchvision's MobileNetV3-Small (hardswish, squeeze-excitation with hardsigmoid,
    depthwise convolutions) at ``width_mult``, with a stem for ``in_channels``. Needs
    torchvision."""
    model = _torchvision().models.mobilenet_v3_small(num_classes=num_classes, width_mult=width_mult)
    return _grey_stem(model, in_channels)


# EfficientNet-B0's stages: expansion, kernel, stride, input and output channels, layers
# (Tan & Le, ICML 2019, Table 1), scaled by width_mult and depth_mult below.
_EFFICIENTNET_B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def efficientnet(
    num_classes: int = 10, in_channels: int = 1, width_mult: float = 0.5, depth_mult: float = 0.5
) -> nn.Module:
    """An EfficientNet-B0-style network built from torchvision's ``EfficientNet`` and ``MBConv``
    blocks (SiLU, squeeze-excitation, depthwise convolutions, stochastic depth): B0's stages at
    ``width_mult`` channels and ``depth_mult`` layers, with a stem for ``in_channels``. Needs
    torchvision."""
    efficientnet_module = _torchvision().models.efficientnet
    stages = [
        efficientnet_module.MBConvConfig(*stage, width_mult=width_mult, depth_mult=depth_mult)
        for stage in _EFFICIENTNET_B0
    ]
    model = efficientnet_module.EfficientNet(
        stages, dropout=0.2, stochastic_depth_prob=0.1, num_classes=num_classes
    )
    return _grey_stem(model, in_channels)


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """A small ViT: ``patch x patch`` patches embedded by a strided convolution, a class token
    and learned position embeddings, pre-norm encoder blocks, a linear head on the class token.

    Shape:
        ``(N, in_channels, image_size, image_size)`` -> ``(N, num_classes)``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        patch: int = 7,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        tokens = (image_size // patch) ** 2 + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, tokens, dim))
        self.blocks = nn.Sequential(*[EncoderBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        return self.head(self.norm(self.blocks(x))[:, 0])


def vit(num_classes: int = 10, in_channels: int = 1, dim: int = 64) -> VisionTransformer:
    """The zoo's transformer: a ViT on 28 x 28 digits (16 patches of 7 x 7 + a class token),
    4 blocks of 4 heads, embedding ``dim`` (64) and MLP hidden ``2 * dim``; about 0.14 M
    parameters, built from ``nn.MultiheadAttention`` and ``nn.LayerNorm``."""
    return VisionTransformer(num_classes, in_channels, dim=dim, hidden=2 * dim)


ZOO: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet18": cifar_resnet18,
    "nin": nin,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3": mobilenet_v3,
    "efficientnet": efficientnet,
    "vit": vit,
}
"""Name -> constructor; the default arguments build the architecture of each checkpoint."""

SR_ZOO: dict[str, Callable[..., nn.Module]] = {"srcnn": srcnn, "edsr": edsr}
"""Super-resolution networks (:mod:`innlab.sr.models`): SRCNN x3 on the Y channel, EDSR x4 on RGB,
trained on :class:`innlab.sr.SRPatches` by ``python lab/scripts/train_sr.py``."""

EXAMPLE_SHAPES: dict[str, tuple[int, ...]] = {"srcnn": (1, 1, 33, 33), "edsr": (1, 3, 24, 24)}
"""An input shape of each model (default: the zoo's ``(1, 1, 28, 28)`` MNIST digits)."""


def checkpoint_dir() -> Path:
    """The folder of the committed checkpoints (``checkpoints`` next to this module)."""
    return Path(__file__).resolve().parent / "checkpoints"


def _check_name(name: str) -> None:
    if name not in ZOO and name not in SR_ZOO:
        known = sorted([*ZOO, *SR_ZOO])
        raise PretrainedNotFoundError(f"unknown zoo model {name!r}; known: {known}")


def _command(name: str) -> str:
    return SR_TRAIN_COMMAND if name in SR_ZOO else TRAIN_COMMAND


def _twin_command(name: str) -> str:
    if name in SR_ZOO:
        return f"{SR_TRAIN_COMMAND} --models {name}-inn"
    return f"{TWIN_COMMAND} --model {name}"


def example_input(name: str) -> torch.Tensor:
    """A zero input of the shape zoo model ``name`` takes (for :func:`inn.convert`)."""
    return torch.zeros(EXAMPLE_SHAPES.get(name, (1, 1, 28, 28)))


def pretrained_info(name: str) -> dict[str, Any]:
    """The metadata (seed, epochs, test accuracy, ...) stored next to a checkpoint."""
    _check_name(name)
    path = checkpoint_dir() / f"{name}.json"
    if not path.is_file():
        raise PretrainedNotFoundError(
            f"no metadata for {name!r} at {str(path)!r}; create it with `{_command(name)}`"
        )
    return json.loads(path.read_text())


def load_pretrained(name: str) -> nn.Module:
    """Build zoo model ``name`` with its default arguments and load its committed weights.

    The classifiers were trained on the 4,000 training digits of :func:`innlab.data.mnist_splits`
    (``seed=0``), the SR networks on :class:`innlab.sr.SRPatches`; the model is returned in eval
    mode.

    Raises:
        PretrainedNotFoundError: if the name is unknown or the checkpoint file is missing (the
            message names the command that creates it).
    """
    _check_name(name)
    path = checkpoint_dir() / f"{name}.pt"
    if not path.is_file():
        raise PretrainedNotFoundError(
            f"no checkpoint for {name!r} at {str(path)!r}; create it with `{_command(name)}` "
            "(run from the repository root)"
        )
    model = {**ZOO, **SR_ZOO}[name]()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def load_integral(name: str) -> nn.Module:
    """The random-width-trained INN twin of zoo model ``name`` (an :class:`inn.IntegralModel`
    with integral BatchNorms, eval mode), fine-tuned from its checkpoint by
    ``lab/scripts/train_twin.py``: one network that works at every width of its groups, resized
    with no data and no tuning.

    Raises:
        PretrainedNotFoundError: the name is unknown or its twin checkpoint is missing.
    """
    _check_name(name)
    path = checkpoint_dir() / f"{name}-inn.pt"
    if not path.is_file():
        raise PretrainedNotFoundError(
            f"no random-width twin for {name!r} at {str(path)!r}; create it with "
            f"`{_twin_command(name)}` (run from the repository root)"
        )
    from inn.convert import convert

    model = {**ZOO, **SR_ZOO}[name]().eval()
    imodel = convert(model, example_input(name), permute=False, fold_batchnorm=False)
    imodel.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return imodel.eval()
