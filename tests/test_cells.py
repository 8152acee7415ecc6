"""The LSTM and GRU cells on the recurrent driver: gradient checks of every configuration,
agreement with ``torch.nn.LSTM`` / ``torch.nn.GRU`` (weights mapped both ways), initial
states, and the refusals of bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from covering import covering_cases
from sequences import random_sequences

import xpnn
from xpnn.errors import XpnnValueError

CELLS = ["lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
OUTPUT_LOSS = [
    ("sigmoid", "mse"),
    ("identity", "mse"),
    ("softmax", "mse"),
    ("sigmoid", "cross_entropy"),
    ("softmax", "cross_entropy"),
]
TRIPLES = list(
    itertools.product([False, True], [False, True], [None, 2])
)  # bias, many-to-one, truncate
T, B, I, H, O = 4, 2, 2, 2, 3  # noqa: E741 - the network's sizes, kept small: JAX runs eagerly


def _data(output: str, many_to_one: bool, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return random_sequences(output, many_to_one, seed, (T, B, I, O))


def _with_random_biases(net: xpnn.RNN, seed: int) -> None:
    """Non-zero biases, so that their gradients and their place in each gate are tested."""
    rng = np.random.default_rng(seed)
    net.params = {
        key: net.asarray(rng.normal(size=value.shape)) if key.startswith("b") else value
        for key, value in net.params.items()
    }


@pytest.mark.parametrize(
    ("cell", "output_loss", "bias", "many_to_one", "truncate"),
    covering_cases(
        CELLS, OUTPUT_LOSS, list(itertools.product([False, True], [False, True], [None, 2]))
    ),
)
def test_gradient_check_every_configuration(
    backend, device, cell, output_loss, bias, many_to_one, truncate
):
    output, loss = output_loss
    net = xpnn.RNN(
        I,
        H,
        O,
        cell=cell,
        output=output,
        loss=loss,
        bias=bias,
        many_to_one=many_to_one,
        init="xavier",
        seed=1,
        backend=backend,
        device=device,
    )
    if bias:
        _with_random_biases(net, seed=3)
    xs, ds = _data(output, many_to_one, seed=2)
    # h = 1e-3: the stencil's truncation error (~h**4) stays far below 1e-7, and the
    # rounding error (~eps / h) stays small beside gradients as small as 1e-5 (the gated
    # cells' W under truncation), which the default h = 1e-4 measures only to ~1e-7.
    errors = xpnn.gradient_check(net, net.asarray(xs), net.asarray(ds), truncate=truncate, h=1e-3)
    assert set(errors) == set(net.params)
    assert max(errors.values()) <= 1e-7, errors


# -- against PyTorch -------------------------------------------------------------------


def _torch_module(cell: str, params: dict[str, np.ndarray]):
    """A float64 ``torch.nn.LSTM`` / ``torch.nn.GRU`` holding xpnn's parameters.

    xpnn's ``W_in`` ``(I, G*H)`` is torch's ``weight_ih_l0`` ``(G*H, I)`` transposed, ``W``
    likewise ``weight_hh_l0``; ``b`` is ``bias_ih_l0``; the GRU's ``b_h`` is ``bias_hh_l0``
    and the LSTM, whose two biases only ever appear summed, gets ``bias_hh_l0 = 0``.
    """
    torch = pytest.importorskip("torch", reason="torch is not installed")
    size, inputs = params["W"].shape[0], params["W_in"].shape[0]
    kind = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    module = kind(inputs, size, bias="b" in params, dtype=torch.float64)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(params["W_in"].T))
        module.weight_hh_l0.copy_(torch.tensor(params["W"].T))
        if "b" in params:
            module.bias_ih_l0.copy_(torch.tensor(params["b"]))
            recurrent = params["b_h"] if cell == "gru" else np.zeros_like(params["b"])
            module.bias_hh_l0.copy_(torch.tensor(recurrent))
    return module


def _from_torch(cell: str, module) -> dict[str, np.ndarray]:
    """xpnn's ``W_in``, ``W`` (and ``b``, ``b_h``) from a torch module: the other way."""
    params = {
        "W_in": module.weight_ih_l0.detach().numpy().T.copy(),
        "W": module.weight_hh_l0.detach().numpy().T.copy(),
    }
    if module.bias:
        b_ih = module.bias_ih_l0.detach().numpy()
        b_hh = module.bias_hh_l0.detach().numpy()
        if cell == "gru":
            params.update({"b": b_ih.copy(), "b_h": b_hh.copy()})
        else:
            params["b"] = b_ih + b_hh
    return params


