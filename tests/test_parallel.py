"""``xpnn.parallel``: streams that make any rows of a batch alone, bad input refused
before any task (unreachable, silent and non-dask schedulers included), and, on a real
LocalCluster of worker processes on 127.0.0.1 (the ``distributed`` nox session), runs
equal to one process: every model, SGD and Adam, clipping and truncation, 1 to 3 workers,
a killed worker, a resume on another number of workers."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import checkpoint, datasets
from xpnn.backends import float_errors_ignored
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.parallel import cluster
from xpnn.parallel.gradients import shard_bounds, train_parallel
from xpnn.training.loop import train

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster of worker processes: nox -s distributed (or XPNN_DISTRIBUTED=1)",
)
TOL = 1e-12  # float64: the sum of the shards' gradients rounds otherwise than the batch's


# -- the streams -----------------------------------------------------------------------------


def _streams() -> list[object]:
    x, d = datasets.linear(37, seed=4)
    xs, ds = datasets.binary_addition(23, seed=5)
    return [
        datasets.SampleStream(x, d, 6, seed=9),
        datasets.SampleStream(xs, ds, 5, seed=[1, 2], batch_axis=1),
        *(datasets.BinaryAdditionStream(7, bits=b, seed=3) for b in (2, 8, 32, 33, 34, 62)),
        *(datasets.AddingProblemStream(5, steps=s, seed=[1, 2]) for s in (2, 7, 16)),
    ]


@pytest.mark.parametrize("stream", _streams(), ids=lambda s: type(s).__name__)
def test_batch_rows_are_the_rows_of_the_whole_batch(stream) -> None:
    batch = stream.batch_size
    cuts = [(0, batch), (0, 1), (1, batch - 1), (batch - 1, batch), (2, 3), (0, 2)]
    for i in (0, 1, 127, 128, 1000):  # chunk edges: CHUNK = 128
        x, d = stream.batches(i, i + 1)
        axis, target_axis = stream.batch_axis, getattr(stream, "target_axis", stream.batch_axis)
        for lo, hi in cuts:
            xr, dr = stream.batch_rows(i, lo, hi)
            np.testing.assert_array_equal(xr, np.take(x, range(lo, hi), axis=axis))
            np.testing.assert_array_equal(dr, np.take(d, range(lo, hi), axis=target_axis))


@pytest.mark.parametrize(("i", "lo", "hi"), [(-1, 0, 1), (0, 2, 2), (0, 0, 8), (0.5, 0, 1)])
def test_batch_rows_refuses_rows_outside_the_batch(i, lo, hi) -> None:
    with pytest.raises(XpnnValueError, match="batch_rows needs"):
        datasets.BinaryAdditionStream(7).batch_rows(i, lo, hi)


def test_shards_cover_the_batch_once_as_evenly_as_can_be() -> None:
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


# -- bad input -------------------------------------------------------------------------------


def _net_and_stream(batch: int = 10) -> tuple[xpnn.MLP, datasets.SampleStream]:
    x, d = datasets.linear(40, seed=0)
    net = xpnn.MLP([2, 4, 1], hidden="tanh", output="identity", loss="mse", seed=0)
    return net, datasets.SampleStream(x, d, batch, seed=0)


@pytest.mark.parametrize("parallel", ["tcp://127.0.0.1:8786", 2, object()])
def test_parallel_must_be_a_client(parallel) -> None:
    net, stream = _net_and_stream()
    before = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(XpnnTypeError, match=r"parallel must be a distributed\.Client, got"):
        train(net, xpnn.SGD(0.1), stream, iters=3, parallel=parallel)
    assert all(np.array_equal(before[k], net.params[k]) for k in before)


@pytest.mark.parametrize(("workers", "shown"), [(0, "0"), (-2, "-2"), (1.5, "1.5"), (True, "True")])
def test_a_cluster_needs_a_positive_number_of_workers(workers, shown) -> None:
    expected = f"workers must be an integer of at least 1, got {shown}"
    with pytest.raises(XpnnValueError, match=expected), cluster.connect(workers=workers):
        pass


@pytest.fixture
def listener() -> Iterator[callable]:
    """``listen(reply)``: the address of a socket on 127.0.0.1 that accepts one
    connection, sends ``reply`` (nothing if None) and then stays silent until the test ends."""
    sockets, done = [], threading.Event()

    def listen(reply: bytes | None) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        sockets.append(server)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                if reply is not None:
                    conn.sendall(reply)
                done.wait(30)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    yield listen
    done.set()
    for server in sockets:
        server.close()


def test_a_silent_listener_fails_within_the_timeout_naming_the_address(
    listener, monkeypatch
) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    address = listener(None)
    expected = f"the scheduler at '{address}' accepted a connection but sent nothing"
    with pytest.raises(XpnnValueError, match=expected) as info, cluster.connect(address):
        pass
    assert "within 1 s" in str(info.value)


def test_an_http_server_is_not_a_scheduler(listener) -> None:
    address = listener(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    expected = "answered, but not as a dask scheduler"
    with pytest.raises(XpnnValueError, match=expected) as info, cluster.connect(address):
        pass
    assert address in str(info.value)


def test_an_unreachable_scheduler_names_the_address(monkeypatch) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    expected = f"cannot reach the dask scheduler at '{address}'"
    with pytest.raises(XpnnValueError, match=expected), cluster.connect(address):
        pass


class _Answers:
    """A stand-in client whose workers report the given ``client.run`` answers."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers

    def run(self, *args: object, on_error: str) -> dict[str, object]:
        return self.answers


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("0.0.1", f"worker tcp://w:2 has xpnn '0.0.1' but the client has xpnn {xpnn.__version__}"),
        (ModuleNotFoundError("No module named 'xpnn'"), "worker tcp://w:2 cannot import xpnn"),
    ],
)
def test_workers_need_the_clients_xpnn(answer, expected) -> None:
    client = _Answers({"tcp://w:1": xpnn.__version__, "tcp://w:2": answer})
    with pytest.raises(XpnnValueError, match=expected):
        cluster.check_workers(client)


