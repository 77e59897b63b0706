"""Fault tests of the run directory: what a damaged, full or shared
`--output_dir` does to the command. Each ends in one line (exit code 2) or in
a run that continues exactly."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time

import pytest

from openspiel_psro_ext.runs import checkpoints

_KUHN = [
  "--game=kuhn_poker",
  "--oracle=exact",
  "--target_nash_conv=0",
  "--time_budget_s=0",
  "--metrics_every=0",
  "--seed=5",
]


def _run(*args, timeout=120):
  return subprocess.run(
    [sys.executable, "-m", "openspiel_psro_ext.run", *args],
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def _one_line(proc: subprocess.CompletedProcess) -> str:
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-3000:]
  return errors[0]


def _numbers(out) -> list[tuple]:
  """What a run computed, without its clocks."""
  return [
    (r["iteration"], r["population_size"], r["nash_conv"], r["meta_strategy"])
    for r in checkpoints.read_metrics(str(out))
  ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted 6-iteration Kuhn run."""
  out = tmp_path_factory.mktemp("faults") / "reference"
  proc = _run(*_KUHN, "--iterations=6", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return out


def _three_iterations(tmp_path) -> str:
  out = str(tmp_path / "run")
  assert _run(*_KUHN, "--iterations=3", f"--output_dir={out}").returncode == 0
  return out


def test_a_truncated_state_json_is_refused(tmp_path):
  out = _three_iterations(tmp_path)
  path = os.path.join(out, checkpoints.STATE_FILE)
  text = open(path).read()
  open(path, "w").write(text[: len(text) // 2])
  line = _one_line(_run(*_KUHN, "--iterations=6", "--resume", f"--output_dir={out}"))
  assert "state.json is corrupted" in line
  assert open(path).read() == text[: len(text) // 2]  # kept as it was


def test_a_deleted_member_checkpoint_is_refused(tmp_path):
  out = _three_iterations(tmp_path)
  os.remove(checkpoints.member_path(out, 1, 2, ".npy"))
  line = _one_line(_run(*_KUHN, "--iterations=6", "--resume", f"--output_dir={out}"))
  assert "player1_0002.npy" in line


class _RunsCode:
  """A pickle whose loading would create a marker file."""

  def __init__(self, marker: str):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_a_member_checkpoint_that_runs_code_is_refused_and_never_runs(tmp_path):
  pytest.importorskip("torch")
  out = _three_iterations(tmp_path)
  marker = tmp_path / "the_code_ran"
  with open(checkpoints.member_path(out, 0, 1, ".pt"), "wb") as f:
    pickle.dump({"weights": _RunsCode(str(marker))}, f)
  line = _one_line(_run(*_KUHN, "--iterations=6", "--resume", f"--output_dir={out}"))
  assert "player0_0001.pt is unreadable, or not only weights" in line
  assert not marker.exists()


# The command, with the run directory's 12th file write failing as on a full
# disk (`os.replace` of the atomic write raises ENOSPC).
_FULL_DISK = """
import errno, os, sys
from openspiel_psro_ext import run
from openspiel_psro_ext.runs import checkpoints
out, replace, writes = sys.argv[1], os.replace, []
def fills_up(src, dst, *args, **kwargs):
  if str(dst).startswith(out):
    writes.append(dst)
    if len(writes) == 12:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  return replace(src, dst, *args, **kwargs)
checkpoints.os.replace = fills_up
sys.argv = ["run", *sys.argv[2:], "--output_dir=" + out]
run.entry_point()
"""


def test_a_full_disk_stops_the_run_in_one_line_and_resume_continues_exactly(tmp_path, reference):
  out = str(tmp_path / "full")
  proc = subprocess.run(
    [sys.executable, "-c", _FULL_DISK, out, *_KUHN, "--iterations=6"],
    capture_output=True,
    text=True,
    timeout=120,
  )
  line = _one_line(proc)
  assert "No space left on device" in line and "--resume" in line
  done = json.load(open(os.path.join(out, checkpoints.STATE_FILE)))["iterations_done"]
  assert 0 < done < 6
  proc = _run(*_KUHN, "--iterations=6", "--resume", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _numbers(out) == _numbers(reference)


def test_a_second_run_on_a_directory_in_use_is_refused(tmp_path):
  out = tmp_path / "shared"
  # The first run holds the directory for its whole life; the second starts
  # while it runs.
  first = subprocess.Popen(
    [sys.executable, "-m", "openspiel_psro_ext.run"]
    + ["--game=leduc_poker", "--oracle=exact", "--iterations=400", "--target_nash_conv=0"]
    + ["--time_budget_s=0", "--metrics_every=0", f"--output_dir={out}"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  try:
    deadline = time.monotonic() + 60
    while not (out / checkpoints.STATE_FILE).exists() and time.monotonic() < deadline:
      time.sleep(0.1)
    assert first.poll() is None, "the first run ended before the second started"
    line = _one_line(_run("--resume", f"--output_dir={out}", timeout=60))
    assert f"in use by another run (process {first.pid})" in line
  finally:
    first.kill()
    first.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  out = tmp_path / "stale"
  out.mkdir()
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  (out / checkpoints.LOCK_FILE).write_text(f"{dead.pid}\n")
  proc = _run(*_KUHN, "--iterations=2", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert len(checkpoints.read_metrics(str(out))) == 2
