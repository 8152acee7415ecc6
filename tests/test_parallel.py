"""``xpnn.parallel``: streams that make any rows of a batch alone, bad input refused
before any task (unreachable, silent and non-dask schedulers included), and, on a real
LocalCluster of worker processes on 127.0.0.1 (the ``distributed`` nox session), runs
equal to one process (to 1e-12 in float64): every model with Adam, clipping and
truncation, on 1 to 3 workers, a killed worker's shard redone, a resume on another number
of workers, workers of several (pseudo-)hosts reduced by one leader a host, a killed or
unreachable leader's and a killed peer's shards redone; and what the command line says of
its cluster."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import checkpoint, cli, datasets
from xpnn.backends import float_errors_ignored
from xpnn.errors import XpnnTypeError, XpnnValueError
from xpnn.parallel import cluster, gradients
from xpnn.parallel.gradients import Gradients, shard_bounds
from xpnn.training.loop import run, starting_state, train
from xpnn.training.plan import make_plan

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")

DISTRIBUTED = pytest.mark.skipif(
    os.environ.get("XPNN_DISTRIBUTED") != "1",
    reason="starts a LocalCluster of worker processes: nox -s distributed (or XPNN_DISTRIBUTED=1)",
)
TOL = 1e-12  # float64: the shards' gradients summed differ from the batch's in rounding


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

KINDS = ("mlp", "rnn", "lstm", "gru")


def _setup(kind: str, batch: int) -> tuple[object, object]:
    """A model and its stream, float64."""
    if kind == "mlp":
        return _net_and_stream(batch)
    net = xpnn.RNN(2, 6, 1, hidden="tanh", cell=kind, seed=1, init="xavier")
    return net, datasets.BinaryAdditionStream(batch, seed=2)


SETTINGS = {"iters": 12, "log_every": 5, "clip": 0.5}


def _run(kind: str, batch: int, client: object = None, **kw: object) -> object:
    """``kind`` trained 12 iterations with Adam and clipping (and truncated BPTT for the
    recurrent ones), in this process or on ``client``'s workers."""
    net, stream = _setup(kind, batch)
    extra = {"truncate": 3} if kind != "mlp" else {}
    train(net, xpnn.Adam(0.01), stream, **SETTINGS, parallel=client, **extra, **kw)
    return net


def _assert_close(a: object, b: object) -> None:
    for key in a.params:
        np.testing.assert_allclose(b.params[key], a.params[key], rtol=0, atol=TOL)


@pytest.fixture(params=[1, 2, 3])
def local_client(request) -> Iterator[object]:
    """1, 2 or 3 in-process workers (dask's inproc transport: no socket, no process),
    stopped after the test."""
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


def test_workers_train_as_one_process(local_client) -> None:
    """Every model on 1, 2 and 3 workers (batch 11: shards of 11; 5 and 6; 3, 4 and 4)
    ends within rounding of one process, and its readings (iterations, losses, batches
    and outputs) are one process's."""
    for kind in KINDS:
        events: dict[object, list] = {None: [], local_client: []}
        nets = [_run(kind, 11, c, on_log=events[c].append) for c in events]
        _assert_close(*nets)
        one, many = events.values()
        assert [e.iteration for e in one] == [e.iteration for e in many] == [0, 5, 10, 11]
        for a, b in zip(one, many, strict=True):
            assert abs(a.loss - b.loss) <= TOL
            np.testing.assert_array_equal(b.x, a.x)
            np.testing.assert_allclose(b.y, a.y, rtol=0, atol=TOL)


def _trained_on(client: object, kind: str = "gru") -> tuple[object, Gradients]:
    """``kind`` trained as ``_run`` does, through a ``Gradients`` source of this test's."""
    net, stream = _setup(kind, 11)
    truncate = 3 if kind != "mlp" else None
    plan = make_plan(net, xpnn.Adam(0.01), truncate=truncate, **SETTINGS)
    source = Gradients(client, net, stream, plan.truncate)
    try:
        run(plan, net, stream, starting_state(net, plan, None), source=source)
    finally:
        source.close()
    return net, source


