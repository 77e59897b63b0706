"""Compiling game trees: before and after, and how fast large games are refused.

1. Compilation time of `game_tree.compile_game` against the implementation it
   replaced (the module as of commit `BEFORE`, loaded from git), on the same
   games, in one run; the ratio column is before / after. Every array of both
   trees is compared (they must be identical) before the row is printed.
   Then the peak memory of each large compilation, each in a fresh process.
2. Refusal of games too large to compile: each runs in a fresh subprocess
   (`compile_game` under the default limits), which prints the time to the
   `GameTooLargeError` and its peak resident memory (`VmHWM`, including the
   interpreter and imports). Target: at most 5 s and under 1 GB each.

Run from the repository root:

    python benchmarks/compile.py            # a few minutes on 2 cores
    python benchmarks/compile.py --quick    # kuhn and leduc only; refusals

Times are wall-clock (`time.perf_counter`) and the process's CPU time
(`time.process_time`, what the limits of `compile_game` count: on a shared,
loaded machine wall-clock time also counts other work), one repetition per
large game and the median of several for small ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyspiel

from openspiel_psro_ext.game import game_tree

BEFORE = "ce9090c"  # Last commit of the Python dict-of-lists compiler.

COMPILED = ["kuhn_poker", "leduc_poker", "tic_tac_toe", "liars_dice", "leduc_poker(players=3)"]
QUICK_COMPILED = ["kuhn_poker", "leduc_poker"]
# Heads-up limit hold'em (`universal_poker`'s default is a small no-limit game).
HULH = pyspiel.hulh_game_string("fcpa")
REFUSED = ["chess", "go", "hex", HULH, "dark_hex", "liars_dice(numdice=2)"]
# Large games that fit under the default limits: timed, not expected to refuse.
LARGE_COMPILED = ["universal_poker", "goofspiel(num_cards=6,imp_info=True,points_order=descending)"]

_MEMORY_SCRIPT = """
import importlib.util, sys, time
if sys.argv[2] == "now":
  from openspiel_psro_ext.game import game_tree as module
else:
  spec = importlib.util.spec_from_file_location("before", sys.argv[2])
  module = importlib.util.module_from_spec(spec)
  sys.modules["before"] = module
  spec.loader.exec_module(module)
cpu = time.process_time()
tree = module.compile_game(sys.argv[1])
cpu = time.process_time() - cpu
with open("/proc/self/status") as f:
  peak_mb = next(int(line.split()[1]) for line in f
                 if line.startswith("VmHWM")) / 1024
print(f"{cpu:.3f} {peak_mb:.0f}")
"""

_REFUSAL_SCRIPT = """
import sys, time
from openspiel_psro_ext.game import game_tree
wall, cpu = time.perf_counter(), time.process_time()
try:
  game_tree.compile_game(sys.argv[1])
  outcome = "COMPILED"
except game_tree.GameTooLargeError as e:
  outcome = str(e)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
# VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss
# across fork and exec.
with open("/proc/self/status") as f:
  peak_mb = next(int(line.split()[1]) for line in f
                 if line.startswith("VmHWM")) / 1024
print(f"{wall:.3f} {cpu:.3f} {peak_mb:.0f} {outcome}")
"""


def before_path() -> str:
  """A file holding the `game_tree` module as of commit `BEFORE`."""
  source = subprocess.run(
    ["git", "show", f"{BEFORE}:openspiel_psro_ext/game_tree.py"],
    check=True,
    capture_output=True,
    text=True,
  ).stdout
  with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
    f.write(source)
  return f.name


def load_before() -> Any:
  """The `game_tree` module as of commit `BEFORE`."""
  spec = importlib.util.spec_from_file_location("game_tree_before", before_path())
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there.
  spec.loader.exec_module(module)
  return module


def median_time(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
  """Median wall and CPU seconds of `reps` calls, and the last result."""
  walls, cpus, result = [], [], None
  for _ in range(reps):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
  return statistics.median(walls), statistics.median(cpus), result


def fmt(seconds: float) -> str:
  return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def same_trees(old: Any, new: game_tree.GameTree) -> list[str]:
  """Names of the fields where the two compiled trees differ."""
  differ = []
  for name in [
    "parent",
    "action",
    "player",
    "depth",
    "infostate",
    "chance_reach",
    "child",
    "chance_probs",
    "returns",
    "terminals",
    "terminal_sequence",
  ]:
    if not np.array_equal(getattr(old, name), getattr(new, name)):
      differ.append(name)
  for p, (a, b) in enumerate(zip(old.infostates, new.infostates)):
    for name in ["strings", "legal_mask", "parent_sequence", "level"]:
      if not np.array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))):
        differ.append(f"infostates[{p}].{name}")
    if a.index != b.index or a.level_slices != b.level_slices:
      differ.append(f"infostates[{p}].index/level_slices")
    if (a.tensors is None) != (b.tensors is None) or (
      a.tensors is not None and not np.array_equal(a.tensors, b.tensors)
    ):
      differ.append(f"infostates[{p}].tensors")
    if [s.history() for s in a.states] != [s.history() for s in b.states]:
      differ.append(f"infostates[{p}].states")
  return differ


def bare_walk(game: pyspiel.Game) -> int:
  """Visits every history with the fewest pyspiel calls any compiler needs
  (`child`, and `legal_actions` or `chance_outcomes`, plus the node-type
  tests): no information states, returns or records. Its time is the floor
  of compiling through pyspiel's Python API; returns the history count."""
  count, stack = 0, [game.new_initial_state()]
  while stack:
    state = stack.pop()
    count += 1
    if state.is_terminal():
      continue
    actions = (
      [a for a, _ in state.chance_outcomes()] if state.is_chance_node() else state.legal_actions()
    )
    stack.extend(state.child(a) for a in actions)
  return count


