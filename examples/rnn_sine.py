"""Notebook 3_3: a many-to-one RNN predicts the next value of a sine wave.

Windows of maxlen values of sin(t), t = linspace(0, 10*pi, 500), predict the value after
each window. 1-5-1 network, tanh hidden layer, identity output, weights 0.01 * randn,
learning rate 0.1, 500 iterations of one window each; then the network continues the
wave 200 points from its own predictions. It is the run `xpnn train sine` makes (the
same network, seed and windows: the same losses and continuation), written out as a loop.

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
# One random window an iteration, drawn as `xpnn train sine` draws them (seed 0), so this
# loop and that command are one run: the same losses, the same continuation.
stream = datasets.SampleStream(
    data.xs_train, data.ds_train, batch_size=1, seed=0, batch_axis=1, target_axis=0
)
xs_host, ds_host = stream.batches(0, args.iters)  # (maxlen, iters, 1), (iters, 1)

# The chosen windows move to the device once, in order; the loop slices them there.
xs_all, d_all = rnn.asarray(xs_host), rnn.asarray(ds_host)
for i in range(args.iters):
    params, state, loss = step(params, state, xs_all[:, i : i + 1, :], d_all[i : i + 1, :])
    if i % 100 == 0 or i == args.iters - 1:  # reading a value waits for the device
        print(f"iters:{i} loss:{float(loss):.6g}")
rnn.params = params

pred = xpnn.to_numpy(rnn.predict(rnn.asarray(data.xs_test)))
print(f"test MSE on {len(pred)} held-out windows: {np.mean((pred - data.ds_test) ** 2):.6g}")

# Continue the wave from the model's own predictions.
window = list(data.f[-args.maxlen :])
for _ in range(200):
    xs = rnn.asarray(np.array(window[-args.maxlen :]).reshape(args.maxlen, 1, 1))
    window.append(float(xpnn.to_numpy(rnn.predict(xs))[0, 0]))
generated = np.array(window[args.maxlen :])
dt = data.t[1] - data.t[0]
truth = datasets.sine_continuation(data.t[-1], dt, 200)
print(f"generated 200 points; MSE against the true sine: {np.mean((generated - truth) ** 2):.6g}")

if args.plot:
    from xpnn.cli import plotting

    t_gen = data.t[-1] + dt * np.arange(1, 201)
    title = f"examples/rnn_sine.py: maxlen {args.maxlen}, SGD lr 0.1, {args.iters} iters, seed 0"
    plotting.sine_figure(
        data.t, data.f, data.t[-len(pred) :], pred[:, 0], t_gen, generated, args.plot, title
    )
    print("wrote", args.plot)
