"""The protocol every backend implements.

A backend is one class in ``xpnn/backends/<name>_backend.py`` and one line in
``registry.py``. The defaults below are those of an eager library with nothing to compile
and nothing to persist; a backend overrides only the hooks where it differs. The public
functions of ``xpnn.backends`` (``get_namespace``, ``resolve_device``, ``to_numpy``,
``compile_step``, ...) call these hooks and never name a library.

``scan`` is the model code's one loop primitive over time steps, in the shape of
``jax.lax.scan`` and ``keras.ops.scan``; the default is a plain Python loop, and a backend
that traces (JAX) runs its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from xpnn.errors import BackendUnavailable

Array = Any
ArrayNamespace = ModuleType
Tree = Any
"""What ``scan`` carries and slices: an array, None, or a tuple of trees."""


class Backend:
    """One array library behind xpnn.

    Subclasses set ``name``, ``module`` and ``install_hint`` and implement ``namespace``,
    ``is_namespace`` and ``is_array``.
    """

    name: str = ""
    """The backend's name, as users write it: ``"numpy"``, ``"torch"``."""
    module: str = ""
    """The module whose import loads the library: ``"numpy"``, ``"dask.array"``."""
    install_hint: str = ""
    """What to run to install it, for ``BackendUnavailable`` messages."""
    extra: str | None = None
    """The extra of xpnn that installs the library (``pip install "xpnn[jax]"``); None
    for NumPy, which xpnn needs anyway. The noxfile reads it."""
    compiler: str | None = None
    """What compiles a training step (``"jax.jit"``), or None for an eager backend."""
    gpu_only: bool = False
    """Whether it needs a GPU (CuPy): the CPU test sessions cannot run it."""
    lazy: bool = False
    """Whether arrays are lazy task graphs (dask): computed at ``persist``, on a scheduler."""
    gpu_device: str | None = None
    """The device spec of its GPU where that is not its default device (``"cuda"``)."""

    # -- loading ---------------------------------------------------------------------------

    xp: ArrayNamespace | None = None
    """The array API namespace, once ``load`` has run."""

    def load(self) -> ArrayNamespace:
        """Import the library and return its array API namespace (kept as ``xp``).

        Raises
        ------
        BackendUnavailable
            The library is not installed or cannot run here; the message says why.
        """
        if self.xp is None:
            self.xp = self.namespace(self.import_module())
        return self.xp

    def import_module(self) -> ModuleType:
        """``module``, imported; ``BackendUnavailable`` with the install hint if it is not
        installed."""
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            msg = f"{self.name} is not installed ({exc}); install it with: {self.install_hint}"
            raise BackendUnavailable(msg) from None

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        """The array API namespace of the imported ``module`` (a compat wrapper, mostly)."""
        raise NotImplementedError

    def version(self) -> str:
        """The installed version of the library (call after a successful ``load``)."""
        package = importlib.import_module(self.module.split(".")[0])
        return getattr(package, "__version__", "?")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        """Whether ``xp`` is this library's namespace (xpnn's or ``array_namespace``'s)."""
        raise NotImplementedError

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is an array of this library (without importing it)."""
        raise NotImplementedError

    # -- devices and dtypes ----------------------------------------------------------------

    def device_name(self, device: Any) -> str | None:
        """A short name for ``device`` if its printed form is not one, else None."""
        return None

    def find_device(self, xp: ArrayNamespace, device: Any) -> Any | None:
        """The device that ``device`` (a name or object) means, found the library's own way,
        or None to match it against ``xp``'s listed devices by name."""
        return None

    def device_aliases(self, device: Any) -> set[str]:
        """Names besides ``device_name`` and ``str`` that mean ``device``."""
        return set()

    def enable_float64(self) -> None:
        """Make float64 arrays compute in float64 (a process-wide switch on JAX)."""

    def to_numpy(self, x: Array) -> np.ndarray:
        """``x``, an array of this library, copied to a host ``numpy.ndarray``."""
        return np.asarray(x)

    def read_only(self, x: Array) -> Array:
        """``x``, or a view of it that refuses writes where the library has one."""
        return x

    def odd_array(self, x: Any) -> str | None:
        """Why ``x`` would lose its meaning as a plain array of this library (a sparse
        tensor), as advice to the user, or None."""
        return None

    def gpu_float32_matmul(self) -> str | None:
        """How float32 matmuls run on a GPU now (TF32 or full float32, and what decides
        it), as one report line; None without such a setting, or when not loaded."""
        return None

    def set_cpu_threads(self, n: int) -> int | None:
        """Set the library's intra-op CPU threads to ``n``; the previous number, or None
        where it has no such setting (or is not loaded)."""
        return None

    # -- the time loop -------------------------------------------------------------------

    def scan(
        self,
        step: Callable[[Tree, Tree], tuple[Tree, Tree]],
        init: Tree,
        xs: Tree,
        *,
        reverse: bool = False,
    ) -> tuple[Tree, Tree]:
        """Run ``carry, y = step(carry, x)`` over the slices ``x = xs[t]`` along axis 0,
        from ``carry = init``; return the last carry and every step's ``y`` stacked on a
        new axis 0, in time order (``reverse`` runs ``t`` from ``T - 1`` down to 0).

        ``xs`` is a ``(T, ...)`` array or a flat tuple of them (None entries stay None);
        ``y`` any tree of arrays (tuples, None); ``step`` must return a carry of
        ``init``'s structure, shapes and dtypes. This default is the loop a hand-written
        model would run: every array cut into its ``T`` slices once (``unstack``),
        ``step`` called on them, each ``y`` kept, and stacked once per output
        (``stack``); nothing is checked per call.
        """
        if isinstance(xs, tuple):
            steps = next(a for a in xs if a is not None).shape[0]
            columns = [[None] * steps if a is None else self.unstack(a) for a in xs]
            slices = list(zip(*columns, strict=True))
        else:
            slices = self.unstack(xs)
        if reverse:
            slices.reverse()
        carry, ys = init, []
        for x in slices:
            carry, y = step(carry, x)
            ys.append(y)
        if reverse:
            ys.reverse()
        return carry, _stacked(ys, self.stack)

    def unstack(self, a: Array) -> list[Array]:
        """The ``T`` slices ``a[t, ...]`` of ``a`` along axis 0 (``scan``'s inputs)."""
        return [a[t, ...] for t in range(a.shape[0])]

    def stack(self, parts: list[Array]) -> Array:
        """``parts`` stacked on a new axis 0 (``scan``'s outputs)."""
        return self.xp.stack(parts, axis=0)

    # -- the training step -----------------------------------------------------------------

    def auto_compiles(self, *, steps: int | None) -> bool:
        """Whether ``compile="auto"`` compiles a step here, for a run of ``steps`` steps
        (None: unknown)."""
        return True

    def compile_step(self, fn: Callable, *, device: Any) -> Callable:
        """``fn`` compiled with ``compiler`` (called only where ``compiler`` is set)."""
        raise NotImplementedError

    def compile_loop(
        self, fn: Callable, *, rows: int, axis: int, target_axis: int
    ) -> Callable | None:
        """Many iterations of ``fn`` in one compiled call (see ``compile_loop`` in
        ``xpnn.backends.compiling``), or None where the library has no such loop."""
        return None

    def step_boundary(self, fn: Callable) -> Callable:
        """``fn`` (an eager step) with whatever must happen after each step: nothing, or
        ``persist`` of its outputs on a lazy backend."""
        return fn

    def place_batch(self, x: Array, axis: int, rows: int | None = None) -> Array:
        """``x``, an array of this library holding a batch along ``axis``, laid out for
        the work (a lazy backend cuts it into chunks of ``rows`` batch rows; None: the
        backend's default). The default leaves it as it is."""
        return x

    def persist(self, trees: tuple[Any, ...]) -> tuple[Any, ...]:
        """``trees`` (dicts of arrays, arrays) computed and kept in memory where the work
        runs; as they are on an eager backend."""
        return trees

    def scheduler(self) -> str | None:
        """Where a lazy backend runs its work now; None for an eager one."""
        return None


def _stacked(trees: list[Tree], stack: Callable[[list[Array]], Array]) -> Tree:
    """Trees of one structure as one tree, each array the matching arrays stacked."""
    first = trees[0]
    if not isinstance(first, tuple):
        return None if first is None else stack(trees)
    return tuple([_stacked([tree[i] for tree in trees], stack) for i in range(len(first))])
