"""The pure core at its public boundary (issue 18, items 1 to 5): ``make_step``'s step
checks its arguments the first time it meets their structure, the optimisers check their
arguments and are frozen, and optimiser state values are checked where a state enters
(``train``, a checkpoint's load)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import checkpoint, datasets
from xpnn.backends import device_of, namespace_of
from xpnn.checkpoint import load, save
from xpnn.errors import CheckpointError, XpnnAttributeError, XpnnTypeError, XpnnValueError
from xpnn.optim import OPTIMIZERS, SGD, AdaGrad, Adam, Momentum, RMSProp
from xpnn.training.step import make_step
from xpnn.training.loop import train


def _mlp(backend, device, dtype="float64", sizes=(3, 4, 2)):
    return xpnn.MLP(list(sizes), seed=0, backend=backend, device=device, dtype=dtype)


def _batch(net, rows=5):
    rng = np.random.default_rng(0)
    x = net.asarray(rng.normal(size=(rows, net.sizes[0])))
    d = net.asarray(rng.uniform(size=(rows, net.sizes[-1])))
    return x, d


def _bits(tree):
    return {k: np.ascontiguousarray(xpnn.to_numpy(v)).tobytes() for k, v in tree.items()}


# -- 1. the step checks its arguments, eager or compiled ------------------------------------


def _without_b2(net, params, state, x, d):
    return {k: v for k, v in params.items() if k != "b2"}, state, x, d


def _extra_param(net, params, state, x, d):
    return {**params, "W9": params["W1"]}, state, x, d


def _transposed_w1(net, params, state, x, d):
    return {**params, "W1": params["W1"].T}, state, x, d


def _momentum_state(net, params, state, x, d):
    return params, Momentum().init(params), x, d


def _state_of_a_wider_net(net, params, state, x, d):
    wider = _mlp(net.backend, net.device, dtype="float32", sizes=(3, 6, 2)).params
    return params, Adam().init(wider), x, d


def _broadcasting_targets(net, params, state, x, d):
    return params, state, x, d[:, :1]


def _float64_data(net, params, state, x, d):
    x64, d64 = _batch(_mlp(net.backend, net.device))  # a float64 model's (JAX: x64 on)
    return params, state, x64, d64


def _host_data(net, params, state, x, d):
    return params, state, xpnn.to_numpy(x).tolist(), d


def _params_none(net, params, state, x, d):
    return None, state, x, d


STEP_CASES = {
    "a parameter missing": (_without_b2, XpnnValueError, r"params must have the keys"),
    "an extra parameter": (_extra_param, XpnnValueError, r"params must have the keys"),
    "a parameter of the wrong shape": (_transposed_w1, XpnnValueError, r"W1 must have shape"),
    "another optimiser's state": (_momentum_state, XpnnValueError, r"state does not belong"),
    "state of other shapes": (_state_of_a_wider_net, XpnnValueError, r"state\['m.W1'\] must"),
    "targets that broadcast": (_broadcasting_targets, XpnnValueError, r"d must have shape"),
    "float64 data, float32 model": (_float64_data, XpnnTypeError, r"x has floating dtype"),
    "host data": (_host_data, XpnnTypeError, r"x must be an array of the model's backend"),
    "params not a dict": (_params_none, XpnnTypeError, r"params must be a dict"),
}


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_step_refuses_what_does_not_fit_the_model_and_optimiser(backend, device, case):
    """Refused with an XpnnError naming the argument, before any (compiled) call: never a
    raw KeyError or a backend's error, never a wrong loss or float64 parameters."""
    spoil, error, match = STEP_CASES[case]
    net = _mlp(backend, device, dtype="float32")
    opt = Adam(0.01)
    step = make_step(net, opt)  # "auto": compiled on JAX
    x, d = _batch(net)
    args = spoil(net, net.params, opt.init(net.params), x, d)
    with pytest.raises(error, match=match):
        step(*args)


