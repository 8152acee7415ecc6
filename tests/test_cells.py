"""The recurrent cells (``xpnn.nn.cells``): the same numbers as PyTorch (``torch.nn.LSTM``
and ``torch.nn.GRU`` with the weights mapped both ways, torch autograd for the simple
RNN), a state carried over, the cells' own arithmetic, checkpoints and command lines that
keep the cell, and the refusals of input that does not fit a cell.

Every cell's gradient is checked on the driver's matrix (tests/test_rnn.py); the compiled
step of every cell against the eager one in tests/test_scan.py and tests/test_compile.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sequences import with_random_biases

import xpnn
from xpnn.errors import CheckpointError, XpnnValueError
from xpnn.nn.cells import LSTMCell

KINDS = [("rnn", "sigmoid"), ("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
T, B, I, H, O = 4, 2, 2, 2, 3  # noqa: E741


def _ids(value: object) -> str:
    return "-".join(str(v) for v in value if v) if isinstance(value, tuple) else str(value)


# -- against PyTorch -------------------------------------------------------------------


def _torch_module(cell: str, params: dict[str, np.ndarray]):
    """A float64 ``torch.nn.LSTM`` / ``torch.nn.GRU`` holding xpnn's parameters.

    xpnn's ``W_in`` ``(I, G*H)`` is torch's ``weight_ih_l0`` ``(G*H, I)`` transposed, ``W``
    likewise ``weight_hh_l0``; ``b`` is ``bias_ih_l0``; the GRU's ``b_h`` is ``bias_hh_l0``
    and the LSTM, whose two biases only ever appear summed, gets ``bias_hh_l0 = 0``.
    """
    import torch

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


def _torch_hidden_states(cell: str, hidden: str | None, host: dict, xs, h0):
    """The hidden states ``(T, B, H)`` in torch, and the leaf tensors of ``W_in``, ``W``
    and the biases (xpnn's layout) whose ``.grad`` autograd fills: the gated cells run as
    torch's own modules, the simple RNN as its recurrence written in torch."""
    import torch

    if cell != "rnn":
        module = _torch_module(cell, host)
        state = tuple(torch.from_numpy(s[None, ...]) for s in h0)
        out, _ = module(torch.from_numpy(xs), state if cell == "lstm" else state[0])
        leaves = {"W_in": module.weight_ih_l0, "W": module.weight_hh_l0, "b": module.bias_ih_l0}
        if cell == "gru":
            leaves["b_h"] = module.bias_hh_l0
        return out, leaves, module
    leaves = {k: torch.tensor(host[k], requires_grad=True) for k in ("W_in", "W", "b")}
    f = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[hidden]
    h, out = torch.from_numpy(h0[0]), []
    for x in torch.from_numpy(xs):
        h = f(x @ leaves["W_in"] + leaves["b"] + h @ leaves["W"])
        out.append(h)
    return torch.stack(out), leaves, None


def _torch_run(cell, hidden, host, xs, ds, h0, many_to_one):
    """Torch's outputs, loss (xpnn's squared error: ``0.5 * sum / B``, summed over time)
    and gradients in xpnn's layout."""
    import torch

    hs, leaves, module = _torch_hidden_states(cell, hidden, host, xs, h0)
    w_out = torch.tensor(host["W_out"], requires_grad=True)
    b_out = torch.tensor(host["b_out"], requires_grad=True)
    ys = (hs[-1] if many_to_one else hs) @ w_out + b_out
    loss = 0.5 * torch.sum((ys - torch.from_numpy(ds)) ** 2) / xs.shape[1]
    loss.backward()
    grads = {"W_out": w_out.grad.numpy(), "b_out": b_out.grad.numpy()}
    for key, leaf in leaves.items():
        grads[key] = leaf.grad.numpy().T if key.startswith("W") and module else leaf.grad.numpy()
    if cell == "lstm":  # the two LSTM biases are one parameter in xpnn: the same gradient
        np.testing.assert_allclose(module.bias_hh_l0.grad.numpy(), grads["b"], rtol=1e-12)
    return ys.detach().numpy(), float(loss.detach()), grads


@pytest.mark.oracle
@pytest.mark.parametrize("many_to_one", [False, True])
@pytest.mark.parametrize("kind", KINDS, ids=_ids)
def test_same_numbers_as_torch(backend, device, kind, many_to_one):
    """xpnn -> torch: the same outputs, loss and gradients to 1e-10 in float64, from a
    non-zero initial state, with non-zero biases."""
    pytest.importorskip("torch", reason="torch is the oracle")
    cell, hidden = kind
    rng = np.random.default_rng(7)
    steps, batch, inputs, size, outputs = 5, 3, 2, 4, 2
    net = xpnn.RNN(
        inputs, size, outputs, cell=cell, hidden=hidden, output="identity", bias=True,
        many_to_one=many_to_one, init="xavier", seed=4, backend=backend, device=device,
    )  # fmt: skip
    with_random_biases(net, seed=5)
    host = {key: xpnn.to_numpy(value) for key, value in net.params.items()}
    xs = rng.normal(size=(steps, batch, inputs))
    ds = rng.normal(size=((batch,) if many_to_one else (steps, batch)) + (outputs,))
    h0 = [rng.normal(size=(batch, size)) for _ in range(2 if cell == "lstm" else 1)]
    want_ys, want_loss, want = _torch_run(cell, hidden, host, xs, ds, h0, many_to_one)

    state = tuple(net.asarray(s) for s in h0) if cell == "lstm" else net.asarray(h0[0])
    ys, cache = net.forward(net.asarray(xs), h0=state)
    grads = net.backward(cache, net.asarray(ds))
    np.testing.assert_allclose(xpnn.to_numpy(ys), want_ys, rtol=1e-10, atol=1e-10)
    loss = float(net.core.loss(cache, net.asarray(ds)))
    assert loss == pytest.approx(want_loss, rel=1e-10, abs=1e-10)
    assert set(grads) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(
            xpnn.to_numpy(grads[key]), value, rtol=1e-10, atol=1e-10, err_msg=key
        )


@pytest.mark.oracle
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_weights_load_into_xpnn(backend, device, cell):
    """torch -> xpnn: a torch module's own (non-zero) weights and biases, read with
    ``from_params(..., cell=...)``, give torch's outputs."""
    torch = pytest.importorskip("torch", reason="torch is the oracle")
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


# -- states and the cells' own arithmetic ---------------------------------------------------


@pytest.mark.oracle
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_state_carried_over_equals_one_run(backend, device, cell):
    """Two halves, the second from the first's final state (the LSTM's pair), give the
    outputs of one run; the LSTM's ``h`` is the state's first half, bit for bit."""
    net = xpnn.RNN(I, H, O, cell=cell, bias=True, init="xavier", backend=backend, device=device)
    with_random_biases(net, seed=0)
    xs = net.asarray(np.random.default_rng(2).normal(size=(T, B, I)))
    ys, cache = net.forward(xs)
    _, first = net.forward(xs[:2, ...])
    second = net.predict(xs[2:, ...], h0=first.state_at(-1))
    np.testing.assert_allclose(xpnn.to_numpy(second), xpnn.to_numpy(ys[2:, ...]), rtol=1e-12)
    if cell == "lstm":
        h, c = cache.state_at(-1)
        assert tuple(h.shape) == tuple(c.shape) == (B, H)
        assert xpnn.to_numpy(cache.hs[-1, ...]).tobytes() == xpnn.to_numpy(h).tobytes()


@pytest.mark.oracle
def test_one_tanh_activates_every_lstm_gate_to_the_bit(backend, device):
    """``tanh(a * scale) * scale + shift`` is ``0.5 * tanh(0.5 * a) + 0.5`` on the gates
    ``i, f, o`` and ``tanh(a)`` on ``g``, bit for bit, at zeros, tiny, ordinary, large
    and infinite pre-activations."""
    net = xpnn.RNN(I, 3, O, cell="lstm", backend=backend, device=device)
    xp, size = net.xp, 3
    values = [0.0, -0.0, 1e-310, -1e-30, 0.3, -2.5, 17.0, -40.0, 1e4, float("inf"), -float("inf")]
    rows = np.array(values)[:, None] * np.linspace(0.5, 2.0, 4 * size)[None, :]
    a = net.asarray(rows)
    cell = LSTMCell()
    # h_prev = 0: the pre-activation is ux alone
    zeros = cell.zero_state(a[:, :size], xp, net.device)
    _, (_, (gates, _)) = cell.step_forward(cell.prepare_forward(net.params, xp), xp, zeros, a)
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
    _, cache = net.forward(np.ones((T, B, I)))
    assert all(tuple(a.shape[:2]) == (T, B) for a in cache.steps)
    assert sum(a.shape[2] for a in cache.steps) == width * H


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_parameter_shapes_follow_the_gate_count(cell):
    net = xpnn.RNN(3, 4, 2, cell=cell, bias=True)
    g = GATES[cell]
    want = {"W_in": (3, g * 4), "W": (4, g * 4), "W_out": (4, 2), "b": (g * 4,), "b_out": (2,)}
    if cell == "gru":
        want["b_h"] = (g * 4,)
    assert {key: tuple(value.shape) for key, value in net.params.items()} == want
    assert net.config["cell"] == cell
    copy = xpnn.RNN.from_params(net.params, cell=cell)
    assert (copy.input_size, copy.hidden_size, copy.output_size, copy.bias) == (3, 4, 2, True)


@pytest.mark.oracle
def test_the_adding_problems_test_pass_gives_the_eager_error(backend):
    """The course run's test pass compiles like its step (on JAX one ``lax.scan`` under
    ``jax.jit``): its test MSE is that of the trained model's eager predictions, to
    1e-12 (elsewhere it is the eager pass itself)."""
    from xpnn.course import notebooks
    from xpnn.course.settings import AddingProblem

    settings = AddingProblem(
        iters=3, steps=12, hidden_size=4, n_test=7, log_every=1, backend=backend
    )
    result = notebooks.adding_problem(settings, echo=None)
    net = result.model
    xs, ds = xpnn.datasets.adding_problem(7, steps=12, seed=settings.seed + 1)  # its test set
    eager = float(((xpnn.to_numpy(net.predict(net.asarray(xs))) - ds) ** 2).mean())
    assert result.metrics["test_mse"] == pytest.approx(eager, rel=1e-12, abs=1e-15)


# -- checkpoints and resumed runs keep the cell ---------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_checkpoint_keeps_the_cell(cell, tmp_path):
    net = xpnn.RNN(I, H, O, cell=cell, bias=True, init="xavier")
    with_random_biases(net, seed=1)
    path = xpnn.checkpoint.save(tmp_path / "net.npz", net)
    back = xpnn.checkpoint.load(path).model
    assert back.config == net.config and back.config["cell"] == cell
    xs = net.asarray(np.random.default_rng(0).normal(size=(T, B, I)))
    np.testing.assert_array_equal(back.predict(xs), net.predict(xs))


def test_a_checkpoint_of_one_cell_is_not_resumed_as_another(tmp_path):
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
    size = saved.model.hidden_size
    assert saved.model.config["cell"] == "lstm" and size in (5, 16)
    assert tuple(saved.model.params["W"].shape) == (size, 4 * size)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["binary-addition", "--cell", "gru", "--activation", "relu"], "--activation"),
        (["adding-problem", "--steps", "1"], "--steps"),
        (["sine", "--cell", "lstn"], "--cell"),
    ],
)
def test_bad_cell_command_lines_exit_2(argv, flag, capsys):
    from xpnn import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["train", *argv])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


