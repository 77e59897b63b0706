"""Stock OpenSpiel `psro_v2` on the same settings, measured with OpenSpiel's code.

Used by `run --compare_stock` and the benchmarks: it runs
`psro_v2.PSROSolver` with sampled payoff tables (`sims_per_entry`, stock's
only option) and measures the NashConv of stock's meta-strategy after every
iteration with `PolicyAggregator` + `exploitability.nash_conv`. Measuring is
not counted in stock's time. Stock's oracle is, by what our run used:

  exact best responses  stock's `BestResponseOracle` (C++ backend);
  an RL oracle          stock's own RL PSRO, as in OpenSpiel's
                        `examples/psro_v2_example.py` (`rl_oracle.RLOracle`
                        training `rl_policy.PGPolicy`, or `DQNPolicy` for
                        our dqn, with that example's hyperparameters:
                        `StockRLConfig`), for the wall time our run took.
                        It needs JAX (the `stock-rl` extra). Without JAX,
                        our oracle runs inside stock's loop
                        (`openspiel_compat.StockOracle`) with our run's
                        budget schedule, one best response per call of
                        `oracle_time_budget(iteration)` seconds.

Stock's RL oracle trains each best response for a number of episodes, not
seconds, so the wall-time budget is checked between iterations: its last
iteration may run past it (the records say by how much).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyspiel
from open_spiel.python import rl_environment
from open_spiel.python.algorithms import exploitability as os_exploitability
from open_spiel.python.algorithms import policy_aggregator
from open_spiel.python.algorithms.psro_v2 import best_response_oracle, psro_v2

from openspiel_psro_ext.records import IterationRecord

# Stock meta-strategy names for ours; stock's 'nash' needs cvxpy (+ECOS).
_STOCK_NAMES = {"nash": "nash", "prd": "prd", "uniform": "uniform", "alpharank": "alpharank"}
# Stock's RL oracle type for ours (psro_v2_example's oracle_type); PG otherwise.
_STOCK_RL_ORACLE_TYPES = {"dqn": "DQN"}

#: How to get stock's RL oracles, for messages.
STOCK_RL_INSTALL = "pip install -c constraints.txt 'openspiel_psro_ext[stock-rl]'"


@dataclasses.dataclass
class StockResult:
  """Stock's curve: per iteration NashConv and cumulative seconds."""

  meta_solver_used: str
  oracle_used: str
  sims_per_entry: int
  records: list[dict[str, Any]]
  stopped_by: str
  oracle_kind: str = "stock_best_response"  # see StockOracleChoice.kind


def stock_meta_solver(name: str) -> str:
  """Stock's own solver name where it works here, else ours registered in stock."""
  stock = _STOCK_NAMES.get(name)
  if stock == "nash" and importlib.util.find_spec("cvxpy") is None:
    stock = None
  if stock == "alpharank" and importlib.util.find_spec("networkx") is None:
    stock = None
  if stock is None:
    from openspiel_psro_ext.compat import openspiel_compat  # pylint: disable=g-import-not-at-top

    openspiel_compat.register()
    return openspiel_compat.META_STRATEGY_PREFIX + name
  return stock


def measure_nash_conv(game: pyspiel.Game, solver: psro_v2.PSROSolver) -> float:
  """NashConv of stock's current meta-strategy with OpenSpiel's own code."""
  policies = solver.get_policies()
  meta_strategies = solver.get_meta_strategies()
  num_players = game.num_players()
  aggregated = policy_aggregator.PolicyAggregator(game).aggregate(
    list(range(num_players)), policies, meta_strategies
  )
  return float(os_exploitability.nash_conv(game, aggregated))


@dataclasses.dataclass(frozen=True)
class StockRLConfig:
  """Stock's RL PSRO: `examples/psro_v2_example.py`'s flag defaults.

  Attributes:
    oracle_type: "PG" (`rl_policy.PGPolicy`, JAX policy gradient) or "DQN"
      (`rl_policy.DQNPolicy`, JAX DQN).
    number_training_episodes: episodes each best response trains for.
    self_play_proportion, sigma: `RLOracle`'s settings.
    hidden_layer_size, n_hidden_layers: the MLP, `n_hidden_layers` layers.
    optimizer_str: "adam" or "sgd".
    loss_str, num_q_before_pi, entropy_cost, critic_learning_rate,
    pi_learning_rate: the PG agent's settings.
    batch_size, dqn_learning_rate, update_target_network_every, learn_every:
      the DQN agent's settings.
  """

  oracle_type: str = "PG"
  number_training_episodes: int = 10_000
  self_play_proportion: float = 0.0
  sigma: float = 0.0
  hidden_layer_size: int = 256
  n_hidden_layers: int = 4
  optimizer_str: str = "adam"
  loss_str: str = "qpg"
  num_q_before_pi: int = 8
  entropy_cost: float = 0.001
  critic_learning_rate: float = 1e-2
  pi_learning_rate: float = 1e-3
  batch_size: int = 32
  dqn_learning_rate: float = 1e-2
  update_target_network_every: int = 1000
  learn_every: int = 10


