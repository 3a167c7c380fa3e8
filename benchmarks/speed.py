"""Training and inference speed of the book's networks: groundup vs PyTorch CPU vs GEMM roofline.

Run (one command; it re-executes itself with the protocol's environment)::

    .venv/bin/python benchmarks/speed.py --threads 2 --rounds 7

Protocol (docs/design.md, "Benchmarks"): ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are
removed from the environment before NumPy is imported, both sides run ``--threads`` threads,
float32, batch 100.
Models: (a) TwoLayerNet 784-50-10 ReLU with SGD, (b) MultiLayerNetExtend 784-[100]×5-10 with
batch norm, dropout 0.2 and Adam, (c) SimpleConvNet (30 filters 5×5, max pool 2, 100 hidden)
with Adam. One training step = forward + backward + update. The ``torch-compile`` side runs
the same loop on ``torch.compile(model)`` with the fused optimizer (compiled during setup,
before any timing), reported only; where it cannot run (no C compiler for inductor, ...),
the benchmark prints why and goes on without it. Each side (groundup, PyTorch with
``torch.optim`` and standard ``nn`` modules, GEMM-only roofline) lives in its own worker
process of this command's process tree, and only one works at a time, so no side's idle
thread pool spins on the cores the other needs, and every timed request starts after
``--pause`` seconds of idle so that the previous side's pools have gone to sleep, then
runs ``--warmup`` seconds of untimed steps so that its own threads and cores are back to
speed (steady training, not the first steps after an idle spell, is what is timed); rounds
are interleaved (groundup, torch, roofline, then the next model, then the next round) and
min/median/max steps/s are over rounds. The roofline is NumPy matmul alone on exactly the
model's forward and backward GEMM shapes (no input gradient for the first layer).
Inference = ``predict`` on a batch of 1000 in evaluation mode. Peak memory = RSS growth of a
fresh subprocess from after its imports to the end of 50 training steps of (c), per side;
numba counts as an import (as torch does) and its size is printed beside groundup's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

BATCH = 100
INFER_BATCH = 1000
MODELS = ("a", "b", "c")
TITLES = {"a": "(a) TwoLayerNet 784-50-10, SGD",
          "b": "(b) MultiLayerNetExtend 784-[100]x5-10, BN, dropout 0.2, Adam",
          "c": "(c) SimpleConvNet 30x5x5, pool 2, 100 hidden, Adam"}
STEPS = {"a": 400, "b": 60, "c": 8}  # per round, so that each side runs ~0.1-0.3 s per round
_MARK = "GROUNDUP_SPEED_PROTOCOL"
# groundup: the fast engine with numba when installed; groundup-numpy: the same without
# numba (GROUNDUP_NUMBA=0 in its worker), so numba's gain is measured in the same run
# torch-compile: the same loop on torch.compile(model) with the fused optimizer, reported
# only (no target, not the peer); where it cannot run, the benchmark says why and goes on
SIDES = ("groundup", "groundup-numpy", "reference", "torch", "torch-foreach", "torch-fused",
         "torch-compile", "roofline")


def protocol_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env[_MARK] = str(threads)
    return env


def ensure_protocol(threads: int) -> None:
    """Re-execute this script under the protocol's environment unless already there."""
    if "numpy" in sys.modules:
        raise RuntimeError("speed: the protocol must be set before numpy is imported.")
    if os.environ.get(_MARK) != str(threads) or "OPENBLAS_CORETYPE" in os.environ \
            or "OPENBLAS_L2_SIZE" in os.environ:
        env = protocol_env(threads)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


# ---- models -----------------------------------------------------------------------------
def data(kind: str, n: int, seed: int = 0) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (n, 784) if kind != "c" else (n, 1, 28, 28)
    x = rng.random(shape, dtype=np.float32)
    t = rng.integers(0, 10, n)
    return x, t


def groundup_model(kind: str) -> tuple[Any, Any]:
    import numpy as np

    from groundup import models, optimizers

    rng = np.random.default_rng(0)
    if kind == "a":
        model = models.TwoLayerNet(784, 50, 10, activation="relu", rng=rng, dtype=np.float32)
        opt = optimizers.SGD(lr=0.1)
    elif kind == "b":
        model = models.MultiLayerNetExtend(784, [100] * 5, 10, use_batchnorm=True,
                                           use_dropout=True, dropout_ration=0.2, rng=rng,
                                           dtype=np.float32)
        opt = optimizers.Adam(lr=1e-3)
    else:
        model = models.SimpleConvNet((1, 28, 28), {"filter_num": 30, "filter_size": 5},
                                     hidden_size=100, output_size=10, rng=rng, dtype=np.float32)
        opt = optimizers.Adam(lr=1e-3)
    return model, opt


