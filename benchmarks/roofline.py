"""The roofline of one training sequence of a recurrent cell: what it must compute and
move at least, this machine's rates for each, and how far a measured time is from them.

Per sequence (one row of a batch of ``B``), for a cell with ``G`` gates (1, 4, 3),
``T`` steps, widths ``I``, ``H``, ``O``, ``T_out`` output steps (1 if many-to-one) and
``P`` parameters, everything forward, full BPTT and the SGD update:

* **flop**: the matmuls, ``2 m n k`` each, plus the update::

      forward    2 T (I + H) G H + 2 T_out H O       input and recurrent projections, output
      backward   2 T I G H                           dW_in (no gradient to the data)
                 4 T H G H                           dW and the gradient to h_prev
                 4 T_out H O                         dW_out and the gradient to h
      update     2 P / B                             p - lr * g, shared by the batch

  (the first step's ``h_prev @ W`` on zeros is counted; the gates' element-wise
  arithmetic is not: next to the matmuls it is small, and its cost is in the next two);
* **transcendentals**: ``tanh``/``exp`` evaluations: ``5 H`` a step for the LSTM (four
  gates and ``tanh(c)``), ``3 H`` for the GRU, ``H`` for the simple RNN, plus ``O`` per
  output step where the output is a sigmoid;
* **bytes**: what BPTT must keep from the forward pass, written once and read back once,
  ``2 T S`` words with ``S`` the words a step stores per row (``7 H`` for the LSTM: ``h``,
  ``c``, four gates, ``tanh(c)``; ``5 H`` for the GRU: ``h``, ``r``, ``z``, ``n``,
  ``h @ W_n``; ``H`` for the simple RNN: ``h``), plus the input read twice
  (``2 T I``), plus the parameters read, their gradients written and the update's read
  and write over the batch (``4 P / B``), times the dtype's size.

Measured rates, one thread, in the run that uses them: a NumPy matmul of two ``N x N``
matrices (``2 N^3`` flop: the machine's peak), each matmul of the step at its own shape
(``Shape.matmuls``: thin shapes such as ``(1024, 32) @ (32, 128)`` run well below the
peak), a copy of a large array (bytes read plus written), and NumPy's ``tanh`` over a
large array (NumPy evaluates it one element at a time where the CPU lacks AVX-512).

The **floor** of a sequence is the sum of the three on one thread, which does one thing
at a time: the step's matmuls at their shapes' measured rates, plus its bytes at the
copy rate, plus its transcendentals at the ``tanh`` rate. A path's distance from it is its
time / the floor (1x would be at the floor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
STORED = {"rnn": 1, "lstm": 7, "gru": 5}  # words a step keeps per row, in units of H
TRANSCENDENTAL = {"rnn": 1, "lstm": 5, "gru": 3}  # evaluations a step per row, units of H


@dataclass(frozen=True)
class Shape:
    """A network as the roofline sees it."""

    cell: str
    steps: int
    inputs: int
    hidden: int
    outputs: int
    many_to_one: bool
    dtype: str
    bias: bool = False
    sigmoid_output: bool = True

    @property
    def params(self) -> int:
        """``P``: ``W_in``, ``W``, ``W_out`` and the biases (the GRU has two)."""
        width = GATES[self.cell] * self.hidden
        count = (self.inputs + self.hidden) * width + self.hidden * self.outputs
        if self.bias:
            count += width * (2 if self.cell == "gru" else 1) + self.outputs
        return count

    @property
    def out_steps(self) -> int:
        return 1 if self.many_to_one else self.steps

    def flops(self, batch: int) -> float:
        """Flop per sequence (module docstring)."""
        t, i, h, o = self.steps, self.inputs, self.hidden, self.outputs
        gh = GATES[self.cell] * h
        forward = 2 * t * (i + h) * gh + 2 * self.out_steps * h * o
        backward = 2 * t * i * gh + 4 * t * h * gh + 4 * self.out_steps * h * o
        return forward + backward + 2 * self.params / batch

    def matmuls(self, batch: int) -> list[tuple[int, int, int, int]]:
        """``(count, m, k, n)`` of each matmul a step of ``batch`` sequences does, an
        ``(m, k) @ (k, n)`` each: their ``2 m k n`` flop are ``flops`` but the update."""
        t, i, h, o = self.steps, self.inputs, self.hidden, self.outputs
        gh, rows, out_rows = GATES[self.cell] * h, self.steps * batch, self.out_steps * batch
        return [
            (1, rows, i, gh),  # the input projections of all steps
            (t, batch, h, gh),  # h_prev @ W, a step
            (1, out_rows, h, o),  # the output layer
            (1, i, rows, gh),  # dW_in
            (1, h, rows, gh),  # dW
            (t, batch, gh, h),  # the gradient to h_prev, a step
            (1, h, out_rows, o),  # dW_out
            (1, out_rows, o, h),  # the gradient to h from the output
        ]

    def transcendentals(self) -> int:
        """``tanh``/``exp`` evaluations per sequence."""
        out = self.outputs * self.out_steps if self.sigmoid_output else 0
        return self.steps * TRANSCENDENTAL[self.cell] * self.hidden + out

    def bytes(self, batch: int) -> float:
        """Bytes per sequence (module docstring)."""
        words = 2 * self.steps * (STORED[self.cell] * self.hidden + self.inputs)
        return (words + 4 * self.params / batch) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Peak:
    """This machine's one-thread rates for one dtype."""

    flops: float  # matmul flop/s, square N x N (the peak)
    bandwidth: float  # copy bytes/s
    tanh: float  # tanh evaluations/s

    def describe(self) -> str:
        return (
            f"matmul {self.flops / 1e9:.1f} GFLOP/s, copy {self.bandwidth / 1e9:.1f} GB/s, "
            f"tanh {self.tanh / 1e6:.0f} M/s"
        )

    def floor(self, shape: Shape, batch: int, matmul_seconds: float) -> float:
        """Seconds per sequence on one thread: ``matmul_seconds`` (the step's matmuls at
        their own shapes, per sequence) plus the bytes at the copy rate plus the
        transcendentals at the ``tanh`` rate."""
        return (
            matmul_seconds
            + shape.bytes(batch) / self.bandwidth
            + shape.transcendentals() / self.tanh
        )


