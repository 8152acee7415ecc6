"""Notebook 3_1: a simple RNN learns 8-bit binary addition with BPTT.

The bits of a and b enter least significant first, one pair per time step; the network
outputs the bit of a + b at each step. 2-16-1, sigmoid hidden and output, no biases,
weights ~ randn, learning rate 0.1, 10000 iterations of one random addition each.

    python examples/rnn_binary_addition.py [--backend jax] [--batch-size 64 --lr 4]

The loop calls one training step (``xpnn.make_step``: forward, BPTT, SGD update; compiled
on JAX) and reads a value on the host only every 1000 iterations.
"""

import argparse
import time

import numpy as np

import xpnn
from xpnn import datasets

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default="numpy")
parser.add_argument("--batch-size", type=int, default=1)
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--iters", type=int, default=10_000)
parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
args = parser.parse_args()

rnn = xpnn.RNN(
    input_size=2,
    hidden_size=16,
    output_size=1,
    hidden="sigmoid",
    output="sigmoid",
    loss="mse",
    init="std",
    weight_init_std=1.0,
    seed=0,
    backend=args.backend,
)
optimizer = xpnn.SGD(lr=args.lr)
# One pure function: params, state, loss = step(params, state, xs, ds). No checks inside
# and no host reads, so jax.jit (or torch.compile) can compile it.
step = xpnn.make_step(rnn, optimizer, compile=args.compile)
params, state = rnn.params, optimizer.init(rnn.params)  # SGD keeps no state: {}

# All the training additions at once on the host, moved to the device once.
# xs: (T=8, n, 2) bits of a and b; ds: (T=8, n, 1) bits of a + b; least significant first.
n = args.iters * args.batch_size
xs_all, ds_all = datasets.binary_addition(n, bits=8, seed=0)
xs_all, ds_all = rnn.asarray(xs_all), rnn.asarray(ds_all)

start = time.perf_counter()
for i in range(args.iters):
    batch = slice(i * args.batch_size, (i + 1) * args.batch_size)
    xs, ds = xs_all[:, batch, :], ds_all[:, batch, :]  # time-major (T, B, features)
    if i % 1000 == 0:  # a reading: the prediction before this step's update
        rnn.params = params  # a checked assignment: keys and shapes, no values read
        y, d = xpnn.to_numpy(rnn.predict(xs)[:, 0, 0]), xpnn.to_numpy(ds[:, 0, 0])
        a, b = (
            datasets.decode_bits(xpnn.to_numpy(xs[:, 0, 0])),
            datasets.decode_bits(xpnn.to_numpy(xs[:, 0, 1])),
        )
    params, state, loss = step(params, state, xs, ds)  # forward, full BPTT, update
    if i % 1000 == 0:
        print(
            f"iters:{i} loss:{float(loss):.4f} "
            f"pred:{(y[::-1] >= 0.5).astype(int)} true:{d[::-1].astype(int)} "
            f"{a} + {b} = {datasets.decode_bits(y)}"
        )
rnn.params = params
print(f"trained in {time.perf_counter() - start:.1f} s (compiled step: {step.compiled})")

# Every pair of operands below 128: 16384 additions in one batched forward pass.
xs, ds = datasets.all_binary_additions(bits=8)
ys = xpnn.to_numpy(rnn.predict(rnn.asarray(xs)))
exact = np.all((ys >= 0.5) == (ds >= 0.5), axis=(0, 2))
print(f"exact on all pairs: {exact.sum()}/{exact.size} ({100 * exact.mean():.2f}%)")
