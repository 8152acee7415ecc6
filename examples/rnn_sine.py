"""Notebook 3_3: a many-to-one RNN predicts the next value of a sine wave.

Windows of maxlen values of sin(t), t = linspace(0, 10*pi, 500), predict the value after
each window. 1-5-1 network, tanh hidden layer, identity output, weights 0.01 * randn,
learning rate 0.1, 500 iterations of one window each; then the network continues the
wave 200 points from its own predictions.

    python examples/rnn_sine.py [--maxlen 5] [--iters 3000] [--plot sine.png]
"""

import argparse

import numpy as np

import xpnn
from xpnn import datasets

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default="numpy")
parser.add_argument("--maxlen", type=int, default=2)
parser.add_argument("--iters", type=int, default=500)
parser.add_argument("--plot", default=None)
args = parser.parse_args()

data = datasets.sine_windows(maxlen=args.maxlen)  # xs: (maxlen, N, 1), ds: (N, 1)
rnn = xpnn.RNN(
    1,
    5,
    1,
    hidden="tanh",
    output="identity",
    loss="mse",
    many_to_one=True,
    init="std",
    weight_init_std=0.01,
    seed=0,
    backend=args.backend,
)
optimizer = xpnn.SGD(lr=0.1)
step = xpnn.make_step(rnn, optimizer)  # params, state, loss = step(params, state, xs, d)
params, state = rnn.params, optimizer.init(rnn.params)
rng = np.random.default_rng(0)
picks = rng.integers(data.xs_train.shape[1], size=args.iters)  # one random window each

# The chosen windows move to the device once, in order; the loop slices them there.
xs_all = rnn.asarray(data.xs_train[:, picks, :])  # (maxlen, iters, 1)
d_all = rnn.asarray(data.ds_train[picks])  # (iters, 1)
for i in range(args.iters):
    params, state, loss = step(params, state, xs_all[:, i : i + 1, :], d_all[i : i + 1, :])
    if i % 100 == 0:  # reading a value waits for the device: only now and then
        print(f"iters:{i} loss:{float(loss):.6f}")
rnn.params = params

pred = xpnn.to_numpy(rnn.predict(rnn.asarray(data.xs_test)))
print(f"test MSE on {len(pred)} held-out windows: {np.mean((pred - data.ds_test) ** 2):.6f}")

# Continue the wave from the model's own predictions.
window = list(data.f[-args.maxlen :])
for _ in range(200):
    xs = rnn.asarray(np.array(window[-args.maxlen :]).reshape(args.maxlen, 1, 1))
    window.append(float(xpnn.to_numpy(rnn.predict(xs))[0, 0]))
generated = np.array(window[args.maxlen :])
print("first generated points:", generated[:5].round(4))

if args.plot:
    from xpnn import plotting

    dt = data.t[1] - data.t[0]
    t_gen = data.t[-1] + dt * np.arange(1, 201)
    plotting.sine_figure(
        data.t, data.f, data.t[-len(pred) :], pred[:, 0], t_gen, generated, args.plot
    )
    print("wrote", args.plot)
