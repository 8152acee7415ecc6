"""Timing helpers shared by the benchmarks: thread pinning, interleaved medians, the
machine line.

How a case is timed: it runs once to warm up (JAX compiles, caches fill), its iteration
count is chosen so that one timed run lasts about ``seconds`` (at least one iteration),
and the timed runs of all cases are interleaved round-robin so that the machine's noise
hits all of them alike; a table gives the median. Every timed run ends with a device
sync (a value read back to the host).
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import xpnn
from xpnn.backends import backend_info

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: XLA's CPU flags for one intra-op thread (what ``--threads 1`` sets for JAX)
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def pin_threads(threads: int | None) -> None:
    """Run NumPy's BLAS, OpenMP, torch and (for one thread) XLA on ``threads`` threads;
    None leaves the libraries' defaults.

    BLAS reads its thread count when NumPy is imported, so when the environment does not
    say ``threads`` yet this starts the script again with it set (``os.execv``): call it
    first thing in ``main``, never from a test (use None there).
    """
    if threads is None:
        return
    if os.environ.get("OPENBLAS_NUM_THREADS") != str(threads):
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        if threads == 1:
            os.environ.setdefault("XLA_FLAGS", XLA_ONE_THREAD)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    if backend_info("torch").usable:
        importlib.import_module("torch").set_num_threads(threads)


@dataclass
class Case:
    """One implementation at one batch size, and its timed runs (µs per sequence)."""

    name: str
    batch: int
    run: Callable[[int], None]
    iters: int = 0
    samples: list[float] = field(default_factory=list)

    def time_once(self) -> float:
        began = time.perf_counter()
        self.run(self.iters)
        return time.perf_counter() - began

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def calibrate(case: Case, seconds: float) -> None:
    """Warm up, then pick the iteration count for one timed run of about ``seconds``."""
    case.run(1)  # warm-up: compilation, caches, the first allocations
    iters = 1
    while True:
        case.iters = iters
        elapsed = case.time_once()
        if elapsed >= seconds / 4 or iters >= 1 << 20:
            break
        iters *= 4
    case.iters = max(1, round(iters * seconds / max(elapsed, 1e-9)))


def measure(cases: list[Case], repeats: int, seconds: float) -> None:
    """Calibrate every case, then run ``repeats`` rounds of one timed run per case."""
    for case in cases:
        calibrate(case, seconds)
        print(f"  calibrated {case.name} batch {case.batch}: {case.iters} iterations", flush=True)
    for r in range(repeats):  # round-robin, so that noise is shared
        for case in cases:
            elapsed = case.time_once()
            case.samples.append(elapsed / (case.iters * case.batch) * 1e6)
        print(f"  repeat {r + 1}/{repeats} done", flush=True)


def machine_line(device: str | None) -> str:
    """CPU, cores, library versions, torch's threads, the thread variables and the date
    (UTC), one line."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor() or cpu
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    versions = [f"Python {platform.python_version()}", f"xpnn {xpnn.__version__}"]
    for module in ("numpy", "array_api_compat", "array_api_strict", "torch", "jax", "cupy"):
        try:
            mod = importlib.import_module(module)
        except Exception:  # not installed, or broken: just leave it out
            continue
        versions.append(f"{module} {getattr(mod, '__version__', '?')}")
        if module == "torch":
            versions[-1] += f" ({mod.get_num_threads()} threads)"
            if device and device.startswith("cuda") and mod.cuda.is_available():
                versions.append(f"GPU {mod.cuda.get_device_name(0)}")
    shown = (*THREAD_VARIABLES, "XLA_FLAGS")
    threads = ", ".join(f"{k}={os.environ[k]}" for k in shown if k in os.environ)
    return (
        f"Machine: {cpu}, {cores} cores ({usable} usable), {platform.system()} "
        f"{platform.machine()}; "
        + ", ".join(versions)
        + (f"; {threads}" if threads else "")
        + time.strftime("; %Y-%m-%d %H:%M UTC", time.gmtime())
    )
