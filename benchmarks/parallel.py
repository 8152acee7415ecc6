"""Issue 15: data-parallel training (``xpnn.parallel``) against one process.

For each size it times, interleaved round-robin (``--repeats`` rounds, the median kept):

* one process: ``make_step``'s step on a batch already made (what ``train`` runs per
  iteration once its chunk of data is drawn), NumPy, one BLAS thread;
* 1 and 2 workers (``--workers``): ``train_parallel`` steps, each worker making its rows;
  the first step (which draws the stream's chunk state and builds the worker's model) is
  not timed.

``--workers 2,1x2`` sets two single-threaded workers against one of two threads (BLAS
on both threads; NumPy's elementwise work stays on one). Then the per-step overhead (a
batch of one row a worker: what is left is dask's and xpnn's cost), the round trip of
one task (what running the optimiser on a worker instead of the client would add per
step) beside the optimiser's own time on the client, and, with ``--settings``, the
worker CPU seconds per step with dask's ``MALLOC_TRIM_THRESHOLD_=65536`` and with
``cluster.worker_environment``'s malloc thresholds.

The load average (1 minute) is printed beside every figure: on a loaded machine the
ratios mean little. Sizes: ``--rnn 16384,65536,262144`` (binary addition, hidden 16),
``--mlp 1000000`` (rows of ``linear``, one full batch, hidden 32); ``--quick`` for a smoke
run. Speed is only measured here; no test asserts on it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import xpnn  # noqa: E402
from xpnn import datasets  # noqa: E402
from xpnn.parallel import cluster  # noqa: E402
from xpnn.parallel.gradients import Shard, train_parallel  # noqa: E402
from xpnn.training.step import make_step  # noqa: E402


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _problem(kind: str, batch: int) -> tuple[Any, Any]:
    if kind == "rnn":
        net = xpnn.RNN(2, 16, 1, hidden="sigmoid", seed=0)
        return net, datasets.BinaryAdditionStream(batch, seed=0)
    x, d = datasets.linear(batch, seed=0)
    net = xpnn.MLP([2, 32, 1], hidden="relu", output="identity", loss="mse", seed=0)
    return net, datasets.SampleStream(x, d, batch, seed=0)


def _one_process(kind: str, batch: int, iters: int) -> Callable[[], float]:
    """Seconds a step in one process, on one batch made beforehand."""
    net, stream = _problem(kind, batch)
    x, d = stream.batch_rows(0, 0, batch)
    x, d = net.asarray(x), net.asarray(d)
    optimizer = xpnn.SGD(0.1)
    step = make_step(net, optimizer, compile="off")

    def run() -> float:
        params, state = net.params, optimizer.init(net.params)
        began = time.perf_counter()
        for _ in range(iters):
            params, state, loss = step(params, state, x, d)
        float(loss)
        return (time.perf_counter() - began) / iters

    return run


def _parallel(kind: str, batch: int, iters: int, client: Any) -> Callable[[], float]:
    """Seconds a ``train_parallel`` step on ``client``'s workers, the first step untimed."""

    def run() -> float:
        net, stream = _problem(kind, batch)
        marks = []
        train_parallel(
            net,
            xpnn.SGD(0.1),
            stream,
            client=client,
            iters=iters + 1,
            log_every=iters + 1,
            on_step=lambda _state: marks.append(time.perf_counter()),
        )
        return (marks[-1] - marks[0]) / iters

    return run


