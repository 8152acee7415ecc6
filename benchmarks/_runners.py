"""Training-step implementations shared by the RNN benchmarks, each with the same small
interface: ``to_device(host_array)`` and ``step(x, d) -> loss`` (one training step on a
batch already on the device; the loss a 0-D array that ``float`` reads back).

* ``XpnnModel``: ``xpnn.make_step``'s step, eager or compiled;
* ``TorchAutogradRNN``: the simple RNN written with torch ops, a Python loop over time,
  ``loss.backward()`` and a manual SGD step under ``no_grad``;
* ``TorchModuleRNN``: ``torch.nn.RNN`` (tanh) + ``torch.nn.Linear`` + sigmoid,
  ``torch.optim.SGD``;
* ``JaxScanRNN``: the simple RNN in idiomatic JAX: ``jax.value_and_grad`` of the loss
  through ``lax.scan`` (``unroll``), an SGD update, one ``jax.jit``.

The torch versions start from the weights of an xpnn ``RNN`` (``W_in`` ``(I, H)``, ``W``
``(H, H)``, ``W_out`` ``(H, O)`` and, with biases, ``b`` ``(H,)``, ``b_out`` ``(O,)``)
and compute its function with sigmoid outputs and xpnn's squared error
``0.5 * sum((y - d)**2) / B`` (summed over time, mean over the batch). ``PoolLoop``
times any of them over a pool of device batches.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from xpnn.optim import Optimizer
from xpnn.training.step import make_step


class XpnnModel:
    """``xpnn.make_step(net, optimizer, compile=compile)`` holding its own params and
    optimiser state between calls."""

    def __init__(self, net: Any, optimizer: Optimizer, compile: str) -> None:
        self.net = net
        self.step_fn = make_step(net, optimizer, compile=compile)
        self.params, self.state = net.params, optimizer.init(net.params)

    def to_device(self, a: np.ndarray) -> Any:
        return self.net.asarray(a)

    def step(self, x: Any, d: Any) -> Any:
        self.params, self.state, loss = self.step_fn(self.params, self.state, x, d)
        return loss


class _Torch:
    """The torch module, device and dtype of a torch implementation."""

    def __init__(self, device: str | None, dtype: str) -> None:
        self.torch = importlib.import_module("torch")
        self.device = self.torch.device(device or "cpu")
        self.dtype = getattr(self.torch, dtype)

    def to_device(self, a: np.ndarray) -> Any:
        """A copy of ``a`` on the device (never a view of the host array)."""
        return self.torch.tensor(np.asarray(a), dtype=self.dtype, device=self.device)


class TorchAutogradRNN(_Torch):
    """The simple RNN by hand: ``z_t = f(x_t @ W_in + z_{t-1} @ W (+ b))`` in a Python loop
    over time, ``y = sigmoid(z @ W_out (+ b_out))`` as one matmul over all steps, then
    ``loss.backward()`` and ``p -= lr * p.grad`` under ``no_grad``.

    Parameters
    ----------
    params : mapping of str to array
        Initial weights in xpnn's layout (host arrays).
    hidden : {"sigmoid", "tanh"}
        The state's activation ``f``.
    lr : float
    device, dtype
        Torch device (None: the CPU) and dtype name.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        hidden: str,
        lr: float,
        device: str | None,
        dtype: str,
    ) -> None:
        super().__init__(device, dtype)
        self.params = {key: self.to_device(value).requires_grad_() for key, value in params.items()}
        self.act = {"sigmoid": self.torch.sigmoid, "tanh": self.torch.tanh}[hidden]
        self.lr = lr

    def step(self, xs: Any, ds: Any) -> Any:
        torch, p, batch = self.torch, self.params, xs.shape[1]
        z = torch.zeros((batch, p["W"].shape[0]), dtype=self.dtype, device=self.device)
        zs = []
        for t in range(xs.shape[0]):
            u = xs[t] @ p["W_in"] + z @ p["W"]
            z = self.act(u + p["b"] if "b" in p else u)
            zs.append(z)
        v = torch.stack(zs) @ p["W_out"]
        y = torch.sigmoid(v + p["b_out"] if "b_out" in p else v)
        loss = 0.5 * torch.sum((y - ds) ** 2) / batch
        loss.backward()
        with torch.no_grad():
            for q in p.values():
                q -= self.lr * q.grad
                q.grad = None
        return loss.detach()


