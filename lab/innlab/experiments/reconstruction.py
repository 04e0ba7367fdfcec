"""Continuous image representation with fixed and trainable partitions (the paper's Figure 8).

A grey image ``(H, W)`` (the Y channel, pixel centres at ``(i + 0.5) / H``) is represented by a
small set of parameters and evaluated at every pixel:

* ``uniform``: node values on a fixed uniform ``a x b`` lattice, cubic convolution (Keys)
  separably along both axes; fitted by exact least squares (the best a fixed lattice can do).
* ``separable``: node values on an ``mx x my`` lattice whose node *positions* along each axis are
  a trainable partition (:class:`inn.continuous.TrainablePartition`, ``m + 1`` softmax logits
  each); a pixel at ``x`` reads the lattice at ``t = phi^{-1}(x)``, where ``phi`` is the
  piecewise-linear map taking uniform node ``k`` to partition point ``p_k``, so the cubic
  convolution becomes denser where the nodes crowd.
* ``scattered``: ``K`` independent trainable 2-D points with a value each (non-separable),
  evaluated by normalised Gaussian-kernel (Nadaraya-Watson) interpolation with bandwidth
  ``0.7 / sqrt(K)`` (mean spacing: a fixed function of ``K``, not a parameter).

The three have exactly equal parameter counts (node values + partition parameters, see
:func:`equal_budgets`). Trainable ones start from the matching uniform least-squares fit and
are fitted by Adam on the mean squared error. Only the public API is used.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from inn.budget import count_parameters
from inn.continuous import TrainablePartition
from inn.numerics import interpolation_matrix, uniform
from innlab.sr import TEST_IMAGES, load_image, psnr, rgb_to_y

__all__ = [
    "METHODS", "Budget", "Row", "Scattered", "Separable", "Uniform", "equal_budgets", "fit",
    "image", "represent", "run", "save",
]  # fmt: skip

METHODS = ("uniform", "separable", "scattered")
IMAGES = TEST_IMAGES
_EDGE = 1e-3


@dataclass(frozen=True)
class Budget:
    """Grids of each method with exactly ``parameters`` parameters."""

    parameters: int
    uniform: tuple[int, int]  # a x b = P
    separable: tuple[int, int]  # mx my + (mx + 1) + (my + 1) = P
    scattered: int  # 3 K = P


def equal_budgets(target: int, max_aspect: float = 1.3) -> Budget:
    """The budget nearest ``target`` parameters at which all three methods fit exactly, with
    lattices no more elongated than ``max_aspect``."""
    for delta in range(target):
        for p in (target - delta, target + delta):
            if p % 3:
                continue
            uni = _near_square(p, max_aspect, lambda a, b: a * b)
            sep = _near_square(p, max_aspect, lambda a, b: a * b + a + b + 2)
            if uni and sep:
                return Budget(p, uni, sep, p // 3)
    raise ValueError(f"no equal budget near {target}")


def _near_square(p: int, aspect: float, count) -> tuple[int, int] | None:
    for a in range(math.isqrt(p), 1, -1):
        for b in range(a, int(a * aspect) + 1):
            if count(a, b) == p:
                return a, b
    return None


def _pixels(n: int, like: Tensor) -> Tensor:
    return (torch.arange(n, dtype=like.dtype) + 0.5) / n


class Uniform(nn.Module):
    """Node values ``(a, b)`` on fixed uniform lattices; ``forward() -> (H, W)``."""

    def __init__(self, target: Tensor, grid: tuple[int, int]) -> None:
        super().__init__()
        h, w = target.shape
        self.rows = interpolation_matrix(grid[0], _pixels(h, target))  # (H, a)
        self.cols = interpolation_matrix(grid[1], _pixels(w, target))  # (W, b)
        # least squares of rows V cols^T = target: V = rows^+ target cols^+T
        values = torch.linalg.pinv(self.rows) @ target @ torch.linalg.pinv(self.cols).T
        self.values = nn.Parameter(values)

    def forward(self) -> Tensor:
        return self.rows @ self.values @ self.cols.T


def _warped_matrix(partition: TrainablePartition, n: int, like: Tensor) -> Tensor:
    """Interpolation matrix ``(n pixels, m nodes)`` with node ``k`` at partition point ``p_k``:
    pixel ``x`` reads the uniform lattice at ``phi^{-1}(x)``, ``phi`` piecewise linear."""
    p = partition().to(like.dtype)
    m = p.numel()
    x = _pixels(n, like)
    knots = uniform(m, dtype=like.dtype)  # where node k sits on the uniform lattice
    i = (torch.searchsorted(p.detach(), x) - 1).clamp(0, m - 2)  # the cell (the outer ones extended)
    frac = (x - p[i]) / (p[i + 1] - p[i])
    t = knots[i] + frac * (knots[i + 1] - knots[i])
    return interpolation_matrix(m, t.clamp(0, 1))  # beyond the outer nodes: at most half a cell


class Separable(nn.Module):
    """Node values ``(mx, my)`` at trainable partitions along each axis."""

    def __init__(self, target: Tensor, grid: tuple[int, int]) -> None:
        super().__init__()
        self.shape = target.shape
        self.rows, self.cols = TrainablePartition(grid[0]), TrainablePartition(grid[1])
        start = Uniform(target, grid)
        self.values = nn.Parameter(start.values.detach().clone())

    def forward(self) -> Tensor:
        rows = _warped_matrix(self.rows, self.shape[0], self.values)
        cols = _warped_matrix(self.cols, self.shape[1], self.values)
        return rows @ self.values @ cols.T


class Scattered(nn.Module):
    """``K`` trainable points in the unit square, each with a value (non-separable)."""

    def __init__(self, target: Tensor, k: int) -> None:
        super().__init__()
        self.shape = target.shape
        side = math.ceil(math.sqrt(k))
        g = torch.Generator().manual_seed(0)
        grid = torch.stack(torch.meshgrid(uniform(side), uniform(side), indexing="ij"), -1)
        start = grid.reshape(-1, 2)[torch.randperm(side * side, generator=g)[:k]].float()
        self.logits = nn.Parameter(torch.logit((start - _EDGE) / (1 - 2 * _EDGE)))  # (K, 2)
        self.bandwidth = 0.7 / math.sqrt(k)
        h, w = target.shape
        ys, xs = torch.meshgrid(_pixels(h, target), _pixels(w, target), indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs], -1).reshape(-1, 2), persistent=False)
        self.values = nn.Parameter(torch.zeros(k, dtype=target.dtype))
        with torch.no_grad():  # the best values for the starting points (least squares)
            weights = self.weights()
            self.values.copy_(torch.linalg.lstsq(weights, target.reshape(-1, 1)).solution[:, 0])

    @property
    def points(self) -> Tensor:
        """``(K, 2)`` inside [e, 1 - e]^2 (e = 0.001, also where the sigmoid saturates), as
        (row, column)."""
        return _EDGE + (1 - 2 * _EDGE) * torch.sigmoid(self.logits)

    def weights(self) -> Tensor:
        """``(H W, K)``: each pixel's normalised Gaussian weights of the points."""
        d2 = torch.cdist(self.coords, self.points.to(self.coords.dtype)).square()
        return torch.softmax(-d2 / (2 * self.bandwidth**2), dim=1)

    def forward(self) -> Tensor:
        return (self.weights() @ self.values).reshape(self.shape)


