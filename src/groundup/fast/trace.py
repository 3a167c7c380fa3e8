"""Which fast pieces ran: the engine records each piece by name as it runs.

Equivalence tests compare a fast piece with the reference code, and a case that silently
fell back to the reference would compare the reference with itself. So every fast piece
calls :func:`record` with its name, and a test asserts on what ran::

    with tracing() as ran:
        compiled.gradient(x, t)
    assert ran["conv_relu_pool.forward"] == 1

Recording costs one truth test when no one is tracing.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

_active: list[Counter] = []


def record(piece: str) -> None:
    """Count one run of the fast piece ``piece`` in every active :func:`tracing` block."""
    if _active:
        for counter in _active:
            counter[piece] += 1


@contextlib.contextmanager
def tracing() -> Iterator[Counter]:
    """A ``Counter`` of the fast pieces that ran inside the block (blocks may nest)."""
    counter: Counter = Counter()
    _active.append(counter)
    try:
        yield counter
    finally:
        _active.remove(counter)