# PyTorch's optimizer implementations: its default (a loop over the parameters on CPU),
# foreach (one multi-tensor call per operation) and fused (one kernel); the fastest is the
# peer the ratio is taken against.
TORCH_VARIANTS = {"torch": {}, "torch-foreach": {"foreach": True}, "torch-fused": {"fused": True}}


def torch_model(kind: str, variant: str = "torch") -> tuple[Any, Any]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    extra = TORCH_VARIANTS[variant]
    if kind == "a":
        net = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10))
        opt = torch.optim.SGD(net.parameters(), lr=0.1, **extra)
    elif kind == "b":
        layers: list[nn.Module] = []
        width = 784
        for _ in range(5):
            layers += [nn.Linear(width, 100), nn.BatchNorm1d(100), nn.ReLU(), nn.Dropout(0.2)]
            width = 100
        net = nn.Sequential(*layers, nn.Linear(width, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, **extra)
    else:
        net = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                            nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, **extra)
    return net, opt


def groundup_step(kind: str, n_batches: int = 4, fast: bool = True) -> Callable[[], None]:
    """One training step as ``Trainer`` runs it: through the fast engine (``fast=True``, the
    default of ``Trainer``) or on the reference layers and optimizers (``Trainer(fast=False)``)."""
    from groundup import fast as engine

    model, opt = groundup_model(kind)
    net, update = model, opt.update
    if fast:
        net = engine.compile(model)
        update = engine.optimizer(opt, net).update
    batches = [data(kind, BATCH, seed) for seed in range(n_batches)]
    counter = [0]

    def step() -> None:
        x, t = batches[counter[0] % n_batches]
        counter[0] += 1
        grads = net.gradient(x, t)
        update(net.params, grads)

    step.model = model  # type: ignore[attr-defined]
    step.net = net  # type: ignore[attr-defined]
    return step


def torch_step(kind: str, n_batches: int = 4, variant: str = "torch") -> Callable[[], None]:
    import torch
    import torch.nn.functional as F  # noqa: N812

    net, opt = torch_model(kind, "torch-fused" if variant == "torch-compile" else variant)
    net.train()
    if variant == "torch-compile":
        net = torch.compile(net)  # compiled at the first steps, in the worker's setup
    batches = [tuple(torch.from_numpy(a) for a in data(kind, BATCH, seed))
               for seed in range(n_batches)]
    counter = [0]

    def step() -> None:
        x, t = batches[counter[0] % n_batches]
        counter[0] += 1
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), t).backward()
        opt.step()

    return step


def gemm_shapes(model: Any, batch: int) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
    """(A shape, B shape, transpose A) of every GEMM of one forward + backward pass."""
    from groundup.conv import Convolution
    from groundup.layers import Affine

    shapes = []
    for layer in model.layers.values():
        if isinstance(layer, Affine):
            d, m = layer.W.shape
            rows = batch
        elif isinstance(layer, Convolution):
            fn, c, fh, fw = layer.W.shape
            d, m = c * fh * fw, fn
            rows = batch * layer.out_hw[0] * layer.out_hw[1]
        else:
            continue
        shapes.append(((rows, d), (d, m), False))  # forward: x · W
        shapes.append(((rows, d), (rows, m), True))  # dW = xᵀ · dout
        if layer.needs_input_grad:
            shapes.append(((rows, m), (m, d), False))  # dx = dout · Wᵀ
    return shapes


def roofline_step(model: Any) -> Callable[[], None]:
    import numpy as np

    rng = np.random.default_rng(1)
    work = []
    for a_shape, b_shape, trans in gemm_shapes(model, BATCH):
        a = rng.random(a_shape, dtype=np.float32)
        b = rng.random(b_shape, dtype=np.float32)
        a = a.T if trans else a
        out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
        work.append((a, b, out))

    def step() -> None:
        for a, b, out in work:
            np.matmul(a, b, out=out)

    return step


