"""``scan``: the one loop primitive of the model code, each backend running it its own way.

In the shape of ``jax.lax.scan`` and ``keras.ops.scan``: ``fn(carry, x) -> (carry, y)`` is
applied along axis 0 of ``xs``, and the ``y`` of every step come back stacked on a new axis
0. Under a JAX trace (``jax.jit``, ``jax.grad``) it is ``jax.lax.scan``, so a compiled
step traces ``fn`` once whatever the sequence length; everywhere else (NumPy,
array-api-strict, CuPy, dask, PyTorch, eager JAX) it is a Python loop that runs exactly the
operations a hand-written loop would, so eager numbers are those of such a loop to the bit.
On PyTorch the Python loop is also what ``torch.compile`` unrolls. Torch 2.13's scan
operator (``torch._higher_order_ops.scan``) does not compile with Inductor on the CPU
(``InductorError: DataDependentOutputException``, for a tanh RNN's forward at T 8 and 64,
batch 1 and 1024: ``benchmarks/torch_scan.py``, 2026-11-30, idle machine); traced
without code generation (``aot_eager``) it ran 2 to 23x slower than the compiled loop,
which compiled in 1.6 to 29 s. So the loop stays.

A pytree here is an array, None, or a tuple, list or dict of pytrees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnn.backends.registry import get_namespace
from xpnn.errors import XpnnValueError

Tree = Any


_LEAF = "leaf"
_CONTAINERS = (tuple, list, dict)


def _flatten(tree: Tree) -> tuple[list[Any], Any]:
    """The array leaves of ``tree`` (depth first) and its structure."""
    if tree is None:
        return [], None
    if not isinstance(tree, _CONTAINERS):
        return [tree], _LEAF
    if isinstance(tree, dict):
        keys = list(tree)
        leaves, shape = _flatten([tree[k] for k in keys])
        return leaves, (dict, keys, shape)
    leaves: list[Any] = []
    shapes = []
    for item in tree:
        if item is not None and not isinstance(item, _CONTAINERS):  # a leaf, inline
            leaves.append(item)
            shapes.append((1, _LEAF))
        else:
            sub, shape = _flatten(item)
            leaves += sub
            shapes.append((len(sub), shape))
    return leaves, (type(tree), None, shapes)


def _unflatten(structure: Any, leaves: list[Any]) -> Tree:
    """The tree of ``structure`` (from ``_flatten``) with ``leaves`` in its leaves' places."""
    if structure is None:
        return None
    if structure is _LEAF:
        return leaves[0]
    kind, keys, inner = structure
    if kind is dict:
        return dict(zip(keys, _unflatten(inner, leaves), strict=True))
    items, start = [], 0
    for count, shape in inner:
        items.append(
            leaves[start] if shape is _LEAF else _unflatten(shape, leaves[start : start + count])
        )
        start += count
    return kind(items)


def tree_map(fn: Callable[..., Any], tree: Tree, *rest: Tree) -> Tree:
    """``fn`` applied to the leaves of ``tree`` (and the matching leaves of ``rest``, trees
    of the same structure), in a tree of that structure."""
    leaves, structure = _flatten(tree)
    others = [_flatten(other)[0] for other in rest]
    return _unflatten(structure, [fn(*args) for args in zip(leaves, *others, strict=True)])


def _describe(tree: Tree) -> str:
    """The shapes and dtypes of ``tree``'s leaves, for an error message."""
    leaves, structure = _flatten(tree)
    if structure is _LEAF:
        return _shown(tree)
    parts = ", ".join(_shown(a) for a in leaves)
    return f"{type(tree).__name__} of [{parts}]" if leaves else repr(tree)


def _shown(a: Any) -> str:
    """``(3, 4) float64``: shape and dtype, the dtype without its library's prefix."""
    return f"{tuple(a.shape)} {str(a.dtype).rsplit('.', 1)[-1]}"


def check_carry(before: Tree, after: Tree) -> None:
    """Refuse a step whose carry out differs from its carry in, in structure, shape or
    dtype (metadata only, nothing is computed or read).

    Raises
    ------
    XpnnValueError
        Naming both carries' shapes and dtypes.
    """
    (old, old_structure), (new, new_structure) = _flatten(before), _flatten(after)
    same = old_structure == new_structure and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype
        for a, b in zip(old, new, strict=True)
    )
    if not same:
        msg = (
            "scan: fn must return a carry of the shapes and dtypes it was given: "
            f"carry in {_describe(before)}, carry out {_describe(after)}"
        )
        raise XpnnValueError(msg)


