"""The backends package: every registered backend implements the protocol, a new one is
one class and one ``register`` call, only ``xpnn/backends/`` imports array libraries, and
the noxfile reads the registry. (The refusals of ``register``: tests/test_errors.py.)"""

from __future__ import annotations

import ast
import importlib.util
import sys
import unittest.mock
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import array_api_compat
import numpy as np
import pytest

import xpnn
from xpnn import backends as B
from xpnn.backends.base import Backend
from xpnn.errors import XpnnValueError

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = {"jax", "torch", "cupy", "dask", "distributed", "array_api_strict"}
DISTRIBUTED = {"dask", "distributed"}
ALLOWED = {
    "xpnn/cli/sweep/tasks.py": DISTRIBUTED,
    "xpnn/parallel/cluster.py": DISTRIBUTED,
    "xpnn/parallel/gradients.py": DISTRIBUTED,
    "xpnn/parallel/session.py": DISTRIBUTED,
}
"""Modules outside ``xpnn/backends/`` allowed to import a library, and which: the sweep
and data-parallel training run their workers on ``dask.distributed`` (a cluster, not an
array backend)."""
OWN_HOOKS = ("namespace", "is_namespace", "is_array")
"""The hooks without a default: every backend implements them."""


def test_every_registered_backend_implements_the_protocol() -> None:
    names = [backend.name for backend in B.registry.backends()]
    assert names == list(B.BACKENDS) and len(set(names)) == len(names)
    for backend in B.registry.backends():
        assert isinstance(backend, Backend)
        assert backend.module and backend.install_hint, backend.name
        assert B.install_hint(backend.name) == backend.install_hint
        for hook in OWN_HOOKS:
            assert getattr(type(backend), hook) is not getattr(Backend, hook), (backend, hook)
        if backend.compiler is not None:
            assert type(backend).compile_step is not Backend.compile_step, backend.name
            assert B.COMPILERS[backend.name] == backend.compiler
        else:
            assert backend.name not in B.COMPILERS


@pytest.mark.jax_covering
def test_a_usable_backend_knows_its_namespace_and_arrays(backend: str) -> None:
    xp = B.get_namespace(backend)
    x = xp.asarray([[1.0, 2.0]], device=B.default_device(xp))
    assert B.backend_name(xp) == backend
    assert B.backend_name(array_api_compat.array_namespace(x)) == backend
    owners = [b.name for b in B.registry.backends() if b.is_array(x)]
    assert owners == [backend]
    host = B.to_numpy(x)
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, [[1.0, 2.0]])


class FakeBackend(Backend):
    """NumPy under another name, whose step "compiles" by wrapping it."""

    name = "fake"
    module = "numpy"
    install_hint = "pip install fake"
    compiler = "fake.jit"

    def namespace(self, module: ModuleType) -> ModuleType:
        return array_api_compat.numpy

    def is_namespace(self, xp: ModuleType) -> bool:
        return False  # its namespace is NumPy's, and stays NumPy's

    def is_array(self, x: object) -> bool:
        return False

    def compile_step(self, fn: Callable, *, device: object) -> Callable:
        def compiled(*args: object) -> object:
            return ("compiled", fn(*args))

        return compiled


class MissingBackend(FakeBackend):
    name = "missing"
    module = "xpnn_test_no_such_library"


@pytest.fixture
def fake() -> Iterator[None]:
    B.register(FakeBackend())
    B.register(MissingBackend())
    try:
        yield
    finally:
        B.unregister("fake")
        B.unregister("missing")


def test_a_registered_backend_is_picked_up_and_unregistered_after(fake: None) -> None:
    assert list(B.BACKENDS)[-2:] == ["fake", "missing"]
    assert "fake" in xpnn.available_backends()
    assert "missing" not in xpnn.available_backends()
    assert xpnn.get_namespace("fake") is array_api_compat.numpy
    info = B.backend_info("missing")
    assert not info.usable
    assert info.reason.startswith("missing is not installed (No module named")
    assert info.reason.endswith("install it with: pip install fake")
    compiler = B.compiler_for("fake", "auto")
    assert compiler == "fake.jit"
    assert B.compile_step(lambda a: a + 1, "fake", compiler)(1) == ("compiled", 2)
    assert B.compile_step(lambda a: a + 1, "fake", None)(1) == 2  # the eager decision


def test_unregister_removes_the_backend_and_its_namespace() -> None:
    B.register(FakeBackend())
    try:
        assert "fake" in B.COMPILERS
        xpnn.get_namespace("fake")
    finally:
        B.unregister("fake")
    assert "fake" not in B.BACKENDS and "fake" not in B.COMPILERS
    assert "fake" not in xpnn.available_backends()
    with pytest.raises(XpnnValueError, match="unknown backend 'fake'"):
        xpnn.get_namespace("fake")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every absolute import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def test_only_the_backends_package_imports_array_libraries() -> None:
    found = []
    for path in sorted((ROOT / "xpnn").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("xpnn/backends/"):
            continue
        allowed = ALLOWED.get(rel, set())
        found += [f"{rel}:{n} imports {m}" for n, m in _imports(path) if m in LIBRARIES - allowed]
    assert found == []


def _noxfile(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The repository's ``noxfile.py``, imported as a module. Its sessions are nox's
    business: a stand-in ``nox`` takes their decorators (the test sessions do not
    install nox, and the real one would register them)."""
    monkeypatch.setitem(sys.modules, "nox", unittest.mock.MagicMock())
    spec = importlib.util.spec_from_file_location("xpnn_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_noxfile_reads_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The noxfile cannot import xpnn before installing it, so it reads
    ``xpnn/backends/`` with ``ast`` (``registered_backends``): the same backends in the
    same order, with each one's extra, ``gpu_only`` and ``lazy``; its ``tests-<backend>``
    sessions are those needing no GPU and not lazy (CuPy has the ``cupy`` and ``gpu``
    sessions, dask the ``distributed`` one)."""
    noxfile = _noxfile(monkeypatch)
    read = noxfile.registered_backends()
    assert [b["name"] for b in read] == list(B.BACKENDS)
    for entry, backend in zip(read, B.registry.backends(), strict=True):
        fields = {key: entry[key] for key in ("extra", "gpu_only", "lazy")}
        want = {"extra": backend.extra, "gpu_only": backend.gpu_only, "lazy": backend.lazy}
        assert fields == want, backend.name
    suite = [b["name"] for b in noxfile.SUITE_BACKENDS]
    assert suite == [b.name for b in B.registry.backends() if not b.gpu_only and not b.lazy]


def test_thread_and_matmul_settings_belong_to_the_backend_that_has_them() -> None:
    assert B.set_cpu_threads("numpy", 1) is None
    assert B.set_cpu_threads("torch", None) is None
    assert B.gpu_float32_matmul("numpy") is None
    if not B.backend_info("torch").usable:
        pytest.skip(f"torch: {B.backend_info('torch').reason}")
    old = B.set_cpu_threads("torch", 1)
    try:
        assert old is not None and old >= 1
        assert B.set_cpu_threads("torch", 2) == 1
    finally:
        B.set_cpu_threads("torch", old)
    assert B.gpu_float32_matmul("torch").startswith("torch cuda float32 matmul: allow_tf32=")
