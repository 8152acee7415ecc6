"""Data-parallel training (``xpnn.parallel``) against one process.

Every table times its cases interleaved round-robin (``--repeats`` rounds, the median
kept), with this process's CPU time a step (the client's, and a local cluster's
scheduler's) and the 1-minute load average beside every figure: on a loaded machine the
ratios mean little. A case is ``--iters`` steps after one untimed step (which opens the
workers' sessions and builds their models):

* one process: ``make_step``'s step on a batch made beforehand (what ``train`` runs an
  iteration once its chunk of data is drawn), NumPy, one BLAS thread, in a process of
  its own started with the workers' environment (``cluster.worker_environment``: their
  malloc thresholds, one BLAS thread), and no cluster's timers beside it;
* N workers: a ``Gradients`` step (each worker making its rows, asked directly) and the
  update on the client, what ``train(..., parallel=client)`` runs an iteration.

The sections (``--sections``, or ``--all``):

* ``overhead``: a batch of one row a worker (MLP 2-32-1) on 1 and 2 workers, beside the
  same step as one plain ``client.submit`` task a shard through the scheduler (kept here
  only as the comparison), and their ratio;
* ``rnn``: binary addition, RNN 2-16-1, batch 65536 and 262144 (``--rnn``): one process,
  1 and 2 workers;
* ``mlp``: MLP 2-32-1 on 1e6 rows of ``linear`` (``--mlp``, full batch): one process, 1
  and 2 workers;
* ``wide``: MLP 64-256-256-10, softmax output and cross-entropy, batch 65536 (``--wide``)
  of random inputs and classes: one process, 1 and 2 workers;
* ``threads``: the RNN at batch 65536 (``--threads-batch``) on one worker of K threads
  (``--threads-per-worker``, 2; its shard cut in K parts) against K workers of one thread;
* ``fanout``: the client's CPU time a step against the number of workers (``--fanout``,
  1, 2, 4, 8; one row a worker, MLP 2-32-1), less what this process spends idle for as
  long (the clusters' timers): its slope is what each more worker costs the client a
  step, which the paper projection in ``docs/distributed.md`` uses; then the largest
  count's workers split into pseudo-hosts (``--fanout-hosts``, 2 and 4: consecutive
  workers, ``gradients.host_of`` replaced while each source is made), so that each step
  asks one leader a pseudo-host, against the same workers asked directly, interleaved:
  the client's CPU a step with groups;
* ``settings`` (also ``--settings``): worker CPU seconds a step with dask's
  ``MALLOC_TRIM_THRESHOLD_=65536`` and with ``cluster.worker_environment``'s thresholds.

Clusters are local (127.0.0.1, ``cluster.connect``) and closed at the end. ``--quick``
is a smoke run of tiny sizes. Speed is only measured here; no test asserts on it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import xpnn  # noqa: E402
from xpnn import datasets  # noqa: E402
from xpnn.parallel import cluster, gradients  # noqa: E402
from xpnn.parallel.gradients import Gradients, shard_bounds  # noqa: E402
from xpnn.training.step import make_step, make_update  # noqa: E402

SECTIONS = ("overhead", "rnn", "mlp", "wide", "threads", "fanout", "settings")


Run = Callable[[], tuple[float, float]]
"""A case: one timed run, its wall seconds and this process's CPU seconds a step."""


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _problem(kind: str, batch: int) -> tuple[Any, Any]:
    """The model and stream of ``kind`` at ``batch`` rows, float64."""
    if kind == "rnn":
        net = xpnn.RNN(2, 16, 1, hidden="sigmoid", seed=0)
        return net, datasets.BinaryAdditionStream(batch, seed=0)
    if kind == "wide":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, 64))
        d = np.eye(10)[rng.integers(0, 10, size=batch)]  # one-hot classes
        net = xpnn.MLP(
            [64, 256, 256, 10], hidden="relu", output="softmax", loss="cross_entropy", seed=0
        )
        return net, datasets.SampleStream(x, d, batch, seed=0)
    x, d = datasets.linear(batch, seed=0)
    net = xpnn.MLP([2, 32, 1], hidden="relu", output="identity", loss="mse", seed=0)
    return net, datasets.SampleStream(x, d, batch, seed=0)


def _one_process_here(kind: str, batch: int, iters: int) -> Run:
    """Seconds a step in this process, on one batch made beforehand."""
    net, stream = _problem(kind, batch)
    x, d = stream.batch_rows(0, 0, batch)
    x, d = net.asarray(x), net.asarray(d)
    optimizer = xpnn.SGD(0.1)
    step = make_step(net, optimizer, compile="off")
    params, state, _loss = step(net.params, optimizer.init(net.params), x, d)  # warm

    def run() -> tuple[float, float]:
        nonlocal params, state
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(iters):
            params, state, loss = step(params, state, x, d)
        float(loss)
        return (time.perf_counter() - began) / iters, (time.process_time() - cpu) / iters

    return run


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """``variables`` in this process's environment for the time of the block."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v


def _one_process_child(conn: Any, kind: str, batch: int, iters: int) -> None:
    """The one-process case's own process: a timed run each time it is asked."""
    run = _one_process_here(kind, batch, iters)
    while conn.recv():
        conn.send(run())


