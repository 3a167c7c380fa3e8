"""What ``--diagnostics`` costs per epoch: one diagnostics point vs one epoch of training.

Run::

    .venv/bin/python benchmarks/diagnostics.py --threads 2 --rounds 5

Protocol (DESIGN §9): ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` unset, ``--threads``
threads. On the bundled MNIST sample (3,600 training examples, batch 100, the fast engine,
Adam) for the three reference shapes — MLP 784-100-100-10, MultiLayerNetExtend
784-[100]x5-10 with batch norm and dropout, SimpleConvNet — it times an epoch of
training without diagnostics, and one diagnostics point (probe of 256 examples: the
evaluation pass, the gradient pass, histograms and writing both files), and prints the
medians and their ratio. An epoch of full MNIST (54,000 examples) is 15 times longer, so
the share there is a fifteenth of the one printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from speed import ensure_protocol


def models():
    import numpy as np

    from groundup.models import MultiLayerNetExtend, SimpleConvNet

    return {
        "mlp 784-100-100-10": (lambda: MultiLayerNetExtend(784, [100, 100], 10, rng=0,
                                                           dtype=np.float32), False),
        "mlp-extend 5x100 bn+dropout": (lambda: MultiLayerNetExtend(
            784, [100] * 5, 10, use_batchnorm=True, use_dropout=True, dropout_ration=0.2,
            rng=0, dtype=np.float32), False),
        "SimpleConvNet 30x5x5": (lambda: SimpleConvNet((1, 28, 28), rng=0, dtype=np.float32),
                                 True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ensure_protocol(args.threads)

    from groundup.data import load_mnist_sample
    from groundup.diagnostics import Diagnostics
    from groundup.optimizers import Adam
    from groundup.train import Trainer

    (x, t), _ = load_mnist_sample(normalize=True, flatten=True)
    x, t = x[:3600], t[:3600]
    print(f"python {sys.version.split()[0]}, {args.threads} threads, {len(x)} examples/epoch, "
          "batch 100, probe 256")
    print(f"{'model':30s} {'epoch (s)':>10s} {'point (s)':>10s} {'share':>7s}")
    for name, (build, conv) in models().items():
        xs = x.reshape(-1, 1, 28, 28) if conv else x
        model = build()
        trainer = Trainer(model, Adam(lr=1e-3), rng=0)
        diagnostics = Diagnostics(xs, t, tempfile.mkdtemp(), seed=0)
        epochs, points = [], []
        trainer.fit(xs, t, epochs=1)  # warm-up
        for _ in range(args.rounds):
            start = time.perf_counter()
            trainer.fit(xs, t, epochs=1)
            epochs.append(time.perf_counter() - start)
            start = time.perf_counter()
            diagnostics.record(model, epoch=len(points), logs=None)
            points.append(time.perf_counter() - start)
        epoch, point = statistics.median(epochs), statistics.median(points)
        print(f"{name:30s} {epoch:10.3f} {point:10.3f} {point / epoch:7.1%}")


if __name__ == "__main__":
    main()
