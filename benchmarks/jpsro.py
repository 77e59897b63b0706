"""JPSRO towards CCE and CE, exact gaps, beside stock OpenSpiel's jpsro.py.

  python benchmarks/jpsro.py [--parts=kuhn3,stock,sheriff,leduc3] [--budget_s=60]

kuhn3:   3-player Kuhn, exact oracle: JPSRO(CCE) until the exact CCE gap is
         at most 1e-4, JPSRO(CE) until the CE gap is at most 1e-3, each within
         `budget_s` (the run's `wall_time_s`).
stock:   stock `open_spiel/python/algorithms/jpsro.py` on the same game and
         solver family (max-welfare CCE / CE, `mwcce`/`mwce` through cvxpy),
         for the same seconds; after each of its iterations our exact code
         measures the gap of its training joint over its policies (not
         counted in its clock).
sheriff: 2-player general-sum `sheriff` (28,085 histories), JPSRO(CCE).
leduc3:  3-player Leduc, JPSRO(CCE), 20 iterations, the gap curve.

Figures in BUILD_NOTES.md were measured on a shared, loaded 2-core machine.
"""

import argparse
import time

import numpy as np
import pyspiel
from open_spiel.python.algorithms import jpsro as stock_jpsro

from openspiel_psro_ext import psro
from openspiel_psro_ext.game import correlated_gaps, game_tree, policies


def ours(game: str, solver: str, target: float, budget_s: float, iterations: int = 1000):
  """Our JPSRO run; prints its gap curve; returns (reason, last record)."""
  config = psro.PSROConfig(
    game=game,
    meta_solver=solver,
    oracle="exact",
    algorithm="jpsro",
    iterations=iterations,
    target_nash_conv=target,
    time_budget_s=budget_s,
  )
  run = psro.PSRO(config)
  key = f"{solver}_gap"

  def show(record):
    state = record.variant
    print(
      f"  ours {solver} it {record.iteration:3d} sizes {record.population_size}"
      f" cce_gap {state.cce_gap:.2e} ce_gap {state.ce_gap:.2e}"
      f" nash_conv(marginals) {record.nash_conv:.3f} t {record.wall_time_s:7.2f}s",
      flush=True,
    )

  reason = run.run(show)
  last = run.records[-1]
  gap = last.variant.ce_gap if solver == "ce" else last.variant.cce_gap
  print(
    f"ours JPSRO({solver.upper()}) {game}: {key} {gap:.2e} after"
    f" {last.iteration + 1} iterations, {last.wall_time_s:.1f} s ({reason})",
    flush=True,
  )
  return reason, last


class _OutOfTime(Exception):
  pass


def stock(game_string: str, equilibrium: str, budget_s: float) -> None:
  """Stock jpsro.run_loop for `budget_s` of its own time, gaps measured exactly."""
  game = pyspiel.load_game(game_string)
  tree = game_tree.get_tree(game_string)
  solver = "mw" + equilibrium
  clock = {"spent": 0.0, "since": time.perf_counter(), "last": None}

  def callback(
    iteration,
    per_player_repeats,
    per_player_policies,
    joint_policies,
    joint_returns,
    meta_games,
    train_meta_dists,
    eval_meta_dists,
    train_meta_values,
    eval_meta_values,
    train_meta_gaps,
    eval_meta_gaps,
    kwargs,
    checkpoint,
  ):
    del per_player_repeats, joint_policies, joint_returns, meta_games, eval_meta_dists
    del train_meta_values, eval_meta_values, train_meta_gaps, eval_meta_gaps, kwargs
    clock["spent"] += time.perf_counter() - clock["since"]
    joint = np.asarray(train_meta_dists[-1], dtype=np.float64)
    reaches = [
      tree.terminal_reach(p, np.stack([policies.player_matrix(tree, pol, p) for pol in pols]))
      for p, pols in enumerate(per_player_policies)
    ]
    gaps = correlated_gaps.joint_gaps(tree, reaches, joint / joint.sum())
    clock["last"] = (iteration, joint.shape, gaps)
    print(
      f"  stock {solver} it {iteration:3d} sizes {list(joint.shape)}"
      f" cce_gap {gaps.cce_gap:.2e} ce_gap {gaps.ce_gap:.2e} t {clock['spent']:7.2f}s",
      flush=True,
    )
    if clock["spent"] >= budget_s:
      raise _OutOfTime()
    clock["since"] = time.perf_counter()
    return checkpoint

  try:
    stock_jpsro.run_loop(
      game,
      game_string,
      iterations=1000,
      target_equilibrium=equilibrium,
      train_meta_solver=solver,
      eval_meta_solver=solver,
      callback=callback,
    )
  except _OutOfTime:
    pass
  iteration, shape, gaps = clock["last"]
  gap = gaps.ce_gap if equilibrium == "ce" else gaps.cce_gap
  print(
    f"stock jpsro.py {solver} {game_string}: {equilibrium}_gap {gap:.2e} after"
    f" iteration {iteration} (populations {list(shape)}), {clock['spent']:.1f} s",
    flush=True,
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--parts", default="kuhn3,stock,sheriff")
  parser.add_argument("--budget_s", type=float, default=60.0)
  args = parser.parse_args()
  parts = args.parts.split(",")
  kuhn3 = "kuhn_poker(players=3)"
  if "kuhn3" in parts:
    ours(kuhn3, "cce", 1e-4, args.budget_s)
    ours(kuhn3, "ce", 1e-3, args.budget_s)
  if "stock" in parts:
    stock(kuhn3, "cce", args.budget_s)
    stock(kuhn3, "ce", args.budget_s)
  if "sheriff" in parts:
    ours("sheriff", "cce", 1e-4, args.budget_s)
  if "leduc3" in parts:
    ours("leduc_poker(players=3)", "cce", 0.0, 0.0, iterations=20)


if __name__ == "__main__":
  main()
