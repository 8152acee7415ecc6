"""The test matrix. ``nox`` with no arguments runs every CPU session.

* ``tests-numpy``, ``tests-array_api_strict``, ``tests-torch``, ``tests-jax`` (all of them:
  ``nox -t tests``): the whole test suite with ``XPNN_BACKENDS=<backend>``;
* ``cupy``: the suite on CuPy; skips with the reason where there is no CUDA device;
* ``agree``: identical seeded training runs on every usable backend against NumPy;
* ``distributed``: the dask backend and ``xpnn sweep`` on a real two-process LocalCluster
  (127.0.0.1 only; every test stops its cluster);
* ``lint``: ruff;
* ``notebooks``: every ``notebooks/*.ipynb`` executed top to bottom;
* ``gpu`` (not default): suite and agreement with CuPy and CUDA PyTorch on an NVIDIA GPU;
* ``slow`` (not default): the cases marked slow, on every CPU backend;
* ``compile`` (not default): the compiled-step tests with the slow ``torch.compile`` cases;
* ``bench`` (not default): the speed tables of ``benchmarks/``.
"""

from __future__ import annotations

import os
import shutil
import urllib.request

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

# The backends of the tests-<backend> sessions: every backend xpnn registers that needs no
# GPU and is not lazy (cupy: the cupy and gpu sessions; dask: distributed), in its order.
# tests/test_backends_registry.py checks this list against xpnn's registry.
BACKEND_PACKAGES = {
    "numpy": [],
    "array_api_strict": [],  # installed with the test extra
    "torch": [],  # install_torch_cpu
    "jax": ["jax"],
}
# The longest sessions first, so that two at a time finish together.
nox.options.sessions = [
    "tests-jax",
    "agree",
    *(f"tests-{b}" for b in BACKEND_PACKAGES if b != "jax"),
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


def _no_cuda_device() -> str | None:
    """Why CuPy cannot run here, or None when an NVIDIA GPU is visible."""
    if shutil.which("nvidia-smi") is None:
        return "no CUDA device: nvidia-smi is not on this machine"
    return None


def _suite(backend: str) -> None:
    def session_fn(session: nox.Session) -> None:
        if backend == "torch":
            install_torch_cpu(session)
        session.install("-e", ".[test,plot]", *BACKEND_PACKAGES[backend])
        env = {"XPNN_BACKENDS": backend}
        if backend == "jax":
            env |= {"XLA_FLAGS": FAST_XLA_COMPILE, **jax_compile_cache(session)}
        session.run("pytest", *PARALLEL, *DEFAULT_TESTS, *session.posargs, env=env)

    session_fn.__doc__ = f"The whole suite on {backend}; every model test must run, not skip."
    nox.session(name=f"tests-{backend}", tags=["tests"], allow_parallel=True)(session_fn)


for _backend in BACKEND_PACKAGES:
    _suite(_backend)


@nox.session(allow_parallel=True)
def cupy(session: nox.Session) -> None:
    """The suite on CuPy (CUDA 12 wheels); skipped with the reason where no GPU exists."""
    reason = _no_cuda_device()
    if reason:
        session.skip(f"cupy: {reason}")
    if session.venv_backend != "none":
        session.install("-e", ".[test,cuda12]")
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "cupy"})


@nox.session(allow_parallel=True)
def agree(session: nox.Session) -> None:
    """Seeded training runs on numpy, array_api_strict, torch and jax against NumPy."""
    install_torch_cpu(session)
    session.install("-e", ".[strict,dask]", "jax")
    jobs = str(min(os.cpu_count() or 1, 8))  # runs at once, one process each
    session.run("xpnn", "agree", "--jobs", jobs, *session.posargs, env=jax_compile_cache(session))