# -- input that does not fit the cell (an unknown cell: tests/test_errors.py) ---------------


def test_the_hidden_activation_applies_to_the_simple_rnn_only():
    with pytest.raises(XpnnValueError) as info:
        xpnn.RNN(2, 3, 1, cell="lstm", hidden="relu")
    assert info.value.argument == "hidden"
    assert xpnn.RNN(2, 3, 1, cell="gru", hidden="tanh").hidden == "tanh"


@pytest.mark.parametrize(
    ("cell", "make_h0", "argument"),
    [
        ("lstm", lambda h: h, "h0"),  # one array, not the pair
        ("lstm", lambda h: (h,), "h0"),  # a pair of one
        ("lstm", lambda h: (h, h[:, :1]), "h0[1]"),  # c0 of the wrong width
        ("gru", lambda h: (h, h), "h0"),  # a pair for a cell of one state
        ("rnn", lambda h: [h, h], "h0"),
    ],
    ids=["lstm-one", "lstm-pair-of-one", "lstm-narrow-c0", "gru-pair", "rnn-list"],
)
def test_an_initial_state_must_fit_the_cell(cell, make_h0, argument):
    net = xpnn.RNN(I, H, O, cell=cell)
    before = {key: value.copy() for key, value in net.params.items()}
    with pytest.raises(XpnnValueError) as info:
        net.forward(np.zeros((T, B, I)), h0=make_h0(np.zeros((B, H))))
    assert info.value.argument == argument
    for key, value in before.items():
        np.testing.assert_array_equal(net.params[key], value)


