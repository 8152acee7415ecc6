"""Backends: the only module that knows the names of array libraries.

It resolves a backend name (``"numpy"``, ``"array_api_strict"``, ``"torch"``, ``"jax"``,
``"cupy"``, ``"dask"``) to its array API namespace, reports which backends can run here and
why the others cannot, resolves device and dtype names, and moves arrays to the host.

Dask arrays are lazy: data is chunked along the batch axis (``chunk_batch``), parameters
stay one small chunk, and the work runs on dask's local threaded scheduler, or on a
``dask.distributed`` client when one is active (``dask_scheduler`` names which).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnn.errors import BackendUnavailable, XpnnTypeError, XpnnValueError, shown

Array = Any
ArrayNamespace = ModuleType

BACKENDS: tuple[str, ...] = ("numpy", "array_api_strict", "torch", "jax", "cupy", "dask")

_MODULES = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "torch": "torch",
    "jax": "jax",
    "cupy": "cupy",
    "dask": "dask.array",
}
_INSTALL_HINTS = {
    "numpy": "pip install numpy",
    "array_api_strict": 'pip install "xpnn[strict]"',
    "torch": 'pip install "xpnn[torch]" (or the CPU build: pip install torch --index-url '
    "https://download.pytorch.org/whl/cpu)",
    "jax": 'pip install "xpnn[jax]"',
    "cupy": 'pip install "xpnn[cuda12]" or "xpnn[cuda13]", on a machine with an NVIDIA GPU',
    "dask": 'pip install "xpnn[dask]"',
}
_NAMESPACES: dict[str, ArrayNamespace] = {}
_IS_NAMESPACE = {
    "numpy": array_api_compat.is_numpy_namespace,
    "array_api_strict": array_api_compat.is_array_api_strict_namespace,
    "torch": array_api_compat.is_torch_namespace,
    "jax": array_api_compat.is_jax_namespace,
    "cupy": array_api_compat.is_cupy_namespace,
    "dask": array_api_compat.is_dask_namespace,
}


@dataclass(frozen=True)
class BackendInfo:
    """What ``xpnn backends`` prints for one backend."""

    name: str
    version: str | None
    usable: bool
    reason: str
    default_device: str | None
    scheduler: str | None = None
    """Where a lazy backend (dask) runs its work; None for the eager ones."""


def install_hint(name: str) -> str:
    """What to run to install backend ``name``."""
    _check_name(name)
    return _INSTALL_HINTS[name]


def _check_name(name: str) -> None:
    if name not in BACKENDS:
        msg = f"unknown backend {shown(name)}; expected one of {', '.join(BACKENDS)}"
        raise XpnnValueError(msg)


def _load_namespace(name: str) -> ArrayNamespace:
    """Import the backend and return its namespace, or raise BackendUnavailable."""
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as exc:
        msg = f"{name} is not installed ({exc}); install it with: {install_hint(name)}"
        raise BackendUnavailable(msg) from None
    if name == "numpy":
        return importlib.import_module("array_api_compat.numpy")
    if name == "array_api_strict":
        return module
    if name == "dask":
        return importlib.import_module("array_api_compat.dask.array")
    if name == "torch":
        return importlib.import_module("array_api_compat.torch")
    if name == "jax":
        # float32 matmuls in full float32, not TF32 on GPUs: the same numbers as elsewhere,
        # unless the user has chosen a precision (JAX_DEFAULT_MATMUL_PRECISION or config)
        if module.config.jax_default_matmul_precision is None:
            module.config.update("jax_default_matmul_precision", "highest")
        return importlib.import_module("jax.numpy")
    # cupy: importable without a GPU, but it cannot allocate there.
    try:
        count = module.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, or no driver library at all
        msg = f"cupy: no CUDA device ({type(exc).__name__}: {exc})"
        raise BackendUnavailable(msg) from None
    if count < 1:
        raise BackendUnavailable("cupy: no CUDA device (the CUDA runtime reports 0 devices)")
    return importlib.import_module("array_api_compat.cupy")


def get_namespace(name: str) -> ArrayNamespace:
    """Return the array API namespace of backend ``name``.

    JAX's settings are process-wide, and xpnn changes two of them for your other JAX code
    too: loading JAX sets ``jax_default_matmul_precision`` to ``"highest"`` (full float32
    matmuls on GPUs, not TF32) unless you have set a precision yourself, and the first
    float64 model turns on ``jax_enable_x64``. JAX float32-only use keeps 32-bit defaults.

    Raises
    ------
    BackendUnavailable
        The backend is not installed or cannot run here; the message says why and what
        to install.
    """
    _check_name(name)
    if name not in _NAMESPACES:
        _NAMESPACES[name] = _load_namespace(name)
    return _NAMESPACES[name]


def backend_info(name: str) -> BackendInfo:
    """Version, usability (with the reason when not usable) and default device of ``name``."""
    _check_name(name)
    try:
        xp = get_namespace(name)
    except BackendUnavailable as exc:
        return BackendInfo(name, None, False, str(exc), None)
    package = importlib.import_module(_MODULES[name].split(".")[0])
    version = getattr(package, "__version__", "?")
    device = default_device(xp)
    scheduler = dask_scheduler() if name == "dask" else None
    return BackendInfo(name, version, True, "", device_name(device), scheduler)


def available_backends() -> list[str]:
    """Names of the backends usable here, in the order of ``BACKENDS``."""
    return [name for name in BACKENDS if backend_info(name).usable]


def backend_name(xp: ArrayNamespace) -> str:
    """The backend name of a namespace (from ``get_namespace`` or ``array_namespace``)."""
    for name, is_namespace in _IS_NAMESPACE.items():
        if is_namespace(xp):
            return name
    return xp.__name__


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
    strict = sys.modules.get("array_api_strict")
    if strict is not None and isinstance(device, strict.Device):
        # the one device class without a public name: its repr is Device('NAME')
        match = re.fullmatch(r"array_api_strict\.Device\('(.+)'\)", repr(device))
        return match.group(1) if match else repr(device)
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(device, cupy.cuda.Device):
        return f"cuda:{device.id}"
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
    name = backend_name(xp)
    if name == "torch" and isinstance(device, (str, type(default_device(xp)))):
        import torch

        try:  # allocating checks that the device exists and gives its index ("cuda" -> cuda:0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolved = torch.empty(0, device=torch.device(device)).device
        except (RuntimeError, AssertionError, ValueError):  # AssertionError: no CUDA build
            pass
        else:
            if resolved.type != "meta":
                return resolved
            msg = "torch's meta device holds shapes but no values; use cpu or cuda"
            raise XpnnValueError(msg)
    with warnings.catch_warnings():  # torch's device probe warns about retired device types
        warnings.simplefilter("ignore")
        known = [d for d in xp.__array_namespace_info__().devices() if d is not None]
    if not isinstance(device, str):
        if name == "cupy" or any(device == candidate for candidate in known):
            return device
        device = repr(device)
    for candidate in known:
        aliases = {device_name(candidate), str(candidate)}
        platform = getattr(candidate, "platform", None)  # JAX: "cpu", "gpu"
        if platform is not None:
            aliases |= {platform, f"{platform}:{candidate.id}"}
        if device_name(candidate).endswith(":0"):  # "cuda" means cuda:0, as in torch
            aliases.add(device_name(candidate)[:-2])
        if device in aliases:
            return candidate
    names = ", ".join(device_name(d) for d in known)
    msg = f"backend {name} has no device {shown(device)}; its devices are: {names}"
    raise XpnnValueError(msg)


def _enable_float64(xp: ArrayNamespace) -> None:
    """JAX computes in float32 unless ``jax_enable_x64`` is on: the first float64 model
    turns it on for the whole process (JAX has no scope that float64 arrays outlive:
    made inside ``jax.enable_x64(True)``, they compute in float32 outside it)."""
    if array_api_compat.is_jax_namespace(xp) and not sys.modules["jax"].config.jax_enable_x64:
        sys.modules["jax"].config.update("jax_enable_x64", True)


def resolve_dtype(xp: ArrayNamespace, dtype: Any, device: Any) -> Any:
    """Turn ``dtype`` (``"float32"``, ``"float64"`` or a dtype of ``xp``) into a real
    floating dtype of ``xp`` that ``device`` supports.

    Raises
    ------
    XpnnTypeError
        ``dtype`` is not a real floating dtype, or the device does not support it.
    """
    if dtype == "float64" or dtype is getattr(xp, "float64", None):
        _enable_float64(xp)
    floating = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    if dtype is None:  # NumPy would read None as float64; say so on every backend instead
        msg = "dtype must be a real floating dtype (float32 or float64), got None"
        raise XpnnTypeError(msg)
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
        raise XpnnTypeError(msg)
    msg = f"dtype must be a real floating dtype (float32 or float64), got {shown(key)}"
    raise XpnnTypeError(msg)


def to_numpy(x: Array) -> np.ndarray:
    """Copy an array of any backend to a ``numpy.ndarray`` on the host (Python numbers
    and nested lists too)."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_array_api_obj(x) and array_api_compat.is_array_api_strict_namespace(
        array_api_compat.array_namespace(x)
    ):
        strict = sys.modules["array_api_strict"]
        return np.asarray(array_api_compat.to_device(x, strict.Device("CPU_DEVICE")))
    return np.asarray(x)  # NumPy scalars, JAX and dask arrays, Python numbers and lists


