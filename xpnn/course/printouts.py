"""The notebooks' printouts: their Japanese labels and progress lines, as text."""

from __future__ import annotations

from typing import Any

from xpnn import datasets
from xpnn.backends import to_numpy
from xpnn.training.state import LogEvent

HostArray = Any  # a numpy.ndarray


def backprop_sections(params: dict[str, HostArray], values: dict[str, HostArray]) -> list[str]:
    """Seed 001's printout: the initial ``params``, then the forward pass, the backward
    pass and the updated parameters from ``values`` (``backprop_step``'s result)."""
    sections = [
        (
            "##### ネットワークの初期化 #####",
            [
                ("重み1", params["W1"]),
                ("重み2", params["W2"]),
                ("バイアス1", params["b1"]),
                ("バイアス2", params["b2"]),
            ],
        ),
        (
            "##### 順伝播開始 #####",
            [
                ("総入力1 (u1)", values["u1"]),
                ("中間層出力1 (z1)", values["z1"]),
                ("総入力2 (u2)", values["u2"]),
                ("出力1 (y)", values["y"]),
            ],
        ),
        (
            "##### 誤差逆伝播開始 #####",
            [
                ("偏微分_dE/du2", values["dE/du2"]),
                ("偏微分_dE/du1", values["dE/du1"]),
                ("偏微分_重み1", values["grad_W1"]),
                ("偏微分_重み2", values["grad_W2"]),
                ("偏微分_バイアス1", values["grad_b1"]),
                ("偏微分_バイアス2", values["grad_b2"]),
            ],
        ),
        (
            "##### 更新後パラメータ #####",
            [
                ("重み1", values["new_W1"]),
                ("重み2", values["new_W2"]),
                ("バイアス1", values["new_b1"]),
                ("バイアス2", values["new_b2"]),
            ],
        ),
    ]
    lines = []
    for title, rows in sections:
        lines.append(title)
        lines.extend(f"*** {label} ***\n{value}\n" for label, value in rows)
        if title.startswith("##### 順伝播"):
            lines.append(
                f"出力合計: {values['y'].sum():.8g}\n誤差 (cross-entropy): {values['loss']}\n"
            )
    return lines


def loss_line(event: LogEvent, spec: str) -> str:
    """Notebooks 1_3 and 3_3: ``iters:I loss:L``, the loss formatted by ``spec``
    (``".6f"``, ``".6g"``)."""
    return f"iters:{event.iteration} loss:{event.loss:{spec}}"


def addition_lines(event: LogEvent) -> str:
    """Notebook 3_1's reading: the loss, then the batch's first sequence as predicted
    bits, true bits and the sum in decimal."""
    x, d, y = (to_numpy(a[:, 0, :]) for a in (event.x, event.d, event.y))
    a, b = datasets.decode_bits(x[:, 0]), datasets.decode_bits(x[:, 1])
    pred = (y[::-1, 0] >= 0.5).astype(int)  # most significant bit first, as printed
    return (
        f"iters:{event.iteration}\nLoss:{event.loss}\nPred:{pred}\n"
        f"True:{d[::-1, 0].astype(int)}\n{a} + {b} = {datasets.decode_bits(y[:, 0])}\n"
        "------------"
    )


def sine_hint(metrics: dict[str, Any]) -> str | None:
    """One line for a continuation that fades instead of oscillating, else None."""
    if metrics["generated_amplitude"] >= 0.5:
        return None
    return (
        f"hint: the generated wave fades to a constant (amplitude "
        f"{metrics['generated_amplitude']:.2g} over its last period, the sine's is 1), as "
        "in the notebook; `xpnn train sine-wave` trains the course's maxlen-5 variant "
        "longer, and its continuation is a sine"
    )
