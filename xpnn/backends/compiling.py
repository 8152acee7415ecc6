"""The compile decision (which steps compile, with what) and the step boundary
(``persist``).

Each backend says what compiles its step (``Backend.compiler``), when ``"auto"`` uses it
(``Backend.auto_compiles``) and how (``Backend.compile_step``, ``compile_loop``); a lazy
backend ends each step in ``persist`` (``Backend.step_boundary``). ``compiler_for`` is
the one place a ``compile`` mode becomes a decision; what it decides travels as a
compiler name (or None), never as the mode again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat

from xpnn.backends.base import Array
from xpnn.backends.registry import COMPILERS, backend_of, backend_or_plain, overriding
from xpnn.errors import XpnnValueError, check_choice

COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")


def compiler_for(backend: str, mode: str, *, steps: int | None = None) -> str | None:
    """What compiles a step on ``backend`` under ``mode`` (``"jax.jit"``,
    ``"torch.compile"``), or None for an eager step.

    ``"off"``: None; ``"on"``: the backend's compiler, or an error; ``"auto"``: ``jax.jit``
    on JAX (an RNN's time loop is one ``lax.scan``: the compile does not grow with ``T``),
    ``torch.compile`` on PyTorch when ``steps`` (the run's length, if known) is at least
    ``AUTO_TORCH_STEPS``, None elsewhere.

    Raises
    ------
    XpnnValueError
        ``mode`` is unknown, or ``"on"`` for a backend that does not compile.
    """
    mode = check_choice(mode, "compile", COMPILE_MODES)
    if mode == "off":
        return None
    compiler = backend_or_plain(backend).compiler
    if compiler is None:
        if mode == "on":
            msg = (
                f"compile 'on' needs a backend that compiles ({', '.join(COMPILERS)}); "
                f"{backend} runs the step eagerly: use 'auto' or 'off'"
            )
            raise XpnnValueError(msg, argument="compile")
        return None
    if mode == "auto" and not backend_or_plain(backend).auto_compiles(steps=steps):
        return None
    return compiler


def compile_step(
    fn: Callable, backend: str, compiler: str | None, *, device: Any = None
) -> Callable:
    """``fn`` compiled for ``backend`` where ``compiler`` (``compiler_for``'s decision) is
    set. A compiled step is traced once per input shape; a new shape traces it again.
    Eager, on dask, it is ``fn`` followed by ``persist`` of its outputs: the step
    boundary."""
    if compiler is None:
        return backend_or_plain(backend).step_boundary(fn)
    return backend_or_plain(backend).compile_step(fn, device=device)


def compile_loop(fn: Callable, backend: str, *, rows: int, axis: int, target_axis: int) -> Any:
    """On JAX, ``fn`` (an uncompiled step) run over a span of a chunk's iterations in one
    ``jax.jit`` call: ``loop(params, state, x_all, d_all, lo, hi)`` runs iterations
    ``lo .. hi - 1`` of ``x_all`` and ``d_all`` (the batches of the chunk's iterations
    joined along ``axis`` and ``target_axis``, ``rows`` batch rows each) and returns
    ``params, state, losses``, ``losses[k]`` the loss of iteration ``k`` for ``lo <= k <
    hi``. ``lo`` and ``hi`` are traced, so any span reuses one compile per chunk shape, and
    the steps in between run without a Python dispatch each. None on other backends."""
    return backend_or_plain(backend).compile_loop(fn, rows=rows, axis=axis, target_axis=target_axis)


def iteration_batch(x: Array, axis: int, rows: int, k: int) -> Array:
    """Iteration ``k``'s batch of ``x``, the batches of several iterations of ``rows`` rows
    each joined along ``axis``."""
    return x[(slice(None),) * axis + (slice(k * rows, (k + 1) * rows), ...)]


def split_iterations(x: Array, axis: int, n: int) -> list[Array]:
    """``x``, the batches of ``n`` iterations joined along ``axis``, as a list of ``n``
    arrays: one ``unstack`` rather than ``n`` slices (on JAX each eager slice costs a
    dispatch, more than a compiled step). The pieces are views with a slice's strides, so
    the arithmetic on them rounds as on slices. Lazy (dask) arrays are sliced (lazily)."""
    size = x.shape[axis] // n
    xp = array_api_compat.array_namespace(x)
    if backend_of(xp).lazy:
        return [iteration_batch(x, axis, size, j) for j in range(n)]
    parts = xp.reshape(x, (*x.shape[:axis], n, size, *x.shape[axis + 1 :]))
    if axis:
        parts = xp.moveaxis(parts, axis, 0)
    return list(xp.unstack(parts, axis=0))


def persist(*trees: Any) -> tuple[Any, ...]:
    """The step boundary: lazy (dask) arrays in ``trees`` (dicts of arrays, arrays)
    computed and kept in memory on the workers, so the next step's task graph starts from
    them and does not grow with the number of steps. Arrays of other backends are returned
    as they are."""
    leaves = [leaf for tree in trees for leaf in _leaves(tree)]
    for backend in overriding("persist"):
        if any(backend.is_array(leaf) for leaf in leaves):
            return backend.persist(trees)
    return trees


def _leaves(tree: Any) -> list[Any]:
    return list(tree.values()) if isinstance(tree, dict) else [tree]
