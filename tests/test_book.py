"""Programs that make the seeds' calls through ``groundup.book``, with the book's signatures.

Each test is a program written here making the same calls as the seed documents (000: the
weight-decay/overfitting loop and the random hyperparameter search; 003: ch. 4's
simpleNet, TwoLayerNet and its training loop; 004: dropout), on real MNIST digits (the
full set when cached, else the bundled sample), with fewer epochs where noted.
"""

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import groundup.book as book
from groundup.book import (
    SGD,
    Dropout,
    MultiLayerNet,
    MultiLayerNetExtend,
    Trainer,
    TwoLayerNet,
    cross_entropy_error,
    load_mnist,
    numerical_gradient,
    shuffle_dataset,
    softmax,
)

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(normalize=True)


@pytest.fixture(scope="module")
def mnist_one_hot():
    return load_mnist(normalize=True, one_hot_label=True)


def test_book_surface_exports_everything_the_seeds_call():
    wanted = {"identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu",
              "relu_grad", "softmax", "mean_squared_error", "cross_entropy_error",
              "numerical_diff", "numerical_gradient", "gradient_descent", "Relu", "Sigmoid",
              "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization", "Convolution",
              "Pooling", "im2col", "col2im", "TwoLayerNet", "MultiLayerNet",
              "MultiLayerNetExtend", "SimpleConvNet", "DeepConvNet", "Trainer", "SGD",
              "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "load_mnist",
              "shuffle_dataset", "smooth_curve"}
    assert wanted <= set(book.__all__)
    for name in book.__all__:
        assert hasattr(book, name), name


@pytest.mark.parametrize(("obj", "params"), [
    (book.TwoLayerNet, ["input_size", "hidden_size", "output_size", "weight_init_std"]),
    (book.MultiLayerNet, ["input_size", "hidden_size_list", "output_size", "activation",
                          "weight_init_std", "weight_decay_lambda"]),
    (book.MultiLayerNetExtend, ["input_size", "hidden_size_list", "output_size", "activation",
                                "weight_init_std", "weight_decay_lambda", "use_dropout",
                                "dropout_ration", "use_batchnorm"]),
    (book.SimpleConvNet, ["input_dim", "conv_param", "hidden_size", "output_size",
                          "weight_init_std"]),
    (book.Trainer, ["network", "x_train", "t_train", "x_test", "t_test", "epochs",
                    "mini_batch_size", "optimizer", "optimizer_param",
                    "evaluate_sample_num_per_epoch", "verbose"]),
    (book.load_mnist, ["normalize", "flatten", "one_hot_label"]),
    (book.shuffle_dataset, ["x", "t"]),
    (book.numerical_gradient, ["f", "x"]),
    (book.gradient_descent, ["f", "init_x", "lr", "step_num"]),
    (book.Affine, ["W", "b"]),
    (book.BatchNormalization, ["gamma", "beta", "momentum", "running_mean", "running_var"]),
    (book.Convolution, ["W", "b", "stride", "pad"]),
    (book.Pooling, ["pool_h", "pool_w", "stride", "pad"]),
    (book.im2col, ["input_data", "filter_h", "filter_w", "stride", "pad"]),
    (book.col2im, ["col", "input_shape", "filter_h", "filter_w", "stride", "pad"]),
    (book.Dropout, ["dropout_ratio"]),
])
def test_book_signatures(obj, params):
    positional = [p.name for p in inspect.signature(obj).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert positional[:len(params)] == params


def test_seed003_simple_net_numerical_gradient():
    np.random.seed(0)
    W = np.random.randn(2, 3)
    x = np.array([0.6, 0.9])
    t = np.array([0, 0, 1])

    def loss(_):
        return cross_entropy_error(softmax(x @ W), t)

    dW = numerical_gradient(loss, W)
    y = softmax(x @ W)
    # analytic gradient of -log(y_k + 1e-7) through softmax, 1e-7 guard included
    np.testing.assert_allclose(dW, np.outer(x, y - t) * y[2] / (y[2] + 1e-7), rtol=1e-6)


def test_seed003_two_layer_net_numerical_gradient_shapes():
    np.random.seed(0)
    net = TwoLayerNet(input_size=784, hidden_size=100, output_size=10)
    assert net.params["W1"].shape == (784, 100)
    x = np.random.rand(1, 784)
    t = np.random.rand(1, 10)
    t = (t == t.max()).astype(float)  # one-hot, as the book's labels are
    small = TwoLayerNet(input_size=784, hidden_size=3, output_size=10)
    grads = small.numerical_gradient(x, t)
    assert grads["W1"].shape == (784, 3) and grads["b2"].shape == (10,)
    backprop = small.gradient(x, t)
    for key in grads:
        np.testing.assert_allclose(backprop[key], grads[key], atol=1e-7)


def test_seed003_training_loop_learns(mnist_one_hot):
    (x_train, t_train), (x_test, t_test) = mnist_one_hot
    np.random.seed(1)
    iters_num = 600
    train_size = x_train.shape[0]
    batch_size = 100
    learning_rate = 0.1
    iter_per_epoch = int(train_size / batch_size)
    network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)
    train_loss_list, test_acc_list = [], []
    for step in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        grad = network.gradient(x_train[batch_mask], t_train[batch_mask])
        for key in ("W1", "b1", "W2", "b2"):
            network.params[key] -= learning_rate * grad[key]
        train_loss_list.append(network.loss(x_train[batch_mask], t_train[batch_mask]))
        if (step + 1) % iter_per_epoch == 0:
            test_acc_list.append(network.accuracy(x_test, t_test))
    # chapter 4's curve: the loss falls from ln 10 ≈ 2.3 and test accuracy climbs
    assert train_loss_list[0] == pytest.approx(np.log(10), abs=0.05)
    assert np.mean(train_loss_list[-50:]) < 1.0
    assert test_acc_list[-1] > 0.75
    assert test_acc_list[-1] > test_acc_list[0]