def gpu_float32_matmul(name: str) -> str | None:
    """How backend ``name`` computes float32 matmuls on a GPU now, as one line for a
    report (TF32 or full float32, and the setting that decides it); None for a backend
    without such a setting, or one not loaded."""
    if name == "cupy":
        return f"cupy: CUPY_TF32={os.environ.get('CUPY_TF32', '0')!r} (1 enables TF32)"
    if name == "torch" and "torch" in sys.modules:
        torch = sys.modules["torch"]
        tf32 = torch.backends.cuda.matmul.allow_tf32
        precision = torch.get_float32_matmul_precision()
        return (
            f"torch cuda float32 matmul: allow_tf32={tf32}, "
            f"float32_matmul_precision={precision!r}"
            + (" (TF32 products)" if tf32 or precision != "highest" else "")
        )
    if name == "jax" and "jax" in sys.modules:
        precision = sys.modules["jax"].config.jax_default_matmul_precision
        if str(precision).lower() in ("highest", "float32"):
            return f"jax gpu float32 matmul precision {precision!r}: full float32"
        return (
            f"jax gpu float32 matmul precision {precision!r}: XLA computes float32 "
            "matmuls in TF32 (10-bit mantissa) on Ampere and later GPUs; "
            "JAX_DEFAULT_MATMUL_PRECISION=highest computes them in full float32"
        )
    return None


