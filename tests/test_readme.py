"""The README's Python example runs as written."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_python_blocks_run():
  pytest.importorskip("cvxpy", reason="the stock psro_v2 part imports cvxpy")
  text = open(README, encoding="utf-8").read()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert blocks, "README.md has no ```python block"
  namespace: dict = {}
  exec("\n".join(blocks), namespace)  # pylint: disable=exec-used
  # Our loop: exact PSRO on Kuhn poker ends at NashConv ~0.
  assert abs(namespace["run"].records[-1].nash_conv) < 1e-6
  # Stock psro_v2 built with our parts.
  assert type(namespace["solver"]).__name__ == "PSROSolver"