def _interleaved(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple]:
    """Median seconds of each case over ``repeats`` round-robin rounds, with the load
    average at its last run."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    loads: dict[str, str] = {}
    for _ in range(repeats):
        for name, run in cases.items():
            samples[name].append(run())
            loads[name] = _load()
    return {name: (statistics.median(s), loads[name]) for name, s in samples.items()}


def _noop(x: Any) -> Any:
    return x


def _round_trip(client: Any, n: int) -> float:
    """Seconds of one dependent task, submitted and waited for, ``n`` in a row."""
    worker = sorted(client.scheduler_info()["workers"])[0]
    client.submit(_noop, 0, workers=[worker], pure=False).result()
    began = time.perf_counter()
    for i in range(n):
        client.submit(_noop, i, workers=[worker], pure=False).result()
    return (time.perf_counter() - began) / n


def _optimiser_seconds(n: int) -> float:
    net, _stream = _problem("rnn", 1)
    optimizer = xpnn.Adam(0.01)
    params, state = net.params, optimizer.init(net.params)
    grads = dict(params)
    began = time.perf_counter()
    for _ in range(n):
        params, state = optimizer.apply(params, grads, state, xp=net.xp)
    return (time.perf_counter() - began) / n


def _worker_cpu(shard: Shard, params: dict, rows: int, n: int) -> float:
    """Worker CPU seconds a step of ``rows`` rows (``time.process_time``), ``n`` steps."""
    shard.grads(params, 0, 0, rows)
    began = time.process_time()
    for i in range(n):
        shard.grads(params, i + 1, 0, rows)
    return (time.process_time() - began) / n


def _malloc_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MALLOC")}


def _settings(rows_list: list[int], n: int, repeats: int) -> None:
    """Worker CPU seconds a step, with dask's ``MALLOC_TRIM_THRESHOLD_=65536`` and with
    ``cluster.worker_environment``'s thresholds: one single-threaded worker each, both up
    at once, their runs interleaved."""
    from distributed import Client

    mine = {k: v for k, v in cluster.worker_environment(1).items() if k.startswith("MALLOC")}
    labels = {"dask": {"MALLOC_TRIM_THRESHOLD_": "65536"}, "xpnn": mine}
    clients = {}
    with contextlib.ExitStack() as stack:
        for name, environ in labels.items():
            local = stack.enter_context(cluster.local_cluster(1, 1, environ))
            clients[name] = stack.enter_context(Client(local))
            seen = clients[name].run(_malloc_variables)
            print(f"  {name} workers: {', '.join(map(str, seen.values()))}")
        print("\nworker CPU a step, one worker (CPU time: less hit by load than wall time)")
        for rows in rows_list:
            net, stream = _problem("rnn", rows)
            shard = Shard(net, stream, None)
            params = {k: xpnn.to_numpy(v) for k, v in net.params.items()}
            cpu: dict[str, list[float]] = {name: [] for name in labels}
            for _ in range(repeats):
                for name, client in clients.items():
                    task = client.submit(_worker_cpu, shard, params, rows, n, pure=False)
                    cpu[name].append(task.result())
            for name, environ in labels.items():
                print(
                    f"  {' '.join(f'{k}={v}' for k, v in environ.items()):70s} rows {rows:6d}: "
                    f"{1000 * statistics.median(cpu[name]):8.2f} ms CPU ({_load()})"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rnn", default="16384,65536,262144", help="RNN batch sizes")
    parser.add_argument("--mlp", default="1000000", help="MLP rows (one full batch)")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts; NxT: N workers of T threads (1x2)"
    )
    parser.add_argument("--iters", type=int, default=10, help="timed steps a run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--settings", action="store_true", help="also the worker settings")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.rnn, args.mlp, args.iters, args.repeats = "512", "2048", 3, 1
    sizes = [("rnn", int(b)) for b in args.rnn.split(",") if b]
    sizes += [("mlp", int(b)) for b in args.mlp.split(",") if b]
    counts = [w if "x" in w else f"{w}x1" for w in args.workers.split(",")]
    print(f"{os.cpu_count()} CPUs, {_load()} at the start")
    with contextlib.ExitStack() as stack:
        clients = {
            name: stack.enter_context(
                cluster.connect(
                    workers=int(name.split("x")[0]), threads_per_worker=int(name.split("x")[1])
                )
            )
            for name in counts
        }
        for kind, batch in sizes:
            cases = {"one process": _one_process(kind, batch, args.iters)}
            for n, client in clients.items():
                cases[f"{n} workers"] = _parallel(kind, batch, args.iters, client)
            result = _interleaved(cases, args.repeats)
            base = result["one process"][0]
            print(f"\n{kind.upper()} batch {batch}: ms a step, speed-up over one process")
            for name, (seconds, load) in result.items():
                print(f"  {name:12s} {1000 * seconds:9.2f} ms  {base / seconds:5.2f}x  ({load})")
        print("\nper-step overhead (one row a worker):")
        for n, client in clients.items():
            rows = len(client.scheduler_info()["workers"])
            seconds = statistics.median(
                _parallel("mlp", rows, args.iters * 5, client)() for _ in range(args.repeats)
            )
            print(f"  {n} workers: {1000 * seconds:7.2f} ms a step ({_load()})")
        client = clients[counts[-1]]
        trip = _round_trip(client, 50 if args.quick else 200)
        print(
            f"\none task's round trip (the optimiser on a worker would add it): "
            f"{1000 * trip:.2f} ms ({_load()}); Adam on the client, RNN hidden 16: "
            f"{1e6 * _optimiser_seconds(200):.1f} us ({_load()})"
        )
    if args.settings:
        _settings([256] if args.quick else [8192, 16384], args.iters, args.repeats)


if __name__ == "__main__":
    main()