def _one_process(kind: str, batch: int, iters: int, stack: contextlib.ExitStack) -> Run:
    """Seconds a step in one process: a process of its own (spawned), with the workers'
    malloc thresholds and without this process's clusters and their timers beside it;
    stopped with ``stack``."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(
        target=_one_process_child, args=(theirs, kind, batch, iters), daemon=True
    )
    with _environment(cluster.worker_environment(1)):  # read by glibc as the child starts
        child.start()

    def stop() -> None:
        ours.send(False)
        child.join(30)

    stack.callback(stop)

    def run() -> tuple[float, float]:
        ours.send(True)
        return ours.recv()

    return run


class _Tasks:
    """The comparison only: one ``client.submit`` task a shard a step, pinned to its
    worker, through the scheduler; the model and stream scattered to every worker once."""

    def __init__(self, client: Any, net: Any, stream: Any) -> None:
        from xpnn.parallel.session import Shard

        self.client, self.net = client, net
        self.workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        self.bounds = shard_bounds(stream.batch_size, len(self.workers))
        self.shard = client.scatter(Shard(net, stream, None), broadcast=True, hash=False)

    def __call__(self, params: dict, i: int) -> tuple[float, dict]:
        host = {k: xpnn.to_numpy(v) for k, v in params.items()}
        futures = [
            self.client.submit(_shard_grads, self.shard, host, i, lo, hi, workers=[w], pure=False)
            for w, (lo, hi) in zip(self.workers, self.bounds, strict=True)
        ]
        results = self.client.gather(futures)
        weights = [(hi - lo) / self.bounds[-1][1] for lo, hi in self.bounds]
        loss = math.fsum(w * r[0] for w, r in zip(weights, results, strict=True))
        grads = {
            k: sum(w * self.net.asarray(r[1][k]) for w, r in zip(weights, results, strict=True))
            for k in results[0][1]
        }
        return loss, grads

    def close(self) -> None:
        self.client.cancel([self.shard])


def _shard_grads(shard: Any, params: dict, i: int, lo: int, hi: int) -> tuple[float, dict]:
    return shard.grads(params, i, lo, hi)


def _parallel(
    kind: str, batch: int, iters: int, client: Any, stack: contextlib.ExitStack, tasks: bool
) -> Run:
    """Seconds a step on ``client``'s workers: ``Gradients`` (or, ``tasks``, one
    ``client.submit`` task a shard) and the update on the client; the source is opened
    here, and closed with ``stack``."""
    net, stream = _problem(kind, batch)
    source = _Tasks(client, net, stream) if tasks else Gradients(client, net, stream, None)
    stack.callback(source.close)
    optimizer = xpnn.SGD(0.1)
    update = make_update(optimizer, None, net.xp)
    params, state = net.params, optimizer.init(net.params)
    i = 0

    def step() -> None:
        nonlocal params, state, i
        _loss, grads = source(params, i)
        params, state = update(params, state, grads)
        i += 1

    step()  # opens the sessions, builds the workers' models

    def run() -> tuple[float, float]:
        began, cpu = time.perf_counter(), time.process_time()
        for _ in range(iters):
            step()
        return (time.perf_counter() - began) / iters, (time.process_time() - cpu) / iters

    return run


def _interleaved(cases: dict[str, Run], repeats: int) -> dict[str, tuple]:
    """Median wall and CPU seconds of each case over ``repeats`` round-robin rounds, with
    the load average at its last run."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    loads: dict[str, str] = {}
    for _ in range(repeats):
        for name, run in cases.items():
            samples[name].append(run())
            loads[name] = _load()
    return {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s), loads[name])
        for name, s in samples.items()
    }


def _table(title: str, result: dict[str, tuple], base: str | None) -> None:
    """``result``'s ms a step, each one's speed-up over ``base``'s, and the CPU ms a step
    of this process (the client, and a local cluster's scheduler)."""
    print(f"\n{title}")
    reference = result[base][0] if base else None
    for name, (seconds, cpu, load) in result.items():
        ratio = f"  {reference / seconds:5.2f}x" if reference else ""
        print(
            f"  {name:28s} {1000 * seconds:9.2f} ms{ratio}  "
            f"(client CPU {1000 * cpu:7.2f} ms; {load})"
        )


