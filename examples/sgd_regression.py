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
losses = []
for i in range(1000):
    params, state, loss = step(params, state, xs[i : i + 1, ...], ds[i : i + 1, ...])
    if i % 100 == 0:
        losses.append(float(loss))  # reading a value waits for the device: only now and then
        print(f"iteration {i:4d}  loss {losses[-1]:.6f}")
net.params = params

# How good is it on samples it has never seen?
x_test, d_test = datasets.linear(1000, seed=1)
pred = xpnn.to_numpy(net.predict(net.asarray(x_test)))
print(
    f"test mean squared error: {np.mean((pred - d_test) ** 2):.6f} "
    f"(predicting the mean would give {d_test.var():.3f})"
)

if args.plot:
    from xpnn import plotting

    history = list(zip(range(0, 1000, 100), losses, strict=True))
    plotting.loss_curve(history, args.plot, "SGD regression")
    print("wrote", args.plot)
