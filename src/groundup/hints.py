"""What to look at: rules that read a run's diagnostics and history (docs/diagnostics.md).

Each rule returns at most one :class:`Hint` — one line naming what it saw, with numbers,
and the section of "Deep Learning from Scratch" that explains it. The thresholds are
rules of thumb, written beside each rule; a healthy run (an MLP with He initialization
and Adam at 1e-3) raises none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Hint", "RULES", "hints"]

# A hidden layer whose activation std is below this share of the first's has "vanished".
VANISHED_SHARE = 1e-2
# A weight gradient whose norm relative to its weights is this far below the largest one's.
GRADIENT_SPREAD = 1e-3
EXPLODED_GROWTH = 1e3  # gradient norm grown this much since the first point,
EXPLODED_SIZE = 1.0  # to above this share of the weights' norm
LOSS_GROWTH = 5.0  # an epoch's mean training loss this many times the initial probe loss
DEAD_SHARE = 0.4
SATURATED_SHARE = 0.3
# ‖Δw‖/‖w‖ per update: about 1e-3 is the rule of thumb; these are two orders either side
# (Adam's steps of ~lr per weight give ~1e-2 on He-initialized weights).
UPDATE_LOW, UPDATE_HIGH = 1e-5, 1e-1
INITIAL_LOSS_FACTOR = 1.5  # initial loss beyond ln(C) · 1.5 or below ln(C) / 1.5
GAP = 0.1  # train accuracy above validation accuracy by this much, and growing


@dataclass(frozen=True)
class Hint:
    rule: str
    text: str
    section: str

    def line(self) -> str:
        return f"{self.text} (book {self.section})"

    def to_dict(self) -> dict[str, str]:
        return {**asdict(self), "line": self.line()}


def when(summary: dict[str, Any], point: dict[str, Any]) -> str:
    """Where a point is: ``epoch 3``, or ``iteration 400`` in a run counted in updates."""
    if summary.get("unit") == "iteration":
        return f"iteration {point.get('step')}"
    return f"epoch {point['epoch']}"


def _weights(point: dict[str, Any]) -> list[str]:
    """The weight arrays (W…) of a point, in layer order."""
    return [name for name in point["params"] if name.startswith("W")]


def _hidden(point: dict[str, Any], kinds: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in point["layers"].items() if s["kind"] in kinds]


def vanishing(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    points = summary["points"]
    if not points:
        return None
    first = points[0]
    acts = _hidden(first, ("Relu", "Sigmoid", "Tanh", "LeakyRelu"))
    if len(acts) >= 2 and acts[0][1]["std"] and acts[-1][1]["std"] is not None:
        share = acts[-1][1]["std"] / acts[0][1]["std"]
        if share < VANISHED_SHARE:
            return Hint("vanishing", f"vanishing activations: at the start the std of "
                        f"{acts[-1][0]} is {share:.1e} times that of {acts[0][0]}, so the "
                        "gradients vanish too; use He (ReLU) or Xavier (sigmoid, tanh) "
                        "initialization or batch norm", "6.2.2-6.2.3, 6.3")
    relative = {}
    for name in _weights(first):
        p = first["params"][name]
        if p["grad_norm"] is not None and p["weight_norm"]:
            relative[name] = p["grad_norm"] / p["weight_norm"]
    if len(relative) >= 2 and max(relative.values()) > 0:
        low = min(relative, key=relative.get)
        spread = relative[low] / max(relative.values())
        if spread < GRADIENT_SPREAD:
            return Hint("vanishing", f"vanishing gradients: at the start ‖∇{low}‖/‖{low}‖ is "
                        f"{spread:.1e} times the largest layer's; the early layers barely "
                        "learn", "6.2.2")
    return None


def exploding(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    points = summary["points"]
    if len(points) < 2:
        return None
    first, last = points[0], points[-1]
    losses = [v for v in history.get("loss") or [] if v is not None and math.isfinite(v)]
    if first["loss"] and losses and max(losses) > LOSS_GROWTH * first["loss"]:
        epoch = losses.index(max(losses)) + 1
        return Hint("exploding", f"exploding updates: the training loss reached "
                    f"{max(losses):.3g} in epoch {epoch} from {first['loss']:.3g} at the "
                    "start; the lr is too large: lower it, or clip gradients (clipnorm / "
                    "clipvalue on the optimizer)", "6.1")
    for name in _weights(last):
        now, before = last["params"][name]["grad_norm"], first["params"][name]["grad_norm"]
        weight = last["params"][name].get("weight_norm")
        # grown from a vanished start to a still small size is not an explosion
        large = now is None or not weight or now > EXPLODED_SIZE * weight
        if now is None or (before and now / before > EXPLODED_GROWTH and large):
            grown = "became non-finite" if now is None else f"grew {now / before:.0e}-fold"
            return Hint("exploding", f"exploding gradients: ‖∇{name}‖ {grown} by "
                        f"{when(summary, last)}; lower the lr or clip gradients (clipnorm / "
                        "clipvalue on the optimizer)", "6.1, 6.3")
    return None


def dead_relus(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    for point in summary["points"][1:] or summary["points"]:
        for name, stats in _hidden(point, ("Relu",)):
            if stats.get("dead_fraction", 0) > DEAD_SHARE:
                return Hint("dead_relu", f"dead ReLUs: {stats['dead_fraction']:.0%} of the "
                            f"units of {name} output 0 for every probe example at "
                            f"{when(summary, point)}; a smaller lr or He initialization keeps "
                            "them alive", "6.2.3")
    return None


def saturated(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    for point in summary["points"]:
        for name, stats in _hidden(point, ("Sigmoid", "Tanh")):
            if stats.get("saturated_fraction", 0) > SATURATED_SHARE:
                return Hint("saturated", f"saturated {stats['kind'].lower()}: "
                            f"{stats['saturated_fraction']:.0%} of {name}'s outputs are at "
                            f"the flat ends at {when(summary, point)}, where the gradient is "
                            "near 0; use Xavier initialization (std 1/√n) or batch norm",
                            "6.2.2")
    return None


def update_ratio(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    for point in summary["points"][1:]:
        ratios = [(n, point["params"][n]["update_ratio"]) for n in _weights(point)]
        ratios = [(n, r) for n, r in ratios if r]  # 0: nothing moved (dead units' rule)
        if not ratios:
            continue
        ratios.sort(key=lambda nr: nr[1])
        name, median = ratios[len(ratios) // 2]
        if median > UPDATE_HIGH or median < UPDATE_LOW:
            which = "large: lower" if median > UPDATE_HIGH else "small: raise"
            return Hint("update_ratio", f"update-to-weight ratio ‖Δw‖/‖w‖ is {median:.1e} "
                        f"(median, {when(summary, point)}), far from ~1e-3; the lr is too "
                        f"{which} it", "6.1")
    return None


def initial_loss(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    points, ln_c = summary["points"], summary.get("ln_classes")
    if not points or not ln_c or points[0]["epoch"] != 0:
        return None
    # the loss of the first training step (batch norm on the batch's own statistics)
    loss = points[0].get("train_mode_loss", points[0]["loss"])
    if loss is None or loss > ln_c * INITIAL_LOSS_FACTOR or loss < ln_c / INITIAL_LOSS_FACTOR:
        shown = "not finite" if loss is None else f"{loss:.3f}"
        return Hint("initial_loss", f"initial loss {shown} is far from ln({summary['classes']})"
                    f" = {ln_c:.3f}, the loss of a net that has no preference yet; the initial "
                    "weights are too large (or the labels wrong)", "4.2.2, 6.2")
    return None


def overfitting(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    train, val = history.get("train_accuracy") or [], history.get("val_accuracy") or []
    gaps = [a - b for a, b in zip(train, val, strict=False)
            if a is not None and b is not None]
    if len(gaps) >= 2 and gaps[-1] > GAP and gaps[-1] > gaps[0]:
        return Hint("overfitting", f"overfitting: train accuracy is {gaps[-1]:.1%} above "
                    f"validation accuracy at epoch {len(gaps)} (from {gaps[0]:.1%} at epoch 1); "
                    "use more data, weight decay or dropout", "6.4")
    return None


def non_finite(summary: dict[str, Any], history: dict[str, list]) -> Hint | None:
    bad = [i for i, v in enumerate(history.get("loss") or [])
           if v is None or not math.isfinite(v)]
    diverged = next((p["diverged_after"] for p in summary["points"] if "diverged_after" in p),
                    None)
    if bad or diverged:
        where = (f"epoch {diverged['epoch']}, step {diverged['step']}" if diverged
                 else f"epoch {bad[0] + 1}")
        return Hint("non_finite", f"the loss became non-finite at {where}; lower the lr, "
                    "clip gradients (clipnorm / clipvalue) or add batch norm", "6.1, 6.3")
    return None


RULES: dict[str, Callable[[dict[str, Any], dict[str, list]], Hint | None]] = {
    "vanishing": vanishing, "exploding": exploding, "dead_relu": dead_relus,
    "saturated": saturated, "update_ratio": update_ratio, "initial_loss": initial_loss,
    "overfitting": overfitting, "non_finite": non_finite,
}


def history_of(summary: dict[str, Any]) -> dict[str, list]:
    """The epoch metrics recorded with the diagnostics points, as a history dict."""
    history: dict[str, list] = {}
    for point in summary["points"]:
        for key, value in (point.get("logs") or {}).items():
            history.setdefault(key, []).append(value)
    return history


def hints(summary: dict[str, Any], history: dict[str, list] | None = None) -> list[Hint]:
    """Every rule's hint for one run (``summary``: ``diagnostics.json`` as a dict)."""
    history = history if history is not None else history_of(summary)
    found = (rule(summary, history) for rule in RULES.values())
    return [hint for hint in found if hint is not None]
