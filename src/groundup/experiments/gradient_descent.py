"""Chapter 4: numerical derivative, tangent line, gradient field and gradient descent on
f(x0, x1) = x0² + x1² from (-3, 4) with lr 0.1 for 20 steps (plus a too large and a too
small learning rate)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup.experiments import _common as c
from groundup.numerical import gradient_descent, numerical_diff, numerical_gradient

NAME = "gradient-descent"
DESCRIPTION = "ch4: tangent line, gradient field, gradient descent path on x0²+x1²"


@dataclass(frozen=True)
class Config:
    """Book: init (-3.0, 4.0), lr 0.1, step_num 20; lr 10.0 and 1e-10 as failure cases;
    tangent of 0.01x² + 0.1x at x = 5 and 10."""

    seed: int = 0
    init_x: tuple[float, ...] = (-3.0, 4.0)
    lr: float = 0.1
    step_num: int = 20
    lr_large: float = 10.0
    lr_small: float = 1e-10
    tangent_at: tuple[float, ...] = (5.0, 10.0)

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        if len(self.init_x) != 2:
            raise c.value_error(owner, "init_x", "two numbers (x0, x1)", self.init_x)
        for name in ("lr", "lr_large", "lr_small"):
            c.check_positive(owner, name, getattr(self, name))
        c.check_int(owner, "step_num", self.step_num)


QUICK: dict[str, Any] = {}
BOOK = ("lr 0.1, 20 steps from (-3, 4) end at (-0.0346, 0.0461); lr 10 diverges to about "
        "(-2.6e13, -1.3e12); lr 1e-10 barely moves")


def function_1(x: float) -> float:
    """The book's 0.01·x² + 0.1·x."""
    return 0.01 * x ** 2 + 0.1 * x


def function_2(x: np.ndarray) -> float:
    """The book's x0² + x1²."""
    return float(np.sum(x ** 2))


def run(config: Config) -> dict[str, Any]:
    paths = {}
    for key, lr in (("lr", config.lr), ("lr_large", config.lr_large),
                    ("lr_small", config.lr_small)):
        x, history = gradient_descent(function_2, np.array(config.init_x, dtype=np.float64),
                                      lr=lr, step_num=config.step_num)
        paths[key] = {"lr": lr, "path": history, "final": x, "final_f": function_2(x)}
    tangents = [{"x": float(x), "slope": numerical_diff(function_1, float(x)),
                 "f": function_1(float(x))} for x in config.tangent_at]
    grid = np.arange(-2.0, 2.5, 0.25)
    points = np.array([(a, b) for a in grid for b in grid])
    field = np.array([numerical_gradient(function_2, p.copy()) for p in points])
    return {"descent": paths, "tangents": tangents,
            "field": {"points": points, "gradient": field}}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, run_ in results["descent"].items():
        out[f"{key}={run_['lr']:g} final x0"] = run_["final"][0]
        out[f"{key}={run_['lr']:g} final x1"] = run_["final"][1]
    for tangent in results["tangents"]:
        out[f"slope at x={tangent['x']:g}"] = tangent["slope"]
    return out


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    a = np.linspace(-4.5, 4.5, 200)
    gx, gy = np.meshgrid(a, a)
    for ax, run_ in zip(axes, results["descent"].values(), strict=True):
        path = np.array(run_["path"])
        ax.contour(gx, gy, gx ** 2 + gy ** 2, levels=12, colors="0.8", linewidths=0.7)
        ax.plot([-5, 5], [0, 0], "--b", linewidth=0.8)
        ax.plot([0, 0], [-5, 5], "--b", linewidth=0.8)
        ax.plot(path[:, 0], path[:, 1], "o", markersize=4)
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-4.5, 4.5)
        ax.set_xlabel("X0")
        ax.set_ylabel("X1")
        final = run_["final"]
        ax.set_title(f"lr={run_['lr']:g}: end ({final[0]:.3g}, {final[1]:.3g})", fontsize=9)
    start = ", ".join(f"{v:g}" for v in path[0])
    fig.suptitle(f"gradient descent on x0² + x1², {len(path)} steps from ({start})")
    fig.tight_layout()
    paths = [save_figure(fig, out_dir / "gradient_descent.png")]

    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(0.0, 20.0, 0.1)
    ax.plot(x, function_1(x), label="f(x) = 0.01x² + 0.1x")
    for tangent in results["tangents"]:
        line = tangent["slope"] * (x - tangent["x"]) + tangent["f"]
        ax.plot(x, line, "--",
                label=f"tangent at x={tangent['x']:g} (slope {tangent['slope']:.4f})")
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out_dir / "tangent.png"))

    fig, ax = plt.subplots(figsize=(5.5, 5))
    points = np.array(results["field"]["points"])
    grad = np.array(results["field"]["gradient"])
    ax.quiver(points[:, 0], points[:, 1], -grad[:, 0], -grad[:, 1], angles="xy", color="#666666")
    ax.set_xlim(-2, 2)
    ax.set_ylim(-2, 2)
    ax.set_xlabel("x0")
    ax.set_ylabel("x1")
    ax.grid(alpha=0.3)
    ax.set_title("−∇f of x0² + x1² (numerical gradient)")
    paths.append(save_figure(fig, out_dir / "gradient_field.png"))
    return paths
