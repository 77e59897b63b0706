r"""Runs PSRO with exact NashConv: `python -m openspiel_psro_ext.run`.

Example:
  python -m openspiel_psro_ext.run --game=leduc_poker --compare_stock
  python -m openspiel_psro_ext.run --game=leduc_poker --oracle=exact

The default oracle is PPO (deep RL, 5 minutes); `--oracle=exact` computes
best responses in closed form.

Every iteration logs one line (iteration, population size, exact NashConv,
per-player exploitability, support size, seconds). At the end, NashConv is
recomputed with OpenSpiel's `PolicyAggregator` + `exploitability.nash_conv`;
a mismatch over 1e-6 stops the run. Results go to `--output_dir`
(`config.json`, `metrics.jsonl`, `payoffs.npy`, `population/`, plots,
`summary.json`); `--resume` continues a killed run. Ctrl-C finishes the
current iteration's writes and exits cleanly.
"""

from __future__ import annotations

import dataclasses
import json
import logging as std_logging
import os
import signal
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import pyspiel

from openspiel_psro_ext import backends
from openspiel_psro_ext import checkpoints
from openspiel_psro_ext import game_tree
from openspiel_psro_ext import oracles
from openspiel_psro_ext import psro as psro_lib

FLAGS = flags.FLAGS

# Default run lengths: PSRO with PPO on Leduc is at NashConv ~0.17 after 300 s
# on 2 cores (benchmarks/psro_rl.py); the exact oracle needs seconds.
RL_TIME_BUDGET_S = 300.0
EXACT_TIME_BUDGET_S = 60.0

flags.DEFINE_string("game", "leduc_poker", "OpenSpiel game string.")
flags.DEFINE_integer("iterations", 400, "Maximum PSRO iterations.")
flags.DEFINE_string("meta_solver", "nash", "Meta-solver name (see meta_solvers.names()).")
flags.DEFINE_string("meta_solver_kwargs", "{}", "JSON keyword arguments for the meta-solver.")
flags.DEFINE_string("oracle", "ppo",
                    "Best-response oracle (see oracles.names()): ppo, dqn, sac"
                    " (deep RL) or exact (closed form over the compiled tree,"
                    " seconds to NashConv 0.01 on Leduc).")
flags.DEFINE_string("oracle_config", "{}", "JSON overrides of the oracle's Config fields.")
flags.DEFINE_string("device", None, "Torch device for RL oracles (cpu, cuda).")
flags.DEFINE_integer("seed", 0, "Seed for every random choice of the run.")
flags.DEFINE_string("output_dir", None,
                    "Run directory (default: runs/<game>-<timestamp>).")
flags.DEFINE_float("time_budget_s", None,
                   "Stop after this many seconds (0: none; default %g s for RL"
                   " oracles, %g s for exact)." % (RL_TIME_BUDGET_S, EXACT_TIME_BUDGET_S))
flags.DEFINE_float("target_nash_conv", 0.01, "Stop at or below this NashConv (0: never).")
flags.DEFINE_integer("sims_per_entry", 0,
                     "0: exact payoff tables; N: N sampled games per entry.")
flags.DEFINE_integer("verify_every", 0,
                     "Check NashConv with OpenSpiel's code every N iterations"
                     " (0: only at the end).")
flags.DEFINE_bool("compare_stock", False,
                  "Also run stock psro_v2 on the same settings and compare.")
flags.DEFINE_integer("stock_sims_per_entry", 1000,
                     "Games per payoff entry for stock psro_v2 (its default).")
flags.DEFINE_bool("symmetric", False, "One population shared by both players.")
flags.DEFINE_bool("resume", False, "Continue the run in --output_dir.")
flags.DEFINE_enum("backend", "auto", ["auto", "embedded", "ray"],
                  "Where best responses run: in this process, or as parallel"
                  " Ray tasks (a local Ray, or --ray_address). auto: ray for RL"
                  " oracles when Ray is installed and there are 2+ CPUs, else"
                  " embedded.")
flags.DEFINE_string("ray_address", None,
                    "An existing Ray cluster for --backend=ray (default: start"
                    " a local one).")
flags.DEFINE_float("oracle_budget_final_s", None,
                   "RL oracles: ramp each best response's time budget (the"
                   " oracle's time_budget_s) up to this over"
                   " --oracle_budget_ramp_iterations (0: constant). Default: %g s"
                   " from the oracle's PSRO default, unless --oracle_config sets"
                   " time_budget_s." % psro_lib.RL_BUDGET_FINAL_S)
flags.DEFINE_integer("oracle_budget_ramp_iterations", psro_lib.RL_BUDGET_RAMP_ITERATIONS,
                     "Iterations over which --oracle_budget_final_s ramps.")
