"""The backend layer: names, availability with reasons, devices, dtypes, host copies."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import xpnn
from xpnn import backends as B
from xpnn.errors import BackendUnavailable, XpnnTypeError, XpnnValueError


def test_available_backends_lists_usable_ones():
    names = xpnn.available_backends()
    assert names[0] == "numpy"
    for name in B.BACKENDS:
        assert (name in names) == B.backend_info(name).usable


def test_unknown_backend_is_named():
    with pytest.raises(XpnnValueError, match=r"unknown backend 'mxnet'.*numpy"):
        xpnn.get_namespace("mxnet")


def test_unusable_backend_says_why(monkeypatch):
    real_import = importlib.import_module

    def fake_import(name, *args):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    monkeypatch.setattr(B.registry, "_NAMESPACES", {})
    with pytest.raises(BackendUnavailable, match=r"torch is not installed.*xpnn\[torch\]"):
        xpnn.get_namespace("torch")
    info = B.backend_info("torch")
    assert not info.usable and "pip install" in info.reason
    with pytest.raises(BackendUnavailable, match="torch is not installed"):
        xpnn.MLP([2, 2], backend="torch")


def test_cupy_without_a_gpu_is_unavailable_with_the_reason():
    info = B.backend_info("cupy")
    if info.usable:
        pytest.skip("cupy: a CUDA device is present here")
    assert "cupy" in info.reason and (
        "no CUDA device" in info.reason or "not installed" in info.reason
    )


def test_to_numpy_round_trip(backend, device):
    net = xpnn.MLP([2, 2], backend=backend, device=device)
    host = np.arange(6.0).reshape(2, 3)
    back = xpnn.to_numpy(net.asarray(host))
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)


def test_device_and_dtype_resolution(backend):
    xp = xpnn.get_namespace(backend)
    dev = B.default_device(xp)
    assert B.resolve_device(xp, None) == dev
    assert B.resolve_device(xp, B.device_name(dev)) == dev
    assert B.resolve_device(xp, B.device_name(dev).removesuffix(":0")) == dev  # cuda = cuda:0
    with pytest.raises(XpnnValueError, match="has no device 'quantum7'"):
        B.resolve_device(xp, "quantum7")
    assert B.resolve_dtype(xp, "float32", dev) == xp.float32
    with pytest.raises(XpnnTypeError, match=r"real floating dtype.*'int32'"):
        B.resolve_dtype(xp, "int32", dev)


def test_backend_name_of_namespaces_not_loaded_by_xpnn(monkeypatch):
    """A namespace from ``array_namespace`` names its library, even when xpnn never
    loaded it (``jax.numpy`` is JAX, not NumPy)."""
    monkeypatch.setattr(B.registry, "_NAMESPACES", {})
    import array_api_compat

    assert B.backend_name(array_api_compat.array_namespace(np.zeros(1))) == "numpy"
    for name in ("array_api_strict", "torch", "jax", "dask"):
        info = B.backend_info(name)  # loads it (when installed) through xpnn ...
        if not info.usable:
            continue
        monkeypatch.setattr(B.registry, "_NAMESPACES", {})  # ... then forget that it did
        x = B.get_namespace(name).zeros(1)
        monkeypatch.setattr(B.registry, "_NAMESPACES", {})
        assert B.backend_name(array_api_compat.array_namespace(x)) == name


def test_a_jax_array_given_to_a_numpy_model_is_named_jax(monkeypatch):
    if not B.backend_info("jax").usable:
        pytest.skip(f"jax: {B.backend_info('jax').reason}")
    x = B.get_namespace("jax").zeros((1, 2))
    monkeypatch.setattr(B.registry, "_NAMESPACES", {})
    net = xpnn.MLP([2, 2], backend="numpy")
    with pytest.raises(XpnnTypeError, match="x is a jax array but the model runs on numpy"):
        net.forward(x)
    host = xpnn.to_numpy(x)
    assert isinstance(host, np.ndarray) and host.shape == (1, 2)


def test_device_names_are_short(backend):
    xp = xpnn.get_namespace(backend)
    name = B.device_name(B.default_device(xp))
    assert name in {"cpu", "cpu:0", "CPU_DEVICE", "TFRT_CPU_0", "cuda:0"}, name