@dataclasses.dataclass
class StockOracleChoice:
  """The oracle stock's loop runs, and how.

  Attributes:
    oracle: a `psro_v2` oracle (`optimization_oracle.AbstractOracle`).
    label: what it is, for the table and `comparison.json`.
    kind: "stock_best_response", "stock_rl" or "ours_in_stock_loop".
    initial_policies: per player, the first population member; None for
      stock's default (uniform random).
    budget_schedule: for our oracle in stock's loop, the seconds of each best
      response at an iteration (`PSRO.oracle_time_budget`), set on the oracle
      before stock's iteration; None: the oracle's own.
  """

  oracle: Any
  label: str
  kind: str
  initial_policies: list[Any] | None = None
  budget_schedule: Callable[[int], float | None] | None = None


def stock_rl_import_error() -> str | None:
  """None when stock's RL oracles import here (JAX), else the import error."""
  try:
    from open_spiel.python.algorithms.psro_v2 import rl_policy  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    return str(e)
  return None


def stock_best_response_oracle(game: pyspiel.Game) -> StockOracleChoice:
  """Stock's exact `BestResponseOracle` with its C++ backend."""
  oracle = best_response_oracle.BestResponseOracle(game=game, best_response_backend="cpp")
  return StockOracleChoice(oracle, "stock BestResponseOracle (exact, C++)", "stock_best_response")


def stock_rl_oracle(
  game: pyspiel.Game, config: StockRLConfig = StockRLConfig()
) -> StockOracleChoice:
  """Stock's own RL oracle, built as `psro_v2_example.py` builds it.

  `rl_oracle.RLOracle` trains a fresh (or, from a previous best response, a
  copied) `PGPolicy`/`DQNPolicy` for `number_training_episodes` episodes
  against opponents sampled from the meta-strategy; the initial population
  is one frozen untrained agent per player, as in the example.

  Raises:
    ImportError: JAX or one of stock's JAX packages is missing.
  """
  from open_spiel.python.algorithms.psro_v2 import (
    rl_oracle,  # pylint: disable=g-import-not-at-top
    rl_policy,  # pylint: disable=g-import-not-at-top
  )

  env = rl_environment.Environment(game)
  info_state_size = env.observation_spec()["info_state"][0]
  num_actions = env.action_spec()["num_actions"]
  hidden = [config.hidden_layer_size] * config.n_hidden_layers
  if config.oracle_type == "PG":
    agent_class = rl_policy.PGPolicy
    agent_kwargs = dict(
      info_state_size=info_state_size,
      num_actions=num_actions,
      loss_str=config.loss_str,
      loss_class=False,
      hidden_layers_sizes=hidden,
      entropy_cost=config.entropy_cost,
      critic_learning_rate=config.critic_learning_rate,
      pi_learning_rate=config.pi_learning_rate,
      num_critic_before_pi=config.num_q_before_pi,
      optimizer_str=config.optimizer_str,
    )
  elif config.oracle_type == "DQN":
    agent_class = rl_policy.DQNPolicy
    agent_kwargs = dict(
      state_representation_size=info_state_size,
      num_actions=num_actions,
      hidden_layers_sizes=hidden,
      batch_size=config.batch_size,
      learning_rate=config.dqn_learning_rate,
      update_target_network_every=config.update_target_network_every,
      learn_every=config.learn_every,
      optimizer_str=config.optimizer_str,
    )
  else:
    raise ValueError(f"oracle_type={config.oracle_type!r}: stock's RL oracles are 'PG' and 'DQN'.")
  oracle = rl_oracle.RLOracle(
    env,
    agent_class,
    agent_kwargs,
    number_training_episodes=config.number_training_episodes,
    self_play_proportion=config.self_play_proportion,
    sigma=config.sigma,
  )
  agents = [agent_class(env, player, **agent_kwargs) for player in range(game.num_players())]
  for agent in agents:
    agent.freeze()
  label = (
    f"stock's own {config.oracle_type} oracle (JAX, rl_oracle.RLOracle,"
    f" {config.number_training_episodes} episodes per best response)"
  )
  return StockOracleChoice(oracle, label, "stock_rl", initial_policies=agents)


