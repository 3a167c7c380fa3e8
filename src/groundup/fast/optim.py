"""``optimizer(opt, compiled)``: the update of a :mod:`groundup.optimizers` optimizer, fast.

The reference ``opt.update`` runs each rule as its formula, one parameter at a time. The
fast update computes the same rules with the speed devices around them:

- **packed runs**: when the parameters are consecutive views of one flat buffer (a compiled
  model's ``params``), each run of small parameters is updated as one array: a slice of the
  buffer, its gradients gathered by one copy, and the state kept in flat buffers laid out
  like the parameters. ``opt.state[slot][key]`` holds views of those buffers, so
  ``state_dict``, ``load_state_dict`` and the reference ``opt.update`` see the same arrays;
- **kernels**: each rule as a few in-place ``out=`` passes over reusable scratch arrays,
  with the per-update scalars folded (Adam's bias corrections into one step and one eps);
- **threads**: the large updates of the rules that compute more than they move are split
  into contiguous chunks over :func:`groundup.fast.get_num_threads` threads;
- **numba**: SGD and Adam/AdamW as one fused loop per array when numba is installed.

Every element goes through the same operations whatever the packing, the chunks or the
kernel (NumPy or numba), so those agree bit for bit. SGD, AdaGrad, RMSprop and Adadelta do
the reference's operations in its order and give its bits; Adam, AdamW and Nadam fold
constants and differ from the reference by rounding (``tests/test_fast_optim.py`` states
the bound). Optimizers the engine does not know (a subclass with its own ``step``, the
book's optimizers, any object with ``update``) run their own ``update``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from groundup._checks import type_error
from groundup.fast import _numba, threads, trace
from groundup.fast._optim_rules import RULES, Rule

# Below this many elements per thread, handing work to another thread costs more than it saves.
_MIN_PIECE = 1 << 15
# Parameters below this size are updated together with their neighbours in the buffer.
_SMALL = 1 << 15
# What an optimizer class must inherit unchanged from a rule's class for the rule to apply.
_CONTRACT = ("update", "step", "begin_update", "decayed_lr", "check_update", "slot_arrays")


class FastOptimizer:
    """Updates ``params`` as ``opt.update`` does; ``opt`` keeps the hyperparameters and state.

    Reads ``opt.lr``, ``opt.decay`` and the hyperparameters at every update and counts
    ``opt.iterations``, so schedules, ``state_dict`` and switching to ``opt.update`` and
    back work as with the reference.
    """

    def __init__(self, opt: Any, compiled: Any = None) -> None:
        if not callable(getattr(opt, "update", None)):
            raise type_error("fast.optimizer", "opt", "an optimizer with update(params, grads)",
                             opt)
        self.opt = opt
        self.compiled = compiled
        self._rule = _rule_for(opt)
        self._plan: tuple[list[np.ndarray], tuple | None] | None = None
        self._flat: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        self._gathered: np.ndarray | None = None
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
        self._scratch_views: dict[tuple, list[np.ndarray]] = {}
        if compiled is not None and isinstance(getattr(compiled, "params", None), dict):
            ps = list(compiled.params.values())
            self._plan = (ps, _layout(ps))

    def update(self, params: Any, grads: Any) -> None:
        """One step of ``opt`` on every array of ``params``, in place."""
        opt, rule = self.opt, self._rule
        if rule is None:
            trace.record("optim.reference")
            opt.update(params, grads)
            return
        grads = opt.check_update(params, grads)
        keys, ps = list(params), list(params.values())
        gs = [grads[key] for key in keys]
        items = self._packed_items(keys, ps, gs)
        if items is None:
            items = []
            for key, p, g in zip(keys, ps, gs, strict=True):
                state = opt.slot_arrays(key, p)
                items.append((p, g, [state[slot] for slot in opt.slots]))
        opt.iterations += 1
        lr = opt.decayed_lr()
        opt.begin_update()
        self._run(rule, items, rule.constants(opt, lr))

    # --- packed runs -------------------------------------------------------------------
    def _packed_items(self, keys: list[str], ps: list[np.ndarray],
                      gs: list[np.ndarray]) -> list | None:
        """Update items over the slice of one buffer the parameters tile, or None.

        Large parameters stay one item each; every run of small ones is one item.
        """
        plan = self._plan
        if plan is None or len(plan[0]) != len(ps) or any(
                a is not b for a, b in zip(plan[0], ps, strict=True)):
            plan = self._plan = (ps, _layout(ps))
        if plan[1] is None:
            return None
        region, runs = plan[1]
        flats = self._flat_state(keys, ps, region)
        gathered = self._gathered
        if gathered is None or gathered.shape != region.shape or gathered.dtype != region.dtype:
            gathered = self._gathered = np.empty_like(region)
        trace.record("optim.packed")
        items = []
        for start, stop, members in runs:
            if len(members) == 1:
                p, g = ps[members[0]], gs[members[0]]
            else:
                p, g = region[start:stop], gathered[start:stop]
                np.concatenate([gs[i].reshape(-1) for i in members], out=g)
            items.append((p, g, [flat[start:stop].reshape(p.shape) for flat in flats]))
        return items

    def _flat_state(self, keys: list[str], ps: list[np.ndarray],
                    region: np.ndarray) -> list[np.ndarray]:
        """Each slot's state as one buffer laid out like ``region``, ``opt.state`` views of it.

        Gathered again when the views are not the arrays ``opt.state`` holds (the reference
        update made new ones or ``load_state_dict`` rebound them).
        """
        opt = self.opt
        known = [self._flat.get(slot) for slot in opt.slots]
        if all(k is not None and k[0].shape == region.shape and k[0].dtype == region.dtype
               and len(k[1]) == len(keys)
               and all(opt.state[slot].get(key) is view
                       for key, view in zip(keys, k[1], strict=True))
               for slot, k in zip(opt.slots, known, strict=True)):
            return [k[0] for k in known]
        states = [opt.slot_arrays(key, p) for key, p in zip(keys, ps, strict=True)]
        flats = []
        for slot in opt.slots:
            flat = np.empty(region.shape, dtype=region.dtype)
            views, offset = [], 0
            for key, p, state in zip(keys, ps, states, strict=True):
                view = flat[offset:offset + p.size].reshape(p.shape)
                view[...] = state[slot]
                opt.state[slot][key] = view
                views.append(view)
                offset += p.size
            self._flat[slot] = (flat, views)
            flats.append(flat)
        return flats

    # --- kernels and threads -----------------------------------------------------------
    def _run(self, rule: Rule, items: list, c: tuple[float, ...]) -> None:
        opt = self.opt
        fused = _numba.kernels() if rule.fused is not None and rule.fusable(opt) else None
        if fused is not None and all(_fusable(p, g, slots) for p, g, slots in items):
            trace.record(f"optim.numba.{rule.name}")
            for p, g, slots in items:
                rule.fused(fused, opt, p, g, slots, c)
            return
        trace.record(f"optim.kernel.{rule.name}")
        n = threads.get_num_threads()
        total = sum(p.size for p, _, _ in items)
        if n == 1 or not rule.threaded or total < n * _MIN_PIECE:
            shards: list[list[tuple]] = [items]
        else:
            shards = [[] for _ in range(n)]
            loads = [0] * n
            for p, g, slots in items:
                if p.flags.c_contiguous and g.flags.c_contiguous and p.size >= n * _MIN_PIECE:
                    pf, gf, sf = p.reshape(-1), g.reshape(-1), [s.reshape(-1) for s in slots]
                    for j, (a, b) in enumerate(threads.bounds(p.size, n)):
                        shards[j].append((pf[a:b], gf[a:b], [s[a:b] for s in sf]))
                        loads[j] += b - a
                else:
                    j = loads.index(min(loads))
                    shards[j].append((p, g, slots))
                    loads[j] += p.size
        decay = opt.coupled_weight_decay and opt.weight_decay
        n_work = rule.n_work + (1 if decay else 0)
        jobs = [[(p, g, slots, self._work(j, p, n_work)) for p, g, slots in shard]
                for j, shard in enumerate(shards) if shard]
        if len(jobs) > 1:
            trace.record("optim.threads")
        threads.run(_run_shard, [(rule, opt, job, c) for job in jobs])

    def _work(self, j: int, p: np.ndarray, n_work: int) -> list[np.ndarray]:
        """``n_work`` scratch arrays shaped like ``p`` from shard ``j``'s reusable buffer."""
        views = self._scratch_views.get((j, p.shape, p.dtype, n_work))
        if views is not None:
            return views
        buf = self._scratch.get((j, p.dtype))
        n = p.size
        if buf is None or buf.size < n_work * n:
            buf = self._scratch[(j, p.dtype)] = np.empty(n_work * n, dtype=p.dtype)
            self._scratch_views.clear()  # views of the buffer just replaced
        views = [buf[i * n:(i + 1) * n].reshape(p.shape) for i in range(n_work)]
        self._scratch_views[(j, p.shape, p.dtype, n_work)] = views
        return views