def test_step_checks_each_structure_once(backend, device, monkeypatch):
    """The check runs when the step meets a structure; later calls with that structure
    skip it, another structure is checked again, and a bad one is refused even after
    good calls."""
    net = _mlp(backend, device)
    opt = Adam(0.01)
    x, d = _batch(net)
    calls = []
    check_array = type(net)._check_array

    def counted(self, *args, **kwargs):
        calls.append(args[0])
        return check_array(self, *args, **kwargs)

    monkeypatch.setattr(type(net), "_check_array", counted)  # the step checks on net.core
    step = make_step(net, opt)
    params, state, _loss = step(net.params, opt.init(net.params), x, d)
    assert calls
    # the step's output may differ in kind from init's (NumPy makes Adam's 0-d t a
    # numpy.float64): at most one more check, then none
    params, state, _loss = step(params, state, x, d)
    checked = len(calls)
    for _ in range(3):
        params, state, _loss = step(params, state, x, d)
    assert len(calls) == checked
    params, state, _loss = step(params, state, x[:3, ...], d[:3, ...])  # another batch size
    assert len(calls) > checked
    with pytest.raises(XpnnValueError, match=r"d must have shape"):
        step(params, state, x, d[:, :1])


def test_the_checked_step_gives_the_unchecked_numbers(backend, device):
    net = _mlp(backend, device)
    opt = Adam(0.01)
    step = make_step(net, opt, compile="off")
    x, d = _batch(net)
    checked = step(net.params, opt.init(net.params), x, d)
    raw = step.fn(net.params, opt.init(net.params), x, d)
    assert _bits(checked[0]) == _bits(raw[0])
    assert _bits(checked[1]) == _bits(raw[1])


# -- 5. make_step's own arguments --------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"steps": "abc"}, "steps"), ({"steps": 0}, "steps")],
)
def test_make_step_refuses_bad_step_counts(backend, device, kw, name):
    net = _mlp(backend, device)
    with pytest.raises(XpnnValueError, match=rf"^{name} must be an integer from 1"):
        make_step(net, SGD(), **kw)


# -- 2. the optimisers check their arguments ---------------------------------------------


def _params(backend, device):
    return _mlp(backend, device).params


def _grads(params):
    return {k: p * 0.5 for k, p in params.items()}


def _init_none(opt, params):
    opt.init(None)


def _init_empty(opt, params):
    opt.init({})


def _init_int_keys(opt, params):
    opt.init(dict(enumerate(params.values())))


def _init_lists(opt, params):
    opt.init({k: xpnn.to_numpy(p).tolist() for k, p in params.items()})


def _init_integers(opt, params):
    xp = namespace_of(params["W1"])
    opt.init({k: xp.astype(p, xp.int32) for k, p in params.items()})


def _update_params_none(opt, params):
    opt.update(None, _grads(params), opt.init(params))


def _update_int_keys(opt, params):
    keys = dict(enumerate(params))
    moved = {i: params[k] for i, k in keys.items()}
    opt.update(moved, {i: p * 0.5 for i, p in moved.items()}, {})


def _update_state_odd_keys(opt, params):
    opt.update(params, _grads(params), {**opt.init(params), 1: params["W1"]})


