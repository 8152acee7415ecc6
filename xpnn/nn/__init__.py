"""The math: activations, losses, initialisers, and the models with their
hand-written backward passes."""