def _overfit_run(x_train, t_train, x_test, t_test, weight_decay_lambda, max_epochs=201):
    np.random.seed(2)
    network = MultiLayerNet(input_size=784, hidden_size_list=[100] * 6, output_size=10,
                            weight_decay_lambda=weight_decay_lambda)
    optimizer = SGD(lr=0.01)
    train_size = x_train.shape[0]
    batch_size = 100
    iter_per_epoch = max(train_size / batch_size, 1)
    train_acc_list, test_acc_list = [], []
    epoch_cnt = 0
    for i in range(10**9):
        batch_mask = np.random.choice(train_size, batch_size)
        grads = network.gradient(x_train[batch_mask], t_train[batch_mask])
        optimizer.update(network.params, grads)
        if i % iter_per_epoch == 0:
            train_acc_list.append(network.accuracy(x_train, t_train))
            test_acc_list.append(network.accuracy(x_test, t_test))
            epoch_cnt += 1
            if epoch_cnt >= max_epochs:
                break
    return train_acc_list, test_acc_list


def test_seed000_weight_decay_loop_narrows_the_gap(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    x_train, t_train = x_train[:300], t_train[:300]
    x_test, t_test = x_test[:1000], t_test[:1000]  # evaluated every epoch: keep it short
    plain_train, plain_test = _overfit_run(x_train, t_train, x_test, t_test, 0.0)
    decay_train, decay_test = _overfit_run(x_train, t_train, x_test, t_test, 0.1)
    assert len(plain_train) == 201
    assert plain_train[-1] == 1.0  # overfits: 100 % on the 300 training images
    assert plain_train[-1] - plain_test[-1] > 0.1  # clearly lower test accuracy
    assert decay_train[-1] < 1.0  # weight decay keeps training accuracy below 100 %
    assert decay_train[-1] - decay_test[-1] < plain_train[-1] - plain_test[-1]


def test_seed000_dropout_class_behaviour():
    np.random.seed(3)
    layer = Dropout(dropout_ratio=0.5)
    x = np.ones((200, 50))
    out = layer.forward(x, train_flg=True)
    assert 0.4 < out.mean() < 0.6  # about half the neurons deleted
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), out)  # same mask
    np.testing.assert_allclose(layer.forward(x, train_flg=False), 0.5)


