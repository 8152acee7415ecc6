"""xpnn: the networks of a deep-learning course, written once against the array API standard.

An MLP trained with hand-written backpropagation, and recurrent networks (simple RNN,
LSTM, GRU) trained with backpropagation through time, on NumPy, CuPy, PyTorch, JAX,
array-api-strict or dask: the same code, the same numbers.

Quickstart::

    import xpnn

    rnn = xpnn.RNN(2, 16, 1, backend="numpy")  # the course's binary-addition RNN
    stream = xpnn.datasets.BinaryAdditionStream(batch_size=64, bits=8, seed=0)
    run = xpnn.train(rnn, xpnn.SGD(lr=2.0), stream, iters=200)
    run.step, run.history[-1]  # 200, (199, loss)
    run = xpnn.train(rnn, xpnn.SGD(lr=2.0), stream, iters=400, resume_from=run)

    x = rnn.asarray(xpnn.datasets.binary_addition(4, seed=1)[0])  # (T, B, I), time-major
    y, cache = rnn.forward(x)  # y: (T, B, O); cache feeds rnn.backward(cache, d)

``xpnn train binary-addition`` runs the same from the command line; ``xpnn --help``
lists the commands. Every refusal is an ``XpnnError`` (``XpnnValueError``,
``XpnnTypeError``, ``BackendUnavailable``, ``CheckpointError``, ...; ``xpnn.errors``)
naming the argument at fault (``error.argument``).
"""

import sys

from xpnn import datasets
from xpnn._version import __version__ as __version__
from xpnn.backends import available_backends, get_namespace, to_numpy
from xpnn.errors import BackendUnavailable as BackendUnavailable
from xpnn.errors import CheckpointError as CheckpointError
from xpnn.errors import TrainingDiverged, XpnnError
from xpnn.errors import XpnnAttributeError as XpnnAttributeError
from xpnn.errors import XpnnTypeError as XpnnTypeError
from xpnn.errors import XpnnValueError as XpnnValueError
from xpnn.nn.gradcheck import gradient_check
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN
from xpnn.optim import SGD, AdaGrad, Adam, Momentum, RMSProp
from xpnn.training import checkpoint
from xpnn.training.loop import train
from xpnn.training.resume import Checkpointer
from xpnn.training.state import LogEvent, TrainState
from xpnn.training.step import make_step

sys.modules[f"{__name__}.checkpoint"] = checkpoint  # ``import xpnn.checkpoint`` keeps working


__all__ = [
    "MLP",
    "RNN",
    "SGD",
    "AdaGrad",
    "Adam",
    "Checkpointer",
    "LogEvent",
    "Momentum",
    "RMSProp",
    "TrainState",
    "TrainingDiverged",
    "XpnnError",
    "available_backends",
    "checkpoint",
    "datasets",
    "get_namespace",
    "gradient_check",
    "make_step",
    "to_numpy",
    "train",
]
