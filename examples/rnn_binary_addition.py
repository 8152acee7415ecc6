"""Notebook 3_1: a simple RNN learns 8-bit binary addition with BPTT.

The bits of a and b enter least significant first, one pair per time step; the network
outputs the bit of a + b at each step. 2-16-1, sigmoid hidden and output, no biases,
weights ~ randn, learning rate 0.1, 10000 iterations of one random addition each.

    python examples/rnn_binary_addition.py [--backend torch] [--batch-size 64 --lr 4]
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

# All the training additions at once on the host, moved to the device once.
# xs: (T=8, n, 2) bits of a and b; ds: (T=8, n, 1) bits of a + b; least significant first.
n = args.iters * args.batch_size
xs_all, ds_all = datasets.binary_addition(n, bits=8, seed=0)
xs_all, ds_all = rnn.asarray(xs_all), rnn.asarray(ds_all)

start = time.perf_counter()
for i in range(args.iters):
    batch = slice(i * args.batch_size, (i + 1) * args.batch_size)
    xs, ds = xs_all[:, batch, :], ds_all[:, batch, :]  # time-major (T, B, features)
    ys, cache = rnn.forward(xs)  # the recurrence runs step by step inside
    grads = rnn.backward(cache, ds)  # full backpropagation through time
    rnn.params = optimizer.update(rnn.params, grads)
    if i % 1000 == 0:
        y, d = xpnn.to_numpy(ys[:, 0, 0]), xpnn.to_numpy(ds[:, 0, 0])
        a, b = (
            datasets.decode_bits(xpnn.to_numpy(xs[:, 0, 0])),
            datasets.decode_bits(xpnn.to_numpy(xs[:, 0, 1])),
        )
        print(
            f"iters:{i} loss:{float(rnn.loss(xs, ds)):.4f} "
            f"pred:{(y[::-1] >= 0.5).astype(int)} true:{d[::-1].astype(int)} "
            f"{a} + {b} = {datasets.decode_bits(y)}"
        )
print(f"trained in {time.perf_counter() - start:.1f} s")

# Every pair of operands below 128: 16384 additions in one batched forward pass.
xs, ds = datasets.all_binary_additions(bits=8)
ys = xpnn.to_numpy(rnn.predict(rnn.asarray(xs)))
exact = np.all((ys >= 0.5) == (ds >= 0.5), axis=(0, 2))
print(f"exact on all pairs: {exact.sum()}/{exact.size} ({100 * exact.mean():.2f}%)")