def _best_rate(work: float, run: object, seconds: float) -> float:
    """``work / t`` for the fastest of a few timed calls of ``run`` (at least 3, and
    about ``seconds`` in all)."""
    run()  # warm-up
    best, spent, calls = float("inf"), 0.0, 0
    while calls < 3 or spent < seconds:
        began = time.perf_counter()
        run()
        took = time.perf_counter() - began
        best, spent, calls = min(best, took), spent + took, calls + 1
    return work / best


def measure_peak(dtype: str, seconds: float, n: int = 512, mib: int = 64) -> Peak:
    """Matmul, copy and tanh rates in ``dtype`` on this thread: an ``n x n`` matmul, a copy
    of ``mib`` MiB, and ``tanh`` over ``mib / 8`` MiB."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    flops = _best_rate(2.0 * n**3, lambda: a @ b, seconds)
    src = np.ones(mib * (1 << 20) // np.dtype(dtype).itemsize, dtype=dtype)
    dst = np.empty_like(src)
    bandwidth = _best_rate(2.0 * src.nbytes, lambda: np.copyto(dst, src), seconds)
    x = rng.standard_normal(src.size // 8).astype(dtype)
    tanh = _best_rate(float(x.size), lambda: np.tanh(x), seconds)
    return Peak(flops, bandwidth, tanh)


def matmul_seconds(shape: Shape, batch: int, seconds: float) -> float:
    """Seconds per sequence of the step's matmuls (``Shape.matmuls``), each timed at its
    own shape in NumPy in ``shape.dtype`` (the fastest of a few calls), on this thread."""
    rng = np.random.default_rng(0)
    total = 0.0
    for count, m, k, n in shape.matmuls(batch):
        a = rng.standard_normal((m, k)).astype(shape.dtype)
        b = rng.standard_normal((k, n)).astype(shape.dtype)
        total += count / _best_rate(1.0, lambda a=a, b=b: a @ b, seconds / 8)
    return total / batch


def roofline_rows(
    shape: Shape, batch: int, peak: Peak, matmul_s: float, timed: list[tuple[str, float]]
) -> list[str]:
    """Markdown rows: one per ``(implementation, µs per sequence)`` in ``timed``, with the
    floor from ``matmul_s`` (``matmul_seconds``)."""
    floor_us = peak.floor(shape, batch, matmul_s) * 1e6
    flops = shape.flops(batch)
    head = (
        f"| {shape.cell} | {shape.dtype} | {flops:.3g} | {flops / matmul_s / 1e9:.1f} "
        f"| {floor_us:.3g} |"
    )
    if not timed:
        return [f"{head} (none timed) | — | — | — |"]
    return [
        f"{head} {name} | {us:.3g} | {flops / (us * 1e-6) / 1e9:.2f} | {us / floor_us:.1f}x |"
        for name, us in timed
    ]