def represent(method: str, target: Tensor, plan: Budget) -> nn.Module:
    """Method ``method``'s representation of ``target`` at ``plan``'s parameter count."""
    if method == "uniform":
        return Uniform(target, plan.uniform)
    if method == "separable":
        return Separable(target, plan.separable)
    return Scattered(target.float(), plan.scattered)


def fit(model: nn.Module, target: Tensor, steps: int, lr: float = 0.01) -> float:
    """Adam on the mean squared error; keeps the best state; returns the best MSE."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    best, state = math.inf, None
    for _ in range(steps):
        optimiser.zero_grad()
        loss = F.mse_loss(model(), target)
        if float(loss.detach()) < best:
            best = float(loss.detach())
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        loss.backward()
        optimiser.step()
        schedule.step()
    if state is not None:
        model.load_state_dict(state)
    return best


def image(name: str, size: int = 96) -> Tensor:
    """The Y channel of test image ``name``: its central square, area-downsampled to
    ``size x size``; float64 ``(size, size)`` in [0, 1]."""
    rgb = load_image(name)
    side = min(rgb.shape[-2:])
    top, left = (rgb.shape[-2] - side) // 2, (rgb.shape[-1] - side) // 2
    square = rgb[:, top : top + side, left : left + side]
    small = F.interpolate(square[None], size=(size, size), mode="area")[0]
    return rgb_to_y(small)[0].double()


@dataclass(frozen=True)
class Row:
    image: str
    method: str
    parameters: int
    psnr: float
    seconds: float


def run(
    images: tuple[str, ...] = IMAGES, budgets: tuple[int, ...] = (300, 600, 1200),
    steps: int = 400, size: int = 96, progress: bool = True,
) -> tuple[list[Row], dict[str, Tensor]]:  # fmt: skip
    """Fit every method to every image at every budget; returns the rows and, for the first
    image and the middle budget, each method's reconstruction (for the figure)."""
    rows, pictures = [], {}
    plans = [equal_budgets(b) for b in budgets]
    bar = tqdm(total=len(images) * len(plans) * len(METHODS), desc="fitting", disable=not progress)
    for name in images:
        target = image(name, size)
        for plan in plans:
            for method in METHODS:
                start = time.perf_counter()
                model = represent(method, target, plan)
                if count_parameters(model) != plan.parameters:
                    raise AssertionError(f"{method}: {count_parameters(model)} != {plan}")
                goal = target.to(next(model.parameters()).dtype)
                if method != "uniform":
                    fit(model, goal, steps)
                with torch.no_grad():
                    out = model().double()
                rows.append(Row(name, method, plan.parameters, psnr(out[None], target[None]),
                                time.perf_counter() - start))  # fmt: skip
                if name == images[0] and plan == plans[len(plans) // 2]:
                    pictures[method] = out
                bar.update(1)
        pictures.setdefault("original", target)
    bar.close()
    return rows, pictures


def markdown(rows: list[Row]) -> str:
    budgets = sorted({r.parameters for r in rows})
    lines = ["| parameters | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    for p in budgets:
        cells = []
        for m in METHODS:
            values = [r.psnr for r in rows if r.parameters == p and r.method == m]
            cells.append(f"{sum(values) / len(values):.2f}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    images = sorted({r.image for r in rows})
    lines += ["", f"Mean PSNR (dB) over {len(images)} images ({', '.join(images)})."]
    wins = sum(
        next(r.psnr for r in rows if (r.image, r.parameters, r.method) == (i, p, "separable"))
        > next(r.psnr for r in rows if (r.image, r.parameters, r.method) == (i, p, "uniform"))
        for i in images for p in budgets
    )  # fmt: skip
    lines.append(f"Separable trainable beats uniform in {wins} of {len(images) * len(budgets)} "
                 "(image, budget) cases.")  # fmt: skip
    return "\n".join(lines)


def save(rows: list[Row], pictures: dict[str, Tensor], out: Path, command: str,
         seconds: float) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    data = {"command": command, "seconds": round(seconds, 1), "rows": [asdict(r) for r in rows]}
    (out / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    title = "Image reconstruction at equal parameter counts: PSNR (dB)"
    (out / "results.md").write_text(f"# {title}\n\n{markdown(rows)}\n\n`{command}` "
                                    f"({seconds:.0f} s)\n")  # fmt: skip
    original = pictures["original"]
    fig, axes = plt.subplots(1, len(pictures), figsize=(3 * len(pictures), 3.3))
    for ax, (name, picture) in zip(axes, pictures.items(), strict=True):
        label = name if name == "original" else f"{name}: {psnr(picture[None], original[None]):.2f} dB"
        ax.imshow(picture.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{rows[0].image}, {sorted({r.parameters for r in rows})[1]} parameters")
    fig.tight_layout()
    fig.savefig(out / "reconstruction.png", dpi=110)
    plt.close(fig)