# -- equal to one process --------------------------------------------------------------------


def _setup(kind: str, batch: int) -> tuple[object, object]:
    """A model and its stream, float64."""
    if kind == "mlp":
        return _net_and_stream(batch)
    cell = {"rnn": "rnn", "lstm": "lstm", "gru": "gru"}[kind]
    net = xpnn.RNN(2, 6, 1, hidden="tanh", cell=cell, seed=1, init="xavier")
    return net, datasets.BinaryAdditionStream(batch, seed=2)


def _run(kind: str, opt: str, batch: int, client: object = None, **kw: object) -> object:
    net, stream = _setup(kind, batch)
    optimizer = xpnn.Adam(0.01) if opt == "adam" else xpnn.SGD(0.2)
    extra = {"truncate": 3} if kind != "mlp" else {}
    train(net, optimizer, stream, iters=12, log_every=5, clip=0.5, parallel=client, **extra, **kw)
    return net


def _assert_close(a: object, b: object) -> None:
    for key in a.params:
        np.testing.assert_allclose(b.params[key], a.params[key], rtol=0, atol=TOL)


@pytest.fixture(params=[2])
def local_client(request) -> Iterator[object]:
    """In-process workers (2, or the test's ``indirect`` count; dask's inproc transport:
    no socket), stopped after the test."""
    with (
        distributed.LocalCluster(
            n_workers=request.param,
            threads_per_worker=1,
            processes=False,
            dashboard_address="127.0.0.1:0",  # None still takes :8787
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


def test_two_in_process_workers_train_as_one_process(local_client) -> None:
    for kind in ("mlp", "lstm"):
        events: dict[object, list] = {None: [], local_client: []}
        nets = [_run(kind, "adam", 11, c, on_log=events[c].append) for c in events]
        _assert_close(*nets)
        one, two = events.values()
        assert [e.iteration for e in one] == [e.iteration for e in two] == [0, 5, 10, 11]
        for a, b in zip(one, two, strict=True):
            assert abs(a.loss - b.loss) <= TOL
            np.testing.assert_array_equal(b.x, a.x)
            np.testing.assert_allclose(b.y, a.y, rtol=0, atol=TOL)


def test_a_diverging_run_restores_the_last_finite_reading_as_one_process(local_client) -> None:
    caught = []
    for client in (None, local_client):
        net, stream = _net_and_stream(10)
        with pytest.raises(xpnn.TrainingDiverged) as info, float_errors_ignored():
            train(net, xpnn.SGD(1e3), stream, iters=80, log_every=2, parallel=client)
        caught.append((net, info.value))
    (one, one_exc), (two, two_exc) = caught
    assert (two_exc.iteration, two_exc.good_step) == (one_exc.iteration, one_exc.good_step)
    assert len(two_exc.history) == len(one_exc.history)
    for key in one.params:  # restored, and large by then: relative
        np.testing.assert_allclose(two.params[key], one.params[key], rtol=TOL)


@pytest.mark.parametrize("local_client", [3], indirect=True)
def test_a_tree_reduction_on_the_workers_trains_as_one_process(local_client) -> None:
    net, stream = _setup("gru", 11)  # shards of 3, 4 and 4 rows: one goes up a level alone
    train_parallel(
        net,
        xpnn.Adam(0.01),
        stream,
        client=local_client,
        iters=12,
        log_every=5,
        clip=0.5,
        truncate=3,
        reduce="tree",
    )
    _assert_close(_run("gru", "adam", 11), net)


def test_a_batch_smaller_than_the_workers_is_refused(local_client, tmp_path: Path) -> None:
    net, stream = _net_and_stream(1)
    saved = checkpoint.save(tmp_path / "c.npz", net, xpnn.SGD(0.1))
    before = saved.read_bytes()
    expected = r"batch_size=1 is smaller than the number of workers \(2\)"
    with pytest.raises(XpnnValueError, match=expected):
        train(net, xpnn.SGD(0.1), stream, iters=3, parallel=local_client)
    assert saved.read_bytes() == before


@pytest.fixture(params=[1, 2, 3])
def process_client(request) -> Iterator[object]:
    """A LocalCluster of 1, 2 or 3 worker processes on 127.0.0.1, stopped after the test."""
    with cluster.connect(workers=request.param) as client:
        yield client


@DISTRIBUTED
@pytest.mark.parametrize("batch", [10, 11])
def test_worker_processes_train_as_one_process(process_client, batch) -> None:
    for kind in ("mlp", "rnn", "lstm", "gru"):
        for opt in ("sgd", "adam"):
            _assert_close(_run(kind, opt, batch), _run(kind, opt, batch, process_client))


def _settings_seen() -> dict[str, str]:
    names = cluster.worker_environment(1)
    return {k: v for k, v in os.environ.items() if k in names}


@DISTRIBUTED
def test_local_workers_get_their_settings_even_over_dasks_in_this_environment(
    monkeypatch,
) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what an earlier dask cluster leaves
    with cluster.connect(workers=1, threads_per_worker=2) as client:
        seen = client.run(_settings_seen)
        pid = next(iter(client.run(os.getpid).values()))
        os.kill(pid, signal.SIGKILL)  # the nanny's restart too
        for _ in range(600):  # until the restarted worker answers (a minute at most)
            if set(client.run(os.getpid, on_error="ignore").values()) - {pid}:
                break
            time.sleep(0.1)
        seen_again = client.run(_settings_seen)
    assert list(seen.values()) == [cluster.worker_environment(2)]
    assert list(seen_again.values()) == [cluster.worker_environment(2)]


@DISTRIBUTED
def test_a_killed_worker_changes_no_number() -> None:
    with cluster.connect(workers=2) as client:
        quiet = _run("lstm", "adam", 10, client)
        pids = client.run(os.getpid)

        def kill(state: xpnn.TrainState) -> None:
            if state.step == 4:
                os.kill(pids[sorted(pids)[0]], signal.SIGKILL)

        killed = _run("lstm", "adam", 10, client, on_step=kill)
        assert pids[sorted(pids)[0]] not in client.run(os.getpid).values()  # it did die
    for key in quiet.params:
        np.testing.assert_array_equal(killed.params[key], quiet.params[key])


@DISTRIBUTED
def test_a_checkpoint_resumes_on_another_number_of_workers(tmp_path: Path) -> None:
    whole = _run("gru", "adam", 12)
    path = tmp_path / "c.npz"
    net, stream = _setup("gru", 12)
    optimizer = xpnn.Adam(0.01)

    def save(state: xpnn.TrainState) -> None:
        checkpoint.save(
            path,
            net,
            optimizer,
            step=state.step,
            history=state.history,
            state=state.opt_state,
            params=state.params,
        )

    settings = {"log_every": 5, "clip": 0.5, "truncate": 3}
    with cluster.connect(workers=2) as client:
        train(net, optimizer, stream, iters=7, parallel=client, on_step=save, **settings)
    saved = checkpoint.load(path)
    with cluster.connect(workers=3) as client:
        train(
            saved.model,
            saved.make_optimizer(),
            stream,
            iters=12,
            start=saved.step,
            state=saved.optimizer_state,
            parallel=client,
            **settings,
        )
    _assert_close(whole, saved.model)


# -- the command line: xpnn train RUN --workers N | --scheduler ADDRESS ----------------------

BAD_PARALLEL_OPTIONS = {
    "no workers": (["--workers", "0"], "argument --workers: must be a whole number of at least 1"),
    "negative": (["--workers", "-2"], "argument --workers: must be a whole number of at least 1"),
    "both": (
        ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
        "argument --scheduler: not allowed with argument --workers",
    ),
    "dask backend": (
        ["--workers", "2", "--backend", "dask"],
        "--workers trains data-parallel on a dask cluster; --backend dask",
    ),
    "batch below workers": (
        ["--workers", "3", "--batch-size", "2"],
        "--batch-size 2 is smaller than --workers 3",
    ),
    "threads without workers": (
        ["--threads-per-worker", "2"],
        "--threads-per-worker sets up local workers: it needs --workers N",
    ),
}


@pytest.mark.parametrize(
    ("options", "expected"), BAD_PARALLEL_OPTIONS.values(), ids=list(BAD_PARALLEL_OPTIONS)
)
def test_the_cli_refuses_a_bad_cluster_in_one_line_exit_2(options, expected, capsys) -> None:
    from xpnn import cli

    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "binary-addition", "--iters", "2", *options])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_the_cli_names_an_unreachable_scheduler_exit_2(monkeypatch, capsys, tmp_path) -> None:
    from xpnn import cli

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    folder = tmp_path / "run"
    folder.mkdir()
    argv = ["train", "regression", "--iters", "2", "--scheduler", address]
    assert cli.main([*argv, "--checkpoint", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and address in err[0]
    assert list(folder.iterdir()) == []  # nothing was written


@DISTRIBUTED
def test_the_cli_on_two_workers_prints_what_one_process_prints(capsys, tmp_path) -> None:
    """``xpnn train binary-addition --workers 2`` equals the single-process run (its JSON
    summary, losses to 1e-12), and a checkpoint made on 2 workers resumes on 3."""
    from xpnn import cli

    argv = ["train", "binary-addition", "--batch-size", "64", "--iters", "30"]
    argv += ["--log-every", "10", "--json"]
    assert cli.main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    folder = tmp_path / "run"
    folder.mkdir()
    half = [*argv[:5], "15", *argv[6:], "--checkpoint", str(folder)]
    assert cli.main([*half, "--workers", "2"]) == 0
    capsys.readouterr()
    assert cli.main([*argv, "--checkpoint", str(folder), "--resume", "--workers", "3"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    got, want = dict(resumed["losses"]), dict(one["losses"])
    assert set(want) <= set(got) == set(want) | {14}  # the first half's last reading too
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=0, atol=TOL)
    assert resumed["exact"] == one["exact"]
    assert abs(resumed["eval_loss"] - one["eval_loss"]) <= TOL
