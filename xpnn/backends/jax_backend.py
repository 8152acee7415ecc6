"""JAX: ``jax.numpy``; steps compile with ``jax.jit``, chunks of steps with one
``lax.fori_loop``, and ``scan`` is ``jax.lax.scan`` under a trace."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import array_api_compat

from xpnn.backends.base import Array, ArrayNamespace, Backend, Tree

FULL_UNROLL = 8
"""The longest sequence a traced ``scan`` unrolls whole. Measured on the binary-addition
step (2-16-1, float64, one CPU thread, the idle 2-core machine, 2026-12-07): at ``T`` 8
the whole unroll ran 15 against 21-27 µs a sequence at batch 1 and 1.0-1.1 against
1.2-1.5 at batch 1024; at ``T`` 16 and 32 it gained little or lost, and doubled the
compile."""


class JaxBackend(Backend):
    name = "jax"
    module = "jax"
    extra = "jax"
    install_hint = 'pip install "xpnn[jax]"'
    compiler = "jax.jit"
    gpu_device = "gpu"

    def namespace(self, module: ModuleType) -> ArrayNamespace:
        # float32 matmuls in full float32, not TF32 on GPUs: the same numbers as elsewhere,
        # unless the user has chosen a precision (JAX_DEFAULT_MATMUL_PRECISION or config)
        if module.config.jax_default_matmul_precision is None:
            module.config.update("jax_default_matmul_precision", "highest")
        return importlib.import_module("jax.numpy")

    def is_namespace(self, xp: ArrayNamespace) -> bool:
        return array_api_compat.is_jax_namespace(xp)

    def is_array(self, x: Any) -> bool:
        return array_api_compat.is_jax_array(x)

    def device_aliases(self, device: Any) -> set[str]:
        return {device.platform, f"{device.platform}:{device.id}"}  # "cpu", "gpu:0"

    def enable_float64(self) -> None:
        """JAX computes in float32 unless ``jax_enable_x64`` is on: the first float64 model
        turns it on for the whole process (JAX has no scope that float64 arrays outlive:
        made inside ``jax.enable_x64(True)``, they compute in float32 outside it)."""
        if not sys.modules["jax"].config.jax_enable_x64:
            sys.modules["jax"].config.update("jax_enable_x64", True)

    def gpu_float32_matmul(self) -> str | None:
        jax = sys.modules.get("jax")
        if jax is None:
            return None
        precision = jax.config.jax_default_matmul_precision
        if str(precision).lower() in ("highest", "float32"):
            return f"jax gpu float32 matmul precision {precision!r}: full float32"
        return (
            f"jax gpu float32 matmul precision {precision!r}: XLA computes float32 "
            "matmuls in TF32 (10-bit mantissa) on Ampere and later GPUs; "
            "JAX_DEFAULT_MATMUL_PRECISION=highest computes them in full float32"
        )

    def scan(
        self,
        step: Callable[[Tree, Tree], tuple[Tree, Tree]],
        init: Tree,
        xs: Tree,
        *,
        reverse: bool = False,
    ) -> tuple[Tree, Tree]:
        """``jax.lax.scan`` under a trace (``jax.jit``, ``jax.grad``): the step is traced
        once whatever ``T``; eagerly, the default loop."""
        import jax

        leaves = jax.tree_util.tree_leaves((init, xs))
        if any(isinstance(a, jax.core.Tracer) for a in leaves):
            steps = jax.tree_util.tree_leaves(xs)[0].shape[0]
            return jax.lax.scan(step, init, xs, reverse=reverse, unroll=self.unroll(steps))
        return super().scan(step, init, xs, reverse=reverse)

    def unroll(self, steps: int) -> int:
        """How many steps of a traced scan one loop iteration holds (``lax.scan``'s
        ``unroll``): all of a short sequence (``T <= FULL_UNROLL``: XLA fuses across its
        steps), one of a longer one (the loop body compiled once, whatever ``T``)."""
        return steps if steps <= FULL_UNROLL else 1

    def unstack(self, a: Array) -> list[Array]:
        """One ``dynamic_index_in_dim`` a step: eager JAX compiles an operation at its
        first shapes, and this is one small program for every ``t`` (``a[t]`` would be
        one per ``t``, and ``unstack`` one program of ``T`` outputs, 3.9 s at ``T``
        200)."""
        from jax import lax

        return [lax.dynamic_index_in_dim(a, t, 0, keepdims=False) for t in range(a.shape[0])]

    def compile_step(self, fn: Callable, *, device: Any) -> Callable:
        import jax

        return jax.jit(fn)

    def compile_loop(self, fn: Callable, *, rows: int, axis: int, target_axis: int) -> Callable:
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
