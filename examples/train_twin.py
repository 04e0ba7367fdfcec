"""Train a width-flexible twin: one network that works at every width, resized with no data.

    python examples/train_twin.py            # 300 sandwich steps, about 30 s on a CPU
    python examples/train_twin.py --tiny     # 20 steps, a few seconds

The same with the command line (one process; ``torchrun --nproc_per_node 2 -m inn.cli train``
with the same options runs DDP):

    PYTHONPATH=examples inn train --model digits:trained_net --data digits:datasets \\
        --steps 300 --widths 0.25:1 -o out/twin
"""

import argparse

from digits import accuracy, datasets, trained_net

import inn
from inn.train import at_widths

FRACTIONS = (1.0, 0.75, 0.5, 0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smaller run, a few seconds")
    parser.add_argument("--steps", type=int, help="training steps (default: 300, tiny 20)")
    args = parser.parse_args()
    steps = args.steps or (20 if args.tiny else 300)

    train_set, test_set = datasets()
    x_test, y_test = test_set.tensors
    model = trained_net(width=16 if args.tiny else 32, epochs=2 if args.tiny else 5)

    # integral BatchNorm (fold_batchnorm=False): its statistics are sampled at every width
    imodel = inn.convert(model, x_test[:1], fold_batchnorm=False)

    def evaluate(m: inn.IntegralModel) -> float:
        return accuracy(m, x_test, y_test)

    before = at_widths(imodel, FRACTIONS, evaluate)
    report = inn.train.train(
        imodel, train_set, steps=steps, widths=(0.25, 1.0), sampling="sandwich", lr=0.01,
        progress=False,
    )  # fmt: skip
    after = at_widths(imodel, FRACTIONS, evaluate)  # no data, no tuning: just resized
    print(
        f"trained {report.steps} steps in {report.seconds:.1f} s, last loss {report.last_loss:.3f}"
    )
    print("width of every group | converted | twin")
    for f in FRACTIONS:
        print(f"{f:20.0%} | {before[f]:9.1%} | {after[f]:.1%}")


if __name__ == "__main__":
    main()
