"""The test matrix. ``nox`` with no arguments runs every default session, two at a time.

* ``tests-<backend>`` (all of them: ``nox -t tests``): the suite with
  ``XPNN_BACKENDS=<backend>``, one session for every backend xpnn registers that needs no
  GPU and is not lazy (``registered_backends``: read from ``xpnn/backends/``);
* ``agree``: seeded training runs on every usable backend against NumPy, a covering set
  (every backend, both dtypes, every run at least once); ``agree-full``: every row;
* ``distributed``: the dask backend, ``xpnn sweep`` and parallel training on real
  LocalClusters (127.0.0.1 only; every test stops its cluster);
* ``notebooks``: every ``notebooks/*.ipynb`` executed top to bottom;
* ``cupy``: the suite on CuPy; skips with the reason where there is no CUDA device;
* ``lint``: ruff;
* not by default: ``gpu`` (CuPy and CUDA PyTorch on an NVIDIA GPU, and ``benchmarks/gpu.py``),
  ``slow`` (the cases marked slow, on every CPU backend), ``compile`` (the slow
  ``torch.compile`` cases), ``bench`` (the speed tables of ``benchmarks/``).
"""

from __future__ import annotations

import ast
import os
import shutil
import urllib.request
from pathlib import Path

import nox

nox.needs_version = ">=2026.10.20"  # --parallel and allow_parallel
nox.options.error_on_missing_interpreters = False
# Two sessions at a time (one per core of a 2-core machine): while one installs its
# packages (one core) or waits on its slowest test, the other computes.
nox.options.parallel = "auto"

# PyTorch's CPU build. On Linux, PyPI's torch wheel is the CUDA build (several GB of
# CUDA libraries): the CPU build comes from PyTorch's own index.
TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BACKENDS_FOLDER = Path(__file__).parent / "xpnn" / "backends"


