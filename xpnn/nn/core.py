"""The unchecked core that every xpnn model exposes: pure functions of the parameters.

A model's public methods (``forward``, ``backward``, ``loss``, ``loss_and_grad``) check
what they are given and then call its core. Code that has already checked its input
once, at its own boundary, calls the core directly, so that nothing is checked again
inside a loop or under a compiler: ``make_step``'s step, ``gradient_check``, the
training loop and the course's notebooks.

The core is **pure** and **unchecked**:

* pure: every function depends only on its arguments and the model's architecture
  (never on ``model.params``, which it neither reads nor sets), creates arrays
  functionally and reads no value on the host, so ``jax.jit`` and ``torch.compile``
  can trace it;
* unchecked: the caller has checked the shapes, dtypes, backend, device and finiteness
  of every array (as the public methods do). A wrong array gives a wrong number or an
  error from deep inside the array library, never an ``XpnnError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from xpnn.backends import Array, ArrayNamespace


@runtime_checkable
class ModelCore(Protocol):
    """What ``MLP`` and ``RNN`` (and ``model.core``) provide: the pure, unchecked math.

    Shapes: an MLP takes ``x`` ``(B, n_in)`` and targets ``(B, n_out)``; an RNN takes
    time-major ``xs`` ``(T, B, I)`` and targets ``(T, B, O)``, or ``(B, O)`` when
    many-to-one. Targets reach the core as floating rows in the model's dtype:
    ``targets_unchecked`` makes them from integer class labels.

    Attributes
    ----------
    xp : namespace
        The array namespace of the model's backend.
    batch_axis : int
        0 for an MLP's ``(B, n_in)``, 1 for an RNN's time-major ``(T, B, I)``.
    param_shapes : dict of str to tuple
        The name and shape of every parameter: the keys ``params`` and the gradients have.
    """

    xp: ArrayNamespace
    batch_axis: int
    param_shapes: dict[str, tuple[int, ...]]

    def forward_unchecked(
        self, x: Array, params: Mapping[str, Array], h0: Any = None
    ) -> tuple[Array, Any]:
        """``(y, cache)``: the output for input ``x`` with parameters ``params``, and what
        the backward pass needs. ``h0`` is an RNN's initial state (None: zeros); an MLP
        takes None only."""
        ...

    def loss_unchecked(self, cache: Any, d: Array) -> Array:
        """The loss (a 0-D array) of ``forward_unchecked``'s output against floating
        targets ``d``."""
        ...

    def backward_unchecked(
        self, cache: Any, d: Array, truncate: int | None = None
    ) -> dict[str, Array]:
        """The gradient of ``loss_unchecked(cache, d)`` with respect to every parameter,
        keyed like ``param_shapes``; ``truncate`` (RNN only) is the block length of
        truncated BPTT, None for full BPTT."""
        ...

    def targets_unchecked(self, d: Array) -> Array:
        """Checked targets ``d`` as the floating rows the core takes: integer class
        labels become one-hot rows in the model's dtype, floating targets pass as they
        are."""
        ...
