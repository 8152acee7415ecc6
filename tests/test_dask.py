"""The dask backend: namespace, chunks along the batch axis, the step boundary, and
training that agrees with NumPy float64 (on the threaded scheduler here; on a real
two-process LocalCluster in the ``distributed`` nox session)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.backends import (
    backend_info,
    chunk_batch,
    default_chunk_rows,
    get_namespace,
    persist,
)
from xpnn.training.loop import train

da = pytest.importorskip("dask.array", reason="dask is not installed (pip install xpnn[dask])")

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster of two worker processes: nox -s distributed "
    "(or XPNN_DISTRIBUTED=1)",
)


def test_dask_is_a_backend_with_its_scheduler() -> None:
    info = backend_info("dask")
    assert info.usable, info.reason
    assert info.scheduler == "local threads"
    x = get_namespace("dask").asarray([1.0, 2.0])
    assert type(x).__module__.startswith("dask.")


@pytest.mark.parametrize(
    ("batch", "rows"), [(1, 1), (100, 100), (16384, 16384), (20000, 10000), (65536, 16384)]
)
def test_default_chunk_rows_cut_batches_into_equal_pieces(batch: int, rows: int) -> None:
    assert default_chunk_rows(batch) == rows


def test_chunk_batch_cuts_only_the_batch_axis() -> None:
    x = da.zeros((8, 40000, 2), chunks=(3, 1000, 1))
    y = chunk_batch(x, 1)
    assert y.chunks == ((8,), (13334, 13334, 13332), (2,))  # 3 pieces of at most 16384
    assert chunk_batch(x, 1, 30000).chunks == ((8,), (30000, 10000), (2,))
    plain = np.zeros((4, 2))
    assert chunk_batch(plain, 0) is plain


@pytest.mark.parametrize("rows", [0, -3, 2.5, True])
def test_chunk_batch_refuses_bad_chunk_sizes(rows: object) -> None:
    with pytest.raises(xpnn.XpnnValueError, match="chunks"):
        chunk_batch(da.zeros((4, 2)), 0, rows)


def test_model_asarray_chunks_data_and_keeps_parameters_whole() -> None:
    rnn = xpnn.RNN(2, 16, 1, backend="dask", seed=0)
    xs = rnn.asarray(np.zeros((8, 40000, 2)))
    assert xs.chunks == ((8,), (13334, 13334, 13332), (2,))
    assert rnn.asarray(np.zeros((8, 100, 2)), chunks=30).chunks[1] == (30, 30, 30, 10)
    targets = rnn.asarray(np.zeros((40000, 1)))  # many-to-one targets: batch on axis 0
    assert targets.chunks == ((13334, 13334, 13332), (1,))
    assert all(p.npartitions == 1 for p in rnn.params.values())
    mlp = xpnn.MLP([2, 3, 1], backend="dask", seed=0)
    assert mlp.asarray(np.zeros((40000, 2))).chunks == ((13334, 13334, 13332), (2,))


def test_persist_makes_arrays_concrete_and_leaves_other_backends_alone() -> None:
    a = da.ones((4,), chunks=2) + 1
    params, loss = persist({"a": a}, da.sum(a))
    assert len(params["a"].__dask_graph__()) == 2  # its two chunks, no pending work
    assert float(loss) == 8.0
    plain = {"w": np.ones(2)}
    assert persist(plain) == (plain,)


def test_the_step_graph_does_not_grow_with_the_number_of_steps() -> None:
    net = xpnn.MLP([2, 4, 1], backend="dask", seed=0)
    x, d = datasets.linear(64, seed=0)
    stream = datasets.SampleStream(x, d, 8, seed=0)
    sizes = []
    for iters in (2, 6):
        net = xpnn.MLP([2, 4, 1], backend="dask", seed=0)
        result = train(net, xpnn.SGD(0.1), stream, iters=iters, log_every=100)
        sizes.append(sum(len(p.__dask_graph__()) for p in result.params.values()))
    assert sizes[0] == sizes[1] == len(result.params)  # one persisted chunk a parameter


def _addition_run(backend: str, **kwargs: object) -> tuple[list, dict]:
    net = xpnn.RNN(2, 8, 1, backend=backend, seed=1)
    stream = datasets.BinaryAdditionStream(48, bits=6, seed=1)
    result = train(net, xpnn.SGD(0.5), stream, iters=8, log_every=1, truncate=3, **kwargs)
    return [v for _, v in result.history], {k: xpnn.to_numpy(v) for k, v in result.params.items()}


def _regression_run(backend: str, **kwargs: object) -> tuple[list, dict]:
    net = xpnn.MLP([2, 6, 1], hidden="tanh", output="identity", loss="mse", backend=backend)
    x, d = datasets.linear(500, seed=2)
    stream = datasets.SampleStream(x, d, 40, seed=2)
    opt = xpnn.Adam(0.01)
    result = train(net, opt, stream, iters=8, log_every=1, **kwargs)
    return [v for _, v in result.history], {k: xpnn.to_numpy(v) for k, v in result.params.items()}


def _assert_agree(got: tuple[list, dict], ref: tuple[list, dict]) -> None:
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=0)
    for key, value in ref[1].items():
        np.testing.assert_allclose(got[1][key], value, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("run", [_addition_run, _regression_run], ids=["rnn", "mlp"])
def test_training_on_dask_agrees_with_numpy_float64(run) -> None:
    _assert_agree(run("dask", chunks=16), run("numpy"))  # several chunks a batch


@DISTRIBUTED
@pytest.mark.parametrize("run", [_addition_run, _regression_run], ids=["rnn", "mlp"])
def test_training_on_a_two_process_cluster_agrees_with_numpy(run) -> None:
    from xpnn.parallel.cluster import connect

    with connect(None, 2):  # a LocalCluster of two worker processes on 127.0.0.1
        assert backend_info("dask").scheduler.startswith("distributed tcp://127.0.0.1:")
        got = run("dask", chunks=16)
    _assert_agree(got, run("numpy"))