def optimizer(opt: Any, compiled: Any = None) -> FastOptimizer:
    """The fast update for ``opt``; ``compiled`` (from :func:`groundup.fast.compile`) lays
    out the parameters in advance. ``FastOptimizer.update(params, grads)`` is the update."""
    return FastOptimizer(opt, compiled)


def _run_shard(rule: Rule, opt: Any, shard: list, c: tuple[float, ...]) -> None:
    decay = opt.weight_decay if opt.coupled_weight_decay else 0.0
    for p, g, slots, work in shard:
        if decay:
            w = work[-1]
            np.multiply(p, decay, out=w)
            w += g
            g = w
        rule.kernel(opt, p, g, slots, work, c)


def _layout(ps: list[np.ndarray]) -> tuple[np.ndarray, list] | None:
    """The 1-D slice of one buffer that ``ps`` tile in order, and its runs ``(start, stop,
    member indices)``; None when ``ps`` are not consecutive C-contiguous views of one buffer."""
    base = ps[0].base if ps else None
    if base is None or base.ndim != 1 or not base.flags.c_contiguous or base.dtype.kind != "f":
        return None
    origin = base.__array_interface__["data"][0]
    first = (ps[0].__array_interface__["data"][0] - origin) // base.itemsize
    total = sum(p.size for p in ps)
    if first < 0 or first + total > base.size:
        return None
    runs: list[tuple[int, int, list[int]]] = []
    offset = 0
    after_small = False  # the last run is of small parameters
    for i, p in enumerate(ps):
        address = origin + (first + offset) * base.itemsize
        if (p.base is not base or not p.flags.c_contiguous or p.dtype != base.dtype
                or p.__array_interface__["data"][0] != address):
            return None
        small = p.size < _SMALL
        if small and after_small:
            start, _, members = runs[-1]
            runs[-1] = (start, offset + p.size, [*members, i])
        else:
            runs.append((offset, offset + p.size, [i]))
        after_small = small
        offset += p.size
    return base[first:first + total], runs


def _fusable(p: np.ndarray, g: np.ndarray, slots: list[np.ndarray]) -> bool:
    """Arrays the fused kernels take: float32/float64, one dtype, C-contiguous."""
    return (p.dtype in (np.float32, np.float64) and p.flags.c_contiguous
            and g.dtype == p.dtype and g.flags.c_contiguous
            and all(s.dtype == p.dtype and s.flags.c_contiguous for s in slots))


def _rule_for(opt: Any) -> Rule | None:
    """The rule of the nearest known class of ``opt``, if ``opt`` changes none of its steps."""
    cls = type(opt)
    for known in cls.__mro__:
        rule = RULES.get(known)
        if rule is not None:
            same = all(getattr(cls, name) is getattr(known, name) for name in _CONTRACT)
            return rule if same else None
    return None
