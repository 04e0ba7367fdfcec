"""Prune to a MAC budget (and a latency budget): plan the widths, check the cost, export.

python examples/budget.py            # MACs and a measured CPU latency, about 10 s
python examples/budget.py --tiny     # MACs only, a few seconds
"""

import argparse

from digits import accuracy, digits, trained_net

import inn
from inn.budget import count_macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smaller run, a few seconds")
    parser.add_argument("--macs", type=float, default=0.5, help="fraction of the MACs kept")
    args = parser.parse_args()

    x_train, _, x_test, y_test = digits()
    model = trained_net(width=16 if args.tiny else 32, epochs=2 if args.tiny else 5)
    calib = list(x_train[:256].split(64))
    x = x_train[:1]

    # keep BatchNorm so that its statistics can be measured again at the new widths
    imodel = inn.convert(model, x, fold_batchnorm=False)
    plan = imodel.plan({"macs": args.macs}, data=calib)  # nothing changes yet
    print(f"planned MACs: {plan.predicted:,.0f} of {plan.full:,.0f}")
    for name, width in list(plan.widths.items())[:4]:
        print(f"  {name:16s} -> {width}")

    imodel.resize(budget={"macs": args.macs}, data=calib)
    inn.reestimate_batchnorm(imodel, calib)
    small = imodel.export()  # BatchNorm folded into the convolutions
    print(f"exported MACs: {count_macs(small, x):,} (original {count_macs(model, x):,})")
    print(
        f"accuracy: {accuracy(model, x_test, y_test):.1%} -> {accuracy(small, x_test, y_test):.1%}"
    )

    # the same budget in one call, with the biases also calibrated on the data
    small = inn.prune(model, x, budget={"macs": args.macs}, calib=calib)
    print(f"inn.prune: {accuracy(small, x_test, y_test):.1%}")

    if not args.tiny:
        # latency: measured on the device at a batch size (fitted once, about 5-30 s)
        budget = inn.Budget("latency", 0.5, device="cpu", batch_size=64)
        plan = imodel.plan(budget, data=calib)
        ms = f"{plan.predicted * 1e3:.2f} ms of {plan.full * 1e3:.2f} ms"
        print(f"latency plan: {ms} per batch of 64, widths {plan.widths}")


if __name__ == "__main__":
    main()
