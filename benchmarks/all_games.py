"""Runs the command on every registered OpenSpiel game, as a new user would.

    python benchmarks/all_games.py --mode=exact            # --oracle=exact
    python benchmarks/all_games.py --mode=rl               # the default RL oracle
    python benchmarks/all_games.py --games=kuhn_poker,chess --mode=both

Each game runs as `python -m openspiel_psro_ext.run --game=NAME --iterations=2`
in its own process (its own session, killed whole at the wall-clock limit).
The RL mode keeps the oracle's short default best responses (PPO: 1 s each) and
no run budget (`--time_budget_s=0`: both iterations run; `--budget_s` sets
one), runs embedded (no Ray to start per game)
and coarsens the simulated mode's payoff entries (`--payoff_target_stderr`)
and its closing approximate NashConv (`--approx_episodes`,
`--approx_eval_games`, `--approx_time_s`): the question is whether the game runs, not how well.
Each game is classified by how the command ended:

  ran        exit 0 after both iterations (verified where exact);
  short      exit 0, but the run budget stopped it after fewer iterations
             (a run that met its target NashConv sooner ran);
  refused    exit 2: one line of bad input or a game PSRO cannot take here;
  traceback  any other exit with a Python traceback: a bug of ours, or a
             crash inside pyspiel that we failed to turn into one line;
  timeout    still running at the limit.

It prints one row per game (players, information, dynamics, chance, the view
the run used, the result, seconds, and the first line of any refusal), then
the counts, as markdown for `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import pyspiel
from open_spiel.python import games  # noqa: F401  (registers the Python games, e.g. python_iterated_prisoners_dilemma)

# The RL mode's closing approximate NashConv: seconds, not minutes (a chess
# episode is hundreds of moves).
APPROX_EPISODES = 20
APPROX_EVAL_GAMES = 20
# ... and at most these seconds per best response: 20 episodes of go or shogi
# are thousands of decisions through a conv net (RESULTS.md has the times).
APPROX_TIME_S = 5.0
# The RL mode's payoff entries: standard error this share of the game's
# utility range, so most entries stop at the minimum of 64 games (the
# default's 0.4% takes thousands of games of long games such as chess or go).
PAYOFF_STDERR_SHARE = 0.1


@dataclasses.dataclass
class Outcome:
  game: str
  players: str
  information: str
  dynamics: str
  chance: str
  mode: str
  view: str
  result: str
  seconds: float
  reason: str


def _describe(name: str) -> tuple[str, str, str, str]:
  """Players, information, dynamics and chance mode from the registry (a
  game need not load: some crash inside pyspiel on their defaults)."""
  types = {g.short_name: g for g in pyspiel.registered_games()}
  kind = types.get(name.split("(")[0])
  if kind is None:
    return "?", "?", "?", "?"
  players = (
    str(kind.min_num_players)
    if kind.min_num_players == kind.max_num_players
    else f"{kind.min_num_players}-{kind.max_num_players}"
  )
  try:
    players = str(pyspiel.load_game(name).num_players())
  except Exception:  # pylint: disable=broad-except  (pyspiel raises many kinds)
    pass
  return (
    players,
    str(kind.information).rsplit(".", 1)[-1].lower(),
    str(kind.dynamics).rsplit(".", 1)[-1].lower(),
    str(kind.chance_mode).rsplit(".", 1)[-1].lower(),
  )


def _utility_range(name: str) -> float:
  """The game's `max_utility - min_utility`, 0 where pyspiel gives none."""
  try:
    game = pyspiel.load_game(name)
    span = float(game.max_utility() - game.min_utility())
  except Exception:  # pylint: disable=broad-except  (the command reports it)
    return 0.0
  return span if 0 < span < float("inf") else 0.0