def set_cpu_threads(name: str, n: int | None) -> int | None:
    """Set backend ``name``'s intra-op CPU threads to ``n`` where it has such a setting
    (PyTorch, once loaded); return the previous number, or None where nothing changed."""
    torch = sys.modules.get("torch") if name == "torch" else None
    if torch is None or n is None:
        return None
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    return old


def host_rng(seed: int | None) -> np.random.Generator:
    """The host random generator every initialiser and data stream draws from.

    Raises
    ------
    XpnnValueError
        ``seed`` is not a non-negative integer (or a sequence of them, or None).
    """
    if isinstance(seed, (bool, float, str, bytes)):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg)
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        msg = f"seed must be a non-negative integer, got {shown(seed)}"
        raise XpnnValueError(msg) from None


def odd_array(x: Any) -> str | None:
    """Why ``x`` is an array whose meaning a plain array would lose, or None: a
    ``numpy.matrix`` (always 2-D, ``*`` multiplies matrices), a masked array (the mask
    would be dropped), a sparse torch tensor."""
    if isinstance(x, np.matrix):
        return "it is a numpy.matrix; pass numpy.asarray(x)"
    if isinstance(x, np.ma.MaskedArray):
        return "it is a masked array; pass x.filled(value) or x[~x.mask]"
    if type(x).__module__.startswith("torch") and getattr(x, "layout", None) is not None:
        import torch

        if x.layout != torch.strided:
            return f"it is a torch tensor of layout {x.layout}; pass x.to_dense()"
    return None


def check_host_input(x: Any, name: str, target: str) -> Any:
    """``x`` made ready for ``xp.asarray``: host data (nested lists, scalars, NumPy
    arrays) become a NumPy array of real numbers; an array of a backend passes if its
    dtype is real. Refused with ``XpnnTypeError`` naming ``name``: complex numbers (their
    imaginary part would be dropped), strings and ragged lists, ``numpy.matrix`` (always
    2-D, ``*`` multiplies matrices), masked arrays (the mask would be dropped) and sparse
    torch tensors. ``target`` (a backend name) completes the messages."""
    cannot = f"{name} cannot be converted to a {target} array"
    odd = odd_array(x)
    if odd is not None:
        raise XpnnTypeError(f"{cannot}: {odd}")
    if array_api_compat.is_array_api_obj(x) and not isinstance(x, np.ndarray):
        dtype = x.dtype
        real = array_api_compat.array_namespace(x).isdtype(dtype, ("real floating", "integral"))
        if not real and str(dtype) not in ("bool", "torch.bool"):
            msg = f"{cannot}: it has dtype {dtype}; expected real numbers"
            raise XpnnTypeError(msg)
        return x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            host = np.asarray(x)
    except (ValueError, TypeError, OverflowError, RecursionError, Warning) as exc:
        msg = f"{cannot}: not an array of numbers ({type(exc).__name__}: {str(exc)[:80]})"
        raise XpnnTypeError(msg) from None
    if host.dtype.kind not in "biuf":
        what = "complex" if host.dtype.kind == "c" else str(host.dtype)
        msg = f"{cannot}: it holds {what} values; expected real numbers"
        raise XpnnTypeError(msg)
    return host