class TorchModuleRNN(_Torch):
    """``torch.nn.RNN(I, H, nonlinearity="tanh")`` + ``torch.nn.Linear(H, O)`` + sigmoid,
    ``torch.optim.SGD(lr)``, with biases exactly where ``params`` has them (``b`` as
    ``bias_ih_l0``, ``bias_hh_l0`` zero: the same function, though SGD moves the sum of
    the two biases twice as far). Parameters as for ``TorchAutogradRNN``; the state is
    always tanh, the only sigmoid-like nonlinearity ``torch.nn.RNN`` offers."""

    def __init__(
        self, params: Mapping[str, Any], lr: float, device: str | None, dtype: str
    ) -> None:
        super().__init__(device, dtype)
        torch, bias = self.torch, "b" in params
        (inputs, hidden), outputs = params["W_in"].shape, params["W_out"].shape[1]
        kw = {"bias": bias, "dtype": self.dtype, "device": self.device}
        self.rnn = torch.nn.RNN(inputs, hidden, nonlinearity="tanh", **kw)
        self.linear = torch.nn.Linear(hidden, outputs, **kw)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(self.to_device(params["W_in"]).T)
            self.rnn.weight_hh_l0.copy_(self.to_device(params["W"]).T)
            self.linear.weight.copy_(self.to_device(params["W_out"]).T)
            if bias:
                self.rnn.bias_ih_l0.copy_(self.to_device(params["b"]))
                self.rnn.bias_hh_l0.zero_()
                self.linear.bias.copy_(self.to_device(params["b_out"]))
        self.opt = torch.optim.SGD([*self.rnn.parameters(), *self.linear.parameters()], lr=lr)

    def step(self, xs: Any, ds: Any) -> Any:
        out, _ = self.rnn(xs)
        y = self.torch.sigmoid(self.linear(out))
        loss = 0.5 * self.torch.sum((y - ds) ** 2) / xs.shape[1]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


class JaxScanRNN:
    """The simple RNN (sigmoid state, no biases) as idiomatic JAX writes it: the forward
    pass as a ``lax.scan`` over time (``unroll`` steps a loop iteration), the output
    layer over all steps, xpnn's squared error; ``jax.value_and_grad`` for the gradients
    (autodiff, not a hand-written BPTT), ``p - lr * g``, all under one ``jax.jit``.
    Parameters as for ``TorchAutogradRNN`` (``hidden`` sigmoid)."""

    def __init__(self, params: Mapping[str, Any], lr: float, dtype: str, unroll: int = 8) -> None:
        jax = importlib.import_module("jax")
        self.jnp, self.dtype = jax.numpy, dtype
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        self.params = {key: self.to_device(value) for key, value in params.items()}
        jnp, lax = self.jnp, jax.lax

        def loss(p: Any, xs: Any, ds: Any) -> Any:
            def step(z: Any, x: Any) -> Any:
                z = jax.nn.sigmoid(x @ p["W_in"] + z @ p["W"])
                return z, z

            z0 = jnp.zeros((xs.shape[1], p["W"].shape[0]), dtype=xs.dtype)
            _, zs = lax.scan(step, z0, xs, unroll=unroll)
            y = jax.nn.sigmoid(zs @ p["W_out"])
            return 0.5 * jnp.sum((y - ds) ** 2) / xs.shape[1]

        def update(p: Any, xs: Any, ds: Any) -> Any:
            value, grads = jax.value_and_grad(loss)(p, xs, ds)
            return {key: p[key] - lr * grads[key] for key in p}, value

        self.update = jax.jit(update)

    def to_device(self, a: np.ndarray) -> Any:
        return self.jnp.asarray(np.asarray(a), dtype=self.dtype)

    def step(self, xs: Any, ds: Any) -> Any:
        self.params, loss = self.update(self.params, xs, ds)
        return loss


class PoolLoop:
    """``iters`` training steps of ``model`` cycling over ``batches`` (host ``(x, d)``
    pairs, moved to the device once, here), ending with a sync (the last loss read back).
    ``first_call`` is the seconds of the first step, taken here: for a compiled step,
    the trace and compile."""

    def __init__(self, model: Any, batches: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.model = model
        self.batches = [(model.to_device(x), model.to_device(d)) for x, d in batches]
        began = time.perf_counter()
        self(1)
        self.first_call = time.perf_counter() - began

    def __call__(self, iters: int) -> None:
        loss = None
        for i in range(iters):
            loss = self.model.step(*self.batches[i % len(self.batches)])
        float(loss)  # sync: the last step has finished