def scan(
    fn: Callable[[Tree, Tree], tuple[Tree, Tree]],
    carry: Tree,
    xs: Tree,
    *,
    reverse: bool = False,
    length: int | None = None,
    backend: str,
) -> tuple[Tree, Tree]:
    """Run ``carry, y = fn(carry, x)`` over the slices ``x`` of ``xs`` along axis 0.

    Parameters
    ----------
    fn : callable
        ``fn(carry, x) -> (carry, y)``; the carry it returns must match the one it was
        given in structure, shapes and dtypes.
    carry : pytree or None
        The initial carry. None means "nothing yet": the first call of ``fn`` receives None
        and the carry it returns is the one the remaining steps keep (an RNN's zero state,
        a BPTT's first step with no gradient from later steps). On JAX that first step
        is traced before the ``lax.scan`` over the rest.
    xs : pytree or None
        Arrays of ``T`` slices along axis 0 each (``(T, ...)``), or None with ``length``.
    reverse : bool
        Run the steps from ``T - 1`` down to 0; ``ys`` stay in time order.
    length : int, optional
        ``T`` when ``xs`` is None.
    backend : str
        The backend name (``xpnn.backends.backend_name``).

    Returns
    -------
    carry, ys
        The last carry, and the ``y`` of every step stacked on axis 0 (time order). ``T``
        must be at least 1.

    Raises
    ------
    XpnnValueError
        ``fn`` changed the carry's structure, shapes or dtypes (checked at the first step
        that has a carry in, before any value is read); ``T`` is 0 or unknown.
    """
    leaves, structure = _flatten(xs)
    steps = leaves[0].shape[0] if leaves else length
    if not isinstance(steps, int) or steps < 1:
        msg = f"scan needs at least one step: xs has {steps} slices along axis 0"
        raise XpnnValueError(msg)
    if backend == "jax" and _traced(leaves + _flatten(carry)[0]):
        return _jax_scan(fn, carry, leaves, structure, steps, reverse)
    checked_at = 1 if carry is None else 0  # the first step that has a carry in
    cut, join = _eager_jax_slicing() if backend == "jax" else _slicing(get_namespace(backend))
    xs_per_step = _unstack(xs, steps, cut)
    if reverse:
        xs_per_step.reverse()
    ys = []
    for x in xs_per_step:
        new, y = fn(carry, x)
        if len(ys) == checked_at:
            check_carry(carry, new)
        carry = new
        ys.append(y)
    if reverse:
        ys.reverse()
    return carry, _stack_trees(ys, join)


Cut = Callable[[Any, int], list[Any]]
Join = Callable[[list[Any]], Any]


def _slicing(xp: Any) -> tuple[Cut, Join]:
    """How the Python loop cuts an array into its ``T`` steps and joins ``T`` arrays into
    one: ``unstack`` (views in NumPy), and ``concat`` then ``reshape`` (in NumPy fewer
    calls than ``stack``)."""

    def cut(a: Any, steps: int) -> list[Any]:
        return list(xp.unstack(a, axis=0))

    def join(parts: list[Any]) -> Any:
        if parts[0].ndim == 0:
            return xp.stack(parts, axis=0)
        return xp.reshape(xp.concat(parts, axis=0), (len(parts), *parts[0].shape))

    return cut, join


def _eager_jax_slicing() -> tuple[Cut, Join]:
    """``_slicing`` for eager JAX, which compiles every operation at its first shapes:
    one ``dynamic_index_in_dim`` per step is one small program for every step (``unstack``
    compiles one program of ``T`` outputs, 3.9 s at ``T`` 200; indexing step by step runs
    7x slower), and ``stack`` joins."""
    import jax.numpy as jnp
    from jax import lax

    def cut(a: Any, steps: int) -> list[Any]:
        return [lax.dynamic_index_in_dim(a, t, 0, keepdims=False) for t in range(steps)]

    def join(parts: list[Any]) -> Any:
        return jnp.stack(parts, axis=0)

    return cut, join


def _unstack(tree: Tree, steps: int, cut: Cut) -> list[Tree]:
    """``tree`` cut along axis 0 into ``steps`` trees of its structure: ``cut`` once per
    leaf, and the Python work once per node, not once per node and step."""
    if tree is None:
        return [None] * steps
    if isinstance(tree, dict):
        keys = list(tree)
        return [
            dict(zip(keys, parts, strict=True))
            for parts in _unstack(list(tree.values()), steps, cut)
        ]
    if isinstance(tree, (tuple, list)):
        columns = [_unstack(item, steps, cut) for item in tree]
        return (
            [type(tree)(parts) for parts in zip(*columns, strict=True)]
            if columns
            else [type(tree)()] * steps
        )
    return cut(tree, steps)


def _stack_trees(trees: list[Tree], join: Join) -> Tree:
    """Trees of one structure joined into one tree of that structure, each leaf the
    matching leaves stacked on a new axis 0 by ``join``."""
    first = trees[0]
    if first is None:
        return None
    if isinstance(first, dict):
        return {k: _stack_trees([tree[k] for tree in trees], join) for k in first}
    if isinstance(first, (tuple, list)):
        columns = zip(*trees, strict=True)
        return type(first)(_stack_trees(list(column), join) for column in columns)
    return join(trees)


def _traced(leaves: list[Any]) -> bool:
    """Whether any leaf is a JAX tracer (inside ``jax.jit``, ``jax.grad``...)."""
    import jax

    return any(isinstance(a, jax.core.Tracer) for a in leaves)


def _jax_scan(
    fn: Callable, carry: Tree, leaves: list[Any], structure: Any, steps: int, reverse: bool
) -> tuple[Tree, Tree]:
    """``scan`` as ``jax.lax.scan`` (after a first step traced on its own when ``carry``
    is None)."""
    import jax
    import jax.numpy as jnp

    first = None
    if carry is None:  # the first step by itself: it decides the carry
        t = steps - 1 if reverse else 0
        carry, first = fn(None, _unflatten(structure, [a[t, ...] for a in leaves]))
        leaves = [a[:-1, ...] if reverse else a[1:, ...] for a in leaves]
        steps -= 1

    def body(c: Tree, x: Tree) -> tuple[Tree, Tree]:
        new, y = fn(c, x)
        check_carry(c, new)
        return new, y

    xs = _unflatten(structure, leaves)
    carry, ys = jax.lax.scan(body, carry, xs, length=steps, reverse=reverse)
    if first is None:
        return carry, ys

    def join(stacked: Any, one: Any) -> Any:
        parts = (stacked, one[None, ...]) if reverse else (one[None, ...], stacked)
        return jnp.concatenate(parts, axis=0)

    return carry, jax.tree_util.tree_map(join, ys, first)
