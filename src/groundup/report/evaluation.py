"""The end-of-run evaluation a report shows without the data set: ``evaluation.json/.npz``.

``train`` writes them beside the model: the test confusion matrix (rows = true class,
columns = predicted) and up to ``MISCLASSIFIED`` misclassified test images with their
labels, predictions and the predicted class's probability.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from groundup import _files
from groundup.io import write_text_atomic

__all__ = ["write_evaluation", "read_evaluation", "MISCLASSIFIED"]

MISCLASSIFIED = 32
FORMAT = "groundup.evaluation"


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def write_evaluation(directory: str | Path, scores: np.ndarray, x: np.ndarray,
                     labels: np.ndarray, *, split: str = "test",
                     restored_epoch: int | None = None) -> dict[str, Any]:
    """Write ``evaluation.json`` and ``evaluation.npz`` from a model's ``scores`` on ``x``.

    ``restored_epoch`` (1-based): the epoch whose weights early stopping put back.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    classes = scores.shape[1]
    predicted = scores.argmax(axis=1)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    wrong = np.flatnonzero(predicted != labels)[:MISCLASSIFIED]
    with np.errstate(all="ignore"):
        probability = _softmax(scores[wrong].astype(np.float64))[np.arange(len(wrong)),
                                                                 predicted[wrong]]
    images = np.asarray(x[wrong], dtype=np.float32)
    side = int(round(np.sqrt(images[0].size))) if len(images) else 0
    if len(images) and images[0].ndim == 1 and side * side == images[0].size:
        images = images.reshape(len(images), side, side)
    elif len(images) and images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    summary = {"format": FORMAT, "format_version": 1, "split": split,
               "examples": int(len(labels)), "restored_epoch": restored_epoch,
               "accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
               "confusion": confusion.tolist(),
               "misclassified": [{"index": int(i), "label": int(labels[i]),
                                  "predicted": int(predicted[i]), "probability": float(p)}
                                 for i, p in zip(wrong, probability, strict=True)]}
    arrays = {"confusion": confusion, "images": images, "index": wrong,
              "label": labels[wrong], "predicted": predicted[wrong]}
    _files.atomic_write(Path(directory) / "evaluation.npz",
                        lambda fh: np.savez_compressed(fh, **arrays), owner="evaluation")
    write_text_atomic(Path(directory) / "evaluation.json", json.dumps(summary, indent=1) + "\n")
    return summary


def read_evaluation(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(``evaluation.json``, ``evaluation.npz`` arrays), or ``({}, {})`` when absent."""
    directory = Path(directory)
    path = directory / "evaluation.json"
    if not path.is_file():
        return {}, {}
    summary = json.loads(path.read_text(encoding="utf-8"))
    arrays: dict[str, np.ndarray] = {}
    if (directory / "evaluation.npz").is_file():
        with np.load(directory / "evaluation.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    return summary, arrays