def _idle_cpu_rate(seconds: float = 0.5) -> float:
    """CPU seconds this process spends a wall second while nothing is asked of it."""
    began, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - began)


def _client_cpu(source: Gradients, start: int, iters: int) -> tuple[float, float]:
    """Wall seconds and the client's CPU seconds (less its idle rate) a step of
    ``source``, ``iters`` steps from iteration ``start``."""
    idle = _idle_cpu_rate()
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(iters):
        source(source.model.params, start + i)
    wall = time.perf_counter() - began
    return wall / iters, (time.process_time() - cpu - idle * wall) / iters


def _fanout(counts: list[int], iters: int, repeats: int) -> None:
    """The client's CPU time a step with each number of workers in ``counts`` (a cluster
    of its own each, one at a time; one row a worker), less the idle rate, and the
    least-squares slope: the client's CPU for each more worker."""
    print("\nfan-out: a step of one row a worker (MLP 2-32-1), the client's CPU less its idle rate")
    client_ms: dict[int, float] = {}
    for n in counts:
        with cluster.connect(workers=n) as client:
            net, stream = _problem("mlp", n)
            source = Gradients(client, net, stream, None)
            try:
                source(net.params, 0)  # builds the workers' models
                runs = [_client_cpu(source, 1 + r * iters, iters) for r in range(repeats)]
            finally:
                source.close()
        client_ms[n] = 1000 * statistics.median(c for _, c in runs)
        print(
            f"  {n:3d} worker{'s' * (n > 1)}: {1000 * statistics.median(w for w, _ in runs):7.2f} "
            f"ms a step, client CPU {client_ms[n]:6.3f} ms ({_load()})"
        )
    if len(client_ms) > 1:
        xs, ys = list(client_ms), list(client_ms.values())
        mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mean_x) ** 2 for x in xs
        )
        print(
            f"  the client's CPU a step: {mean_y - slope * mean_x:.3f} ms + {slope:.3f} ms a worker"
        )


@contextlib.contextmanager
def _pseudo_hosts(workers: list[str], hosts: int) -> Iterator[None]:
    """``workers`` (in order) on ``hosts`` pseudo-hosts of consecutive workers, as
    ``gradients.host_of`` sees them, inside the block."""
    named = {w: f"host-{k * hosts // len(workers)}" for k, w in enumerate(workers)}
    real = gradients.host_of
    gradients.host_of = lambda address: named.get(address, address)
    try:
        yield
    finally:
        gradients.host_of = real


def _grouped_fanout(n: int, splits: list[int], iters: int, repeats: int) -> None:
    """The client's CPU time a step (less the idle rate) on ``n`` workers asked directly
    (one host) and split into each number of pseudo-hosts in ``splits`` (one leader
    each), one row a worker, one cluster, the cases interleaved."""
    print(
        f"\nfan-out with groups: {n} workers, one row a worker (MLP 2-32-1), asked directly or "
        "through one leader a pseudo-host; the client's CPU less its idle rate"
    )
    with cluster.connect(workers=n) as client, contextlib.ExitStack() as stack:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        sources: dict[str, Gradients] = {}
        for hosts in [1, *splits]:
            net, stream = _problem("mlp", n)
            with _pseudo_hosts(workers, hosts):
                source = Gradients(client, net, stream, None)
            stack.callback(source.close)
            source(net.params, 0)  # builds the workers' models
            name = "1 host, direct" if hosts == 1 else f"{hosts} pseudo-hosts of ~{n // hosts}"
            sources[name] = source
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
        loads: dict[str, str] = {}
        for r in range(repeats):
            for name, source in sources.items():
                runs[name].append(_client_cpu(source, 1 + r * iters, iters))
                loads[name] = _load()
        direct = statistics.median(c for _, c in runs["1 host, direct"])
        for name, samples in runs.items():
            cpu = statistics.median(c for _, c in samples)
            print(
                f"  {name:24s} {1000 * statistics.median(w for w, _ in samples):7.2f} ms a step, "
                f"client CPU {1000 * cpu:6.3f} ms, {cpu / direct:4.2f} of direct ({loads[name]})"
            )


