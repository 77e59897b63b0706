"""Stock OpenSpiel `psro_v2` on the same settings, measured with OpenSpiel's code.

Used by `run --compare_stock`: it runs `psro_v2.PSROSolver` with OpenSpiel's
own `BestResponseOracle` (or an RL oracle where asked), sampled payoff tables
(`sims_per_entry`, stock's only option), and measures the NashConv of stock's
meta-strategy after every iteration with `PolicyAggregator` +
`exploitability.nash_conv`. Measuring is not counted in stock's time.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import time
from typing import Any

import numpy as np
from open_spiel.python.algorithms import exploitability as os_exploitability
from open_spiel.python.algorithms import policy_aggregator
from open_spiel.python.algorithms.psro_v2 import best_response_oracle
from open_spiel.python.algorithms.psro_v2 import psro_v2
import pyspiel

from openspiel_psro_ext.records import IterationRecord

# Stock meta-strategy names for ours; stock's 'nash' needs cvxpy (+ECOS).
_STOCK_NAMES = {"nash": "nash", "prd": "prd", "uniform": "uniform",
                "alpharank": "alpharank"}


@dataclasses.dataclass
class StockResult:
  """Stock's curve: per iteration NashConv and cumulative seconds."""

  meta_solver_used: str
  oracle_used: str
  sims_per_entry: int
  records: list[dict[str, Any]]
  stopped_by: str


def stock_meta_solver(name: str) -> str:
  """Stock's own solver name where it works here, else ours registered in stock."""
  stock = _STOCK_NAMES.get(name)
  if stock == "nash" and importlib.util.find_spec("cvxpy") is None:
    stock = None
  if stock == "alpharank" and importlib.util.find_spec("networkx") is None:
    stock = None
  if stock is None:
    from openspiel_psro_ext import openspiel_compat  # pylint: disable=g-import-not-at-top
    openspiel_compat.register()
    return openspiel_compat.META_STRATEGY_PREFIX + name
  return stock


def measure_nash_conv(game: pyspiel.Game, solver: psro_v2.PSROSolver) -> float:
  """NashConv of stock's current meta-strategy with OpenSpiel's own code."""
  policies = solver.get_policies()
  meta_strategies = solver.get_meta_strategies()
  num_players = game.num_players()
  aggregated = policy_aggregator.PolicyAggregator(game).aggregate(
      list(range(num_players)), policies, meta_strategies)
  return float(os_exploitability.nash_conv(game, aggregated))


def run_stock_psro(game_string: str, meta_solver: str, iterations: int,
                   time_budget_s: float, sims_per_entry: int, seed: int,
                   oracle: Any | None = None, oracle_label: str = "stock BestResponseOracle"
                   ) -> StockResult:
  """Runs stock psro_v2 for `iterations` or until `time_budget_s` (0: none)."""
  np.random.seed(seed)  # stock samples with numpy's global generator.
  game = pyspiel.load_game(game_string)
  stock_name = stock_meta_solver(meta_solver)
  if oracle is None:
    oracle = best_response_oracle.BestResponseOracle(game=game, best_response_backend="cpp")
  elapsed = 0.0
  start = time.perf_counter()
  solver = psro_v2.PSROSolver(game, oracle, sims_per_entry=sims_per_entry,
                              meta_strategy_method=stock_name,
                              training_strategy_selector="probabilistic",
                              sample_from_marginals=True)
  elapsed += time.perf_counter() - start
  records = []
  stopped_by = "iterations"
  for iteration in range(iterations):
    nash_conv = measure_nash_conv(game, solver)
    records.append({"iteration": iteration,
                    "population_size": len(solver.get_policies()[0]),
                    "nash_conv": nash_conv, "wall_time_s": elapsed})
    logging.info("stock psro_v2 it %3d | pop %3d | NashConv %.6f | %.1fs",
                 iteration, records[-1]["population_size"], nash_conv, elapsed)
    if iteration == iterations - 1:
      break
    if time_budget_s > 0 and elapsed >= time_budget_s:
      stopped_by = "time_budget"
      break
    start = time.perf_counter()
    solver.iteration()
    elapsed += time.perf_counter() - start
  return StockResult(meta_solver_used=stock_name, oracle_used=oracle_label,
                     sims_per_entry=sims_per_entry, records=records,
                     stopped_by=stopped_by)


def comparison_table(ours: list[IterationRecord], stock: StockResult) -> str:
  """Side-by-side NashConv per iteration and cumulative seconds, plus speed-up."""
  lines = [f"{'iter':>4} | {'ours NashConv':>13} {'ours s':>8} | "
           f"{'stock NashConv':>14} {'stock s':>8}"]
  by_iter = {r["iteration"]: r for r in stock.records}
  # Rows where both ran, then our last iteration.
  rows = [r for r in ours if r.iteration in by_iter]
  if ours and ours[-1] not in rows:
    rows.append(ours[-1])
  for r in rows:
    s = by_iter.get(r.iteration)
    stock_cols = (f"{s['nash_conv']:>14.6f} {s['wall_time_s']:>8.2f}" if s
                  else f"{'-':>14} {'-':>8}")
    lines.append(f"{r.iteration:>4} | {r.nash_conv:>13.6f} "
                 f"{r.wall_time_s:>8.2f} | {stock_cols}")
  lines.append(speedup_summary(ours, stock))
  return "\n".join(lines)


def speedup_summary(ours: list[IterationRecord], stock: StockResult) -> str:
  """How much sooner we reach stock's best NashConv, and per-iteration speed."""
  if not stock.records or not ours:
    return "no stock iterations to compare."
  best = min(r["nash_conv"] for r in stock.records)
  stock_time = next(r["wall_time_s"] for r in stock.records if r["nash_conv"] == best)
  ours_hit = next((r for r in ours if r.nash_conv <= best), None)
  common = min(len(ours), len(stock.records)) - 1
  parts = [f"stock ({stock.oracle_used}, meta-solver {stock.meta_solver_used},"
           f" {stock.sims_per_entry} games per entry) best NashConv {best:.6f}"
           f" at {stock_time:.2f}s"]
  if ours_hit is not None:
    ratio = stock_time / max(ours_hit.wall_time_s, 1e-9)
    parts.append(f"ours reached it at iteration {ours_hit.iteration} in"
                 f" {ours_hit.wall_time_s:.2f}s: {ratio:.1f}x sooner")
  else:
    parts.append("ours did not reach it")
  if common > 0:
    ratio = stock.records[common]["wall_time_s"] / max(ours[common].wall_time_s, 1e-9)
    parts.append(f"time for the first {common} iterations: {ratio:.1f}x faster")
  return "; ".join(parts) + "."
