"""The ``inn`` command."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from inn.experiments import digits_widths

    results = digits_widths.run(Path(args.out))
    print("\nDigits CNN (scikit-learn digits, 397 test images), sampled at fewer channels")
    print("without fine-tuning or channel reordering:\n")
    print("| width | channels (conv1, conv2) | parameters | test accuracy |")
    print("|------:|:-----------------------:|-----------:|--------------:|")
    for r in results:
        print(f"| {r.width_fraction:.0%} | {r.channels} | {r.parameters:,} | {r.accuracy:.1%} |")
    print(f"\nresults written to {Path(args.out) / 'results.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inn", description="Integral Neural Networks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a small CNN on real digits and sample it at several widths"
    )
    demo.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