def our_oracle_in_stock_loop(
  game: pyspiel.Game,
  oracle: str,
  oracle_config: dict[str, Any],
  seed: int,
  budget_schedule: Callable[[int], float | None],
) -> StockOracleChoice:
  """Our RL oracle inside stock's loop with our run's budget schedule.

  Stock's loop calls the oracle once per iteration and trains the players'
  best responses one after another (no Ray), each for
  `budget_schedule(iteration)` seconds, as our run's best responses did.
  """
  from openspiel_psro_ext.compat import openspiel_compat  # pylint: disable=g-import-not-at-top

  stock_oracle = openspiel_compat.StockOracle(game, oracle, oracle_config, seed=seed)
  first, later = budget_schedule(0), budget_schedule(10**9)
  label = (
    f"our {oracle} oracle inside stock's loop, same budget schedule"
    f" ({first:g} -> {later:g} s per best response, players one after"
    " another)"
  )
  return StockOracleChoice(
    stock_oracle, label, "ours_in_stock_loop", budget_schedule=budget_schedule
  )


def run_stock_psro(
  game_string: str,
  meta_solver: str,
  iterations: int,
  time_budget_s: float,
  sims_per_entry: int,
  seed: int,
  make_oracle: Callable[[pyspiel.Game], StockOracleChoice] = (stock_best_response_oracle),
) -> StockResult:
  """Runs stock psro_v2 for `iterations` or until `time_budget_s` (0: none).

  `make_oracle(game)` builds the oracle (default: stock's exact best
  responses); its construction counts in stock's time, and at least one
  iteration runs whatever the budget. Each record has the
  iteration, population size, NashConv and stock's cumulative seconds (and,
  with a budget schedule, the best responses' seconds it set).
  """
  np.random.seed(seed)  # stock samples with numpy's global generator.
  game = pyspiel.load_game(game_string)
  stock_name = stock_meta_solver(meta_solver)
  start = time.perf_counter()
  choice = make_oracle(game)
  solver = psro_v2.PSROSolver(
    game,
    choice.oracle,
    initial_policies=choice.initial_policies,
    sims_per_entry=sims_per_entry,
    meta_strategy_method=stock_name,
    training_strategy_selector="probabilistic",
    sample_from_marginals=True,
  )
  elapsed = time.perf_counter() - start
  records = []
  stopped_by = "iterations"
  for iteration in range(iterations):
    measure_start = time.perf_counter()
    nash_conv = measure_nash_conv(game, solver)
    records.append(
      {
        "iteration": iteration,
        "population_size": len(solver.get_policies()[0]),
        "nash_conv": nash_conv,
        "wall_time_s": elapsed,
      }
    )
    logging.info(
      "stock psro_v2 it %3d | pop %3d | NashConv %.6f | %.1fs (measured in %.1fs, not counted)",
      iteration,
      records[-1]["population_size"],
      nash_conv,
      elapsed,
      time.perf_counter() - measure_start,
    )
    if iteration == iterations - 1:
      break
    # At least one iteration, even when setting up took the whole budget.
    if iteration > 0 and time_budget_s > 0 and elapsed >= time_budget_s:
      stopped_by = "time_budget"
      break
    if choice.budget_schedule is not None:
      choice.oracle.time_budget_s = choice.budget_schedule(iteration)
      records[-1]["oracle_time_budget_s"] = choice.oracle.time_budget_s
    start = time.perf_counter()
    solver.iteration()
    elapsed += time.perf_counter() - start
  return StockResult(
    meta_solver_used=stock_name,
    oracle_used=choice.label,
    sims_per_entry=sims_per_entry,
    records=records,
    stopped_by=stopped_by,
    oracle_kind=choice.kind,
  )