def _torch_run(cell, module, w_out, b_out, xs, ds, h0, many_to_one):
    """Torch's outputs, loss (xpnn's squared error: ``0.5 * sum / B``, summed over time)
    and gradients in xpnn's layout."""
    import torch

    w_out = torch.tensor(w_out, requires_grad=True)
    b_out = torch.tensor(b_out, requires_grad=True)
    state = tuple(torch.from_numpy(s[None, ...]) for s in h0)
    out, _ = module(torch.from_numpy(xs), state if cell == "lstm" else state[0])
    if many_to_one:
        out = out[-1]
    ys = out @ w_out + b_out
    loss = 0.5 * torch.sum((ys - torch.from_numpy(ds)) ** 2) / xs.shape[1]
    loss.backward()
    grads = {
        "W_in": module.weight_ih_l0.grad.numpy().T,
        "W": module.weight_hh_l0.grad.numpy().T,
        "b": module.bias_ih_l0.grad.numpy(),
        "W_out": w_out.grad.numpy(),
        "b_out": b_out.grad.numpy(),
    }
    if cell == "gru":
        grads["b_h"] = module.bias_hh_l0.grad.numpy()
    else:  # the two LSTM biases are one parameter in xpnn: the same gradient
        np.testing.assert_allclose(module.bias_hh_l0.grad.numpy(), grads["b"], rtol=1e-12)
    return ys.detach().numpy(), float(loss.detach()), grads


@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_same_numbers_as_torch_with_the_weights_mapped(backend, device, cell, many_to_one):
    """xpnn -> torch: the same outputs, loss and gradients, from a non-zero initial state."""
    rng = np.random.default_rng(7)
    steps, batch, inputs, size, outputs = 5, 3, 2, 4, 2
    net = xpnn.RNN(
        inputs,
        size,
        outputs,
        cell=cell,
        output="identity",
        bias=True,
        many_to_one=many_to_one,
        init="xavier",
        seed=4,
        backend=backend,
        device=device,
    )
    _with_random_biases(net, seed=5)
    host = {key: xpnn.to_numpy(value) for key, value in net.params.items()}
    module = _torch_module(cell, host)
    xs = rng.normal(size=(steps, batch, inputs))
    ds = rng.normal(size=((batch,) if many_to_one else (steps, batch)) + (outputs,))
    h0 = [rng.normal(size=(batch, size)) for _ in range(2 if cell == "lstm" else 1)]
    want_ys, want_loss, want = _torch_run(
        cell, module, host["W_out"], host["b_out"], xs, ds, h0, many_to_one
    )

    state = tuple(net.asarray(s) for s in h0) if cell == "lstm" else net.asarray(h0[0])
    ys, cache = net.forward(net.asarray(xs), h0=state)
    grads = net.backward(cache, net.asarray(ds))
    np.testing.assert_allclose(xpnn.to_numpy(ys), want_ys, rtol=1e-10, atol=1e-10)
    loss = float(net.loss(net.asarray(xs), net.asarray(ds), h0=state))
    assert loss == pytest.approx(want_loss, rel=1e-10, abs=1e-10)
    assert set(grads) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(
            xpnn.to_numpy(grads[key]), value, rtol=1e-10, atol=1e-10, err_msg=key
        )


