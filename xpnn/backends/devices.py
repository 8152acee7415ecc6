"""Devices and dtypes of any backend, and the way back to the host (``to_numpy``)."""

from __future__ import annotations

import warnings
from typing import Any

import array_api_compat
import numpy as np

from xpnn.backends.base import Array, ArrayNamespace
from xpnn.backends.registry import backend_name, backend_of, overriding
from xpnn.errors import XpnnTypeError, XpnnValueError, shown


def namespace_of(*arrays: Array) -> ArrayNamespace:
    """The common namespace of ``arrays``; a clear error for non-arrays or mixed backends."""
    try:
        return array_api_compat.array_namespace(*arrays)
    except TypeError as exc:
        kinds = ", ".join(sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays}))
        msg = f"expected arrays of one array API backend, got {kinds} ({exc})"
        raise XpnnTypeError(msg) from None


def default_device(xp: ArrayNamespace) -> Any:
    """The device a backend puts new arrays on."""
    return xp.__array_namespace_info__().default_device() or device_of(xp.empty(0))


def device_of(x: Array) -> Any:
    """The device an array lives on."""
    return array_api_compat.device(x)


def device_name(device: Any) -> str:
    """A short printable name: ``cpu``, ``cuda:0``, ``device1``, ``cpu:0`` (JAX)."""
    for backend in overriding("device_name"):
        name = backend.device_name(device)
        if name is not None:
            return name
    return str(device)  # torch.device: cpu, cuda:0; JAX: cpu:0, cuda:0


def resolve_device(xp: ArrayNamespace, device: Any) -> Any:
    """Turn ``device`` (None, a name like ``"cpu"``/``"cuda:0"``/``"device1"``, or a device
    object of the backend) into a device object of ``xp``.

    Raises
    ------
    XpnnValueError
        The backend has no such device; the message lists the ones it has.
    """
    if device is None:
        return default_device(xp)
    backend = backend_of(xp)
    found = backend.find_device(xp, device)
    if found is not None:
        return found
    with warnings.catch_warnings():  # torch's device probe warns about retired device types
        warnings.simplefilter("ignore")
        known = [d for d in xp.__array_namespace_info__().devices() if d is not None]
    if not isinstance(device, str):
        if any(device == candidate for candidate in known):
            return device
        device = repr(device)
    for candidate in known:
        aliases = {device_name(candidate), str(candidate)} | backend.device_aliases(candidate)
        if device_name(candidate).endswith(":0"):  # "cuda" means cuda:0, as in torch
            aliases.add(device_name(candidate)[:-2])
        if device in aliases:
            return candidate
    names = ", ".join(device_name(d) for d in known)
    msg = f"backend {backend_name(xp)} has no device {shown(device)}; its devices are: {names}"
    raise XpnnValueError(msg, argument="device")


def resolve_dtype(xp: ArrayNamespace, dtype: Any, device: Any) -> Any:
    """Turn ``dtype`` (``"float32"``, ``"float64"`` or a dtype of ``xp``) into a real
    floating dtype of ``xp`` that ``device`` supports.

    Raises
    ------
    XpnnTypeError
        ``dtype`` is not a real floating dtype, or the device does not support it.
    """
    if dtype == "float64" or dtype is getattr(xp, "float64", None):
        backend_of(xp).enable_float64()
    floating = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    if dtype is None:  # NumPy would read None as float64; say so on every backend instead
        msg = "dtype must be a real floating dtype (float32 or float64), got None"
        raise XpnnTypeError(msg, argument="dtype")
    if isinstance(dtype, str):
        key = dtype
    else:
        key = next((k for k, v in floating.items() if v == dtype), str(dtype))
    if key in floating:
        return floating[key]
    if key in ("float32", "float64"):
        msg = (
            f"device {device_name(device)!r} of backend {backend_name(xp)} does not support "
            f"{key}; its floating dtypes are: {', '.join(floating)}"
        )
        raise XpnnTypeError(msg, argument="dtype")
    msg = f"dtype must be a real floating dtype (float32 or float64), got {shown(key)}"
    raise XpnnTypeError(msg, argument="dtype")


def read_only(x: Array) -> Array:
    """``x``, or a view of it that refuses writes where its library has one (NumPy)."""
    for backend in overriding("read_only"):
        if backend.is_array(x):
            return backend.read_only(x)
    return x


def to_numpy(x: Array) -> np.ndarray:
    """Copy an array of any backend to a ``numpy.ndarray`` on the host (Python numbers
    and nested lists too)."""
    if isinstance(x, np.ndarray):
        return x
    for backend in overriding("to_numpy"):
        if backend.is_array(x):
            return backend.to_numpy(x)
    return np.asarray(x)  # NumPy scalars, JAX and dask arrays, Python numbers and lists