def compare_with_stock(
  run: Any,
  sims_per_entry: int,
  use_stock_rl: bool | None = None,
  rl_config: StockRLConfig | None = None,
) -> StockResult:
  """Stock psro_v2 on `run`'s settings (a finished `psro.PSRO`), for `--compare_stock`.

  Exact oracles: stock's `BestResponseOracle`, as many iterations as `run`
  made, within its `time_budget_s`. RL oracles: with `use_stock_rl` (None:
  when JAX imports), stock's own RL PSRO (`rl_config`; default the example's,
  PG, or DQN for our dqn) for the wall time `run` took, up to its
  `iterations`; otherwise our oracle inside stock's loop with `run`'s budget
  schedule, as many iterations as `run` made, within its `time_budget_s`.
  The result's `oracle_kind` and `oracle_used` say which ran.
  """
  config = run.config
  iterations, budget = len(run.records), config.time_budget_s
  make_oracle = stock_best_response_oracle
  if run.oracle.trains:
    if use_stock_rl is None:
      reason = stock_rl_import_error()
      use_stock_rl = reason is None
      if reason is not None:
        logging.info(
          "Stock's own RL oracles need JAX (%s); running our %s oracle in"
          " stock's loop instead. For stock's own: %s",
          reason,
          config.oracle,
          STOCK_RL_INSTALL,
        )
    if use_stock_rl:
      rl_config = rl_config or StockRLConfig(
        oracle_type=_STOCK_RL_ORACLE_TYPES.get(config.oracle, "PG")
      )
      make_oracle = functools.partial(stock_rl_oracle, config=rl_config)
      iterations, budget = config.iterations, run.records[-1].wall_time_s
    else:
      make_oracle = functools.partial(
        our_oracle_in_stock_loop,
        oracle=config.oracle,
        oracle_config=config.oracle_config,
        seed=config.seed,
        budget_schedule=run.oracle_time_budget,
      )
  logging.info(
    "Running stock psro_v2 for up to %d iterations%s...",
    iterations,
    f" or {budget:.0f}s" if budget > 0 else "",
  )
  return run_stock_psro(
    config.game,
    config.meta_solver,
    iterations,
    budget,
    sims_per_entry,
    config.seed,
    make_oracle=make_oracle,
  )


def comparison_table(ours: list[IterationRecord], stock: StockResult) -> str:
  """Side-by-side NashConv per iteration and cumulative seconds, plus speed-up."""
  lines = [
    f"stock psro_v2 ran {stock.oracle_used}; it stopped by {stock.stopped_by}.",
    f"{'iter':>4} | {'ours NashConv':>13} {'ours s':>8} | {'stock NashConv':>14} {'stock s':>8}",
  ]
  by_iter = {r["iteration"]: r for r in stock.records}
  # Rows where both ran, then our last iteration.
  rows = [r for r in ours if r.iteration in by_iter]
  if ours and ours[-1] not in rows:
    rows.append(ours[-1])
  for r in rows:
    s = by_iter.get(r.iteration)
    stock_cols = f"{s['nash_conv']:>14.6f} {s['wall_time_s']:>8.2f}" if s else f"{'-':>14} {'-':>8}"
    lines.append(f"{r.iteration:>4} | {r.nash_conv:>13.6f} {r.wall_time_s:>8.2f} | {stock_cols}")
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
  parts = [
    f"stock ({stock.oracle_used}, meta-solver {stock.meta_solver_used},"
    f" {stock.sims_per_entry} games per entry) best NashConv {best:.6f}"
    f" at {stock_time:.2f}s"
  ]
  if ours_hit is not None:
    ratio = stock_time / max(ours_hit.wall_time_s, 1e-9)
    parts.append(
      f"ours reached it at iteration {ours_hit.iteration} in"
      f" {ours_hit.wall_time_s:.2f}s: {ratio:.1f}x sooner"
    )
  else:
    parts.append("ours did not reach it")
  if common > 0:
    ratio = stock.records[common]["wall_time_s"] / max(ours[common].wall_time_s, 1e-9)
    parts.append(f"time for the first {common} iterations: {ratio:.1f}x faster")
  # At equal wall time: ours' last meta-strategy solved by stock's final time.
  stock_last = stock.records[-1]
  ours_then = [r for r in ours if r.wall_time_s - r.iteration_time_s <= stock_last["wall_time_s"]]
  if ours_then:
    parts.append(
      f"at stock's final {stock_last['wall_time_s']:.1f}s: stock NashConv"
      f" {stock_last['nash_conv']:.6f}, ours {ours_then[-1].nash_conv:.6f}"
    )
  return "; ".join(parts) + "."
