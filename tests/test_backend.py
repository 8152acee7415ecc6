"""The backend layer: which backends are usable here, device and dtype names, host copies.

The refusals (an unknown or uninstalled backend, CuPy without a GPU, a device a backend
lacks) are tests/test_errors.py's and tests/test_devices.py's."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import backends as B
from xpnn.errors import XpnnTypeError

pytestmark = pytest.mark.jax_covering  # each backend's own names and copies, JAX's too


def test_available_backends_lists_usable_ones():
    names = xpnn.available_backends()
    assert names[0] == "numpy"
    for name in B.BACKENDS:
        assert (name in names) == B.backend_info(name).usable


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
    assert B.resolve_dtype(xp, "float32", dev) == xp.float32
    assert B.resolve_dtype(xp, "float64", dev) == xp.float64


def test_a_jax_array_given_to_a_numpy_model_is_named_jax():
    if not B.backend_info("jax").usable:
        pytest.skip(f"jax: {B.backend_info('jax').reason}")
    x = B.get_namespace("jax").zeros((1, 2))
    net = xpnn.MLP([2, 2], backend="numpy")
    with pytest.raises(XpnnTypeError, match="x is a jax array but the model runs on numpy") as info:
        net.forward(x)
    assert info.value.argument == "x"
    host = xpnn.to_numpy(x)
    assert isinstance(host, np.ndarray) and host.shape == (1, 2)


def test_device_names_are_short(backend):
    xp = xpnn.get_namespace(backend)
    name = B.device_name(B.default_device(xp))
    assert name in {"cpu", "cpu:0", "CPU_DEVICE", "TFRT_CPU_0", "cuda:0"}, name