@nox.session
def distributed(session: nox.Session) -> None:
    """The dask backend, ``xpnn sweep`` and parallel training on real LocalClusters of
    worker processes: sweep rows equal lone runs, a killed worker or sweep loses and
    duplicates nothing, parallel runs equal one process (a killed worker and a resume on
    another number of workers included)."""
    session.install("-e", ".[test,plot,dask]")
    session.run(
        "pytest",
        "tests/test_dask.py",
        "tests/test_sweep.py",
        "tests/test_parallel.py",
        "tests/test_docs.py",  # the docs' dask snippets (the other sessions lack dask)
        *session.posargs,
        env={"XPNN_DISTRIBUTED": "1", "XPNN_BACKENDS": "numpy"},
    )


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """On an NVIDIA GPU: the suite on CuPy and on CUDA PyTorch, ``xpnn agree``, then
    ``benchmarks/gpu.py`` (issue 17's table, written to ``gpu-table.md`` and ``.json``).
    Run it in an environment that already holds CuPy and CUDA PyTorch with
    ``nox -s gpu --no-venv`` (or let it install the cuda12 extra)."""
    reason = _no_cuda_device()
    if reason:
        session.skip(f"gpu: {reason}")
    if session.venv_backend != "none":
        session.install("-e", ".[test,cuda12,torch,jax]")
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "cupy"})
    session.run("pytest", *session.posargs, env={"XPNN_BACKENDS": "torch", "XPNN_DEVICE": "cuda"})
    session.run("xpnn", "agree", "--gpu")
    # the GPU table (about 5 min): gpu-table.md and gpu-table.json, for the README
    session.run("python", "benchmarks/gpu.py", "--out", "gpu-table")


ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The notebooks' matrices are tiny: on the 2-core machine, with another session running
beside, threaded BLAS calls wait on each other (several times slower, not faster)."""


@nox.session(allow_parallel=True)
def notebooks(session: nox.Session) -> None:
    """Every ``notebooks/*.ipynb`` run top to bottom in a fresh kernel of the session's
    Python (``tests/run_notebooks.py``; the ``python3`` kernel of its ipykernel): the
    seconds of each, and the notebook and cell of any error. ``nox -s notebooks --
    notebooks/4_sine_wave.ipynb`` runs one."""
    session.install("-e", ".[plot,strict,notebooks]")  # strict: the second backend they use
    session.run("python", "tests/run_notebooks.py", *session.posargs, env=ONE_BLAS_THREAD)


@nox.session(allow_parallel=True)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def slow(session: nox.Session) -> None:
    """The ``slow`` cases on every CPU backend: all the gradient-check configurations,
    the long training runs."""
    install_torch_cpu(session)
    session.install("-e", ".[test,plot]", "jax")
    env = {
        "XPNN_BACKENDS": ",".join(BACKEND_PACKAGES),
        "XLA_FLAGS": FAST_XLA_COMPILE,
        **jax_compile_cache(session),
    }
    session.run("pytest", *PARALLEL, "-m", "slow", *session.posargs, env=env)


@nox.session(default=False)
def compile(session: nox.Session) -> None:
    """Every compiled-step case, the slow ``torch.compile`` ones included (minutes)."""
    install_torch_cpu(session)
    session.install("-e", ".[test]", "jax")
    env = {"XPNN_BACKENDS": "jax,torch", "XPNN_SLOW_COMPILE": "1"}
    session.run("pytest", "tests/test_compile.py", *session.posargs, env=env)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The benchmark tables (speed is measured here, never asserted in tests)."""
    install_torch_cpu(session)
    session.install("-e", ".[dask]", "jax", "array-api-strict")
    session.run("python", "benchmarks/rnn_binary_addition.py", *session.posargs)
    session.run("python", "benchmarks/train_overhead.py")
    session.run("python", "benchmarks/mlp.py")
    # a corner of the scale grid; the whole grid (about 10 minutes): no options
    grid = ["--batches", "1,64,1024", "--hidden", "16,128", "--lengths", "8"]
    session.run("python", "benchmarks/rnn_scale_grid.py", *grid)
    session.run("python", "benchmarks/dask_backend.py", *session.posargs)
    session.run("python", "benchmarks/sweep.py", *session.posargs)
    session.run("python", "benchmarks/parallel.py", *session.posargs)
    session.run("python", "benchmarks/compile_time.py")
    session.run("python", "benchmarks/cells.py")
    session.run("python", "benchmarks/torch_scan.py")
