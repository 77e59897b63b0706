"""A property-based fuzz test of the command line (hypothesis, fixed seed).

For random values of every flag and of every oracle, meta-solver and variant
setting (wrong types, negatives, huge sizes, empty strings, unicode, NaN), the
command either accepts the settings or refuses them with one `UsageError`
line, and writes nothing first. Most examples run the command's own settings
and check steps in this process (`run.settings_from_flags`, `run.check`: all
that comes before the first write); a few run the whole command in a
subprocess, where the exit code must be 0 or 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from openspiel_psro_ext import oracles, run  # noqa: E402
from openspiel_psro_ext.errors import UsageError  # noqa: E402
from openspiel_psro_ext.psro import config as psro_config  # noqa: E402
from openspiel_psro_ext.psro import variants  # noqa: E402
from openspiel_psro_ext.records import schema  # noqa: E402

_SOLVER_PARAMETERS = {
  "nash": ["general_sum_tol"],
  "alpharank": ["alpha", "m", "use_local_selection_model"],
  "prd": ["iterations", "dt", "gamma", "average_over_last_n"],
  "cce": ["criterion"],
}
_ALGORITHM_OPTIONS = {
  "psro": [],
  "p2sro": ["num_active", "plateau_improvement", "min_chunks", "max_chunks"],
  "anytime_psro": ["learner", "inner_steps", "max_exploiters", "hedge_step", "hedge_window"],
}
_ORACLES = ["exact", "ppo", "dqn", "sac", "mpo", "crossq"]
# Flags whose every value is fuzzed (output_dir is a fresh folder per example).
_FLAGS = [
  f.name
  for cls in (psro_config.PSROConfig, run.RunOptions)
  for f in dataclasses.fields(cls)
  if f.name not in ("output_dir", "tree_cache_dir", "cache_dir")
]

_odd_numbers = st.one_of(
  st.integers(min_value=-(10**20), max_value=10**20),
  st.sampled_from([0, 1, -1, 2, 10**9, 10**15, -(10**9)]),
  st.floats(allow_nan=True, allow_infinity=True),
  st.sampled_from([math.nan, math.inf, -math.inf, 0.5, -0.5, 1e-12, 1e300]),
)
_odd_json = st.recursive(
  st.one_of(
    st.none(),
    st.booleans(),
    _odd_numbers,
    st.text(max_size=12),
    st.sampled_from(["", "big", "fast", "é", "\u202e", "cpu", "cuda:0", "tpu", "welfare", "hedge"]),
  ),
  lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=2)
  ),
  max_leaves=4,
)
_odd_text = st.one_of(
  _odd_numbers.map(str),
  st.text(max_size=16).filter(lambda t: "\x00" not in t),
  st.sampled_from(["", "nan", "inf", "-inf", "true", "false", "1,2", "2,x", "[]", "{}", "null"]),
  _odd_json.map(lambda v: json.dumps(v)),
)


@st.composite
def _command_line(draw) -> list[str]:
  """A small Kuhn run with one to three settings set to random values."""
  oracle = draw(st.sampled_from(_ORACLES))
  solver = draw(st.sampled_from(sorted(_SOLVER_PARAMETERS)))
  algorithm = draw(st.sampled_from(sorted(_ALGORITHM_OPTIONS)))
  args = {
    "game": "kuhn_poker",
    "oracle": oracle,
    "meta_solver": solver,
    "algorithm": algorithm,
    "iterations": "2",
    "backend": "embedded",
  }
  oracle_config: dict = {}
  solver_kwargs: dict = {}
  algorithm_options: dict = {}
  for _ in range(draw(st.integers(1, 3))):
    kind = draw(st.sampled_from(["flag", "oracle", "solver", "variant"]))
    if kind == "flag":
      args[draw(st.sampled_from(_FLAGS))] = draw(_odd_text)
    elif kind == "oracle":
      names = oracles.get(oracle).settings() or ["time_budget_s"]
      oracle_config[draw(st.sampled_from(names))] = draw(_odd_json)
    elif kind == "solver":
      solver_kwargs[draw(st.sampled_from(_SOLVER_PARAMETERS[solver]))] = draw(_odd_json)
    elif _ALGORITHM_OPTIONS[algorithm]:
      algorithm_options[draw(st.sampled_from(_ALGORITHM_OPTIONS[algorithm]))] = draw(_odd_json)
  for name, value in (
    ("oracle_config", oracle_config),
    ("meta_solver_kwargs", solver_kwargs),
    ("algorithm_options", algorithm_options),
  ):
    args.setdefault(name, json.dumps(value))
  return [f"--{name}={value}" for name, value in args.items()]


def _checked_in_process(argv: list[str], output_dir: str) -> str | None:
  """The command's steps up to its first write; the refusal, or None."""
  run.FLAGS.unparse_flags()
  try:
    try:
      run.FLAGS(["run", *argv, f"--output_dir={output_dir}"])
    except run.flags.Error as e:
      return str(e)
    config, options = run.settings_from_flags()
    run.check(config, options)
  except UsageError as e:
    return str(e)
  finally:
    run.FLAGS.unparse_flags()
  return None


@settings(
  max_examples=360,
  derandomize=True,
  deadline=None,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(argv=_command_line())
def test_settings_are_accepted_or_refused_in_one_line(tmp_path, argv):
  output_dir = os.path.join(tmp_path, f"out-{abs(hash(tuple(argv)))}")
  start = time.perf_counter()
  refusal = _checked_in_process(argv, output_dir)
  assert time.perf_counter() - start < 20, argv
  assert not os.path.exists(output_dir), argv  # checks write nothing
  if refusal is not None:
    assert refusal.strip(), argv


@pytest.mark.slow
@settings(max_examples=6, derandomize=True, deadline=None)
@given(argv=_command_line())
def test_the_command_exits_0_or_2_in_one_line(argv):
  import tempfile  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    output_dir = os.path.join(tmp, "out")
    proc = subprocess.run(
      [
        sys.executable,
        "-m",
        "openspiel_psro_ext.run",
        *argv,
        "--time_budget_s=5",
        '--oracle_config={"time_budget_s": 0.2}'
        if not any(a.startswith("--oracle_config") for a in argv)
        else "--metrics_every=0",
        f"--output_dir={output_dir}",
      ],
      capture_output=True,
      text=True,
      timeout=120,
      env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert proc.returncode in (0, 2), (argv, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, (argv, proc.stderr[-3000:])
    if proc.returncode == 2:
      errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
      assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr
      assert not os.path.exists(output_dir), argv


def test_every_setting_is_declared():
  """Each oracle's, variant's and meta-solver's settings have a type the one
  check knows (`schema.problem` raises TypeError on one it does not)."""
  from openspiel_psro_ext import meta_solvers  # pylint: disable=g-import-not-at-top

  for name in oracles.names():
    declared = schema.fields(oracles.get(name).Config)
    for field, value in [(f, d) for f, d in declared.items()]:
      assert schema.problem({field: value}, {}, str) is None
  for name in variants.names():
    options_cls = variants.get(name).Options
    if options_cls is not None:
      assert schema.object_problem(options_cls(), str) is None
  for name in meta_solvers.names():
    meta_solvers.spec(name).declared()