@pytest.mark.parametrize("cell", CELLS)
def test_torch_weights_load_into_xpnn(backend, device, cell):
    """torch -> xpnn: a torch module's own (non-zero) weights and biases, read with
    ``from_params(..., cell=...)``, give torch's outputs."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    torch.manual_seed(0)
    kind = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    module = kind(3, 5, dtype=torch.float64)
    xs = np.random.default_rng(1).normal(size=(6, 2, 3))
    with torch.no_grad():
        want = module(torch.from_numpy(xs))[0].numpy()
    params = {**_from_torch(cell, module), "W_out": np.eye(5), "b_out": np.zeros(5)}
    net = xpnn.RNN.from_params(params, cell=cell, output="identity", backend=backend, device=device)
    assert (net.input_size, net.hidden_size, net.output_size) == (3, 5, 5)
    got = xpnn.to_numpy(net.predict(net.asarray(xs)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# -- states, shapes, parameters ---------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", *CELLS])
def test_parameter_shapes_follow_the_gate_count(backend, device, cell):
    net = xpnn.RNN(3, 4, 2, cell=cell, bias=True, backend=backend, device=device)
    g = GATES[cell]
    want = {"W_in": (3, g * 4), "W": (4, g * 4), "W_out": (4, 2), "b": (g * 4,), "b_out": (2,)}
    if cell == "gru":
        want["b_h"] = (g * 4,)
    assert {key: tuple(value.shape) for key, value in net.params.items()} == want
    assert net.config["cell"] == cell
    copy = xpnn.RNN.from_params(net.params, cell=cell, backend=backend, device=device)
    assert (copy.input_size, copy.hidden_size, copy.output_size, copy.bias) == (3, 4, 2, True)


@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_over_equals_one_run(backend, device, cell):
    net = xpnn.RNN(I, H, O, cell=cell, bias=True, init="xavier", backend=backend, device=device)
    _with_random_biases(net, seed=0)
    xs = net.asarray(np.random.default_rng(2).normal(size=(T, B, I)))
    ys, cache = net.forward(xs)
    _, first = net.forward(xs[:2, ...])
    second = net.predict(xs[2:, ...], h0=first.states[-1])
    np.testing.assert_allclose(xpnn.to_numpy(second), xpnn.to_numpy(ys[2:, ...]), rtol=1e-12)
    if cell == "lstm":
        h, c = cache.states[-1]
        assert tuple(h.shape) == tuple(c.shape) == (B, H)
        assert xpnn.to_numpy(cache.hs[-1, ...]).tobytes() == xpnn.to_numpy(h).tobytes()


# -- bad input ---------------------------------------------------------------------------


def test_unknown_cell_is_refused():
    with pytest.raises(XpnnValueError, match=r"unknown cell 'lstn'; expected one of rnn, lstm"):
        xpnn.RNN(2, 3, 1, cell="lstn")
    with pytest.raises(XpnnValueError, match="unknown cell"):
        xpnn.RNN.from_params({"W_in": np.ones((2, 3))}, cell=4)


def test_hidden_activation_applies_to_the_simple_rnn_only():
    with pytest.raises(XpnnValueError, match=r"hidden applies to cell 'rnn' only.*'relu'"):
        xpnn.RNN(2, 3, 1, cell="lstm", hidden="relu")
    assert xpnn.RNN(2, 3, 1, cell="gru", hidden="tanh").hidden == "tanh"


@pytest.mark.parametrize(
    ("cell", "make_h0", "match"),
    [
        ("lstm", lambda h: h, r"h0 of an lstm must be the pair \(h0, c0\).*got ndarray"),
        ("lstm", lambda h: (h,), r"must be the pair .*got tuple of length 1"),
        ("lstm", lambda h: (h, h[:, :1]), r"h0\[1\] must have shape \(2, 2\), got \(2, 1\)"),
        ("gru", lambda h: (h, h), r"h0 of a gru cell must be one .* array, got a tuple"),
        ("rnn", lambda h: [h, h], r"h0 of a rnn cell must be one .* array, got a list"),
    ],
)
def test_initial_state_must_fit_the_cell(cell, make_h0, match):
    net = xpnn.RNN(I, H, O, cell=cell)
    before = {key: value.copy() for key, value in net.params.items()}
    with pytest.raises(XpnnValueError, match=match):
        net.forward(np.zeros((T, B, I)), h0=make_h0(np.zeros((B, H))))
    for key, value in before.items():
        np.testing.assert_array_equal(net.params[key], value)


@pytest.mark.parametrize(
    ("cell", "params", "match"),
    [
        (
            "lstm",
            {"W_in": np.ones((2, 6)), "W": np.ones((3, 6)), "W_out": np.ones((3, 1))},
            r"W_in must have G\*H columns, a multiple of the lstm cell's 4 gates, got "
            r"shape \(2, 6\)",
        ),
        (
            "gru",
            {"W_in": np.ones((2, 6)), "W": np.ones((2, 6)), "W_out": np.ones((2, 1)),
             "b": np.ones(6), "b_out": np.ones(1)},
            r"a gru with the input bias b needs the recurrent bias b_h",
        ),
        (
            "gru",
            {"W_in": np.ones((2, 6)), "W": np.ones((3, 6)), "W_out": np.ones((2, 1))},
            r"W must have shape \(2, 6\), got \(3, 6\)",
        ),
        (
            "lstm",
            {"W_in": np.ones((2, 8)), "W": np.ones((2, 8)), "W_out": np.ones((2, 1)),
             "b": np.ones(8), "b_h": np.ones(8), "b_out": np.ones(1)},
            r"params must have the keys \['W', 'W_in', 'W_out', 'b', 'b_out'\]",
        ),
    ],
)  # fmt: skip
def test_from_params_refuses_arrays_that_do_not_fit_the_cell(cell, params, match):
    with pytest.raises(XpnnValueError, match=match):
        xpnn.RNN.from_params(params, cell=cell)


# -- the compiled step ------------------------------------------------------------------


def _compiled_against_eager(backend, device, cell, many_to_one):
    """100 Adam steps with truncated BPTT and clipping, compiled and eager, float64."""
    from xpnn.training.step import make_step

    net = xpnn.RNN(
        2, 3, 1, cell=cell, bias=True, many_to_one=many_to_one, init="xavier", seed=2,
        output="identity", backend=backend, device=device,
    )  # fmt: skip
    opt = xpnn.Adam(0.01)
    eager = make_step(net, opt, truncate=2, clip=0.5, compile="off")
    compiled = make_step(net, opt, truncate=2, clip=0.5, compile="on")
    assert compiled.compiled and not eager.compiled
    xs, ds = xpnn.datasets.AddingProblemStream(3, steps=5, seed=0).batches(0, 100)
    if not many_to_one:
        ds = np.broadcast_to(ds, (5, *ds.shape))  # the running target at every step
    p_e = p_c = net.params
    s_e = s_c = opt.init(net.params)
    for i in range(100):
        x, d = net.asarray(xs[:, 3 * i : 3 * i + 3]), net.asarray(ds[..., 3 * i : 3 * i + 3, :])
        p_e, s_e, l_e = eager(p_e, s_e, x, d)
        p_c, s_c, l_c = compiled(p_c, s_c, x, d)
    assert float(l_c) == pytest.approx(float(l_e), rel=1e-12, abs=1e-12)
    for key in p_e:
        got, want = xpnn.to_numpy(p_c[key]), xpnn.to_numpy(p_e[key])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_compiled_step_equals_eager_on_jax(backend, device, cell, many_to_one):
    if backend != "jax":
        pytest.skip(f"{backend}: this case is jax.jit's (torch.compile's is below)")
    _compiled_against_eager(backend, device, cell, many_to_one)


@pytest.mark.slow
@pytest.mark.slow_compile
@pytest.mark.parametrize("cell", CELLS)
def test_compiled_step_equals_eager_on_torch(backend, device, cell):
    if backend != "torch":
        pytest.skip(f"{backend}: this case is torch.compile's")
    _compiled_against_eager(backend, device, cell, many_to_one=True)


# -- checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_checkpoint_keeps_the_cell(backend, device, cell, tmp_path):
    net = xpnn.RNN(I, H, O, cell=cell, bias=True, init="xavier", backend=backend, device=device)
    _with_random_biases(net, seed=1)
    path = xpnn.checkpoint.save(tmp_path / "net.npz", net)
    back = xpnn.checkpoint.load(path, backend=backend, device=device).model
    assert back.config == net.config and back.config["cell"] == cell
    xs = net.asarray(np.random.default_rng(0).normal(size=(T, B, I)))
    np.testing.assert_array_equal(xpnn.to_numpy(back.predict(xs)), xpnn.to_numpy(net.predict(xs)))


def test_a_checkpoint_of_one_cell_is_not_resumed_as_another(tmp_path):
    from xpnn.errors import CheckpointError
    from xpnn.training.resume import Checkpointer

    lstm = xpnn.RNN(2, 3, 1, cell="lstm")
    xpnn.checkpoint.save(tmp_path / Checkpointer.FILENAME, lstm, xpnn.SGD(0.1), step=1)
    gru = xpnn.RNN(2, 3, 1, cell="gru")
    before = {key: value.copy() for key, value in gru.params.items()}
    checkpointer = Checkpointer(tmp_path, every=1, settings={}, resume=True)
    with checkpointer.lock, pytest.raises(CheckpointError, match="another model"):
        checkpointer.begin(gru, xpnn.SGD(0.1), iters=5)
    for key, value in before.items():
        np.testing.assert_array_equal(gru.params[key], value)


def test_the_adding_problems_test_pass_gives_the_eager_predictions(backend):
    from xpnn.backends import compiler_for
    from xpnn.course.networks import adding_network
    from xpnn.course.notebooks import _outputs

    net = adding_network(cell="lstm", hidden_size=4, backend=backend)
    xs, _ = xpnn.datasets.adding_problem(7, steps=12, seed=3)
    eager = xpnn.to_numpy(net.predict(net.asarray(xs)))
    got = _outputs(net, xs, "auto")
    assert got.shape == eager.shape == (7, 1)
    if compiler_for(backend, "auto", steps=1) is None:  # the same eager pass
        np.testing.assert_array_equal(got, eager)
    else:  # jax.jit: one lax.scan over the steps
        np.testing.assert_allclose(got, eager, rtol=1e-12, atol=1e-15)


# -- the command line ------------------------------------------------------------------------


def test_adding_problem_command_reports_the_baseline(capsys):
    from xpnn import cli

    argv = ["train", "adding-problem", "--cell", "gru", "--steps", "6", "--iters", "30"]
    assert cli.main([*argv, "--n-test", "200", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["cell"] == "gru" and summary["config"]["steps"] == 6
    _, ds = xpnn.datasets.adding_problem(200, steps=6, seed=1)  # the run's test set
    assert summary["baseline_mse"] == pytest.approx(float(np.mean((ds - 1.0) ** 2)))
    assert 0.0 < summary["test_mse"] < 1.0


@pytest.mark.parametrize("run", ["binary-addition", "sine"])
def test_cell_option_on_the_notebook_runs(run, tmp_path, capsys):
    from xpnn import cli

    argv = ["train", run, "--cell", "lstm", "--iters", "5", "--quiet"]
    assert cli.main([*argv, "--checkpoint", str(tmp_path)]) == 0
    saved = xpnn.checkpoint.load(tmp_path / "checkpoint.npz")
    assert saved.model.config["cell"] == "lstm" and saved.model.hidden_size in (5, 16)
    assert tuple(saved.model.params["W"].shape) == (
        saved.model.hidden_size,
        4 * saved.model.hidden_size,
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["binary-addition", "--cell", "gru", "--activation", "relu"], "--activation applies"),
        (["adding-problem", "--steps", "1"], "steps must be an integer of at least 2"),
        (["sine", "--cell", "lstn"], "invalid choice: 'lstn'"),
    ],
)
def test_bad_cell_command_lines_exit_2(argv, match, capsys):
    from xpnn import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", *argv])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_an_interrupted_lstm_run_resumes_bit_exactly(tmp_path):
    from xpnn.course import notebooks
    from xpnn.course.settings import AddingProblem

    class Interrupt(Exception):
        pass

    def stop_at_40(text: str) -> None:
        if text.startswith("iters:40 "):
            raise Interrupt(text)

    small = {"steps": 5, "hidden_size": 4, "iters": 60, "log_every": 20, "n_test": 10}
    whole = notebooks.adding_problem(AddingProblem(**small), echo=None)
    with pytest.raises(Interrupt):
        notebooks.adding_problem(
            AddingProblem(**small, checkpoint=tmp_path, checkpoint_every=30), echo=stop_at_40
        )
    assert xpnn.checkpoint.load(tmp_path / "checkpoint.npz").step == 30
    resumed = notebooks.adding_problem(
        AddingProblem(**small, checkpoint=tmp_path, checkpoint_every=30, resume=True), echo=None
    )
    for key, value in whole.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[key], value)
    assert resumed.train.history == whole.train.history


def test_one_tanh_activates_every_lstm_gate_to_the_bit(backend, device):
    """``tanh(a * scale) * scale + shift`` is ``0.5 * tanh(0.5 * a) + 0.5`` on the gates
    ``i, f, o`` and ``tanh(a)`` on ``g``, bit for bit, at zeros, tiny, ordinary, large
    and infinite pre-activations."""
    from xpnn.nn.cells import LSTMCell

    net = xpnn.RNN(I, 3, O, cell="lstm", backend=backend, device=device)
    xp, size = net.xp, 3
    values = [0.0, -0.0, 1e-310, -1e-30, 0.3, -2.5, 17.0, -40.0, 1e4, float("inf"), -float("inf")]
    rows = np.array(values)[:, None] * np.linspace(0.5, 2.0, 4 * size)[None, :]
    a = net.asarray(rows)
    cell = LSTMCell()
    _, _, (gates, _) = cell.step_forward(a, None, cell.prepare_forward(net.params, xp), xp)
    sigmoid = 0.5 * xp.tanh(0.5 * a) + 0.5  # the gates' sigmoid before the single tanh
    expected = xp.concat(
        [sigmoid[:, : 2 * size], xp.tanh(a[:, 2 * size : 3 * size]), sigmoid[:, 3 * size :]],
        axis=1,
    )
    assert gates.dtype == a.dtype
    assert bool(xp.all(gates == expected))


@pytest.mark.parametrize(
    ("cell", "hidden", "width"),
    [
        ("rnn", "sigmoid", 0),
        ("rnn", "tanh", 0),
        ("rnn", "relu", 1),
        ("lstm", None, 5),
        ("gru", None, 4),
    ],
)
def test_a_step_caches_no_state(cell, hidden, width):
    """The driver stacks the states anyway: a step's cache holds only what they do not
    (the LSTM: four gates and tanh(c); the GRU: r, z, n and h @ W_n; the simple RNN: u
    where the activation's slope reads it), ``width`` times ``H`` columns in all."""
    net = xpnn.RNN(I, H, O, cell=cell, hidden=hidden)
    xp, step = net.xp, net.cell
    ux = net.asarray(np.ones((B, GATES[cell] * H)))
    params = step.prepare_forward(net.params, xp)
    state, _, _ = step.step_forward(ux, None, params, xp)
    _, _, cache = step.step_forward(ux, state, params, xp)
    assert sum(a.shape[1] for a in cache) == width * H