flags.DEFINE_list("best_responses_per_player", [],
                  "Best responses each population gets per iteration, e.g. 2,1"
                  " (different seeds; default one each).")
flags.DEFINE_integer("max_histories", game_tree.DEFAULT_MAX_HISTORIES,
                     "Refuse games with more histories than this.")
flags.DEFINE_bool("tensorboard", False, "Also write TensorBoard event files.")
flags.DEFINE_string("cache_dir",
                    os.path.join(os.environ.get("XDG_CACHE_HOME",
                                                os.path.expanduser("~/.cache")),
                                 "openspiel_psro_ext"),
                    "Where per-game results that never change (the CFR+"
                    " baseline policy) are cached; empty: no cache.")
flags.DEFINE_integer("metrics_every", 10,
                     "Compute win rates, Elo and diversity every N iterations"
                     " (0: never; their time is logged apart from PSRO's).")

_VERIFY_TOLERANCE = 1e-6


class UsageError(ValueError):
  """Bad command-line input."""


def _json_flag(name: str, text: str) -> dict[str, Any]:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise UsageError(f"--{name} is not valid JSON ({e}): {text!r}") from e
  if not isinstance(value, dict):
    raise UsageError(f"--{name} must be a JSON object, got {text!r}")
  return value


def config_from_flags() -> psro_lib.PSROConfig:
  """The `PSROConfig` the flags describe (validated by PSRO itself)."""
  try:
    game = pyspiel.load_game(FLAGS.game)
  except pyspiel.SpielError as e:
    reason = str(e).splitlines()[0].split(". Available")[0]
    raise UsageError(f"unknown or malformed --game={FLAGS.game!r} ({reason}); see"
                     " pyspiel.registered_names().") from e
  oracle_config = _json_flag("oracle_config", FLAGS.oracle_config)
  fields = {f.name for f in dataclasses.fields(oracles.get(FLAGS.oracle).Config)}
  budget_final = FLAGS.oracle_budget_final_s
  time_budget = FLAGS.time_budget_s
  if time_budget is None:
    time_budget = (RL_TIME_BUDGET_S if oracles.trains(FLAGS.oracle)
                   else EXACT_TIME_BUDGET_S)
  if oracles.trains(FLAGS.oracle) and "time_budget_s" not in oracle_config:
    # Many short best responses early, longer ones near equilibrium.
    start = psro_lib.make_oracle(FLAGS.oracle, oracle_config).config.time_budget_s
    if budget_final is None:
      budget_final = max(psro_lib.RL_BUDGET_FINAL_S, start)
    logging.info("%s best responses get %g s each, ramping to %g s over %d"
                 " iterations (set time_budget_s in --oracle_config or"
                 " --oracle_budget_final_s to change).", FLAGS.oracle, start,
                 budget_final, FLAGS.oracle_budget_ramp_iterations)
  if FLAGS.device is not None:
    if "device" in fields:
      oracle_config["device"] = FLAGS.device
    else:
      logging.info("--device=%s ignored: the %s oracle runs in numpy.",
                   FLAGS.device, FLAGS.oracle)
  try:
    per_player = tuple(int(k) for k in FLAGS.best_responses_per_player)
  except ValueError as e:
    raise UsageError(f"--best_responses_per_player takes integers, e.g. 2,1; got"
                     f" {','.join(FLAGS.best_responses_per_player)!r}.") from e
  return psro_lib.PSROConfig(
      game=str(game), iterations=FLAGS.iterations, meta_solver=FLAGS.meta_solver,
      meta_solver_kwargs=_json_flag("meta_solver_kwargs", FLAGS.meta_solver_kwargs),
      oracle=FLAGS.oracle, oracle_config=oracle_config, seed=FLAGS.seed,
      symmetric=FLAGS.symmetric, sims_per_entry=FLAGS.sims_per_entry,
      time_budget_s=time_budget, target_nash_conv=FLAGS.target_nash_conv,
      oracle_budget_final_s=budget_final or 0.0,
      oracle_budget_ramp_iterations=FLAGS.oracle_budget_ramp_iterations,
      best_responses_per_player=per_player, max_histories=FLAGS.max_histories)


def _resume_config(output_dir: str, config: psro_lib.PSROConfig) -> psro_lib.PSROConfig:
  """The saved config, with this invocation's stopping rules."""
  path = os.path.join(output_dir, checkpoints.CONFIG_FILE)
  if not os.path.exists(path):
    return config
  saved = psro_lib.PSROConfig.from_dict(checkpoints.read_json(path))
  return dataclasses.replace(saved, iterations=config.iterations,
                             time_budget_s=config.time_budget_s,
                             target_nash_conv=config.target_nash_conv)