def _worker_cpu(shard: Any, params: dict, rows: int, n: int) -> float:
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

    from xpnn.parallel.session import Shard

    mine = {k: v for k, v in cluster.worker_environment(1).items() if k.startswith("MALLOC")}
    labels = {"dask": {"MALLOC_TRIM_THRESHOLD_": "65536"}, "xpnn": mine}
    clients = {}
    print("\nworker settings:")
    with contextlib.ExitStack() as stack:
        for name, environ in labels.items():
            local = stack.enter_context(cluster.local_cluster(1, 1, environ))
            clients[name] = stack.enter_context(Client(local))
            seen = clients[name].run(_malloc_variables)
            print(f"  {name} workers: {', '.join(map(str, seen.values()))}")
        print("\nworker CPU a step, RNN, one worker (CPU time: less hit by load than wall time)")
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
    parser.add_argument(
        "--sections",
        default="overhead,rnn,mlp,wide,threads",
        help=f"comma-separated, of {', '.join(SECTIONS)}",
    )
    parser.add_argument("--all", action="store_true", help="every section")
    parser.add_argument("--rnn", default="65536,262144", help="RNN batch sizes")
    parser.add_argument("--mlp", default="1000000", help="MLP 2-32-1 rows (one full batch)")
    parser.add_argument("--wide", type=int, default=65536, help="wide MLP batch size")
    parser.add_argument("--threads-batch", type=int, default=65536, help="RNN batch, threads")
    parser.add_argument("--threads-per-worker", type=int, default=2, help="K, threads")
    parser.add_argument("--fanout", default="1,2,4,8", help="worker counts, fan-out")
    parser.add_argument(
        "--fanout-hosts", default="2,4", help="pseudo-host counts of the largest fan-out"
    )
    parser.add_argument("--settings", action="store_true", help="also the worker settings")
    parser.add_argument("--iters", type=int, default=10, help="timed steps a run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    sections = set(SECTIONS if args.all else args.sections.split(","))
    if args.settings:
        sections.add("settings")
    if unknown := sections - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    rnn = [int(b) for b in args.rnn.split(",") if b]
    mlp = [int(b) for b in args.mlp.split(",") if b]
    wide, threads, k = args.wide, args.threads_batch, args.threads_per_worker
    overhead_iters = 20 * args.iters
    if args.quick:
        rnn, mlp, wide, threads = [256, 512], [2048], 256, 256
        args.iters, args.repeats, overhead_iters = 3, 2, 20
    print(f"{os.cpu_count()} CPUs, {_load()} at the start")
    with contextlib.ExitStack() as stack:
        clients = {
            (n, t): stack.enter_context(cluster.connect(workers=n, threads_per_worker=t))
            for n, t in dict.fromkeys(((1, 1), (2, 1), (k, 1), (1, k)))
            if (n, t) in ((1, 1), (2, 1)) or "threads" in sections
        }

        def workers(kind: str, batch: int, counts: tuple = ((1, 1), (2, 1))) -> dict:
            return {
                f"{n} worker{'s' * (n > 1)} of {t} thread{'s' * (t > 1)}": _parallel(
                    kind, batch, args.iters, clients[n, t], stack, tasks=False
                )
                for n, t in counts
            }

        if "overhead" in sections:
            cases: dict[str, Run] = {}
            for n in (1, 2):
                cases[f"one process, batch {n}"] = _one_process("mlp", n, overhead_iters, stack)
                for tasks in (False, True):
                    name = f"{n} worker(s), {'tasks' if tasks else 'direct'}"
                    cases[name] = _parallel(
                        "mlp", n, overhead_iters, clients[n, 1], stack, tasks=tasks
                    )
            result = _interleaved(cases, args.repeats)
            _table("per-step overhead: MLP 2-32-1, one row a worker, ms a step", result, None)
            for n in (1, 2):
                direct = result[f"{n} worker(s), direct"][0]
                tasks = result[f"{n} worker(s), tasks"][0]
                print(f"  {n} worker(s): tasks / direct = {tasks / direct:.1f}x ({_load()})")

        def against_one_process(kind: str, batch: int, title: str, **counts: Any) -> None:
            cases = {"one process": _one_process(kind, batch, args.iters, stack)}
            cases |= workers(kind, batch, **counts)
            _table(title, _interleaved(cases, args.repeats), "one process")

        if "rnn" in sections:
            for batch in rnn:
                against_one_process("rnn", batch, f"RNN 2-16-1, binary addition, batch {batch}")
        if "mlp" in sections:
            for rows in mlp:
                against_one_process("mlp", rows, f"MLP 2-32-1, linear, full batch of {rows} rows")
        if "wide" in sections:
            against_one_process("wide", wide, f"MLP 64-256-256-10, softmax, batch {wide}")
        if "threads" in sections:
            title = f"RNN 2-16-1, batch {threads}: threads or workers"
            against_one_process("rnn", threads, title, counts=((k, 1), (1, k)))
    if "fanout" in sections:
        counts = [1, 2] if args.quick else [int(n) for n in args.fanout.split(",") if n]
        _fanout(counts, overhead_iters, args.repeats)
        n, splits = (4, [2]) if args.quick else (max(counts), args.fanout_hosts.split(","))
        _grouped_fanout(n, [int(h) for h in splits if h], overhead_iters, args.repeats)
    if "settings" in sections:
        _settings([256] if args.quick else [8192, 16384], args.iters, args.repeats)


if __name__ == "__main__":
    main()
