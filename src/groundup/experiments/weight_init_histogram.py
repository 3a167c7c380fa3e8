"""Chapter 6: activation histograms of a 5-layer, 100-unit net fed 1,000 random inputs,
for sigmoid with std 1, std 0.01 and Xavier, tanh with Xavier, and ReLU with std 0.01,
Xavier and He; plus the symmetry of constant initial weights (every hidden unit of a
layer stays identical under training)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundup import optimizers
from groundup.experiments import _common as c
from groundup.functions import relu, sigmoid
from groundup.models import MultiLayerNet
from groundup.rng import make_rng

NAME = "weight-init-histogram"
DESCRIPTION = "ch6: activation histograms per layer for std 1 / 0.01 / Xavier / He, and symmetry"
ACTIVATIONS = {"sigmoid": sigmoid, "tanh": np.tanh, "relu": relu}
SCALES = ("xavier", "he")


@dataclass(frozen=True)
class Config:
    """Book: x = randn(1000, 100), 5 hidden layers of 100 units, histograms with 30 bins
    over (0, 1) (tanh: (-1, 1)). ``cases``: 'activation:std' with std a float, 'xavier'
    (1/√n) or 'he' (√(2/n)). Symmetry: a net with every weight equal to
    ``symmetry_value`` vs He init, ``symmetry_steps`` SGD steps on random data."""

    seed: int = 0
    samples: int = 1000
    node_num: int = 100
    hidden_layers: int = 5
    bins: int = 30
    cases: tuple[str, ...] = ("sigmoid:1", "sigmoid:0.01", "sigmoid:xavier", "tanh:xavier",
                              "relu:0.01", "relu:xavier", "relu:he")
    symmetry_value: float = 0.0
    symmetry_steps: int = 20

    def __post_init__(self) -> None:
        owner = NAME
        c.check_shared(owner, self)
        for name in ("samples", "node_num", "hidden_layers", "bins", "symmetry_steps"):
            c.check_int(owner, name, getattr(self, name))
        c.check_number(owner, "symmetry_value", self.symmetry_value)
        for case in self.cases:
            parse_case(case)


QUICK: dict[str, Any] = {"samples": 200, "symmetry_steps": 3}
BOOK = ("sigmoid: std 1 piles at 0 and 1, std 0.01 at 0.5, Xavier spreads; ReLU: std 0.01 goes to "
        "0, Xavier shrinks with depth, He stays even")


def parse_case(case: str) -> tuple[str, str | float]:
    activation, _, scale = case.partition(":")
    c.check_choice(NAME, "cases activation", activation, ACTIVATIONS)
    if scale in SCALES:
        return activation, scale
    try:
        value = float(scale)
    except ValueError as exc:
        raise c.value_error(NAME, "cases", "'activation:std' with std a float, 'xavier' or "
                            "'he'", case) from exc
    c.check_positive(NAME, "cases std", value)
    return activation, value


def _std(scale: str | float, n: int) -> float:
    if scale == "xavier":
        return 1.0 / np.sqrt(n)
    if scale == "he":
        return np.sqrt(2.0 / n)
    return float(scale)


def _symmetry(config: Config, rng: np.random.Generator) -> dict[str, Any]:
    """How far apart the first layer's units end up after training from constant vs He
    weights: max over units j of max |W1[:, j] - W1[:, 0]|."""
    n = config.node_num
    x = rng.random((100, n))
    t = rng.integers(0, 10, size=100)
    out = {}
    for key, init in (("constant", 0.01), ("he", "he")):
        model = MultiLayerNet(n, [n, n], 10, activation="sigmoid", weight_init_std=init,
                              rng=rng, dtype=np.float64)
        if key == "constant":
            for name, p in model.params.items():
                if name.startswith("W"):
                    p[...] = config.symmetry_value
        optimizer = optimizers.get("sgd", lr=0.1)
        for _ in range(config.symmetry_steps):
            optimizer.update(model.params, model.gradient(x, t))
        w1 = model.params["W1"]
        out[key] = {"max_unit_difference": float(np.abs(w1 - w1[:, :1]).max()),
                    "weight_std": float(w1.std())}
    return out


def run(config: Config) -> dict[str, Any]:
    rng = make_rng(config.seed)
    x = rng.standard_normal((config.samples, config.node_num))
    cases = {}
    for case in config.cases:
        activation, scale = parse_case(case)
        low = -1.0 if activation == "tanh" else 0.0
        a = x
        layers = []
        for _ in range(config.hidden_layers):
            w = rng.standard_normal((config.node_num, config.node_num)) * _std(scale,
                                                                               config.node_num)
            a = ACTIVATIONS[activation](a @ w)
            counts, _ = np.histogram(a.ravel(), bins=config.bins, range=(low, 1.0))
            if activation == "relu":
                dead = float(np.mean(a == 0))
            else:
                dead = float(np.mean(np.abs(a) > 0.99) if activation == "tanh"
                             else np.mean((a < 0.01) | (a > 0.99)))
            layers.append({"counts": counts, "mean": float(a.mean()), "std": float(a.std()),
                           "saturated_or_zero": dead})
        cases[case] = {"activation": activation, "std": _std(scale, config.node_num),
                       "range": [low, 1.0], "layers": layers}
    return {"cases": cases, "symmetry": _symmetry(config, rng)}


def metrics(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for case, row in results["cases"].items():
        out[f"{case} layer-5 activation std"] = row["layers"][-1]["std"]
    for key, row in results["symmetry"].items():
        out[f"symmetry: {key} init, max |W1[:, j] - W1[:, 0]|"] = row["max_unit_difference"]
    return out


def curves(results: dict[str, Any]) -> dict[str, Any]:
    return {case: {"xlabel": "layer", "ylabel": "activation std",
                   "x": list(range(1, len(row["layers"]) + 1)),
                   "series": {"std": [layer["std"] for layer in row["layers"]]}}
            for case, row in results["cases"].items()}


def plot(results: dict[str, Any], out_dir: Path) -> list[Path]:
    from groundup.plotting import pyplot, save_figure

    plt = pyplot()
    cases = results["cases"]
    first = next(iter(cases.values()))
    cols = len(first["layers"])
    values = int(sum(first["layers"][0]["counts"]))  # samples × units per layer
    # the book cuts at 7,000 of its 1,000 × 100 values; the same share of ours
    cut = 7000 * values / 100_000
    fig, axes = plt.subplots(len(cases), cols, figsize=(2.3 * cols, 1.9 * len(cases)),
                             squeeze=False)
    for r, (case, row) in enumerate(cases.items()):
        low, high = row["range"]
        for k, layer in enumerate(row["layers"]):
            ax = axes[r, k]
            counts = np.asarray(layer["counts"])
            edges = np.linspace(low, high, len(counts) + 1)
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge")
            ax.set_xlim(low, high)
            if row["activation"] == "relu":
                ax.set_ylim(0, cut)  # the book's cut: the tall zero bin would hide the rest
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(f"{k + 1}-layer", fontsize=8)
            if k:
                ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{case}\nstd={row['std']:.3g}", fontsize=8)
    sym = results["symmetry"]
    fig.suptitle(f"activations per layer, {values:,} values each (relu rows cut at "
                 f"{cut:,.0f}, the book's share); symmetry: "
                 f"constant init max unit difference {sym['constant']['max_unit_difference']:.1e}"
                 f" vs He {sym['he']['max_unit_difference']:.2f}", fontsize=9)
    fig.tight_layout()
    return [save_figure(fig, out_dir / "weight_init_histogram.png")]
