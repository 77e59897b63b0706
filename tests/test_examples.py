"""The examples run and report matching NashConv figures."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _run(script, *args):
  proc = subprocess.run(
    [sys.executable, os.path.join(EXAMPLES, script), *args],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_stock_psro_with_our_parts():
  pytest.importorskip("cvxpy", reason="stock psro_v2 imports cvxpy")
  out = _run("stock_psro_with_our_parts.py", "--iterations=4")
  pairs = re.findall(r"NashConv ours ([\d.]+) / OpenSpiel ([\d.]+)", out)
  assert len(pairs) == 4
  assert all(abs(float(a) - float(b)) < 1e-5 for a, b in pairs)


def test_psro_from_python():
  out = _run("psro_from_python.py")
  final = float(re.search(r"NashConv ([\d.]+)\n", out.split("stopped by")[1]).group(1))
  theirs = float(re.search(r"same meta-strategy: ([\d.]+)", out).group(1))
  assert final <= 0.05 and abs(final - theirs) < 1e-5
