"""Seed 001, one backpropagation step by hand, read top to bottom like the notebook.

A 2-3-2 network (ReLU hidden layer, softmax output, cross-entropy loss), one input,
one target, one SGD step with learning rate 0.01. Every intermediate value is printed;
compare with the notebook: u1 = [1.2 2.5 3.8], y = [0.08706577 0.91293423], ...

    python examples/backprop_step.py [--backend torch]
"""

import argparse

import xpnn

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default="numpy")
backend = parser.parse_args().backend

# The notebook's weights and biases.
net = xpnn.MLP.from_params(
    {
        "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
        "b1": [0.1, 0.2, 0.3],
        "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
        "b2": [0.1, 0.2],
    },
    hidden="relu",
    output="softmax",
    loss="cross_entropy",
    backend=backend,
)
xp = net.xp  # the array namespace: numpy, torch, jax.numpy, ... all look alike from here

x = net.asarray([[1.0, 5.0]])  # input, batch of 1
d = net.asarray([[0.0, 1.0]])  # target, one-hot

# Forward: the model keeps what backward needs in the cache.
y, cache = net.forward(x)
print("u1 =", xpnn.to_numpy(cache.us[0]))  # x @ W1 + b1
print("z1 =", xpnn.to_numpy(cache.zs[1]))  # relu(u1)
print("u2 =", xpnn.to_numpy(cache.us[1]))  # z1 @ W2 + b2
print("y  =", xpnn.to_numpy(y))  # softmax(u2)
print("loss =", float(net.loss(x, d)))

# Backward by hand, written out as in the notebook.
delta2 = (y - d) / 1  # dE/du2: softmax + cross-entropy, divided by the batch size 1
delta1 = xp.matmul(delta2, net.params["W2"].T) * xp.astype(cache.us[0] > 0, y.dtype)  # dE/du1
print("dE/du2 =", xpnn.to_numpy(delta2))
print("dE/du1 =", xpnn.to_numpy(delta1))
grads = {
    "W1": xp.matmul(x.T, delta1),
    "b1": xp.sum(delta1, axis=0),
    "W2": xp.matmul(cache.zs[1].T, delta2),
    "b2": xp.sum(delta2, axis=0),
}

# The library's backward gives the same numbers.
library = net.backward(cache, d)
for key in grads:
    print(
        f"grad {key} =",
        xpnn.to_numpy(grads[key]).round(8).tolist(),
        "(same as net.backward)" if bool(xp.all(grads[key] == library[key])) else "DIFFERS",
    )

# One SGD step: a new dict of parameters, nothing written in place.
# (SGD keeps no state: its state is {} before and after the step.)
net.params, _state = xpnn.SGD(lr=0.01).update(net.params, grads, {})
for key, value in net.params.items():
    print(f"new {key} =", xpnn.to_numpy(value))
