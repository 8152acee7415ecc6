"""The course's data: shapes, bit order, determinism, and the streams' contract. (Bad
arguments: tests/test_errors.py; a stream's rows for one worker: tests/test_parallel.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import datasets


def test_linear_target():
    x, d = datasets.linear(50, seed=1, low=-5.0, high=5.0)
    assert x.shape == (50, 2) and d.shape == (50, 1)
    assert x.min() >= -5.0 and x.max() < 5.0
    np.testing.assert_array_equal(d[:, 0], 3 * x[:, 0] + 2 * x[:, 1])


def test_binary_addition_is_lsb_first_and_correct():
    xs, ds = datasets.binary_addition(1000, bits=8, seed=0)
    assert xs.shape == (8, 1000, 2) and ds.shape == (8, 1000, 1)
    a, b = datasets.decode_bits(xs[:, :, 0]), datasets.decode_bits(xs[:, :, 1])
    assert a.max() < 128 and b.max() < 128
    np.testing.assert_array_equal(datasets.decode_bits(ds[:, :, 0]), a + b)
    # least significant bit first: bit 0 of 5 is 1
    np.testing.assert_array_equal(datasets.to_bits(np.array([5]), 4)[:, 0], [1, 0, 1, 0])


def test_same_seed_same_data():
    np.testing.assert_array_equal(
        datasets.binary_addition(5, seed=3)[0], datasets.binary_addition(5, seed=3)[0]
    )


def test_all_binary_additions():
    xs, ds = datasets.all_binary_additions(8)
    assert xs.shape == (8, 16384, 2)
    a, b = datasets.decode_bits(xs[:, :, 0]), datasets.decode_bits(xs[:, :, 1])
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == 16384
    np.testing.assert_array_equal(datasets.decode_bits(ds[:, :, 0]), a + b)


def test_sine_windows():
    data = datasets.sine_windows(maxlen=2)
    assert data.xs_train.shape == (2, 398, 1) and data.xs_test.shape == (2, 100, 1)
    assert data.ds_test.shape == (100, 1)
    # each target is the value right after its window
    np.testing.assert_array_equal(data.ds_train[0, 0], data.f[2])
    np.testing.assert_array_equal(data.xs_test[:, -1, 0], data.f[-3:-1])
    np.testing.assert_array_equal(data.ds_test[-1, 0], data.f[-1])


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (5, 300), (127, 129), (256, 257)])
def test_stream_ranges_are_consistent(start, stop):
    stream = datasets.BinaryAdditionStream(3, seed=4)
    whole_x, whole_d = stream.batches(0, 400)
    part_x, part_d = stream.batches(start, stop)
    np.testing.assert_array_equal(part_x, whole_x[:, 3 * start : 3 * stop])
    np.testing.assert_array_equal(part_d, whole_d[:, 3 * start : 3 * stop])
    rows = datasets.SampleStream(*datasets.linear(40), batch_size=2, seed=1)
    np.testing.assert_array_equal(
        rows.batches(start, stop)[0], rows.batches(0, 400)[0][2 * start : 2 * stop]
    )


def test_blobs():
    x, d = datasets.blobs(300, seed=2)
    assert x.shape == (300, 2) and d.shape == (300, 3)
    np.testing.assert_array_equal(d.sum(axis=1), 1.0)
    # each class sits around its own point of the circle of radius 1.5
    for k in range(3):
        centre = x[d[:, k] == 1].mean(axis=0)
        angle = 2 * np.pi * k / 3
        np.testing.assert_allclose(centre, [1.5 * np.cos(angle), 1.5 * np.sin(angle)], atol=0.35)


def test_adding_problem():
    xs, ds = datasets.adding_problem(500, steps=10, seed=3)
    assert xs.shape == (10, 500, 2) and ds.shape == (500, 1)
    values, marks = xs[..., 0], xs[..., 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    for j in range(500):  # one marker in each half; the target sums the marked values
        where = np.flatnonzero(marks[:, j])
        assert len(where) == 2 and where[0] < 5 <= where[1]
        assert ds[j, 0] == values[where[0], j] + values[where[1], j]
    np.testing.assert_array_equal(datasets.adding_problem(500, steps=10, seed=3)[0], xs)


def test_adding_problem_baseline_is_the_variance_of_the_sum():
    """Predicting the mean 1 of a sum of two uniform values errs by its variance, 2/12."""
    _, ds = datasets.adding_problem(200_000, steps=4, seed=0)
    assert np.mean((ds - 1.0) ** 2) == pytest.approx(2 / 12, abs=2e-3)


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (5, 300), (127, 129)])
def test_adding_problem_stream_ranges_are_consistent(start, stop):
    stream = datasets.AddingProblemStream(2, steps=6, seed=1)
    whole_x, whole_d = stream.batches(0, 300)
    part_x, part_d = stream.batches(start, stop)
    np.testing.assert_array_equal(part_x, whole_x[:, 2 * start : 2 * stop])
    np.testing.assert_array_equal(part_d, whole_d[2 * start : 2 * stop])
