"""The simulated mode (issue 13): PSRO with PPO on games played through pyspiel.

  python benchmarks/psro_simulated.py --part=validate [--budget_s=600]
  python benchmarks/psro_simulated.py --part=games [--budget_s=600]
      [--games=universal_poker,liars_dice(numdice=2)]

`validate`: leduc_poker forced into the simulated mode (`evaluation=sampled`:
payoffs from played games, PPO best responses on batched pyspiel games). The
compiled tree is kept beside it, so every record carries the exact NashConv
of the same meta-strategy; every `--approx_every` iterations and at the end
the approximate NashConv (fresh PPO best responses with a fixed episode
budget, `--approx_eval_games` games per value) is set beside it. Checks: the
gap is at most 0.05 + 10% of the exact value at every point, and the estimate
never exceeds the exact value by more than its 95% interval (it is a lower
bound up to sampling error); the exact NashConv at or below 0.3 within the
budget.

`games`: games that do not compile under the default limit, each run for
`--budget_s` in the simulated mode with PPO, the approximate NashConv curve
printed; the final estimate should be at most half of iteration 0's.

Every time is the run's whole clock (`wall_time_s`: training, payoff games,
estimates and writes); the machine it ran on is printed with the load.
"""

import argparse
import os
import time

from openspiel_psro_ext import approx_exploitability
from openspiel_psro_ext import backends
from openspiel_psro_ext import psro


def _run(game: str, budget_s: float, approx_every: int, approx_episodes: int,
         eval_games: int, seed: int, backend: str):
  config = psro.PSROConfig(game=game, evaluation="sampled", oracle="ppo", seed=seed,
                           iterations=100_000, time_budget_s=budget_s, target_nash_conv=0.0)
  estimator = approx_exploitability.ApproxNashConvConfig(seed=seed, eval_games=eval_games)
  estimator.oracle_config["total_episodes"] = approx_episodes

  def approx(snap):
    return approx_exploitability.approx_nash_conv(
        snap.view.game, snap.policies(), snap.sigma, estimator, snap.backend).metrics()

  run = psro.PSRO(config, backend=backends.make(backend),
                  evaluations=[psro.Evaluation(approx, every=approx_every)])
  print(f"{game}: simulated mode, PPO best responses, {budget_s:g} s; approximate"
        f" NashConv every {approx_every} iterations with {approx_episodes:,}-episode"
        f" PPO best responses and {eval_games:,} games per value", flush=True)
  print(f"{'iter':>4} {'seconds':>8} {'exact':>9} {'approx':>9} {'ci95':>7}")

  def show(record):
    exact = "-" if record.nash_conv is None else f"{record.nash_conv:.4f}"
    if "approx_nash_conv" in record.metrics:
      print(f"{record.iteration:>4} {record.wall_time_s:>8.1f} {exact:>9}"
            f" {record.metrics['approx_nash_conv']:>9.4f}"
            f" {record.metrics['approx_nash_conv_ci95']:>7.4f}", flush=True)
    elif record.nash_conv is not None:
      print(f"{record.iteration:>4} {record.wall_time_s:>8.1f} {exact:>9}", flush=True)
  try:
    run.run(show)
  finally:
    run.backend.close()
  last = run.records[-1]
  show(last)  # the final estimate, added when the run stopped
  return run


def validate(args) -> None:
  run = _run("leduc_poker", args.budget_s, args.approx_every, args.approx_episodes,
             args.approx_eval_games, args.seed, args.backend)
  points = [r for r in run.records if "approx_nash_conv" in r.metrics]
  ok = True
  for r in points:
    exact, approx = r.nash_conv, r.metrics["approx_nash_conv"]
    ci = r.metrics["approx_nash_conv_ci95"]
    gap_ok = abs(exact - approx) <= 0.05 + 0.1 * exact
    bound_ok = approx <= exact + ci
    ok &= gap_ok and bound_ok
    print(f"it {r.iteration:>4}: exact {exact:.4f}, approx {approx:.4f} +- {ci:.4f}:"
          f" gap {abs(exact - approx):.4f} ({'ok' if gap_ok else 'TOO LARGE'}),"
          f" {'below' if bound_ok else 'ABOVE'} exact + interval")
  reached = next((r for r in run.records if r.nash_conv <= 0.3), None)
  print(f"{len(points)} estimates: {'PASS' if ok and len(points) >= 5 else 'MISS'};"
        f" exact NashConv <= 0.3 " + (f"first at iteration {reached.iteration},"
                                      f" {reached.wall_time_s:.0f} s" if reached else
                                      "not reached") +
        f"; final exact {run.records[-1].nash_conv:.4f} after {run.records[-1].wall_time_s:.0f} s")


def games(args) -> None:
  for game in args.games.split(";"):
    run = _run(game, args.budget_s, args.approx_every, args.approx_episodes,
               args.approx_eval_games, args.seed, args.backend)
    points = [r for r in run.records if "approx_nash_conv" in r.metrics]
    first, last = points[0].metrics["approx_nash_conv"], points[-1].metrics["approx_nash_conv"]
    print(f"{game}: approximate NashConv {first:.4f} at iteration 0 -> {last:.4f} at"
          f" iteration {points[-1].iteration} ({points[-1].wall_time_s:.0f} s):"
          f" {'PASS' if last <= first / 2 else 'MISS'} (target: at most half)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", choices=["validate", "games"], default="validate")
  parser.add_argument("--budget_s", type=float, default=600.0)
  parser.add_argument("--approx_every", type=int, default=10)
  parser.add_argument("--approx_episodes", type=int, default=200_000)
  parser.add_argument("--approx_eval_games", type=int, default=20_000)
  parser.add_argument("--games", default="universal_poker;liars_dice(numdice=2)",
                      help="';'-separated game strings")
  parser.add_argument("--backend", default="ray", choices=backends.names())
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start,"
        f" {time.strftime('%Y-%m-%d %H:%M')}")
  validate(args) if args.part == "validate" else games(args)


if __name__ == "__main__":
  main()
