"""PSRO on leduc_poker with RL best responses, as the main command runs it.

  python benchmarks/psro_rl.py [--algorithm=psro|anytime_psro|xdo|...]
      [--meta_solver=nash|...] [--oracle=ppo|mpo|crossq|...] [--budget_s=600]
      [--br_seconds=1] [--br_seconds_final=2.6] [--ramp_iterations=200]
      [--backend=ray] [--target=0.2] [--seed=0] [--set FIELD=VALUE ...]
  python benchmarks/psro_rl.py --stock [--budget_s=600] [--stock_oracle=PG]
      [--stock_episodes=10000] [--stock_sims_per_entry=1000] [--seed=0]

Our PSRO loop (`openspiel_psro_ext.psro`) with exact payoff tables and one
best response per player per iteration (PPO by default, with its
`psro_defaults`; `--set` overrides fields of the oracle's Config). With no
`--algorithm` and no `--meta_solver` the run is the main command's default
(`psro_config.default_algorithm`: Anytime PSRO for an RL oracle on a compiled
two-player zero-sum game); `--algorithm=psro` is plain PSRO as the command
runs it (Nash, meta-strategies averaged). Each best response gets a
wall-time budget that ramps from `--br_seconds` (default: the oracle's PSRO
default) to `--br_seconds_final` over `--ramp_iterations`
(`PSROConfig.oracle_budget_final_s`); with the Ray backend the two players'
best responses train at the same time, one core each. NashConv of every
output is exact (sequence form over the compiled tree); the first one at or
below the target is re-checked with OpenSpiel's nash_conv (`verification`).
Prints the NashConv curve (and each player's exploitability) against seconds
and training episodes, and the curve at 60 / 120 / 300 / 600 s.

PASS needs the final output at or below the target too, not just one
iteration on the way.

`--stock` runs stock OpenSpiel's own RL PSRO instead, for the same
`--budget_s` of its own time: `psro_v2.PSROSolver` with `rl_oracle.RLOracle`
training JAX `rl_policy.PGPolicy` (or DQN) best responses as
`examples/psro_v2_example.py` does, with that example's hyperparameters
(`stock_baseline.StockRLConfig`; 10,000 episodes per best response), its
Nash meta-solver and sampled payoff tables. NashConv of each meta-strategy is
measured with OpenSpiel's PolicyAggregator + nash_conv, not counted in its
time; stock's iterations are not interruptible, so its last one may end past
the budget (printed). Needs the `stock-rl` extra (JAX).

Figures: benchmarks/RESULTS.md.
"""

import argparse
import dataclasses
import functools
import json
import logging
import sys
import time

import config_overrides
import numpy as np