def time_round(step: Callable[[], None], steps: int, warmup: float = 0.0) -> float:
    """Steps per second over ``steps`` calls, after ``warmup`` seconds of untimed calls."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup:
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


# ---- reports ----------------------------------------------------------------------------
def blas_info() -> str:
    from threadpoolctl import threadpool_info

    rows = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
            f"threads={d.get('num_threads')} ({os.path.basename(d.get('filepath', ''))})"
            for d in threadpool_info()]
    return "; ".join(rows) or "no BLAS found"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return platform.processor()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"speed: {field} not in /proc/self/status")


def memory_child(side: str, kind: str, steps: int) -> None:
    """Print the RSS growth (bytes) of ``steps`` training steps, measured from after imports."""
    import numpy as np  # noqa: F401

    if side.startswith("torch"):
        import torch
        import torch.nn.functional as F  # noqa: F401, N812

        torch.set_num_threads(int(os.environ[_MARK]))
    else:
        from groundup import conv, fast, layers, models, optimizers  # noqa: F401
        from groundup.fast import _numba

        fast.set_num_threads(int(os.environ[_MARK]))
    before = _status("VmRSS")
    if side == "groundup":  # numba is an import, as torch's is: loaded before the window
        _numba.kernels()  # imports numba; its kernels load (and stay counted) at first use
    numba_import = _status("VmRSS") - before
    try:  # reset the peak so the imports' own peak does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    base = _status("VmRSS")
    step = (torch_step(kind, variant=side) if side.startswith("torch")
            else groundup_step(kind, fast=side != "reference"))
    for _ in range(steps):
        step()
    peak = _status("VmHWM")
    print(f"{peak - base} {int(reset)} {numba_import}")


def measure_memory(kind: str, steps: int = 50) -> dict[str, tuple[int, int]]:
    """Per side: (RSS growth over the steps, RSS of the numba import before them)."""
    out = {}
    for side in ("groundup", "reference", *TORCH_VARIANTS):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", side, kind,
                               "--memory-steps", str(steps)],
                              capture_output=True, text=True, check=True, env=os.environ.copy())
        words = proc.stdout.split()
        out[side] = (int(words[0]), int(words[2]))
    return out


class Worker:
    """One side in its own subprocess, so no side's idle thread pool spins on the other's cores."""

    def __init__(self, side: str, threads: int, script: str = __file__) -> None:
        self.side = side
        self.proc = subprocess.Popen([sys.executable, script, "--threads", str(threads),
                                      "--worker", side], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=os.environ.copy())

    def ask(self, *words: Any, pause: float = 0.0) -> str:
        # the side that ran last keeps its BLAS/OpenMP threads spinning for a while after its
        # work; let them go to sleep so they do not steal the cores of the side timed next
        time.sleep(pause)
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"speed: the {self.side} worker exited.")
        return line.strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def worker(side: str, threads: int) -> None:
    """Serve ``setup K`` / ``train K STEPS`` / ``infer K CALLS`` / ``info`` over stdin."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if side == "groundup-numpy":
        os.environ["GROUNDUP_NUMBA"] = "0"
    is_torch = side.startswith("torch")
    if is_torch:
        import torch

        torch.set_num_threads(threads)
    else:
        from groundup import fast

        fast.set_num_threads(threads)
    train: dict[str, Callable[[], None]] = {}
    infer: dict[str, Callable[[], None]] = {}
    for line in sys.stdin:
        words = line.split()
        if words[0] == "info":
            if is_torch:
                reply = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
            else:
                from groundup.fast import _numba

                kernels = "on" if _numba.kernels() is not None else "off"
                reply = f"numpy {np.__version__}; BLAS: {blas_info()}; numba kernels {kernels}"
        elif words[0] == "setup" and side == "torch-compile":
            try:
                train[words[1]] = torch_step(words[1], variant=side)
                for _ in range(3):
                    train[words[1]]()
                reply = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure of the compiler is reported
                reply = "unavailable: " + " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        elif words[0] == "setup":
            kind = words[1]
            x, _ = data(kind, INFER_BATCH, seed=99)
            if is_torch:
                train[kind] = torch_step(kind, variant=side)
                net, _ = torch_model(kind)
                net.eval()
                x_t = torch.from_numpy(x)

                def predict(net=net, x=x_t) -> None:
                    with torch.inference_mode():
                        net(x)
            else:
                step = groundup_step(kind, fast=side != "reference")
                step()
                train[kind] = roofline_step(step.model) if side == "roofline" else step

                def predict(net=step.net, x=x) -> None:
                    net.predict(x)
            infer[kind] = predict
            for _ in range(3):
                train[kind]()
                infer[kind]()
            reply = "ok"
        elif words[0] == "train":
            reply = repr(time_round(train[words[1]], int(words[2]), float(words[3])))
        elif words[0] == "infer":
            reply = repr(time_round(infer[words[1]], int(words[2]), float(words[3]))
                         * INFER_BATCH)
        else:
            raise RuntimeError(f"speed: unknown worker request {line!r}")
        print(reply, flush=True)


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "".join(c.rjust(w) if i else c.ljust(w)
                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply steps per round")
    parser.add_argument("--models", default="abc", help="subset of 'abc'")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="seconds of untimed steps after the pause, before timing: idle "
                             "cores and sleeping thread pools take tens of ms to come back "
                             "to speed (0 = time from the first step)")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of idle before each timed request")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", nargs=2, metavar=("SIDE", "MODEL"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_protocol(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args.memory_steps)
        return
    if args.worker:
        worker(args.worker, args.threads)
        return

    kinds = [k for k in MODELS if k in args.models]
    workers = {side: Worker(side, args.threads) for side in SIDES}
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical cores; python "
          f"{platform.python_version()}; {workers['groundup'].ask('info')}; "
          f"{workers['torch'].ask('info')}")
    print(f"groundup-numpy side: {workers['groundup-numpy'].ask('info')}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')!r}; threads={args.threads} "
          "per side; each side in its own worker process, one running at a time")
    for kind in kinds:
        for side, w in list(workers.items()):
            reply = w.ask("setup", kind)
            if reply != "ok":  # torch.compile could not run here: report why, go on without it
                print(f"{side}: {reply}")
                w.close()
                del workers[side]
    print(f"load average before: {load_average()}")
    train = {k: {s: [] for s in workers} for k in kinds}
    pred = {k: {s: [] for s in ("groundup", "reference", "torch")} for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            steps = max(1, int(STEPS[kind] * args.scale))
            for side, w in workers.items():
                train[kind][side].append(float(w.ask("train", kind, steps, args.warmup,
                                                     pause=args.pause)))
            for side in pred[kind]:
                pred[kind][side].append(float(workers[side].ask(
                    "infer", kind, max(1, steps // 10), args.warmup, pause=args.pause)))
    print(f"load average after: {load_average()}")
    for w in workers.values():
        w.close()

    widths = [15, 9, 9, 9, 11, 11, 10]
    print(f"\nTraining, batch {BATCH}, steps/s over {args.rounds} interleaved rounds "
          "(vs best = median / the fastest torch variant's median; vs default = median / "
          "torch default's; roofline = median / GEMM-only median). groundup = the fast "
          "engine (Trainer's default), reference = Trainer(fast=False)")
    for kind in kinds:
        print(TITLES[kind])
        print(fmt_row(["side", "min", "median", "max", "vs best", "vs default", "roofline"],
                      widths))
        med = {s: statistics.median(v) for s, v in train[kind].items()}
        best = max(TORCH_VARIANTS, key=lambda v: med[v])
        for side, values in train[kind].items():
            print(fmt_row([side, f"{min(values):.1f}", f"{med[side]:.1f}", f"{max(values):.1f}",
                           f"{med[side] / med[best]:.2f}x", f"{med[side] / med['torch']:.2f}x",
                           f"{med[side] / med['roofline']:.0%}"], widths))
        print(f"  fastest torch variant: {best}")
    print(f"\nInference (predict, batch {INFER_BATCH}, eval mode), samples/s, median")
    print(fmt_row(["model", "groundup", "reference", "torch", "ratio"], [10, 12, 12, 12, 9]))
    for kind in kinds:
        med = {s: statistics.median(v) for s, v in pred[kind].items()}
        print(fmt_row([f"({kind})", f"{med['groundup']:.0f}", f"{med['reference']:.0f}",
                       f"{med['torch']:.0f}", f"{med['groundup'] / med['torch']:.2f}x"],
                      [10, 12, 12, 12, 9]))
    if not args.no_memory and "c" in kinds:
        mem = measure_memory("c")
        print(f"\nPeak memory of (c) training, batch {BATCH}: RSS growth of a fresh subprocess "
              "from after imports (numba's included, as torch's) to the end of 50 steps")
        for side, (value, numba_import) in mem.items():
            extra = (f" (+{numba_import / 2**20:.1f} MiB numba import before the window; its "
                     "kernels' first load is inside)" if numba_import else "")
            print(f"  {side:<9}{value / 2**20:8.1f} MiB{extra}")


if __name__ == "__main__":
    main()
