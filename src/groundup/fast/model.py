"""``compile(model)``: a model wrapper with the model's contract that computes the fast way."""

from __future__ import annotations

from typing import Any

from groundup._checks import type_error


class CompiledModel:
    """The model's contract (``params``, ``gradient``, ``loss``, ``predict``, ``accuracy``)
    on the model's own arrays. Everything not computed here is the model's."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def compile(model: Any) -> CompiledModel:  # noqa: A001 - the engine's verb
    """Wrap a :class:`groundup.models.Sequential` (or a book network) for fast training."""
    from groundup.models import Sequential

    if isinstance(model, CompiledModel):
        return model
    if not isinstance(model, Sequential):
        raise type_error("fast.compile", "model", "a groundup.models.Sequential (or a book "
                         "network)", model, "train other models with Trainer(fast=False).")
    return CompiledModel(model)
