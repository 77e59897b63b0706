"""The disk cache of compiled trees: the first command compiles, the second loads.

    python benchmarks/tree_cache.py
    python benchmarks/tree_cache.py --games=tic_tac_toe,liars_dice

For each game, with an empty cache folder of its own, the same command runs
twice (`--iterations=1 --oracle=exact`). Per run it reports the seconds from
launch to the first iteration's log line, the whole command's seconds as the
user waits (OpenSpiel's own verification of a large game's NashConv is most
of it), and the seconds `import openspiel_psro_ext.run` alone takes on this
machine. The second run's first iteration should come within a second of
start-up plus imports. Rows print as markdown for `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

DEFAULT_GAMES = ["tic_tac_toe", "liars_dice", "leduc_poker(players=3)"]
_FIRST_ITERATION = re.compile(r"^I\d{4} (\d\d:\d\d:\d\d\.\d+) .*\] it +0 \|", re.M)


def import_seconds() -> float:
  start = time.perf_counter()
  subprocess.run([sys.executable, "-c", "import openspiel_psro_ext.run"], check=True)
  return time.perf_counter() - start


def run_once(game: str, cache_dir: str, out: str) -> tuple[float, float, bool]:
  """(seconds to the first iteration, whole command seconds, loaded from the cache)."""
  players = 3 if "players=3" in game else 2
  command = [
    sys.executable,
    "-m",
    "openspiel_psro_ext.run",
    f"--game={game}",
    "--oracle=exact",
    "--iterations=1",
    "--metrics_every=0",
    f"--tree_cache_dir={cache_dir}",
    f"--output_dir={out}",
  ]
  if players > 2:
    command.append("--meta_solver=prd")
  launched = datetime.datetime.now()
  start = time.perf_counter()
  proc = subprocess.run(command, capture_output=True, text=True, check=False)
  whole = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f"{game}: exit {proc.returncode}: {proc.stderr[-2000:]}")
  match = _FIRST_ITERATION.search(proc.stderr)
  if match is None:
    raise RuntimeError(f"{game}: no first-iteration line in the log")
  clock = datetime.datetime.strptime(match.group(1), "%H:%M:%S.%f").time()
  first = datetime.datetime.combine(launched.date(), clock) - launched
  return first.total_seconds(), whole, "from the tree cache" in proc.stderr


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--games", default=",".join(DEFAULT_GAMES))
  args = parser.parse_args()
  imports = import_seconds()
  print(f"import openspiel_psro_ext.run: {imports:.2f} s")
  print("| game | run | first iteration (s) | whole command (s) | tree |")
  print("|---|---|---|---|---|")
  for game in args.games.split(","):
    with tempfile.TemporaryDirectory() as folder:
      cache = os.path.join(folder, "cache")
      for k in (1, 2):
        first, whole, loaded = run_once(game, cache, os.path.join(folder, f"run{k}"))
        source = "loaded" if loaded else "compiled"
        print(f"| {game} | {k} | {first:.2f} | {whole:.1f} | {source} |", flush=True)


if __name__ == "__main__":
  main()