from openspiel_psro_ext import backends, oracles, psro
from openspiel_psro_ext.compat import stock_baseline
from openspiel_psro_ext.evaluation import verification
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.psro import variants as algorithms


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--oracle", default="ppo")
  parser.add_argument(
    "--algorithm",
    default=None,
    choices=algorithms.names(),
    help="the PSRO variant (NashConv is of its output: Anytime"
    " PSRO's least exploitable mixtures, XDO's restricted-game"
    " average strategy); default: the main command's (`psro_config.default_algorithm`)",
  )
  parser.add_argument(
    "--meta_solver",
    default=None,
    help="default: the main command's (a chosen one means plain PSRO, as there)",
  )
  parser.add_argument(
    "--algorithm_options",
    default="{}",
    help="the variant's options as JSON, e.g."
    " '{\"learner\": \"multiplicative_weights\"}' (neural Anytime PSRO)",
  )
  parser.add_argument("--budget_s", type=float, default=600.0)
  parser.add_argument(
    "--br_seconds",
    type=float,
    default=None,
    help="first best responses' budget (default: the oracle's psro_defaults)",
  )
  parser.add_argument(
    "--br_seconds_final",
    type=float,
    default=None,
    help="ramp the best-response budget linearly from --br_seconds to this over"
    " --ramp_iterations (default: the oracle's, `psro_config.budget_final_s`)",
  )
  parser.add_argument(
    "--ramp_iterations", type=int, default=psro_config.default("oracle_budget_ramp_iterations")
  )
  parser.add_argument(
    "--backend",
    default="ray",
    choices=backends.names(),
    help="ray: both players' best responses train at once",
  )
  parser.add_argument(
    "--best_responses_per_player",
    default="",
    help="e.g. 2,1: two best responses for player 0 per iteration (default one each)",
  )
  parser.add_argument("--target", type=float, default=0.2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="override a field of the oracle's Config",
  )
  parser.add_argument(
    "--stock", action="store_true", help="run stock OpenSpiel's own RL PSRO (JAX) instead"
  )
  parser.add_argument("--stock_oracle", default="PG", choices=["PG", "DQN"])
  parser.add_argument(
    "--stock_episodes",
    type=int,
    default=stock_baseline.StockRLConfig.number_training_episodes,
    help="training episodes per stock best response",
  )
  parser.add_argument(
    "--stock_sims_per_entry",
    type=int,
    default=1000,
    help="games per payoff entry for stock (the example's 1000)",
  )
  args = parser.parse_args()
  if args.stock:
    _run_stock(args)
    return
  oracle_config = dict(progress=False)
  if args.br_seconds is not None:
    oracle_config["time_budget_s"] = args.br_seconds
  oracle_config.update(config_overrides.parse(args.set))

  config = psro.PSROConfig(
    game=args.game,
    algorithm=args.algorithm,
    iterations=10_000,
    target_nash_conv=0.0,
    meta_solver=args.meta_solver,
    oracle=args.oracle,
    oracle_config=oracle_config,
    seed=args.seed,
    time_budget_s=args.budget_s,
    oracle_budget_final_s=(
      psro_config.budget_final_s(oracles.get(args.oracle))
      if args.br_seconds_final is None
      else args.br_seconds_final
    ),
    oracle_budget_ramp_iterations=args.ramp_iterations,
    best_responses_per_player=tuple(int(k) for k in args.best_responses_per_player.split(",") if k),
  )
  chosen = json.loads(args.algorithm_options)
  variant = None  # None: the resolved algorithm's, with its default options
  if args.algorithm is not None:
    variant = algorithms.make(args.algorithm, algorithms.options(args.algorithm, chosen))
  elif chosen:
    parser.error("--algorithm_options needs --algorithm")
  start = time.perf_counter()  # Ray's start-up counts
  backend = backends.make(args.backend)
  # Resolves the algorithm and meta-solver left unset as the main command does.
  run = psro.PSRO(config, backend=backend, variant=variant)
  config = run.config
  settings = {
    k: v
    for k, v in vars(run.oracle.config).items()
    if k in {**oracles.get(args.oracle).psro_defaults, **oracle_config}
  }
  print(
    f"{config.algorithm}({args.oracle}, {config.meta_solver}) {args.algorithm_options}"
    f" on {args.game},"
    f" {args.backend} backend,"
    f" {args.budget_s:g} s budget; best responses {run.oracle_time_budget(0):g} ->"
    f" {run.oracle_time_budget(args.ramp_iterations):g} s over"
    f" {args.ramp_iterations} iterations; best responses per player"
    f" {config.best_responses_per_player or 'one each'}; oracle settings {settings}"
  )
  print(f"{'iter':>4} {'seconds':>8} {'episodes':>12} {'NashConv':>9}  per player")
  episodes = 0
  reached = None  # (record, seconds, episodes) of the first NashConv <= target
  while run.should_stop() is None:
    record = run.step()
    seconds = time.perf_counter() - start
    # The record's NashConv is of sigma before this iteration's best
    # responses, and its time is after them: the time is an upper bound.
    per_player = " ".join(f"{e:.3f}" for e in record.exploitability_per_player)
    print(
      f"{record.iteration:>4} {seconds:>8.1f} {episodes:>12,}"
      f" {record.nash_conv:>9.4f}  {per_player}",
      flush=True,
    )
    if reached is None and record.nash_conv <= args.target:
      reached = (record, seconds, episodes)
    episodes += sum(
      m.stats.get("episodes", 0)
      for pop, before in zip(run.populations, record.population_size)
      for m in pop[before:]
    )
  # The final population's output (after the last best responses): the
  # meta-strategy, or the variant's own output.
  _, final = run.variant.output(run.variant.meta_solve())
  total = time.perf_counter() - start
  backend.close()
  print(f"{'end':>4} {total:>8.1f} {episodes:>12,} {final.nash_conv:>9.4f}")
  curve = np.array([r.nash_conv for r in run.records])
  print(
    "NashConv at 60/120/300/600 s: "
    + " / ".join(f"{_at(run.records, curve, t):.3f}" for t in (60, 120, 300, 600))
  )
  print(
    f"final meta-strategy after {len(run.records)} iterations, {total:.0f} s,"
    f" {episodes:,} episodes: NashConv {final.nash_conv:.4f}; median of the"
    f" last 20 iterations {np.median(curve[-20:]):.4f}"
  )
  if reached is None or reached[1] > args.budget_s:
    print(
      f"MISS: NashConv never at or below {args.target} within {args.budget_s:.0f} s"
      f" (best {curve.min():.4f})"
    )
    return
  record, seconds, reached_episodes = reached
  theirs = verification.openspiel_nash_conv(run.tree, run.population_matrices(), record.sigma)
  # Reaching the target once is not enough: the final meta-strategy must hold it.
  verdict = "PASS" if final.nash_conv <= args.target else "REACHED, NOT HELD at the end"
  print(
    f"{verdict}: NashConv {record.nash_conv:.4f} <= {args.target} at iteration"
    f" {record.iteration}, {seconds:.0f} s, {reached_episodes:,} episodes"
    f" (OpenSpiel's nash_conv: {theirs:.4f}); target within"
    f" {args.budget_s:.0f} s; {np.sum(curve <= args.target)} of"
    f" {len(curve)} iterations at or below it"
  )