@contextmanager
def float_errors_ignored() -> Iterator[None]:
    """Silence NumPy's overflow and invalid-value warnings for a training run: a run whose
    numbers stop being finite ends in ``TrainingDiverged``, which says what to try."""
    with np.errstate(all="ignore"):
        yield


# -- compiling a training step ---------------------------------------------------------------

COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")
COMPILERS = {"jax": "jax.jit", "torch": "torch.compile"}
"""The backends that compile a step, and with what."""
AUTO_TORCH_STEPS = 100_000
"""``compile="auto"`` compiles on PyTorch only for runs of at least this many steps: a
``torch.compile`` costs 10-40 s, and saves well under a millisecond a step on a CPU."""


def check_compile(mode: Any) -> str:
    """``mode`` if it is one of ``COMPILE_MODES``, else an XpnnValueError."""
    if not isinstance(mode, str) or mode not in COMPILE_MODES:
        msg = f"compile must be one of {', '.join(COMPILE_MODES)}, got {shown(mode)}"
        raise XpnnValueError(msg)
    return mode


def compiler_for(backend: str, mode: str, *, steps: int | None = None) -> str | None:
    """What compiles a step on ``backend`` under ``mode`` (``"jax.jit"``,
    ``"torch.compile"``), or None for an eager step.

    ``"off"``: None; ``"on"``: the backend's compiler, or an error; ``"auto"``: ``jax.jit``
    on JAX (an RNN's time loop is one ``lax.scan``, see ``xpnn.backends.scan``, so the
    compile time does not grow with the sequence length), ``torch.compile`` on PyTorch when
    ``steps`` (the run's length, if known) is at least ``AUTO_TORCH_STEPS``, None elsewhere.

    Raises
    ------
    XpnnValueError
        ``mode`` is unknown, or ``"on"`` for a backend that does not compile.
    """
    mode = check_compile(mode)
    if mode == "off":
        return None
    if backend not in COMPILERS:
        if mode == "on":
            msg = (
                f"compile 'on' needs a backend that compiles ({', '.join(COMPILERS)}); "
                f"{backend} runs the step eagerly: use 'auto' or 'off'"
            )
            raise XpnnValueError(msg)
        return None
    if mode == "auto" and backend == "torch" and (steps is None or steps < AUTO_TORCH_STEPS):
        return None
    return COMPILERS[backend]


def compile_step(
    fn: Callable,
    backend: str,
    mode: str,
    *,
    device: Any = None,
    steps: int | None = None,
) -> tuple[Callable, bool]:
    """``fn`` compiled for ``backend`` where ``compiler_for`` says so, and whether it was.
    A compiled step is traced once per input shape; a new shape traces it again. On dask
    every mode returns ``fn`` followed by ``persist`` of its outputs: the step boundary."""
    compiler = compiler_for(backend, mode, steps=steps)
    if backend == "dask":  # not compiled, but its step boundary persists (see persist)
        return _persisting(fn), False
    if compiler is None:
        return fn, False
    if compiler == "jax.jit":
        import jax

        return jax.jit(fn), True
    import torch

    # one graph per shape (no dynamic shapes); CUDA graphs on a GPU (not verified here)
    on_gpu = getattr(device, "type", None) == "cuda"
    compiled = torch.compile(
        fn, fullgraph=True, dynamic=False, mode="reduce-overhead" if on_gpu else None
    )
    return compiled, True