def registered_backends() -> list[dict[str, object]]:
    """The backends ``xpnn/backends/registry.py`` registers (its ``_BUILTIN``), in its
    order, each as the class attributes its module declares: ``name``, ``extra`` (the
    pip extra that installs it), ``gpu_only`` and ``lazy``. Read with ``ast``, so that
    nox needs nothing of xpnn installed; a backend is one file and one registry line."""
    registry = ast.parse((BACKENDS_FOLDER / "registry.py").read_text())
    modules = {
        alias.name: node.module
        for node in registry.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    builtin = next(
        node.value
        for node in registry.body
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_BUILTIN"
    )
    found = []
    for call in builtin.elts:
        cls = call.func.id
        source = BACKENDS_FOLDER / f"{modules[cls].rsplit('.', 1)[-1]}.py"
        body = next(
            node.body
            for node in ast.parse(source.read_text()).body
            if isinstance(node, ast.ClassDef) and node.name == cls
        )
        attributes = {"extra": None, "gpu_only": False, "lazy": False}
        for node in body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        attributes[target.id] = node.value.value
        found.append(attributes)
    return found


SUITE_BACKENDS = [b for b in registered_backends() if not b["gpu_only"] and not b["lazy"]]
"""The ``tests-<backend>`` sessions' backends: every one that needs no GPU (CuPy: the
cupy and gpu sessions) and is not lazy (dask: the distributed session)."""

# The longest sessions first, so that two at a time finish together.
nox.options.sessions = [
    "tests-jax",
    "agree",
    *(f"tests-{b['name']}" for b in SUITE_BACKENDS if b["name"] != "jax"),
    "distributed",
    "notebooks",
    "cupy",
    "lint",
]

FAST_XLA_COMPILE = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
"""XLA flags for the JAX test sessions: eager JAX compiles every operation at its first
shape, and a test suite is mostly first shapes; these flags make a compile about twice
as fast on the CPU (numbers within the tests' tolerances; ``agree`` keeps JAX's defaults,
so its rows are what a user's run computes)."""

ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Tiny matrices, and another session beside: threaded BLAS calls wait on each other
(several times slower, not faster) on the 2-core machine."""


def jax_compile_cache(session: nox.Session) -> dict[str, str]:
    """The environment of JAX's persistent compilation cache in a folder of this session's
    own (fresh on every run: nox recreates the session's environment, ``tmp`` in it).

    Every computation is cached, however quick its compile or small its executable: eager
    JAX compiles each operation at its first shape, in each process, and the test workers
    and agreement runs meet the same shapes. A cached executable is the program a compile
    makes, so the numbers are the same.
    """
    return {
        "JAX_COMPILATION_CACHE_DIR": os.path.join(session.create_tmp(), "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",  # -1: no size limit
    }


PARALLEL = ("-n", "auto")
"""pytest-xdist: one test process per CPU core (``nox -s tests-numpy -- -n 0`` runs one)."""
DEFAULT_TESTS = ("-m", "not slow")
"""The default sessions leave the ``slow`` cases (the rest of the gradient-check matrices
beyond their covering subsets, long training runs) to ``nox -s slow``."""


def install_torch_cpu(session: nox.Session) -> None:
    """Install PyTorch's CPU build from its CPU index when that index answers within 10 s.

    Where it does not (no internet, only a PyPI mirror), install the pinned ``TORCH`` from
    the configured indexes instead, and say so: that is the CPU build only where a CPU
    wheel is available locally (pip's find-links or a local index); from PyPI alone on
    Linux it is the CUDA build.
    """
    try:
        urllib.request.urlopen(f"{TORCH_CPU_INDEX}/torch/", timeout=10).close()
    except OSError as exc:
        session.warn(
            f"the PyTorch CPU index {TORCH_CPU_INDEX} is unreachable ({exc}); installing "
            f"{TORCH} from the configured indexes: the CPU build only if one is available "
            "locally, otherwise (plain PyPI on Linux) the CUDA build, several GB"
        )
        session.install(TORCH)
        return
    session.install(TORCH, "--index-url", TORCH_CPU_INDEX)


def install(session: nox.Session, extras: list[str], backends: list[str] = ()) -> None:
    """xpnn, editable, with ``extras`` and the extras of ``backends`` (PyTorch's CPU
    build for torch)."""
    extra_of = {b["name"]: b["extra"] for b in registered_backends()}
    if "torch" in backends:
        install_torch_cpu(session)
    wanted = extras + [extra_of[b] for b in backends if extra_of[b] and b != "torch"]
    session.install("-e", f".[{','.join(dict.fromkeys(wanted))}]")


def _no_cuda_device() -> str | None:
    """Why CuPy cannot run here, or None when an NVIDIA GPU is visible."""
    if shutil.which("nvidia-smi") is None:
        return "no CUDA device: nvidia-smi is not on this machine"
    return None


def _suite(backend: str) -> None:
    def session_fn(session: nox.Session) -> None:
        install(session, ["test", "plot"], [backend])
        env = {"XPNN_BACKENDS": backend}
        if backend == "jax":
            env |= {"XLA_FLAGS": FAST_XLA_COMPILE, **jax_compile_cache(session)}
        session.run("pytest", *PARALLEL, *DEFAULT_TESTS, *session.posargs, env=env)

    session_fn.__doc__ = f"The suite on {backend}; every model test must run, not skip."
    nox.session(name=f"tests-{backend}", tags=["tests"], allow_parallel=True)(session_fn)


for _backend in SUITE_BACKENDS:
    _suite(str(_backend["name"]))


@nox.session(allow_parallel=True)
def cupy(session: nox.Session) -> None:
    """The suite on CuPy (CUDA 12 wheels); skipped with the reason where no GPU exists."""
    reason = _no_cuda_device()
    if reason:
        session.skip(f"cupy: {reason}")
    if session.venv_backend != "none":
        install(session, ["test"], ["cupy"])
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "cupy"})


def _agree(session: nox.Session, *flags: str) -> None:
    install(session, [], [b["name"] for b in registered_backends() if not b["gpu_only"]])
    jobs = str(min(os.cpu_count() or 1, 8))  # runs at once, one process each
    env = {**jax_compile_cache(session), **ONE_BLAS_THREAD}
    session.run("xpnn", "agree", "--jobs", jobs, *flags, *session.posargs, env=env)


@nox.session(allow_parallel=True)
def agree(session: nox.Session) -> None:
    """Seeded training runs against NumPy: a covering set of rows (every usable backend
    in both dtypes, every run at least once, the compiled JAX step beside its eager one)."""
    _agree(session)


@nox.session(name="agree-full", default=False)
def agree_full(session: nox.Session) -> None:
    """Every seeded training run on every usable backend in both dtypes (``--full``)."""
    _agree(session, "--full")


@nox.session
def distributed(session: nox.Session) -> None:
    """The dask backend, ``xpnn sweep`` and parallel training on real LocalClusters of
    worker processes: sweep rows equal lone runs, a killed worker or sweep loses and
    duplicates nothing, parallel runs equal one process (a killed worker and a resume on
    another number of workers included), and the docs' dask examples."""
    install(session, ["test", "plot"], ["dask"])
    session.run(
        "pytest",
        *DEFAULT_TESTS,
        "tests/test_dask.py",
        "tests/test_sweep.py",
        "tests/test_sweep_file.py",
        "tests/test_parallel.py",
        "tests/test_docs.py",
        "tests/test_errors.py",  # the refusals of a closed client and of a small batch
        *session.posargs,
        env={"XPNN_DISTRIBUTED": "1", "XPNN_BACKENDS": "numpy"},
    )


@nox.session(allow_parallel=True)
def notebooks(session: nox.Session) -> None:
    """Every ``notebooks/*.ipynb`` run top to bottom in a fresh kernel of the session's
    Python (``tests/run_notebooks.py``; the ``python3`` kernel of its ipykernel): the
    seconds of each, and the notebook and cell of any error. ``nox -s notebooks --
    notebooks/4_sine_wave.ipynb`` runs one."""
    install(session, ["plot", "notebooks"], ["array_api_strict"])  # their second backend
    session.run("python", "tests/run_notebooks.py", *session.posargs, env=ONE_BLAS_THREAD)


@nox.session(allow_parallel=True)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff==0.17.6")  # a newer ruff may format or lint differently
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """On an NVIDIA GPU: the suite on CuPy and on CUDA PyTorch, ``xpnn agree --gpu``, then
    ``benchmarks/gpu.py`` (its table, written to ``gpu-table.md`` and ``.json``). Run it in
    an environment that already holds CuPy and CUDA PyTorch with ``nox -s gpu --no-venv``
    (or let it install the cuda12 extra)."""
    reason = _no_cuda_device()
    if reason:
        session.skip(f"gpu: {reason}")
    if session.venv_backend != "none":
        session.install("-e", ".[test,cuda12,torch,jax]")
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "cupy"})
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "torch", "XPNN_DEVICE": "cuda"})
    session.run("xpnn", "agree", "--gpu")
    session.run("python", "benchmarks/gpu.py", "--out", "gpu-table")