def _sent(monkeypatch) -> list[tuple[str, str, object]]:
    """Every message of the client's to a worker from now on: the address, the action and
    the answer."""
    sent = []
    ask = Gradients._ask

    async def counted(self: Gradients, address: str, **message: object) -> object:
        answer = await ask(self, address, **message)
        sent.append((address, message["action"], answer))
        return answer

    monkeypatch.setattr(Gradients, "_ask", counted)
    return sent


def _pseudo_hosts(monkeypatch, client: object, hosts: str) -> list[str]:
    """``client``'s workers (in address order, returned) put on the pseudo-hosts
    ``hosts`` (one letter a worker); a worker that joins later is a host of its own."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    named = dict(zip(workers, hosts, strict=True))
    monkeypatch.setattr(gradients, "host_of", lambda address: named.get(address, address))
    return workers


@pytest.mark.parametrize("local_client", [2], indirect=True)
def test_the_model_and_stream_go_to_each_worker_once_a_run(local_client, monkeypatch) -> None:
    """... and on one host every worker is asked directly, with no leader."""
    sent = _sent(monkeypatch)
    _net, source = _trained_on(local_client)
    opened = sorted(a for a, action, _ in sent if action == "open")
    assert opened == source.workers  # once each, for 12 steps
    assert sorted(a for a, action, _ in sent if action == "close") == source.workers
    assert len([a for a, action, _ in sent if action == "step"]) == 12 * 2
    assert source.groups is None
    assert not [a for a, action, _ in sent if action == "group"]
    sessions = local_client.run(_sessions)
    assert all(n == 0 for n in sessions.values())  # closed: nothing left on the workers


def _sessions(dask_worker: object) -> int:
    from xpnn.parallel import session

    return len(dask_worker.plugins[session.PLUGIN].sessions)


def _forget_sessions(dask_worker: object) -> None:
    from xpnn.parallel import session

    dask_worker.plugins[session.PLUGIN].sessions.clear()


@pytest.mark.parametrize("local_client", [1], indirect=True)
def test_a_worker_that_lost_its_session_is_sent_it_again(local_client) -> None:
    """A worker restarted at the same address has no session: it is opened again."""
    net, stream = _setup("mlp", 4)
    source = Gradients(local_client, net, stream, None)
    try:
        local_client.run(_forget_sessions)
        loss, _grads = source(net.params, 3)
    finally:
        source.close()
    x, d = stream.batch_rows(3, 0, 4)
    assert loss == float(net.loss(net.asarray(x), net.asarray(d)))


@pytest.mark.parametrize("local_client", [2], indirect=True)
def test_a_worker_that_cannot_be_reached_hands_its_shard_to_another(
    local_client, monkeypatch
) -> None:
    """Shard 0's worker fails every call from the third step on: its shard is redone on
    the other worker (the session opened there once), with the same numbers."""
    ask = Gradients._ask
    steps = []

    async def failing(self: Gradients, address: str, **message: object) -> object:
        if message["action"] == "step" and address == self.workers[0]:
            steps.append(address)
        if len(steps) > 2 and address == steps[0]:
            raise distributed.comm.CommClosedError("gone")
        return await ask(self, address, **message)

    async def others(self: Gradients, s: int, dead: str) -> str:
        return next(w for w in sorted(self.client.scheduler_info()["workers"]) if w != dead)

    monkeypatch.setattr(Gradients, "_ask", failing)
    monkeypatch.setattr(Gradients, "_survivor", others)
    net, source = _trained_on(local_client)
    assert source.workers[0] == source.workers[1] != steps[0]
    _assert_close(_run("gru", 11), net)


@pytest.mark.parametrize("local_client", [3], indirect=True)
def test_workers_of_two_hosts_train_as_one_process_through_one_leader_a_host(
    local_client, monkeypatch
) -> None:
    """Workers 0 and 2 on one pseudo-host, worker 1 on another: each step the client asks
    two leaders (worker 0 for shards 0 and 2, worker 1 for its own) and no worker
    directly, and the run equals one process."""
    workers = _pseudo_hosts(monkeypatch, local_client, "aba")
    for kind in ("mlp", "rnn"):
        sent = _sent(monkeypatch)
        net, source = _trained_on(local_client, kind)
        assert source.groups == [[0, 2], [1]]
        leaders = sorted(a for a, action, _ in sent if action == "group")
        assert leaders == sorted([workers[0], workers[1]] * 12)
        assert not [a for a, action, _ in sent if action == "step"]
        _assert_close(_run(kind, 11), net)


@pytest.mark.parametrize("local_client", [3], indirect=True)
def test_an_unreachable_leaders_group_is_redone_shard_by_shard(local_client, monkeypatch) -> None:
    """The first group's leader fails every call from the third step on: that step its
    group's shards are asked directly (its own of another worker), later steps group the
    workers of then, and the run equals one process."""
    workers = _pseudo_hosts(monkeypatch, local_client, "aba")
    ask = Gradients._ask
    steps = []

    async def failing(self: Gradients, address: str, **message: object) -> object:
        if message["action"] == "group" and address == workers[0]:
            steps.append(address)
        if len(steps) > 2 and address == workers[0]:
            raise distributed.comm.CommClosedError("gone")
        return await ask(self, address, **message)

    async def others(self: Gradients, s: int, dead: str) -> str:
        return next(w for w in workers if w != dead)

    monkeypatch.setattr(Gradients, "_ask", failing)
    monkeypatch.setattr(Gradients, "_survivor", others)
    net, source = _trained_on(local_client)
    assert source.workers == [workers[1], workers[1], workers[2]]
    assert source.groups == [[0, 1], [2]]  # worker 1 leads its two shards
    _assert_close(_run("gru", 11), net)


def test_a_worker_of_two_threads_splits_its_shard_and_trains_as_one_process() -> None:
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as local,
        distributed.Client(local) as client,
    ):
        for kind in KINDS:
            net, source = _trained_on(client, kind)
            assert source.cuts == [[(0, 5), (5, 11)]]
            _assert_close(_run(kind, 11), net)


@pytest.mark.parametrize("local_client", [1], indirect=True)
def test_the_reduce_keyword_is_deprecated_and_ignored(local_client) -> None:
    net, stream = _setup("mlp", 4)
    with pytest.warns(DeprecationWarning, match=r"reduce='tree'\) is deprecated and ignored"):
        source = Gradients(local_client, net, stream, None, reduce="tree")
    source.close()


@pytest.mark.parametrize("local_client", [2], indirect=True)
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


@pytest.mark.parametrize("local_client", [2], indirect=True)
def test_a_batch_smaller_than_the_workers_is_refused(local_client, tmp_path: Path) -> None:
    net, stream = _net_and_stream(1)
    saved = checkpoint.save(tmp_path / "c.npz", net, xpnn.SGD(0.1))
    before = saved.read_bytes()
    with pytest.raises(XpnnValueError) as info:
        train(net, xpnn.SGD(0.1), stream, iters=3, parallel=local_client)
    assert info.value.argument == "batch_size"
    assert saved.read_bytes() == before


# -- on worker processes ---------------------------------------------------------------------


@pytest.fixture(
    params=[pytest.param(1, marks=pytest.mark.slow), 2, pytest.param(3, marks=pytest.mark.slow)]
)
def process_client(request) -> Iterator[object]:
    """A LocalCluster of 1, 2 or 3 worker processes on 127.0.0.1 (2 in the default run),
    stopped after the test."""
    with cluster.connect(workers=request.param) as client:
        yield client


@DISTRIBUTED
def test_worker_processes_train_as_one_process(process_client) -> None:
    for kind in KINDS:
        _assert_close(_run(kind, 11), _run(kind, 11, process_client))


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
def test_a_killed_workers_shard_is_redone_with_the_same_numbers() -> None:
    with cluster.connect(workers=2) as client:
        quiet = _run("lstm", 10, client)
        pids = client.run(os.getpid)
        victim = pids[sorted(pids)[0]]

        def kill(state: xpnn.TrainState) -> None:
            if state.step == 4:
                os.kill(victim, signal.SIGKILL)

        killed = _run("lstm", 10, client, on_step=kill)
        assert victim not in client.run(os.getpid).values()  # it did die
    for key in quiet.params:
        np.testing.assert_array_equal(killed.params[key], quiet.params[key])


@DISTRIBUTED
def test_a_killed_peers_shard_is_redone_and_the_run_equals_one_process(monkeypatch) -> None:
    """Workers 0 and 1 on one pseudo-host (worker 0 leads), worker 2 on another; worker 1
    is SIGKILLed mid-run: its leader names it lost rather than failing, the client redoes
    the group shard by shard, and the run equals one process."""
    with cluster.connect(workers=3) as client:
        workers = _pseudo_hosts(monkeypatch, client, "aab")
        sent = _sent(monkeypatch)
        pids = client.run(os.getpid)
        victim = pids[workers[1]]

        def kill(state: xpnn.TrainState) -> None:
            if state.step == 4:
                os.kill(victim, signal.SIGKILL)

        killed = _run("lstm", 10, client, on_step=kill)
        assert victim not in client.run(os.getpid).values()  # it did die
    lost = [
        list(answer["lost"])
        for _a, action, answer in sent
        if action == "group" and "lost" in answer
    ]
    assert lost == [[workers[1]]]
    _assert_close(_run("lstm", 10), killed)


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
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "binary-addition", "--iters", "2", *options])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_the_cli_names_an_unreachable_scheduler_exit_2(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    folder = tmp_path / "run"
    folder.mkdir()
    argv = ["train", "regression", "--iters", "2", "--scheduler", address]
    assert cli.main([*argv, "--checkpoint", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and address in err[0] and "within 1 s" in err[0]
    assert list(folder.iterdir()) == []  # nothing was written


def test_the_dask_backend_warns_that_workers_train_faster(capsys) -> None:
    assert cli.main(["train", "regression", "--backend", "dask", "--iters", "2", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "test MSE" in out
    (warning,) = err.strip().splitlines()
    assert warning.startswith("xpnn: --backend dask") and "--workers N" in warning


@DISTRIBUTED
def test_the_cli_on_workers_prints_what_one_process_prints(capsys, tmp_path) -> None:
    """``xpnn train binary-addition --workers 2`` says where it trains and equals the
    single-process run (its JSON summary, losses to 1e-12), and a checkpoint made on 2
    workers resumes on 3."""
    argv = ["train", "binary-addition", "--batch-size", "64", "--iters", "30"]
    argv += ["--log-every", "10", "--json"]
    assert cli.main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    folder = tmp_path / "run"
    half = [*argv[:5], "15", *argv[6:], "--checkpoint", str(folder)]
    assert cli.main([*half, "--workers", "2"]) == 0
    (said,) = capsys.readouterr().err.strip().splitlines()
    assert said.startswith("xpnn: training data-parallel on a local cluster of 2 worker processes")
    assert re.search(r"\(dashboard http://127\.0\.0\.1:\d+/status\)$", said), said
    assert cli.main([*argv, "--checkpoint", str(folder), "--resume", "--workers", "3"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    got, want = dict(resumed["losses"]), dict(one["losses"])
    assert set(want) <= set(got) == set(want) | {14}  # the first half's last reading too
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=0, atol=TOL)
    assert resumed["exact"] == one["exact"]
    assert abs(resumed["eval_loss"] - one["eval_loss"]) <= TOL