def _run_stock(args):
  """Stock's own RL PSRO for `--budget_s` of its time; prints its NashConv curve."""
  reason = stock_baseline.stock_rl_import_error()
  if reason is not None:
    sys.exit(
      f"--stock needs stock's JAX RL oracles ({reason}); install them with:"
      f" {stock_baseline.STOCK_RL_INSTALL}"
    )
  # Stock's per-iteration progress lines (absl leaves the root logger at WARNING).
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
  rl_config = dataclasses.replace(
    stock_baseline.StockRLConfig(),
    oracle_type=args.stock_oracle,
    number_training_episodes=args.stock_episodes,
  )
  print(
    f"stock psro_v2 RL PSRO on {args.game} ({args.stock_oracle} oracle, nash,"
    f" {args.stock_sims_per_entry} games per payoff entry), {args.budget_s:g} s"
    f" budget; settings {dataclasses.asdict(rl_config)}",
    flush=True,
  )
  start = time.perf_counter()
  result = stock_baseline.run_stock_psro(
    args.game,
    "nash",
    10_000,
    args.budget_s,
    args.stock_sims_per_entry,
    args.seed,
    make_oracle=functools.partial(stock_baseline.stock_rl_oracle, config=rl_config),
  )
  total = time.perf_counter() - start
  print(f"{'iter':>4} {'seconds':>8} {'NashConv':>9}")
  for record in result.records:
    print(f"{record['iteration']:>4} {record['wall_time_s']:>8.1f} {record['nash_conv']:>9.4f}")
  times = np.array([r["wall_time_s"] for r in result.records])
  curve = np.array([r["nash_conv"] for r in result.records])
  print(
    "NashConv at 60/120/300/600 s of stock's time: "
    + " / ".join(
      f"{curve[times <= t][-1]:.3f}" if np.any(times <= t) else "nan" for t in (60, 120, 300, 600)
    )
  )
  print(
    f"stock final meta-strategy after {len(result.records) - 1} iterations,"
    f" {times[-1]:.0f} s of stock's time (stopped by {result.stopped_by};"
    f" {total:.0f} s with OpenSpiel's NashConv measurements):"
    f" NashConv {curve[-1]:.4f} (OpenSpiel's nash_conv), best {curve.min():.4f}"
  )


def _at(records, curve, seconds: float) -> float:
  """NashConv of the last meta-strategy computed by `seconds` of PSRO time."""
  times = np.array([r.wall_time_s - r.iteration_time_s for r in records])
  before = np.flatnonzero(times <= seconds)
  return float(curve[before[-1]]) if len(before) else float("nan")


if __name__ == "__main__":
  main()
