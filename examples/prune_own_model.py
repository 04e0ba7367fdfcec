"""Prune your own network without fine-tuning: a small CNN trained on scikit-learn's digits.

    python examples/prune_own_model.py            # about 10 s on a CPU
    python examples/prune_own_model.py --tiny     # a few seconds

The network (examples/digits.py) is trained here for a few seconds on real data, then pruned to
60 % fewer parameters by ``inn.prune``, with calibration data and without any data.
"""

import argparse

from digits import Net, accuracy, digits, parameters, trained_net

import inn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smaller run, a few seconds")
    parser.add_argument("--compression", type=float, default=0.6)
    args = parser.parse_args()

    x_train, _, x_test, y_test = digits()
    model: Net = trained_net(width=16 if args.tiny else 32, epochs=2 if args.tiny else 5)
    print(f"trained: {accuracy(model, x_test, y_test):.1%} on {len(y_test)} test digits")

    # calibration data: any iterable of batches, (inputs, targets) or inputs alone
    calib = list(x_train[: 128 if args.tiny else 256].split(64))
    example = x_train[:1]  # shapes only
    steps = {"steps": 50} if args.tiny else {}  # bias calibration: 150 Adam steps by default
    small = inn.prune(
        model, example, compression=args.compression, calib=calib, calibrate_options=steps
    )
    blind = inn.prune(model, example, compression=args.compression)  # no data at all

    print(f"parameters: {parameters(model):,} -> {parameters(small):,}")
    print(f"pruned with calibration data: {accuracy(small, x_test, y_test):.1%}")
    print(f"pruned without any data:      {accuracy(blind, x_test, y_test):.1%}")


if __name__ == "__main__":
    main()
