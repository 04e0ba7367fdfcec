"""Prune a torchvision model with calibration data, and read what changed per channel group.

    python examples/prune_torchvision.py            # resnet18 at 64x64, under a minute on a CPU
    python examples/prune_torchvision.py --tiny     # squeezenet1_1 at 32x32, a few seconds

Random weights (``weights=None``) and random calibration images keep it offline; with your own
trained weights, load them with ``model.load_state_dict(torch.load(PATH))`` and pass a few
hundred of your real images as ``calib``.
"""

import argparse

import torch
import torchvision

import inn
from inn.budget import count_macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smaller run, a few seconds")
    parser.add_argument("--arch", help="a torchvision model name (default: resnet18)")
    parser.add_argument("--compression", type=float, default=0.4)
    args = parser.parse_args()

    torch.manual_seed(0)
    size = 32 if args.tiny else 64
    arch = args.arch or ("squeezenet1_1" if args.tiny else "resnet18")
    model = torchvision.models.get_model(arch, weights=None, num_classes=10).eval()
    x = torch.randn(1, 3, size, size)
    # stand-in calibration images: a list of (N, 3, H, W) batches (a DataLoader works too)
    calib = [torch.randn(16, 3, size, size) for _ in range(1 if args.tiny else 4)]

    steps = {"steps": 20} if args.tiny else {}  # bias calibration: 150 Adam steps by default
    small = inn.prune(model, x, compression=args.compression, calib=calib, calibrate_options=steps)

    # the exported model keeps the module names; the widths were chosen per channel group
    kept = dict(small.named_modules())
    changed = [
        (name, m.out_channels, kept[name].out_channels)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d) and kept[name].out_channels != m.out_channels
    ]
    print(f"{len(changed)} convolutions narrowed, e.g.:")
    for name, before, after in changed[:6]:
        print(f"  {name:28s} {before:4d} -> {after} channels")

    def params(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    print(f"parameters: {params(model):,} -> {params(small):,}")
    print(f"MACs: {count_macs(model, x):,} -> {count_macs(small, x):,}")
    with torch.no_grad():
        print("output shape:", tuple(small(x).shape))  # a plain nn.Module, no inn inside
    assert not any(type(m).__module__.startswith("inn") for m in small.modules())

    if not args.tiny:  # without data: widths from synthetic inputs, no repair (weaker)
        blind = inn.prune(model, x, compression=args.compression)
        print(f"data-free: {params(blind):,} parameters")


if __name__ == "__main__":
    main()
