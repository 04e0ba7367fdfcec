"""Draw docs/figures/sampling.png: one integral weight function sampled at two widths.

    python docs/figures/sampling.py

A row of a layer's weight, continuous along the input-channel axis, is stored as 32 node
values and evaluated anywhere by cubic convolution interpolation (inn.numerics). Sampled at 32
uniform points it is the original layer; at 8 points, an 8-channel layer whose samples are
multiplied by the larger quadrature weights of the coarser partition (the bar widths), so
both sums approximate the same integral.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from inn.numerics import interpolation_matrix, quadrature_weights, uniform

NODES = 32
OUT = Path(__file__).with_suffix(".png")


def main() -> None:
    t = uniform(NODES)
    values = 0.3 + torch.sin(2 * torch.pi * t) + 0.5 * torch.cos(5 * torch.pi * t)  # node values
    fine = torch.linspace(0, 1, 400)
    curve = interpolation_matrix(NODES, fine) @ values

    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, n in zip(axes, (32, 8), strict=True):
        points = uniform(n)
        samples = interpolation_matrix(NODES, points) @ values
        weights = quadrature_weights(points, "rectangle")
        ax.plot(fine, curve, color="0.6", lw=1, label="W(t): the weight function")
        cells = "the cell of one channel (its quadrature weight)"
        ax.bar(points, samples, width=weights, alpha=0.3, edgecolor="white", label=cells)
        ax.plot(points, samples, "o", ms=4, label=f"{n} samples = {n} input channels")
        total = (samples * weights).sum().item()
        ax.set_title(f"width {n}: sum of sample x weight = {total:.3f}", fontsize=9)
        ax.set_xlabel("channel position t in [0, 1]")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(OUT, dpi=100)
    plt.close(fig)
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
