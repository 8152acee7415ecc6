"""xpnn: the networks of a deep-learning course, written once against the array API standard."""

from xpnn import checkpoint, datasets
from xpnn.backends import available_backends, get_namespace, to_numpy
from xpnn.errors import (
    BackendUnavailable,
    CheckpointError,
    TrainingDiverged,
    XpnnAttributeError,
    XpnnError,
    XpnnTypeError,
    XpnnValueError,
)
from xpnn.gradcheck import gradient_check
from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN
from xpnn.optim import SGD, AdaGrad, Adam, Momentum, RMSProp
from xpnn.step import make_step
from xpnn.training.state import TrainState
from xpnn.training.train import train

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "RNN",
    "SGD",
    "AdaGrad",
    "Adam",
    "BackendUnavailable",
    "CheckpointError",
    "Momentum",
    "RMSProp",
    "TrainState",
    "TrainingDiverged",
    "XpnnAttributeError",
    "XpnnError",
    "XpnnTypeError",
    "XpnnValueError",
    "available_backends",
    "checkpoint",
    "datasets",
    "get_namespace",
    "gradient_check",
    "make_step",
    "to_numpy",
    "train",
]