def test_seed004_dropout_net_with_trainer_narrows_the_gap(mnist):
    (x_train, t_train), (x_test, t_test) = mnist
    x_train, t_train = x_train[:300], t_train[:300]
    x_test, t_test = x_test[:1000], t_test[:1000]  # evaluated every epoch: keep it short
    gaps = {}
    for use_dropout in (False, True):
        np.random.seed(4)
        network = MultiLayerNetExtend(input_size=784, hidden_size_list=[100] * 6,
                                      output_size=10, use_dropout=use_dropout,
                                      dropout_ration=0.2)
        trainer = Trainer(network, x_train, t_train, x_test, t_test, epochs=120,
                          mini_batch_size=100, optimizer="sgd", optimizer_param={"lr": 0.01},
                          verbose=False)
        trainer.train()
        assert len(trainer.train_acc_list) == 120
        gaps[use_dropout] = trainer.train_acc_list[-1] - trainer.test_acc_list[-1]
    assert gaps[True] < gaps[False]


def test_seed000_random_search_program(mnist):
    (x_train, t_train), _ = mnist
    np.random.seed(5)
    x_train, t_train = x_train[:500], t_train[:500]
    validation_num = int(x_train.shape[0] * 0.20)
    x_train, t_train = shuffle_dataset(x_train, t_train)
    x_val, t_val = x_train[:validation_num], t_train[:validation_num]
    x_train, t_train = x_train[validation_num:], t_train[validation_num:]

    def train(lr, weight_decay, epocs=50):
        network = MultiLayerNet(input_size=784, hidden_size_list=[100] * 6, output_size=10,
                                weight_decay_lambda=weight_decay)
        trainer = Trainer(network, x_train, t_train, x_val, t_val, epochs=epocs,
                          mini_batch_size=100, optimizer="sgd", optimizer_param={"lr": lr},
                          verbose=False)
        trainer.train()
        return trainer.test_acc_list, trainer.train_acc_list

    results = {}
    for lr in (1e-6, 1e-2):
        weight_decay = 10 ** np.random.uniform(-8, -4)
        val_acc_list, train_acc_list = train(lr, weight_decay)
        assert len(val_acc_list) == len(train_acc_list) == 50
        results[lr] = val_acc_list[-1]
    assert results[1e-2] > results[1e-6] + 0.3  # the book: good runs need lr ≈ 1e-3…1e-2


def _python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed documents are not beside the repo")
def test_seed000_text_itself_runs_with_imports_replaced(monkeypatch):
    """Run the seed 000 programs verbatim except imports, plotting and epoch counts."""
    import matplotlib

    matplotlib.use("Agg")
    text = next(SEEDS.glob("000_*.txt")).read_text(encoding="utf-8")
    blocks = _python_blocks(text)
    assert len(blocks) >= 3
    for code in blocks:
        code = re.sub(r"^from (dataset|common)\.\S+ import .*$", "", code, flags=re.M)
        code = code.replace("plt.show()", "plt.close('all')")
        code = code.replace("max_epochs = 201", "max_epochs = 11")
        code = code.replace("optimization_trial = 100", "optimization_trial = 3")
        code = code.replace("epocs=50", "epocs=3")
        namespace = {name: getattr(book, name) for name in book.__all__}
        np.random.seed(0)
        exec(compile(code, "seed000", "exec"), namespace)  # noqa: S102 - the seed's own text