def format_record(record: dict[str, Any]) -> str:
  """The one-line iteration log."""
  expl = ", ".join(f"{e:.4f}" for e in record["exploitability_per_player"])
  sizes = record["population_size"]
  line = (f"it {record['iteration']:4d} | pop {max(sizes):4d} | NashConv"
          f" {record['nash_conv']:.6f} | expl [{expl}] | support"
          f" {record['support_size']} | {record['iteration_time_s']:.3f}s"
          f" (total {record['wall_time_s']:.1f}s)")
  if record.get("short_log"):
    line += " | " + record["short_log"]
  return line


class _RunMetrics:
  """Win rates, Elo and diversity every `every` iterations, as a PSRO hook."""

  def __init__(self, tree: game_tree.GameTree, every: int, cache_dir: str):
    from openspiel_psro_ext import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
    self._lib = metrics_lib
    self.every = every
    self.computer = metrics_lib.IterationMetrics(tree, cache_dir=cache_dir or None)

  def compute(self, run: psro_lib.PSRO, matrices) -> dict[str, Any]:
    values = self.computer.compute(matrices, run.meta_strategies, run.table.meta_games)
    values["short_log"] = self._lib.short_log(values)
    return values

  def __call__(self, run: psro_lib.PSRO, matrices) -> dict[str, Any]:
    if run.iteration % self.every:
      return {}
    return self.compute(run, matrices)

  def final(self, run: psro_lib.PSRO) -> dict[str, Any]:
    """The metrics of the run's last meta-strategy (for summary.json)."""
    last = run.records[-1]
    if any("/" in key for key in last):
      return {k: v for k, v in last.items() if "/" in k}
    sizes = last["population_size"]
    matrices = [m[:n] for m, n in zip(run.population_matrices(), sizes)]
    meta_games = [t[tuple(slice(0, n) for n in sizes)] for t in run.table.meta_games]
    values = self.computer.compute(matrices, run.meta_strategies, meta_games)
    return {k: v for k, v in values.items() if "/" in k}


def _install_interrupt_handler(run: psro_lib.PSRO) -> None:
  def handler(signum, frame):
    del frame
    if run.stop_requested:  # A second Ctrl-C stops at once.
      raise KeyboardInterrupt
    logging.warning("Signal %d: finishing this iteration's writes, then"
                    " stopping (Ctrl-C again to abort).", signum)
    run.stop_requested = True
  signal.signal(signal.SIGINT, handler)
  signal.signal(signal.SIGTERM, handler)


def _render_plots(output_dir: str) -> list[str]:
  try:
    from openspiel_psro_ext import plots  # pylint: disable=g-import-not-at-top
  except ImportError:
    return []
  return plots.render_run_plots(output_dir)


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  config = config_from_flags()
  output_dir = FLAGS.output_dir or os.path.join(
      "runs", f"{config.game.replace('(', '_').replace(')', '').replace(',', '_')}"
      f"-{time.strftime('%Y%m%d-%H%M%S')}")
  if FLAGS.resume:
    config = _resume_config(output_dir, config)
  backend_name = _backend_name(config)  # a missing Ray is bad input: before any write
  # The run checks its config (and output directory) before Ray starts.
  run = psro_lib.PSRO(config, output_dir=output_dir, resume=FLAGS.resume)
  run.backend = (backends.RayBackend(address=FLAGS.ray_address) if backend_name == "ray"
                 else backends.EmbeddedBackend())
  try:
    return _run(run, output_dir)
  finally:
    run.backend.close()


def _backend_name(config: psro_lib.PSROConfig) -> str:
  """`--backend`, with auto resolved; checks that Ray is there if needed."""
  try:
    import ray  # pylint: disable=g-import-not-at-top,unused-import
    has_ray = True
  except ImportError:
    has_ray = False
  name = FLAGS.backend
  if name == "auto":
    # Parallel best responses pay off when each one is seconds of training.
    wants_ray = FLAGS.ray_address or (oracles.trains(config.oracle)
                                      and (os.cpu_count() or 1) > 1)
    name = "ray" if wants_ray and has_ray else "embedded"
    if wants_ray and not has_ray:
      logging.info("Ray is not installed: best responses run one at a time"
                   " (pip install 'openspiel_psro_ext[ray]' to train them in"
                   " parallel).")
  if name == "ray" and not has_ray:
    raise UsageError("--backend=ray needs Ray: pip install -c constraints.txt"
                     " 'openspiel_psro_ext[ray]', or use --backend=embedded.")
  if name == "embedded" and FLAGS.ray_address:
    raise UsageError("--ray_address needs --backend=ray (and Ray installed).")
  return name


