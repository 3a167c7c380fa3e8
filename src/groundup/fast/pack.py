"""One buffer for a model's parameters and state, the arrays becoming views of it.

A packed model keeps every parameter (in ``params`` order) and then every state array (batch-
norm running statistics, in ``state`` order) side by side in one flat allocation. The
layers' attributes and the model's ``params``/``state`` entries are rebound to views of it,
so the model, its layers, a compiled wrapper, an optimizer, saving and loading all hold the
very same arrays. An optimizer can then update all small parameters as one array.

``param_buffer`` and ``state_buffer`` are arrays of their own over the two parts of the
allocation (made from a memoryview, so NumPy does not fold their views back onto the whole):
the parameters tile ``param_buffer`` exactly, in order, which is what a packed update checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from groundup.fast.trace import record


@dataclass
class Packed:
    buffer: np.ndarray  # the one allocation
    param_buffer: np.ndarray  # its first part, tiled by the parameters in params order
    state_buffer: np.ndarray  # the rest, tiled by the state arrays in state order


def owners(model: Any) -> dict[int, tuple[Any, str]]:
    """``id(array) → (layer, attribute)`` for every parameter and state array of the layers."""
    found = {}
    for layer in model.layers.values():
        for attr in (*layer.param_names, *layer.state_names):
            found[id(getattr(layer, attr))] = (layer, attr)
    return found


def _tiles(arrays: list[np.ndarray], base: Any) -> bool:
    """Whether ``arrays`` are C-contiguous views tiling ``base`` exactly, in order."""
    if not isinstance(base, np.ndarray) or base.size != sum(a.size for a in arrays):
        return False
    start, offset = base.__array_interface__["data"][0], 0
    for a in arrays:
        if (a.base is not base or not a.flags.c_contiguous
                or a.__array_interface__["data"][0] != start + offset * base.itemsize):
            return False
        offset += a.size
    return True


def packed(model: Any) -> Packed | None:
    """The model's buffer if its parameters and state are packed already, else None."""
    params, state = list(model.params.values()), list(model.state.values())
    p_base = params[0].base if params else None
    if not params or not _tiles(params, p_base) or not isinstance(p_base.base, memoryview):
        return None
    buffer = p_base.base.obj
    if not state:
        return Packed(buffer, p_base, buffer[p_base.size:])
    s_base = state[0].base
    if not _tiles(state, s_base) or getattr(s_base.base, "obj", None) is not buffer:
        return None
    return Packed(buffer, p_base, s_base)


def pack(model: Any) -> Packed | None:
    """Move ``model``'s parameters and state into one buffer (see the module docstring).

    Returns None, and leaves the model as it is, when its arrays do not share one dtype.
    A model packed already keeps its buffer.
    """
    done = packed(model)
    if done is not None:
        return done
    arrays = [*model.params.values(), *model.state.values()]
    if not arrays or len({a.dtype for a in arrays}) != 1:
        return None
    record("pack")
    where = owners(model)
    n_params = sum(p.size for p in model.params.values())
    buffer = np.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
    view = memoryview(buffer)
    param_buffer = np.frombuffer(view[:n_params], dtype=buffer.dtype)
    state_buffer = np.frombuffer(view[n_params:], dtype=buffer.dtype)
    for table, flat in ((model.params, param_buffer), (model.state, state_buffer)):
        offset = 0
        for name, old in table.items():
            new = flat[offset:offset + old.size].reshape(old.shape)
            new[...] = old
            layer, attr = where[id(old)]
            setattr(layer, attr, new)
            table[name] = new
            offset += old.size
    return Packed(buffer, param_buffer, state_buffer)
