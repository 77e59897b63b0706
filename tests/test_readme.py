"""The README's API tour runs as written."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def test_readme_python_blocks_run():
  pytest.importorskip("cvxpy", reason="the stock psro_v2 block imports cvxpy")
  text = open(README, encoding="utf-8").read()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert len(blocks) >= 2
  namespace = {}
  exec("\n".join(blocks), namespace)  # pylint: disable=exec-used
  assert abs(namespace["run"].records[-1].nash_conv) < 1e-6
  assert type(namespace["solver"]).__name__ == "PSROSolver"