def run_one(
  name: str, mode: str, budget_s: float, limit_s: float, extra: Sequence[str] = ()
) -> Outcome:
  """One command on one game (`extra` flags last: they win); classifies how it ended."""
  players, information, dynamics, chance = _describe(name)
  with tempfile.TemporaryDirectory() as out:
    command = [
      sys.executable,
      "-m",
      "openspiel_psro_ext.run",
      f"--game={name}",
      "--iterations=2",
      f"--output_dir={os.path.join(out, 'run')}",
      "--metrics_every=0",
    ]
    if mode == "exact":
      command.append("--oracle=exact")
    else:
      command += [
        f"--time_budget_s={budget_s}",
        "--backend=embedded",
        f"--approx_episodes={APPROX_EPISODES}",
        f"--approx_eval_games={APPROX_EVAL_GAMES}",
        f"--approx_time_s={APPROX_TIME_S:g}",
      ]
      span = _utility_range(name)
      if span:
        command.append(f"--payoff_target_stderr={PAYOFF_STDERR_SHARE * span:g}")
    command += list(extra)
    start = time.perf_counter()
    proc = subprocess.Popen(
      command,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      env={**os.environ, "RAY_AUTH_MODE": "disabled"},
      start_new_session=True,  # its process group: the limit ends its children too
    )
    try:
      _, text = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.communicate()
      return Outcome(
        name, players, information, dynamics, chance, mode, "?", "timeout", limit_s, ""
      )
    seconds = time.perf_counter() - start
  view = "exact" if " histories)" in text else ("simulated" if "not compiled" in text else "-")
  lines = [line for line in text.splitlines() if line.strip()]
  done = re.search(r"after (\d+) iterations, stopped by time_budget", text)
  if proc.returncode == 0 and done and int(done.group(1)) < 2:
    result, reason = "short", f"{done.group(1)} iteration(s) within the run budget"
  elif proc.returncode == 0:
    result, reason = "ran", ""
  elif "Traceback (most recent call last)" in text:
    result = "traceback"
    reason = lines[-1][:160] if lines else ""
  elif proc.returncode == 2:
    result = "refused"
    reason = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
    reason = re.sub(r"\s+", " ", reason)[:160]
  else:
    result, reason = f"exit {proc.returncode}", (lines[-1][:160] if lines else "")
  return Outcome(name, players, information, dynamics, chance, mode, view, result, seconds, reason)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--mode", choices=["exact", "rl", "both"], default="both")
  parser.add_argument("--games", default="", help="comma-separated names (default: all)")
  parser.add_argument(
    "--budget_s", type=float, default=0.0, help="RL mode's --time_budget_s (0: none)"
  )
  parser.add_argument("--limit_s", type=float, default=150.0, help="per game and mode")
  parser.add_argument("--workers", type=int, default=2)
  args = parser.parse_args()
  names = (
    args.games.split(",")
    if args.games
    else sorted(g.short_name for g in pyspiel.registered_games())
  )
  modes = ["exact", "rl"] if args.mode == "both" else [args.mode]
  jobs = [(name, mode) for mode in modes for name in names]
  outcomes = []
  with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
    futures = [pool.submit(run_one, n, m, args.budget_s, args.limit_s) for n, m in jobs]
    for future in futures:
      outcome = future.result()
      outcomes.append(outcome)
      print(
        f"{outcome.mode:5s} {outcome.game:45s} {outcome.result:9s} {outcome.seconds:6.1f}s"
        f" {outcome.reason}",
        file=sys.stderr,
        flush=True,
      )
  print("| game | players | information | dynamics | chance | mode | view | result | s | reason |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for o in outcomes:
    print(
      f"| {o.game} | {o.players} | {o.information} | {o.dynamics} | {o.chance} | {o.mode}"
      f" | {o.view} | {o.result} | {o.seconds:.1f} | {o.reason.replace('|', '/')} |"
    )
  for mode in modes:
    mine = [o for o in outcomes if o.mode == mode]
    counts = {r: sum(o.result == r for o in mine) for r in sorted({o.result for o in mine})}
    slowest = sorted(mine, key=lambda o: -o.seconds)[:5]
    print(f"\n{mode}: {len(mine)} games: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"{mode}: slowest: " + ", ".join(f"{o.game} {o.seconds:.0f}s" for o in slowest))


if __name__ == "__main__":
  main()
