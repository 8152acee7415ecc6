"""Backends: the only package that knows the names of array libraries.

It resolves a backend name (``"numpy"``, ``"array_api_strict"``, ``"torch"``, ``"jax"``,
``"cupy"``, ``"dask"``) to its array API namespace, reports which backends can run here and
why the others cannot, resolves device and dtype names, moves arrays to the host, and
compiles training steps where a backend can.

One module per library (``numpy_backend.py``, ``torch_backend.py``, ...) implements the
``Backend`` protocol of ``base.py``; ``registry.py`` lists them, so adding a backend is one
file and one registry line. ``devices.py``, ``compiling.py`` and ``info.py`` hold the
public functions, which ask the backends and never name one.
"""

from xpnn.backends.base import Array, ArrayNamespace, Backend
from xpnn.backends.compiling import (
    COMPILE_MODES,
    compile_loop,
    compile_step,
    compiler_for,
    iteration_batch,
    persist,
    split_iterations,
)
from xpnn.backends.dask_backend import (
    DASK_CHUNK_ROWS,
    chunk_batch,
    dask_scheduler,
    default_chunk_rows,
    is_dask,
)
from xpnn.backends.devices import (
    default_device,
    device_name,
    device_of,
    namespace_of,
    read_only,
    resolve_device,
    resolve_dtype,
    to_numpy,
)
from xpnn.backends.host import check_host_input, float_errors_ignored, host_rng, odd_array
from xpnn.backends.info import BackendInfo, available_backends, backend_info
from xpnn.backends.registry import (
    BACKENDS,
    COMPILERS,
    backend_name,
    backend_odd_array,
    get_backend,
    get_namespace,
    gpu_float32_matmul,
    install_hint,
    register,
    set_cpu_threads,
    unregister,
)
from xpnn.backends.torch_backend import AUTO_TORCH_STEPS

__all__ = [
    "AUTO_TORCH_STEPS",
    "BACKENDS",
    "COMPILERS",
    "COMPILE_MODES",
    "DASK_CHUNK_ROWS",
    "Array",
    "ArrayNamespace",
    "Backend",
    "BackendInfo",
    "available_backends",
    "backend_info",
    "backend_name",
    "backend_odd_array",
    "check_host_input",
    "chunk_batch",
    "compile_loop",
    "compile_step",
    "compiler_for",
    "dask_scheduler",
    "default_chunk_rows",
    "default_device",
    "device_name",
    "device_of",
    "float_errors_ignored",
    "get_backend",
    "get_namespace",
    "gpu_float32_matmul",
    "host_rng",
    "install_hint",
    "is_dask",
    "iteration_batch",
    "namespace_of",
    "odd_array",
    "persist",
    "read_only",
    "register",
    "resolve_device",
    "resolve_dtype",
    "set_cpu_threads",
    "split_iterations",
    "to_numpy",
    "unregister",
]
