"""Notebook 1_3: stochastic gradient descent on f(x) = 3*x0 + 2*x1.

A 2-10-1 network (ReLU hidden layer, identity output, squared error) takes one SGD step
per sample, 1000 samples drawn with replacement from 100000, learning rate 0.07.

    python examples/sgd_regression.py [--backend jax] [--plot loss.png]

The loop calls one training step (``xpnn.make_step``) and reads the loss on the host only
every 100 iterations.
"""

import argparse

import numpy as np

import xpnn
from xpnn import datasets

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default="numpy")
parser.add_argument("--plot", default=None, help="save the loss curve to this PNG")
args = parser.parse_args()

# Data on the host: 100000 samples of the target function.
x_all, d_all = datasets.linear(100_000, seed=0)
rng = np.random.default_rng(0)
picks = rng.integers(len(x_all), size=1000)  # one random sample per iteration

# The network: weights ~ randn (the notebook's choice), biases 0.
net = xpnn.MLP(
    [2, 10, 1],
    hidden="relu",
    output="identity",
    loss="mse",
    init="std",
    weight_init_std=1.0,
    seed=0,
    backend=args.backend,
)
optimizer = xpnn.SGD(lr=0.07)
step = xpnn.make_step(net, optimizer)  # params, state, loss = step(params, state, x, d)
params, state = net.params, optimizer.init(net.params)

# The chosen samples move to the device once, in order; the loop slices them there.
xs, ds = net.asarray(x_all[picks]), net.asarray(d_all[picks])
history = []  # (iteration, loss) readings
for i in range(1000):
    params, state, loss = step(params, state, xs[i : i + 1, ...], ds[i : i + 1, ...])
    if i % 100 == 0 or i == 999:  # reading a value waits for the device: only now and then
        history.append((i, float(loss)))
        print(f"iteration {i:4d}  loss {history[-1][1]:.6f}")
net.params = params

# How good is it on samples it has never seen?
x_test, d_test = datasets.linear(1000, seed=1)
pred = xpnn.to_numpy(net.predict(net.asarray(x_test)))
print(
    f"test mean squared error: {np.mean((pred - d_test) ** 2):.6f} "
    f"(predicting the mean would give {d_test.var():.3f})"
)

if args.plot:
    from xpnn.cli import plotting

    # The loss is half the squared error, so predicting the mean scores half the variance.
    plotting.loss_curve(
        history,
        args.plot,
        f"examples/sgd_regression.py: 2-10-1 ReLU, SGD lr 0.07, 1000 iters, {args.backend}",
        baseline=(d_test.var() / 2, "always predicting the mean (test set)"),
        final=(np.mean((pred - d_test) ** 2) / 2, "at the end, on the test set"),
    )
    print("wrote", args.plot)