OPTIMIZER_CASES = {
    "init(None)": (_init_none, XpnnTypeError, r"^params must be a dict"),
    "init({})": (_init_empty, XpnnValueError, r"^params is empty"),
    "init: integer keys": (_init_int_keys, XpnnTypeError, r"^params must be keyed by strings"),
    "init: lists": (_init_lists, XpnnTypeError, r"^params\['W1'\] must be an array"),
    "init: integer arrays": (_init_integers, XpnnTypeError, r"^params\['W1'\] must have a real"),
    "update(None, ...)": (_update_params_none, XpnnTypeError, r"^params must be a dict"),
    "update: integer keys": (_update_int_keys, XpnnTypeError, r"^params must be keyed by strings"),
    "update: a state key not a string": (_update_state_odd_keys, XpnnValueError, r"^state does"),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_optimisers_refuse_bad_arguments_naming_them(backend, device, case):
    call, error, match = OPTIMIZER_CASES[case]
    params = _params(backend, device)
    for cls in OPTIMIZERS.values():
        with pytest.raises(error, match=match):
            call(cls(), params)


# -- 3. optimiser state values, where a state enters --------------------------------------


def _spoiled(opt, params, key, value):
    """``opt.init(params)`` with state array ``key`` filled with ``value``."""
    state = opt.init(params)
    a = state[key]
    xp = namespace_of(a)
    return {**state, key: xp.full(a.shape, value, dtype=a.dtype, device=device_of(a))}


BAD_STATES = {
    "Adam t negative": (Adam, "t", -3.0, r"state\['t'\] is the number of steps"),
    "Adam t fractional": (Adam, "t", 2.5, r"state\['t'\] is the number of steps"),
    "Adam v negative": (Adam, "v.W", -1.0, r"state\['v.W'\] holds negative values"),
    "RMSProp h negative": (RMSProp, "h.W", -1.0, r"state\['h.W'\] holds negative values"),
    "AdaGrad h negative": (AdaGrad, "h.W", -1.0, r"state\['h.W'\] holds negative values"),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_train_refuses_state_values_no_run_reaches(backend, device, case):
    cls, key, value, match = BAD_STATES[case]
    net = xpnn.RNN(2, 4, 1, seed=0, backend=backend, device=device)
    before = _bits(net.params)
    opt = cls(0.1)
    state = _spoiled(opt, net.params, key, value)
    with pytest.raises(XpnnValueError, match=match):
        train(net, opt, datasets.BinaryAdditionStream(2, bits=4), iters=3, state=state)
    assert _bits(net.params) == before


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_load_refuses_state_values_no_run_reaches(tmp_path, backend, device, case):
    cls, key, value, match = BAD_STATES[case]
    net = xpnn.RNN(2, 4, 1, seed=0, backend=backend, device=device)
    opt = cls(0.1)
    path = save(tmp_path / "c.npz", net, opt, step=3, state=_spoiled(opt, net.params, key, value))
    with pytest.raises(CheckpointError, match=match) as info:
        load(path, backend=backend, device=device)
    assert str(info.value).startswith(f"{path}: ")


def _set_step(path: Path, step: int) -> None:
    """Rewrite the checkpoint's step, with a fresh checksum: a well-formed file."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    arrays.pop("sha256")
    meta["step"] = step
    text = json.dumps(meta)
    digest = checkpoint._digest(text, arrays)
    np.savez(path, **arrays, meta=np.array(text), sha256=np.array(digest))


def test_a_step_behind_its_history_is_refused(tmp_path, backend, device):
    net = _mlp(backend, device)
    history = [(0, 1.0), (10, 0.5)]
    with pytest.raises(XpnnValueError, match=r"step 3 is behind its history"):
        save(tmp_path / "a.npz", net, Adam(), step=3, history=history)
    path = save(tmp_path / "b.npz", net, Adam(), step=10, history=history)  # a divergence's
    assert load(path, backend=backend, device=device).step == 10
    _set_step(path, 3)
    with pytest.raises(CheckpointError, match=r"step 3 is behind its history.* iteration 10"):
        load(path, backend=backend, device=device)


# -- 4. frozen optimisers ------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimisers_are_frozen(name):
    opt = OPTIMIZERS[name](0.1)
    for attribute in ("lr", "beta1", "anything"):
        with pytest.raises(XpnnAttributeError, match=rf"frozen: {attribute} .*with_"):
            setattr(opt, attribute, 1e-4)
    with pytest.raises(AttributeError, match="frozen"):
        del opt.lr
    assert opt.lr == 0.1
    other = opt.with_(lr=1e-4)
    assert type(other) is type(opt) and other is not opt
    assert other.hyperparameters == {**opt.hyperparameters, "lr": 1e-4}
    with pytest.raises(XpnnValueError, match=r"lr must be positive"):
        opt.with_(lr=-1.0)
    with pytest.raises(XpnnValueError, match=r"does not take nesterov"):
        opt.with_(nesterov=True)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_new_learning_rate_moves_every_backend_alike(backend, device, name):
    """``with_`` and a new step: the backend's numbers are NumPy's (float64)."""
    net = _mlp(backend, device)
    x, d = _batch(net)
    opt = OPTIMIZERS[name](0.1)
    step = make_step(net, opt)
    params, state, _loss = step(net.params, opt.init(net.params), x, d)
    slower = opt.with_(lr=1e-4)
    params, state, _loss = make_step(net, slower)(params, state, x, d)
    ref = _mlp("numpy", None)
    ref_x, ref_d = _batch(ref)
    ref_params, ref_state = ref.params, opt.init(ref.params)
    for o in (opt, slower):
        ref.params = ref_params
        _loss, grads = ref.loss_and_grad(ref_x, ref_d)
        ref_params, ref_state = o.update(ref_params, grads, ref_state)
    for key, value in ref_params.items():
        np.testing.assert_allclose(xpnn.to_numpy(params[key]), value, rtol=1e-10, atol=1e-15)
