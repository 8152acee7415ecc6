"""The course's data, as host NumPy arrays, deterministic by seed.

* ``linear``: notebook 1_3's regression target ``3 * x0 + 2 * x1``.
* ``binary_addition``: notebook 3_1's 8-bit addition, bits least significant first.
* ``sine_windows``: notebook 3_3's windows of ``sin`` predicting the next value.
* ``adding_problem``: Hochreiter and Schmidhuber's (1997) long-memory task for the cells.

Training draws batches from a *stream*: ``stream.batches(start, stop)`` returns the
samples of iterations ``start .. stop - 1`` joined along the batch axis. Iteration ``i``
always gets the same samples, however the range is cut, so a resumed run sees the data
an uninterrupted one would. ``stream.batch_rows(i, lo, hi)`` returns rows ``lo .. hi - 1``
of iteration ``i``'s batch, bit-identical to the same rows of ``stream.batches(i, i + 1)``,
without drawing the whole batch: what a worker of ``xpnn.parallel`` makes of its shard.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from xpnn.backends import host_rng
from xpnn.errors import XpnnValueError, check_integer, is_integer, shown

CHUNK = 128  # iterations drawn from one generator; part of the seed -> data contract
MAX_BITS = 62  # a + b must fit in int64
MAX_ALL_PAIRS_BITS = 11  # all_binary_additions: 4**(bits - 1) pairs, a million at 11


def _check_seed(seed: Any) -> Any:
    """``seed`` must be what ``numpy.random.default_rng`` takes: a non-negative integer
    (or a sequence of them)."""
    host_rng(seed)
    return seed


def check_bits(bits: Any, upper: int = MAX_BITS) -> int:
    """``bits`` must be an integer from 2 to ``upper``."""
    return check_integer(bits, "bits", minimum=2, maximum=upper)


def check_interval(low: Any, high: Any) -> None:
    """``low`` and ``high`` must be finite numbers with ``low < high``."""
    numbers = all(isinstance(v, (int, float, np.number)) for v in (low, high))
    if not (numbers and math.isfinite(low) and math.isfinite(high) and low < high):
        msg = f"need finite low < high, got low={low!r}, high={high!r}"
        raise XpnnValueError(msg, argument="low")


def linear(
    n: int, seed: Any = 0, low: float = 0.0, high: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """``x`` ``(n, 2)`` uniform in ``[low, high)`` and ``d = 3 * x0 + 2 * x1`` ``(n, 1)``."""
    n, seed = check_integer(n, "n"), _check_seed(seed)
    check_interval(low, high)
    x = np.random.default_rng(seed).uniform(low, high, size=(n, 2))
    return x, 3.0 * x[:, :1] + 2.0 * x[:, 1:]


def to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Integers ``(n,)`` to bits ``(bits, n)``, least significant first, as float64."""
    shifts = np.arange(bits, dtype=np.int64)[:, None]
    return ((np.asarray(values, dtype=np.int64)[None, :] >> shifts) & 1).astype(np.float64)


def decode_bits(bits: Any) -> np.ndarray:
    """Bits ``(T, ...)``, least significant first (rounded at 0.5), to integers ``(...)``."""
    b = np.asarray(bits) >= 0.5
    weights = (np.int64(1) << np.arange(b.shape[0], dtype=np.int64)).reshape(
        (-1,) + (1,) * (b.ndim - 1)
    )
    return np.sum(b * weights, axis=0)