def _run(run: psro_lib.PSRO, output_dir: str) -> int:
  config, backend = run.config, run.backend
  run_metrics = (_RunMetrics(run.tree, FLAGS.metrics_every, FLAGS.cache_dir)
                 if FLAGS.metrics_every > 0 else None)
  run.extra_metrics = run_metrics
  tensorboard = None
  if FLAGS.tensorboard:
    from openspiel_psro_ext import tensorboard as tb  # pylint: disable=g-import-not-at-top
    tensorboard = tb.TensorboardLogger(os.path.join(output_dir, "tensorboard"))
  _install_interrupt_handler(run)
  logging.info("PSRO on %s (%d histories): meta-solver %s, oracle %s (%s backend),"
               " %s payoffs; writing %s", config.game, run.tree.num_histories,
               config.meta_solver, config.oracle, backend.name,
               "exact" if config.sims_per_entry <= 0 else
               f"{config.sims_per_entry}-sample", output_dir)

  def on_iteration(record: dict[str, Any]) -> None:
    logging.info(format_record(record))
    if tensorboard is not None:
      tensorboard.log(record["iteration"], record)
    if FLAGS.verify_every and record["iteration"] % FLAGS.verify_every == 0:
      theirs = run.verify(_VERIFY_TOLERANCE)
      logging.info("  verified with OpenSpiel: %.9f", theirs)

  try:
    reason = run.run(on_iteration)
  finally:
    if tensorboard is not None:
      tensorboard.close()
  if not run.records:
    logging.info("Nothing to do: the run already meets its stopping rule.")
    return 0
  final = run.records[-1]
  verified = run.verify(_VERIFY_TOLERANCE)
  summary = {
      "game": config.game, "stopped_by": reason,
      "iterations": len(run.records), "population_size": final["population_size"],
      "nash_conv": final["nash_conv"],
      "exploitability_per_player": final["exploitability_per_player"],
      "nash_conv_openspiel": verified, "verified": True,
      "verification": "open_spiel PolicyAggregator + exploitability.nash_conv",
      "wall_time_s": final["wall_time_s"],
      "units": "NashConv (OpenSpiel's exploitability() is NashConv / 2 for two players)",
  }
  if run_metrics is not None:  # e.g. "elo/meta_strategy", "win_rate/cfr_plus".
    summary.update(run_metrics.final(run))
  if FLAGS.compare_stock:
    summary["stock"] = _compare_stock(run, output_dir)
  checkpoints.write_json(os.path.join(output_dir, checkpoints.SUMMARY_FILE), summary)
  for path in _render_plots(output_dir):
    logging.info("wrote %s", path)
  logging.info(
      "Final NashConv %.9f after %d iterations (%.1fs, stopped by %s); verified"
      " with OpenSpiel's PolicyAggregator + exploitability.nash_conv: %.9f.",
      final["nash_conv"], len(run.records), final["wall_time_s"], reason, verified)
  if reason == "interrupted":
    logging.info("Interrupted: finished iterations are saved; continue with"
                 " --resume --output_dir=%s", output_dir)
  return 0


def _compare_stock(run: psro_lib.PSRO, output_dir: str) -> dict[str, Any]:
  try:
    from openspiel_psro_ext import stock_baseline  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UsageError(
        f"--compare_stock needs stock psro_v2, whose import failed ({e}); install"
        " its extras with: pip install 'openspiel_psro_ext[stock]'") from e
  config = run.config
  budget = config.time_budget_s
  stock_oracle, label = None, "stock BestResponseOracle (exact, C++)"
  if config.oracle != "exact":
    from openspiel_psro_ext import openspiel_compat  # pylint: disable=g-import-not-at-top
    stock_oracle, label = openspiel_compat.stock_rl_oracle(run.tree, config)
  logging.info("Running stock psro_v2 (%s) for up to %d iterations%s...", label,
               len(run.records), f" or {budget:.0f}s" if budget > 0 else "")
  stock = stock_baseline.run_stock_psro(
      config.game, config.meta_solver, len(run.records), budget,
      FLAGS.stock_sims_per_entry, config.seed, oracle=stock_oracle, oracle_label=label)
  table = stock_baseline.comparison_table(run.records, stock)
  for line in table.splitlines():
    logging.info(line)
  comparison = {"label": f"stock psro_v2 ({stock.sims_per_entry} games/entry)",
                "oracle": label, "meta_solver": stock.meta_solver_used,
                "stock": stock.records, "stopped_by": stock.stopped_by,
                "summary": stock_baseline.speedup_summary(run.records, stock)}
  checkpoints.write_json(os.path.join(output_dir, "comparison.json"), comparison)
  return comparison


def entry_point() -> None:
  """Runs `main`, turning bad input into a one-line error and exit code 2."""
  def guarded(argv):
    try:
      return main(argv)
    except (UsageError, checkpoints.CheckpointError, game_tree.GameTooLargeError,
            ValueError, psro_lib.VerificationError) as e:
      std_logging.shutdown()
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  app.run(guarded)


if __name__ == "__main__":
  entry_point()