def bench_compile(games: list[str]) -> bool:
  before = load_before()
  print(
    f"[1] compile_game: before ({BEFORE}) vs now; `floor` is `bare_walk`, the"
    " pyspiel calls alone, and `before/floor` the most any compiler over"
    " pyspiel's Python API could gain (CPU)"
  )
  print(
    f"  {'game':24s} {'histories':>10s}   wall: {'before':>9s} {'now':>9s}"
    f" {'ratio':>6s}   CPU: {'before':>9s} {'now':>9s} {'ratio':>6s}"
    f" {'floor':>9s} {'before/floor':>12s}  arrays"
  )
  all_same = True
  results_rows = []  # benchmarks/RESULTS.md: | game | before | now | ratio | before / floor |
  for name in games:
    game = pyspiel.load_game(name)
    reps = {"kuhn_poker": 51, "leduc_poker": 11}.get(name, 1)
    old_wall, old_cpu, old = median_time(lambda g=game: before.compile_game(g), reps)
    new_wall, new_cpu, new = median_time(lambda g=game: game_tree.compile_game(g), reps)
    _, floor_cpu, count = median_time(lambda g=game: bare_walk(g), reps)
    assert count == new.num_histories, (count, new.num_histories)
    differ = same_trees(old, new)
    all_same &= not differ
    print(
      f"  {name:24s} {new.num_histories:10,d}   {fmt(old_wall):>15s}"
      f" {fmt(new_wall):>9s} {old_wall / new_wall:5.1f}x  {fmt(old_cpu):>14s}"
      f" {fmt(new_cpu):>9s} {old_cpu / new_cpu:5.1f}x {fmt(floor_cpu):>9s}"
      f" {old_cpu / floor_cpu:11.1f}x  {'identical' if not differ else differ}"
    )
    results_rows.append(
      f"| {name} | {fmt(old_cpu)} | {fmt(new_cpu)} | {old_cpu / new_cpu:.1f}x"
      f" | {old_cpu / floor_cpu:.1f}x |"
    )
    del old, new
  print("  benchmarks/RESULTS.md rows (CPU):")
  print("\n".join(results_rows))
  return all_same


def bench_memory(games: list[str]) -> None:
  """Peak memory of one compilation in a fresh process, before and now."""
  print("[1b] compile_game in a fresh process: peak RSS (VmHWM), before / now")
  path = before_path()
  for name in games:
    row = []
    for which in (path, "now"):
      result = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, name, which],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
      )
      row.append(result.stdout.split())
    (old_cpu, old_mb), (new_cpu, new_mb) = row
    print(
      f"  {name:24s} {old_mb:>6s} MB / {new_mb:>5s} MB"
      f"   (CPU {float(old_cpu):.2f} s / {float(new_cpu):.2f} s)"
    )


def bench_refusals(games: list[str], expect_refusal: bool = True) -> bool:
  """Runs `compile_game` on each game in a fresh process; prints the outcome."""
  all_ok = True
  for name in games:
    result = subprocess.run(
      [sys.executable, "-c", _REFUSAL_SCRIPT, name], capture_output=True, text=True, timeout=600
    )
    if result.returncode:
      print(f"  {name}: FAILED\n{result.stderr[-2000:]}")
      all_ok = False
      continue
    wall, cpu, peak_mb, message = result.stdout.strip().split(" ", 3)
    refused = message != "COMPILED"
    if expect_refusal:
      ok = refused and float(cpu) <= 5.0 and float(peak_mb) < 1024
      verdict = "PASS" if ok else "MISS"
    else:
      ok, verdict = not refused, ""
    all_ok &= ok
    print(
      f"  {name}: {float(wall):.2f} s wall, {float(cpu):.2f} s CPU, peak RSS"
      f" {peak_mb} MB {verdict}\n    {message}"
    )
  return all_ok


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="Compile only kuhn and leduc.")
  parser.add_argument("--skip_refusals", action="store_true")
  args = parser.parse_args()
  same = bench_compile(QUICK_COMPILED if args.quick else COMPILED)
  if not args.quick:
    bench_memory([name for name in COMPILED if name not in QUICK_COMPILED])
  refused = True
  if not args.skip_refusals:
    print("[2] refusals: compile_game in a fresh process (target <= 5 s CPU, < 1 GB peak RSS)")
    refused = bench_refusals(REFUSED)
    print("[3] large games that compile, in a fresh process (for reference)")
    bench_refusals(LARGE_COMPILED, expect_refusal=False)
  print(f"arrays identical: {same}; refusals within limits: {refused}")
  sys.exit(0 if same else 1)


if __name__ == "__main__":
  main()