def _addition_sequences(a: np.ndarray, b: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.stack([to_bits(a, bits), to_bits(b, bits)], axis=-1)
    return xs, to_bits(a + b, bits)[:, :, None]


def binary_addition(n: int, bits: int = 8, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random additions ``a + b`` with ``a, b`` uniform in ``[0, 2**(bits-1))``.

    Returns ``xs`` ``(bits, n, 2)`` (the bits of ``a`` and ``b``) and ``ds`` ``(bits, n, 1)``
    (the bits of ``a + b``), least significant bit first, as float64.
    """
    n, bits, seed = check_integer(n, "n"), check_bits(bits), _check_seed(seed)
    operands = np.random.default_rng(seed).integers(0, 2 ** (bits - 1), size=(2, n))
    return _addition_sequences(operands[0], operands[1], bits)


def all_binary_additions(bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Every operand pair below ``2**(bits-1)``: ``4**(bits-1)`` sequences (16384 for 8
    bits), shaped as in ``binary_addition``; pair ``(a, b)`` is column ``a * 2**(bits-1) + b``."""
    bits = check_bits(bits, MAX_ALL_PAIRS_BITS)
    half = 2 ** (bits - 1)
    a, b = np.divmod(np.arange(half * half, dtype=np.int64), half)
    return _addition_sequences(a, b, bits)


@dataclass(frozen=True)
class SineData:
    """Notebook 3_3's data. ``xs_*`` ``(maxlen, N, 1)`` windows, ``ds_*`` ``(N, 1)`` the
    value after each window; the test windows are the last ``n_test`` in time. ``t`` and
    ``f`` ``(n_points,)`` are the whole wave."""

    xs_train: np.ndarray
    ds_train: np.ndarray
    xs_test: np.ndarray
    ds_test: np.ndarray
    t: np.ndarray
    f: np.ndarray


def check_windows(maxlen: Any, n_points: Any = 500, n_test: Any = 100) -> tuple[int, int, int]:
    """``sine_windows``' sizes: ``n_points - maxlen`` windows must leave one for training
    beside the ``n_test`` held out. Returns them as integers."""
    maxlen, n_points = check_integer(maxlen, "maxlen"), check_integer(n_points, "n_points")
    n_test, n_windows = check_integer(n_test, "n_test"), n_points - maxlen
    if n_windows < n_test + 1:
        msg = (
            f"maxlen must be below n_points - n_test = {n_points - n_test} (one training "
            f"window at least), got maxlen={maxlen}"
        )
        raise XpnnValueError(msg, argument="maxlen")
    if not 1 <= n_test < n_windows:
        msg = (
            f"n_test must be from 1 to {n_windows - 1} for {n_windows} windows, got {shown(n_test)}"
        )
        raise XpnnValueError(msg)
    return maxlen, n_points, n_test


def sine_windows(maxlen: int = 2, n_points: int = 500, n_test: int = 100) -> SineData:
    """Windows of ``sin(t)``, ``t = linspace(0, 10*pi, n_points)``: each window of
    ``maxlen`` values predicts the next one (``n_points - maxlen`` windows)."""
    maxlen, n_points, n_test = check_windows(maxlen, n_points, n_test)
    n_windows = n_points - maxlen
    t = np.linspace(0.0, 10.0 * np.pi, n_points)
    f = np.sin(t)
    idx = np.arange(n_windows)[None, :] + np.arange(maxlen)[:, None]
    xs, ds = f[idx][:, :, None], f[maxlen:][:, None]
    cut = n_windows - n_test
    return SineData(xs[:, :cut], ds[:cut], xs[:, cut:], ds[cut:], t, f)


def blobs(n: int, seed: Any = 0, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points ``(n, 2)`` in Gaussian blobs (unit spread) centred on a circle of
    radius 1.5, one blob per class, and their one-hot targets ``(n, classes)``."""
    n, classes = check_integer(n, "n"), check_integer(classes, "classes")
    rng = np.random.default_rng(_check_seed(seed))
    labels = rng.integers(0, classes, size=n)
    angles = 2.0 * np.pi * labels / classes
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 1.5
    return centres + rng.standard_normal((n, 2)), np.eye(classes)[labels]


def sine_continuation(t_last: float, step: float, n: int) -> np.ndarray:
    """``sin`` at the ``n`` points after ``t_last``, spaced ``step`` apart: the truth a
    generated continuation is compared with."""
    return np.sin(t_last + step * np.arange(1, check_integer(n, "n") + 1))


def _adding_draws(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    """``(2, steps, n)``: values uniform in [0, 1), and markers, 1 at one step of the
    first half and one step of the second half of each sequence, else 0."""
    values = rng.uniform(size=(steps, n))
    first = rng.integers(0, steps // 2, size=n)
    second = rng.integers(steps // 2, steps, size=n)
    t = np.arange(steps)[:, None]
    marks = ((t == first) | (t == second)).astype(np.float64)
    return np.stack([values, marks])


def _adding_sequences(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(steps, n, 2)`` and targets ``(n, 1)`` (the sum of the marked values)."""
    values, marks = draws
    return np.stack([values, marks], axis=-1), np.sum(values * marks, axis=0)[:, None]


def check_steps(steps: Any) -> int:
    """``steps`` (the adding problem's sequence length) must be an integer of at least 2."""
    return check_integer(steps, "steps", minimum=2)


def adding_problem(n: int, steps: int = 100, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of the adding problem (Hochreiter and Schmidhuber, 1997).

    Each step has two inputs: a value uniform in [0, 1) and a marker, 1 at one random
    step of the first half (``t < steps // 2``) and one of the second half, 0 elsewhere.
    The target is the sum of the two marked values. Always predicting its mean, 1, has a
    mean squared error of ``Var = 2 / 12``, about 0.167: a network beats that only by
    remembering a value over up to ``steps`` steps.

    Returns ``xs`` ``(steps, n, 2)`` and ``ds`` ``(n, 1)``, float64 (many-to-one).
    """
    n, steps, seed = check_integer(n, "n"), check_steps(steps), _check_seed(seed)
    return _adding_sequences(_adding_draws(np.random.default_rng(seed), n, steps))


class SampleStream:
    """Batches drawn with replacement from fixed host arrays ``x``, ``d`` whose batch
    axis is ``batch_axis`` (0 for ``(N, F)`` rows, 1 for time-major ``(T, N, F)``)."""

    def __init__(
        self,
        x: np.ndarray,
        d: np.ndarray,
        batch_size: int,
        seed: Any = 0,
        batch_axis: int = 0,
        target_axis: int | None = None,
    ) -> None:
        self.x, self.d = np.asarray(x), np.asarray(d)
        self.batch_size = check_integer(batch_size, "batch_size")
        self.seed, self.batch_axis = _check_seed(seed), batch_axis
        self.target_axis = batch_axis if target_axis is None else target_axis
        for name, axis, a in (
            ("batch_axis", batch_axis, self.x),
            ("target_axis", self.target_axis, self.d),
        ):
            if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < a.ndim:
                msg = f"{name} must be an axis of a {a.ndim}-D array, got {shown(axis)}"
                raise XpnnValueError(msg)
        if self.x.shape[batch_axis] != self.d.shape[self.target_axis]:
            msg = (
                f"x has {self.x.shape[batch_axis]} samples but d has "
                f"{self.d.shape[self.target_axis]}"
            )
            raise XpnnValueError(msg)

    def _chunk(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([*np.atleast_1d(self.seed), k])
        return rng.integers(0, self.x.shape[self.batch_axis], size=CHUNK * self.batch_size)

    def batches(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The samples of iterations ``start .. stop - 1``, joined along the batch axis."""
        idx = _span(self._chunk, start, stop, self.batch_size)
        return self._take(idx)

    def batch_rows(self, i: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``lo .. hi - 1`` of iteration ``i``'s batch.

        The indices come from rejection sampling (``Generator.integers``), whose draws
        cannot be skipped: the chunk's indices are drawn a batch at a time, and rows
        ``lo .. hi - 1`` of each of its ``CHUNK`` iterations are kept until another chunk
        or shard is asked for (``CHUNK * (hi - lo)`` indices held, never the whole chunk).
        """
        i, k, lo, hi = _check_rows(i, lo, hi, self.batch_size)
        kept = self._kept
        if kept is None or kept[0] != (k, lo, hi):  # one assignment: safe across threads
            rng = np.random.default_rng([*np.atleast_1d(self.seed), k])
            n = self.x.shape[self.batch_axis]
            kept = (k, lo, hi), _kept_rows(lambda: rng.integers(0, n, size=self.batch_size), lo, hi)
            self._kept = kept
        return self._take(kept[1][i % CHUNK, ...])

    _kept: tuple[tuple[int, int, int], np.ndarray] | None = None

    def _take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.take(self.x, idx, axis=self.batch_axis), np.take(
            self.d, idx, axis=self.target_axis
        )


class BinaryAdditionStream:
    """Fresh random additions for every iteration: ``(bits, B, 2)`` and ``(bits, B, 1)``."""

    batch_axis = 1

    def __init__(self, batch_size: int, bits: int = 8, seed: Any = 0) -> None:
        self.batch_size = check_integer(batch_size, "batch_size")
        self.bits, self.seed = check_bits(bits), _check_seed(seed)

    def _chunk(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([*np.atleast_1d(self.seed), k])
        return rng.integers(0, 2 ** (self.bits - 1), size=(2, CHUNK * self.batch_size))

    def batches(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The sequences of iterations ``start .. stop - 1``, joined along axis 1."""
        a, b = _span(self._chunk, start, stop, self.batch_size)
        return _addition_sequences(a, b, self.bits)

    def batch_rows(self, i: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``lo .. hi - 1`` of iteration ``i``'s sequences: the generator skips to
        them (``PCG64.advance``), so the cost is that of the rows alone."""
        i, k, lo, hi = _check_rows(i, lo, hi, self.batch_size)
        seed, n = [*np.atleast_1d(self.seed), k], CHUNK * self.batch_size
        at, high = (i % CHUNK) * self.batch_size + lo, 2 ** (self.bits - 1)
        a = _integers_at(seed, high, at, hi - lo)
        b = _integers_at(seed, high, n + at, hi - lo)
        return _addition_sequences(a, b, self.bits)


class AddingProblemStream:
    """Fresh adding-problem sequences for every iteration: ``(steps, B, 2)`` and ``(B, 1)``."""

    batch_axis, target_axis = 1, 0  # time-major inputs, one target per sequence

    def __init__(self, batch_size: int, steps: int = 100, seed: Any = 0) -> None:
        self.batch_size = check_integer(batch_size, "batch_size")
        self.steps, self.seed = check_steps(steps), _check_seed(seed)

    def _chunk(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([*np.atleast_1d(self.seed), k])
        return _adding_draws(rng, CHUNK * self.batch_size, self.steps)

    def batches(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The sequences of iterations ``start .. stop - 1``, joined along axis 1."""
        return _adding_sequences(_span(self._chunk, start, stop, self.batch_size))

    def batch_rows(self, i: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``lo .. hi - 1`` of iteration ``i``'s sequences. The values are skipped
        to (``PCG64.advance``); the markers come from rejection sampling, so the chunk's
        markers are drawn a batch at a time and rows ``lo .. hi - 1`` of each iteration
        kept until another chunk or shard is asked for (2 integers a sequence of the
        chunk are drawn, against ``steps`` values for the whole batch)."""
        i, k, lo, hi = _check_rows(i, lo, hi, self.batch_size)
        seed, n, steps = [*np.atleast_1d(self.seed), k], CHUNK * self.batch_size, self.steps
        kept = self._kept
        if kept is None or kept[0] != (k, lo, hi):  # one assignment: safe across threads
            rng = np.random.default_rng(seed)
            rng.bit_generator.advance(steps * n)  # past the chunk's values
            first = _kept_rows(lambda: rng.integers(0, steps // 2, size=self.batch_size), lo, hi)
            second = _kept_rows(
                lambda: rng.integers(steps // 2, steps, size=self.batch_size), lo, hi
            )
            kept = (k, lo, hi), first, second
            self._kept = kept
        at = (i % CHUNK) * self.batch_size + lo
        rng = np.random.default_rng(seed)
        rng.bit_generator.advance(at)
        values = []
        for _ in range(steps):  # value (t, j) of the chunk is 64-bit draw t * n + j
            values.append(rng.uniform(size=hi - lo))
            rng.bit_generator.advance(n - (hi - lo))
        first, second = (m[i % CHUNK, ...] for m in kept[1:])
        t = np.arange(steps)[:, None]
        marks = ((t == first) | (t == second)).astype(np.float64)
        return _adding_sequences(np.stack([np.stack(values), marks]))

    _kept: tuple[tuple[int, int, int], np.ndarray, np.ndarray] | None = None


def check_span(start: Any, stop: Any) -> tuple[int, int]:
    """``batches``' arguments: iterations ``0 <= start < stop``, as integers."""
    start = check_integer(start, "start", minimum=0)
    if not is_integer(stop) or stop <= start:
        msg = f"stop must be an integer above start={start}, got {shown(stop)}"
        raise XpnnValueError(msg, argument="stop")
    return start, int(stop)


def _span(chunk: Any, start: Any, stop: Any, batch_size: int) -> np.ndarray:
    """Draws for iterations ``start .. stop - 1`` from per-chunk generators (last axis)."""
    start, stop = check_span(start, stop)
    first, last = start // CHUNK, (stop - 1) // CHUNK
    draws = np.concatenate([chunk(k) for k in range(first, last + 1)], axis=-1)
    offset = first * CHUNK
    return draws[..., (start - offset) * batch_size : (stop - offset) * batch_size]


def _check_rows(i: Any, lo: Any, hi: Any, batch_size: int) -> tuple[int, int, int, int]:
    """``batch_rows``' arguments: an iteration ``i >= 0`` and rows ``0 <= lo < hi <=
    batch_size``. Returns ``i``, its chunk, ``lo`` and ``hi`` as Python integers (NumPy's
    ``PCG64.advance`` overflows on NumPy integers)."""
    values = (i, lo, hi)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values) or not (
        i >= 0 and 0 <= lo < hi <= batch_size
    ):
        msg = (
            f"batch_rows needs an iteration i >= 0 and rows 0 <= lo < hi <= batch_size="
            f"{batch_size}, got i={shown(i)}, lo={shown(lo)}, hi={shown(hi)}"
        )
        raise XpnnValueError(msg, argument="i")
    return int(i), int(i) // CHUNK, int(lo), int(hi)


def _kept_rows(draw: Any, lo: int, hi: int) -> np.ndarray:
    """``draw()`` (one batch's draws, ``(batch_size,)``) called once per iteration of a
    chunk, in order, keeping columns ``lo .. hi - 1``: ``(CHUNK, hi - lo)``. Consecutive
    calls continue one stream of numbers, so this equals the chunk drawn in one call."""
    return np.stack([draw()[lo:hi] for _ in range(CHUNK)])


def _integers_at(seed: list[int], high: int, at: int, count: int) -> np.ndarray:
    """``default_rng(seed).integers(0, high, size=at + count)[at:]`` without drawing the
    first ``at``, for a power of two ``high``.

    A power-of-two range is never rejected by NumPy's bounded-integer draw (Lemire's
    method: its threshold ``-high % high`` is 0), so every value takes one draw: a 32-bit
    half of a 64-bit output, low half first, up to ``high = 2**32``, else a whole 64-bit
    output. The generator skips the draws before ``at`` (``advance``), and a value that
    starts in an output's high half gets the buffered half, as NumPy's own draw does.
    """
    rng = np.random.default_rng(seed)
    bitgen = rng.bit_generator
    if high > 2**32:
        bitgen.advance(at)
        return rng.integers(0, high, size=count)
    bitgen.advance(at // 2)
    if at % 2:
        upper = int(bitgen.random_raw()) >> 32
        bitgen.state = {**bitgen.state, "has_uint32": 1, "uinteger": upper}
    return rng.integers(0, high, size=count)
