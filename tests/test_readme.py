"""The README's "Using it" snippet runs as written, with only the base install."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from selection import selected_backends

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif("numpy" not in selected_backends(), reason="the snippet runs on numpy")
def test_the_using_it_snippet_runs():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    assert 'backend="torch"' not in code  # an install without torch must run it
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert set(namespace["grads"]) == {"W_in", "W", "W_out"}
    assert float(namespace["loss"]) > 0
