"""The math: activations, losses, initialisers, and the models with their
hand-written backward passes (``core`` documents the unchecked functions they share)."""

from xpnn.nn.mlp import MLP
from xpnn.nn.rnn import RNN

MODELS = {"MLP": MLP, "RNN": RNN}
"""The model classes by the name their ``config["model"]`` gives (what a checkpoint stores)."""