@pytest.mark.parametrize(
    ("cell", "params", "argument"),
    [
        (  # 6 columns: not a multiple of the LSTM's 4 gates
            "lstm",
            {"W_in": np.ones((2, 6)), "W": np.ones((3, 6)), "W_out": np.ones((3, 1))},
            "W_in",
        ),
        (  # the GRU's input bias without its recurrent one
            "gru",
            {"W_in": np.ones((2, 6)), "W": np.ones((2, 6)), "W_out": np.ones((2, 1)),
             "b": np.ones(6), "b_out": np.ones(1)},
            "params",
        ),
        (  # W (3, 6) where H = 6 / 3 = 2
            "gru",
            {"W_in": np.ones((2, 6)), "W": np.ones((3, 6)), "W_out": np.ones((2, 1))},
            "W",
        ),
        (  # b_h belongs to the GRU
            "lstm",
            {"W_in": np.ones((2, 8)), "W": np.ones((2, 8)), "W_out": np.ones((2, 1)),
             "b": np.ones(8), "b_h": np.ones(8), "b_out": np.ones(1)},
            "params",
        ),
    ],
    ids=["lstm-gates", "gru-without-b_h", "gru-W-shape", "lstm-with-b_h"],
)  # fmt: skip
def test_from_params_refuses_arrays_that_do_not_fit_the_cell(cell, params, argument):
    with pytest.raises(XpnnValueError) as info:
        xpnn.RNN.from_params(params, cell=cell)
    assert info.value.argument == argument