@nox.session(default=False)
def slow(session: nox.Session) -> None:
    """The ``slow`` cases on every CPU backend: all the gradient-check configurations,
    the long training runs."""
    backends = [str(b["name"]) for b in SUITE_BACKENDS]
    install(session, ["test", "plot"], [*backends, "dask"])
    env = {
        "XPNN_BACKENDS": ",".join(backends),
        "XPNN_DISTRIBUTED": "1",  # the slow cluster cases too
        "XLA_FLAGS": FAST_XLA_COMPILE,
        **jax_compile_cache(session),
    }
    session.run("pytest", *PARALLEL, "-m", "slow", *session.posargs, env=env)


@nox.session(default=False)
def compile(session: nox.Session) -> None:
    """Every compiled-step case, the slow ``torch.compile`` ones included (minutes)."""
    install(session, ["test"], ["torch", "jax"])
    env = {"XPNN_BACKENDS": "jax,torch", "XPNN_SLOW_COMPILE": "1"}
    session.run("pytest", "tests/test_compile.py", *session.posargs, env=env)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark tables (speed is measured here, never asserted in tests)."""
    install(session, [], ["torch", "jax", "dask", "array_api_strict"])
    for script in (
        "rnn_binary_addition.py",
        "mlp.py",
        "cells.py",
        "parallel.py",
        "sweep.py",
        "compile_time.py",
    ):
        session.run("python", f"benchmarks/{script}", *session.posargs)