def compile_loop(fn: Callable, backend: str, *, rows: int, axis: int, target_axis: int) -> Any:
    """On JAX, ``fn`` (an uncompiled step) run over a span of a chunk's iterations in one
    ``jax.jit`` call: ``loop(params, state, x_all, d_all, lo, hi)`` runs iterations
    ``lo .. hi - 1`` of ``x_all`` and ``d_all`` (the batches of the chunk's iterations
    joined along ``axis`` and ``target_axis``, ``rows`` batch rows each) and returns
    ``params, state, losses``, ``losses[k]`` the loss of iteration ``k`` for ``lo <= k <
    hi``. ``lo`` and ``hi`` are traced, so any span reuses one compile per chunk shape, and
    the steps in between run without a Python dispatch each. None on other backends."""
    if backend != "jax":
        return None
    import jax

    def loop(params: Any, state: Any, x_all: Any, d_all: Any, lo: Any, hi: Any) -> Any:
        def body(k: Any, carry: Any) -> Any:
            params, state, losses = carry
            x = jax.lax.dynamic_slice_in_dim(x_all, k * rows, rows, axis)
            d = jax.lax.dynamic_slice_in_dim(d_all, k * rows, rows, target_axis)
            params, state, loss = fn(params, state, x, d)
            return params, state, losses.at[k].set(loss)

        losses = jax.numpy.zeros(x_all.shape[axis] // rows, dtype=x_all.dtype)
        return jax.lax.fori_loop(lo, hi, body, (params, state, losses))

    return jax.jit(loop)


def iteration_batch(x: Array, axis: int, rows: int, k: int) -> Array:
    """Iteration ``k``'s batch of ``x``, the batches of several iterations of ``rows`` rows
    each joined along ``axis``."""
    return x[(slice(None),) * axis + (slice(k * rows, (k + 1) * rows), ...)]


def split_iterations(x: Array, axis: int, n: int) -> list[Array]:
    """``x``, the batches of ``n`` iterations joined along ``axis``, as a list of ``n``
    arrays: one ``unstack`` rather than ``n`` slices (on JAX each eager slice costs a
    dispatch, more than a compiled step). The pieces are views with a slice's strides, so
    the arithmetic on them rounds as on slices. Dask arrays are sliced (lazily)."""
    size = x.shape[axis] // n
    if is_dask(x):
        return [iteration_batch(x, axis, size, j) for j in range(n)]
    xp = array_api_compat.array_namespace(x)
    parts = xp.reshape(x, (*x.shape[:axis], n, size, *x.shape[axis + 1 :]))
    if axis:
        parts = xp.moveaxis(parts, axis, 0)
    return list(xp.unstack(parts, axis=0))


# -- dask: chunks along the batch axis, the scheduler, the step boundary ------------------------

DASK_CHUNK_ROWS = 16384
"""The most batch rows in one dask chunk by default: a smaller batch is one chunk (dask's
cost per task would outweigh the arithmetic), a larger one splits into equal chunks."""


def is_dask(x: Any) -> bool:
    """Whether ``x`` is a dask array (without importing dask)."""
    return array_api_compat.is_dask_array(x)


def default_chunk_rows(batch: int) -> int:
    """Rows per chunk for a batch of ``batch`` rows: ``batch`` cut into the fewest equal
    pieces of at most ``DASK_CHUNK_ROWS`` (65536 -> 16384, 20000 -> 10000, 100 -> 100)."""
    pieces = -(-batch // DASK_CHUNK_ROWS)
    return -(-batch // pieces)


def chunk_batch(x: Array, axis: int, rows: int | None = None) -> Array:
    """A dask array ``x`` rechunked into ``rows`` rows per chunk along ``axis`` (default
    ``default_chunk_rows``) and one chunk along every other axis; any other array as is.

    Raises
    ------
    XpnnValueError
        ``rows`` is not a positive integer.
    """
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        msg = f"chunks must be a positive integer (rows per chunk), got {shown(rows)}"
        raise XpnnValueError(msg)
    if not is_dask(x) or x.ndim == 0:
        return x
    rows = default_chunk_rows(max(x.shape[axis], 1)) if rows is None else rows
    return x.rechunk({i: (rows if i == axis else -1) for i in range(x.ndim)})


def dask_scheduler() -> str:
    """Where dask work runs now: the active ``dask.distributed`` client's scheduler
    address and worker count, or dask's local threaded scheduler."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # ValueError: no client is active
        return "local threads"
    workers = len(client.scheduler_info().get("workers", {}))
    return f"distributed {client.scheduler.address} ({workers} workers)"


def persist(*trees: Any) -> tuple[Any, ...]:
    """The step boundary: dask arrays in ``trees`` (dicts of arrays, arrays) computed and
    kept in memory on the workers, so the next step's task graph starts from them and does
    not grow with the number of steps. Arrays of other backends are returned as they are."""
    if not any(is_dask(leaf) for tree in trees for leaf in _leaves(tree)):
        return trees
    import dask

    return dask.persist(*trees)


def _leaves(tree: Any) -> list[Any]:
    return list(tree.values()) if isinstance(tree, dict) else [tree]


def _persisting(fn: Callable) -> Callable:
    """``fn`` (a step returning parameters, optimiser state and loss) with its outputs
    persisted: each step's graph starts from concrete arrays on the workers."""

    def step(*args: Any) -> Any:
        return persist(*fn(*args))

    return step


from xpnn.backends.scan import scan as scan  # noqa: E402  (the loop primitive, re-exported)
