"""The backend fixture: every model test runs once per backend named in XPNN_BACKENDS.

``XPNN_BACKENDS`` is a comma list of backend names or ``all`` (the default). A backend
that cannot run here is skipped with the reason, never dropped silently.

Which cases run where (``pytest_collection_modifyitems`` below):

* a test that takes no backend (no ``backend`` or ``xp_device`` fixture) runs once, in
  the session whose ``XPNN_BACKENDS`` names numpy;
* on eager JAX every array operation compiles at its first shape, so a test costs
  seconds there: the default run keeps the tests marked ``oracle`` (math, oracles,
  compiled steps) and those marked ``jax_covering`` (a covering subset of the rest: what
  JAX does its own way, once); its other JAX cases are marked ``slow``;
* ``slow_compile`` (torch.compile) cases are skipped unless ``XPNN_SLOW_COMPILE=1``.
"""

from __future__ import annotations

import os

import pytest
from selection import backends_named, selected_backends

import xpnn
from xpnn.backends import backend_info, default_device

# On dask every tiny test batch is a task graph: the whole model suite takes well over
# 10 minutes there, so it runs when named; tests/test_dask.py and xpnn agree always cover it.
ONLY_WHEN_NAMED = {
    "dask": "runs when named (XPNN_BACKENDS=dask; the suite takes over 10 min on dask), "
    "tests/test_dask.py covers it"
}

MARKERS = {
    "oracle": "checks numbers against an oracle (a gradient check, torch, NumPy float64, "
    "seed 001's printout, a loop written out, the eager step): runs on every backend, "
    "eager JAX included",
    "jax_covering": "one of the covering subset of JAX cases that the default run keeps "
    "beside the oracle tests (the other JAX cases are slow)",
}

EAGER_JAX_SLOW = (
    "eager JAX compiles each operation at its first shape (seconds a test): the default run "
    "keeps the oracle tests and a covering subset (marked jax_covering); this case runs in "
    "nox -s slow"
)

PROBE_INSTALLED = {
    "test_backend.py",
    "test_backends_registry.py",
    "test_devices.py",
    "test_gpu_script.py",
    "test_scale_grid.py",
}
"""Test files whose backend-independent tests look at the backends installed in the session
(each test session installs its own): they run in every session."""


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """A usable backend name; skips with the reason when the backend cannot run here."""
    if request.param in ONLY_WHEN_NAMED and not backends_named():
        pytest.skip(f"{request.param}: {ONLY_WHEN_NAMED[request.param]}")
    info = backend_info(request.param)
    if not info.usable:
        pytest.skip(f"{request.param}: {info.reason}")
    return request.param


@pytest.fixture
def xp_device(backend: str):
    """``(xp, device)`` of the backend under test."""
    xp = xpnn.get_namespace(backend)
    return xp, default_device(xp)


@pytest.fixture
def device() -> str | None:
    """The device every test model is built on: ``XPNN_DEVICE`` (e.g. ``cuda`` for the
    torch GPU run), or None for the backend's default."""
    return os.environ.get("XPNN_DEVICE") or None


def _backend_of(item: pytest.Item) -> str | None:
    """The backend a collected case runs on, or None for a test that takes none."""
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("backend")


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the cases as the module docstring says: the eager-JAX cases outside the
    oracle tests and the covering subset as ``slow``; the ``slow_compile`` ones skipped
    unless ``XPNN_SLOW_COMPILE=1`` (``nox -s compile``); a test that takes no backend
    (the CLI, the sweep file, the docs, the datasets) skipped outside the numpy session."""
    slow_compile = pytest.mark.skip(reason="slow torch.compile case: run with XPNN_SLOW_COMPILE=1")
    once = pytest.mark.skip(
        reason="takes no backend: runs in the session with numpy (XPNN_BACKENDS=numpy)"
    )
    numpy_session = "numpy" in selected_backends()
    for item in items:
        if "slow_compile" in item.keywords and os.environ.get("XPNN_SLOW_COMPILE") != "1":
            item.add_marker(slow_compile)
        if _backend_of(item) == "jax" and not {"oracle", "jax_covering"} & set(item.keywords):
            item.add_marker(pytest.mark.slow(reason=EAGER_JAX_SLOW))
        uses_backend = {"backend", "xp_device"} & set(item.fixturenames)
        if not numpy_session and not uses_backend and item.path.name not in PROBE_INSTALLED:
            item.add_marker(once)
