r"""Runs PSRO with exact NashConv: `python -m openspiel_psro_ext.run`.

Example:
  python -m openspiel_psro_ext.run --game=leduc_poker --compare_stock
  python -m openspiel_psro_ext.run --game=leduc_poker --oracle=exact

The default oracle is PPO (deep RL, 5 minutes); `--oracle=exact` computes
best responses in closed form.

Every iteration logs one line (iteration, population size, exact NashConv,
per-player exploitability, support size, seconds). At the end, NashConv is
recomputed with OpenSpiel's `exploitability.nash_conv` (see `verification`);
a mismatch over 1e-6 stops the run with exit code 3. Bad input is one line
and exit code 2; anything else is a bug and keeps its traceback. Results go to `--output_dir`
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
from collections.abc import Sequence
from typing import Any

import pyspiel
from absl import app, flags, logging

from openspiel_psro_ext import backends, oracles
from openspiel_psro_ext import psro as psro_lib
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.psro import variants as algorithms
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.runs import checkpoints

FLAGS = flags.FLAGS
_default = psro_config.default

flags.DEFINE_string("game", _default("game"), "OpenSpiel game string.")
flags.DEFINE_integer("iterations", _default("iterations"), "Maximum PSRO iterations.")
flags.DEFINE_string(
  "meta_solver", _default("meta_solver"), "Meta-solver name (see meta_solvers.names())."
)
flags.DEFINE_string(
  "meta_solver_kwargs",
  "{}",
  "JSON keyword arguments for the meta-solver (checked against its parameters).",
)
flags.DEFINE_string(
  "oracle",
  _default("oracle"),
  "Best-response oracle (see oracles.names()): ppo, dqn, sac,"
  " mpo, crossq (deep RL) or exact (closed form over the compiled tree,"
  " seconds to NashConv 0.01 on Leduc).",
)
flags.DEFINE_string("oracle_config", "{}", "JSON overrides of the oracle's Config fields.")
flags.DEFINE_string("device", None, "Torch device for RL oracles (cpu, cuda, cuda:N, mps).")
flags.DEFINE_integer("seed", _default("seed"), "Seed for every random choice of the run.")
flags.DEFINE_string("output_dir", None, "Run directory (default: runs/<game>-<timestamp>).")
flags.DEFINE_float(
  "time_budget_s",
  _default("time_budget_s"),
  "Stop after this many seconds of the run's whole clock (0:"
  f" none; default {psro_config.RL_TIME_BUDGET_S:g} s for RL oracles,"
  f" {psro_config.EXACT_TIME_BUDGET_S:g} s for exact).",
)
flags.DEFINE_float(
  "target_nash_conv", _default("target_nash_conv"), "Stop at or below this NashConv (0: never)."
)
flags.DEFINE_integer(
  "sims_per_entry",
  _default("sims_per_entry"),
  "0: exact payoff tables; N: N sampled games per entry.",
)
flags.DEFINE_integer(
  "verify_every", 0, "Check NashConv with OpenSpiel's code every N iterations (0: only at the end)."
)
flags.DEFINE_bool(
  "compare_stock", False, "Also run stock psro_v2 on the same settings and compare."
)
flags.DEFINE_integer(
  "stock_sims_per_entry", 1000, "Games per payoff entry for stock psro_v2 (its default)."
)
flags.DEFINE_bool("symmetric", _default("symmetric"), "One population shared by both players.")
flags.DEFINE_bool("resume", False, "Continue the run in --output_dir.")
flags.DEFINE_enum(
  "backend",
  "auto",
  ["auto", "embedded", "ray"],
  "Where best responses run: in this process, or as parallel"
  " Ray tasks (a local Ray, or --ray_address). auto: ray for RL"
  " oracles when Ray is installed and there are 2+ CPUs, else"
  " embedded.",
)
flags.DEFINE_string(
  "ray_address", None, "An existing Ray cluster for --backend=ray (default: start a local one)."
)
flags.DEFINE_float(
  "oracle_budget_final_s",
  _default("oracle_budget_final_s"),
  "RL oracles: ramp each best response's time budget (the"
  " oracle's time_budget_s) up to this over"
  f" --oracle_budget_ramp_iterations (0: constant). Default: {psro_config.RL_BUDGET_FINAL_S:g} s"
  " from the oracle's PSRO preset, unless --oracle_config sets"
  " time_budget_s.",
)
flags.DEFINE_integer(
  "oracle_budget_ramp_iterations",
  _default("oracle_budget_ramp_iterations"),
  "Iterations over which --oracle_budget_final_s ramps.",
)
flags.DEFINE_float(
  "meta_strategy_average_decay",
  _default("meta_strategy_average_decay"),
  "0, or output the exponential moving average of the"
  " meta-strategies with this decay (best responses still"
  f" train against each iteration's own). Default: {psro_config.RL_AVERAGE_DECAY:g} for"
  " plain PSRO with an RL oracle (about the last 10"
  " iterations: 25-45% less exploitable on Leduc), else 0.",
)
flags.DEFINE_list(
  "best_responses_per_player",
  [],
  "Best responses each population gets per iteration, e.g. 2,1"
  " (different seeds; default one each).",
)
flags.DEFINE_integer(
  "max_histories", _default("max_histories"), "Refuse games with more histories than this."
)
flags.DEFINE_bool("tensorboard", False, "Also write TensorBoard event files.")
flags.DEFINE_string(
  "cache_dir",
  os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "openspiel_psro_ext"
  ),
  "Where per-game results that never change (the CFR+"
  " baseline policy) are cached; empty: no cache.",
)
flags.DEFINE_string(
  "algorithm", _default("algorithm"), "PSRO or a variant of it (see algorithms.names())."
)
flags.DEFINE_string(
  "algorithm_options",
  "{}",
  "JSON settings of the variant, e.g. for p2sro"
  ' {"num_active": 4, "max_chunks": 6} (see'
  " p2sro.PipelineOptions); a resumed run takes the same.",
)
flags.DEFINE_enum(
  "evaluation",
  _default("evaluation"),
  ["auto", "exact", "sampled"],
  "exact: compile the game (exact payoffs and NashConv; refused"
  " for games too large); sampled: the simulated mode (payoffs"
  " from played games, approximate NashConv); auto: exact where"
  " the game compiles, decided in seconds.",
)
flags.DEFINE_float(
  "payoff_target_stderr",
  _default("payoff_target_stderr"),
  "Simulated mode: play each payoff entry until its standard"
  " error, weighted by the meta-strategy, is at most this"
  " (0: 0.4% of the game's utility range).",
)
flags.DEFINE_integer(
  "approx_episodes",
  200_000,
  "Simulated mode: training episodes of each approximate-"
  "NashConv best response (every --verify_every iterations"
  " and at the end).",
)
flags.DEFINE_integer(
  "approx_eval_games", 20_000, "Simulated mode: games per value in the approximate NashConv."
)
flags.DEFINE_integer(
  "metrics_every",
  10,
  "Compute win rates, Elo and diversity every N iterations"
  " and on the last one (0: never; their time is logged"
  " beside PSRO's).",
)

_VERIFY_TOLERANCE = 1e-6
_EXIT_USAGE = 2
_EXIT_VERIFICATION = 3


@dataclasses.dataclass
class RunOptions:
  """What the command does around the PSRO run (none of it changes results)."""

  output_dir: str
  resume: bool = False
  verify_every: int = 0
  metrics_every: int = 10
  cache_dir: str = ""
  tensorboard: bool = False
  compare_stock: bool = False
  stock_sims_per_entry: int = 1000
  backend: str = "auto"
  ray_address: str | None = None
  approx_episodes: int = 200_000
  approx_eval_games: int = 20_000
  algorithm_options: Any = None  # the variant's `Options` (algorithms.options)


def _json_flag(name: str, text: str) -> dict[str, Any]:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise UsageError(f"--{name} is not valid JSON ({e}): {text!r}") from e
  if not isinstance(value, dict):
    raise UsageError(f"--{name} must be a JSON object, got {text!r}")
  return value


def config_from_flags() -> psro_lib.PSROConfig:
  """The resolved `PSROConfig` the flags describe (checked by PSRO itself)."""
  try:
    game = pyspiel.load_game(FLAGS.game)
  except pyspiel.SpielError as e:
    reason = str(e).splitlines()[0].split(". Available")[0]
    raise UsageError(
      f"unknown or malformed --game={FLAGS.game!r} ({reason}); see pyspiel.registered_names()."
    ) from e
  oracle_config = _json_flag("oracle_config", FLAGS.oracle_config)
  if FLAGS.device is not None:
    psro_config.check_device(FLAGS.device)
    if "device" in oracles.get(FLAGS.oracle).settings():
      oracle_config["device"] = FLAGS.device
    else:
      logging.info("--device=%s ignored: the %s oracle runs in numpy.", FLAGS.device, FLAGS.oracle)
  try:
    per_player = tuple(int(k) for k in FLAGS.best_responses_per_player)
  except ValueError as e:
    raise UsageError(
      f"--best_responses_per_player takes integers, e.g. 2,1; got"
      f" {','.join(FLAGS.best_responses_per_player)!r}."
    ) from e
  return psro_config.resolve(
    psro_lib.PSROConfig(
      game=str(game),
      iterations=FLAGS.iterations,
      meta_solver=FLAGS.meta_solver,
      meta_solver_kwargs=_json_flag("meta_solver_kwargs", FLAGS.meta_solver_kwargs),
      oracle=FLAGS.oracle,
      oracle_config=oracle_config,
      seed=FLAGS.seed,
      symmetric=FLAGS.symmetric,
      sims_per_entry=FLAGS.sims_per_entry,
      time_budget_s=FLAGS.time_budget_s,
      target_nash_conv=FLAGS.target_nash_conv,
      oracle_budget_final_s=FLAGS.oracle_budget_final_s,
      oracle_budget_ramp_iterations=FLAGS.oracle_budget_ramp_iterations,
      best_responses_per_player=per_player,
      max_histories=FLAGS.max_histories,
      evaluation=FLAGS.evaluation,
      payoff_target_stderr=FLAGS.payoff_target_stderr,
      algorithm=FLAGS.algorithm,
      meta_strategy_average_decay=FLAGS.meta_strategy_average_decay,
    )
  )


def options_from_flags(config: psro_lib.PSROConfig) -> RunOptions:
  output_dir = FLAGS.output_dir or os.path.join(
    "runs",
    f"{config.game.replace('(', '_').replace(')', '').replace(',', '_')}"
    f"-{time.strftime('%Y%m%d-%H%M%S')}",
  )
  return RunOptions(
    output_dir=output_dir,
    resume=FLAGS.resume,
    verify_every=FLAGS.verify_every,
    metrics_every=FLAGS.metrics_every,
    cache_dir=FLAGS.cache_dir,
    tensorboard=FLAGS.tensorboard,
    compare_stock=FLAGS.compare_stock,
    stock_sims_per_entry=FLAGS.stock_sims_per_entry,
    backend=FLAGS.backend,
    ray_address=FLAGS.ray_address,
    approx_episodes=FLAGS.approx_episodes,
    approx_eval_games=FLAGS.approx_eval_games,
    algorithm_options=algorithms.options(
      config.algorithm, _json_flag("algorithm_options", FLAGS.algorithm_options)
    ),
  )


def _resume_config(output_dir: str, config: psro_lib.PSROConfig) -> psro_lib.PSROConfig:
  """The saved config, with this invocation's stopping rules."""
  path = os.path.join(output_dir, checkpoints.CONFIG_FILE)
  if not os.path.exists(path):
    return config
  saved = psro_lib.PSROConfig.from_dict(checkpoints.read_json(path))
  return dataclasses.replace(
    saved,
    iterations=config.iterations,
    time_budget_s=config.time_budget_s,
    target_nash_conv=config.target_nash_conv,
  )


def format_record(record: IterationRecord) -> str:
  """The one-line iteration log."""
  if record.nash_conv is not None:
    expl = ", ".join(f"{e:.4f}" for e in record.exploitability_per_player)
    quality = f"NashConv {record.nash_conv:.6f} | expl [{expl}]"
  else:
    values = ", ".join(f"{v:.4f}" for v in record.on_policy_values)
    quality = f"values [{values}]"
  line = (
    f"it {record.iteration:4d} | pop {max(record.population_size):4d} | {quality}"
    f" | support {record.support_size} | {record.iteration_time_s:.3f}s"
    f" (psro {record.psro_time_s:.3f}s; total {record.wall_time_s:.1f}s)"
  )
  if "approx_nash_conv" in record.metrics:
    line += (
      f" | approx NashConv {record.metrics['approx_nash_conv']:.4f}"
      f" +- {record.metrics['approx_nash_conv_ci95']:.4f} (lower bound)"
    )
  if any("/" in key for key in record.metrics):
    from openspiel_psro_ext.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top

    line += f" | {metrics_lib.short_log(record.metrics)}"
  if record.metrics:
    line += f" ({record.metrics_time_s:.2f}s)"
  return line


def evaluations(view: views.View, options: RunOptions, seed: int) -> list[psro_lib.Evaluation]:
  """The run's evaluation hooks: run metrics where the game has a tree, and the
  approximate NashConv in the simulated mode."""
  hooks = []
  if options.metrics_every > 0 and view.tree is not None:
    from openspiel_psro_ext.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top

    computer = metrics_lib.IterationMetrics(view.tree, cache_dir=options.cache_dir or None)
    hooks.append(
      psro_lib.Evaluation(
        lambda snap: computer.compute(snap.matrices(), snap.sigma, snap.meta_games),
        every=options.metrics_every,
      )
    )
  if view.simulated:
    from openspiel_psro_ext.evaluation import approx_exploitability  # pylint: disable=g-import-not-at-top

    config = approx_exploitability.ApproxNashConvConfig(
      seed=seed, eval_games=options.approx_eval_games
    )
    config.oracle_config["total_episodes"] = options.approx_episodes

    def approx(snap: psro_lib.Snapshot) -> dict[str, Any]:
      return approx_exploitability.approx_nash_conv(
        snap.view.game, snap.policies(), snap.sigma, config, snap.backend
      ).metrics()

    hooks.append(psro_lib.Evaluation(approx, every=options.verify_every))
  return hooks


def _install_interrupt_handler(run: psro_lib.PSRO) -> None:
  def handler(signum, frame):
    del frame
    if run.stop_requested:  # A second Ctrl-C stops at once.
      raise KeyboardInterrupt
    logging.warning(
      "Signal %d: finishing this iteration's writes, then the final"
      " metrics and verification (seconds); Ctrl-C again to abort.",
      signum,
    )
    run.stop_requested = True

  signal.signal(signal.SIGINT, handler)
  signal.signal(signal.SIGTERM, handler)


def _render_plots(output_dir: str) -> list[str]:
  try:
    from openspiel_psro_ext.runs import plots  # pylint: disable=g-import-not-at-top
  except ImportError:
    return []
  return plots.render_run_plots(output_dir)


def _command_seconds() -> float:
  """Seconds since this process started (what the user has waited)."""
  try:
    with open("/proc/self/stat") as f:
      start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return time.perf_counter() - _IMPORTED_AT


_IMPORTED_AT = time.perf_counter()


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  config = config_from_flags()
  options = options_from_flags(config)
  if options.resume:
    config = _resume_config(options.output_dir, config)
  backend_name = _backend_name(config, options)  # a missing Ray is bad input: before any write
  view = views.make_view(
    config.game,
    config.evaluation,
    config.max_histories,
    config.symmetric,
    config.sims_per_entry,
    psro_config.sampling(config),
  )
  psro_config.check(config, view)
  algorithms.get(config.algorithm).check_variant(config, view)
  if options.compare_stock and view.tree is None:
    raise UsageError(
      f"--compare_stock measures stock psro_v2's NashConv exactly, which"
      f" needs the compiled tree; {config.game} runs in the simulated"
      " mode. Drop --compare_stock."
    )
  # Ray starts with the first best responses, after the run directory's checks.
  run = algorithms.make(
    config,
    options.algorithm_options,
    output_dir=options.output_dir,
    resume=options.resume,
    evaluations=evaluations(view, options, config.seed),
    view=view,
    backend=backends.make(
      backend_name, **({"address": options.ray_address} if backend_name == "ray" else {})
    ),
  )
  try:
    return _run(run, options)
  finally:
    run.backend.close()


def _backend_name(config: psro_lib.PSROConfig, options: RunOptions) -> str:
  """`--backend`, with auto resolved; checks that Ray is there if needed."""
  try:
    import ray  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import

    has_ray = True
  except ImportError:
    has_ray = False
  name = options.backend
  if name == "auto":
    # Parallel best responses pay off when each one is seconds of training.
    wants_ray = options.ray_address or (oracles.trains(config.oracle) and (os.cpu_count() or 1) > 1)
    name = "ray" if wants_ray and has_ray else "embedded"
    if wants_ray and not has_ray:
      logging.info(
        "Ray is not installed: best responses run one at a time"
        " (pip install 'openspiel_psro_ext[ray]' to train them in"
        " parallel)."
      )
  if name == "ray" and not has_ray:
    raise UsageError(
      "--backend=ray needs Ray: pip install -c constraints.txt"
      " 'openspiel_psro_ext[ray]', or use --backend=embedded."
    )
  if name == "embedded" and options.ray_address:
    raise UsageError("--ray_address needs --backend=ray (and Ray installed).")
  return name


def _run(run: psro_lib.PSRO, options: RunOptions) -> int:
  config, backend, output_dir = run.config, run.backend, options.output_dir
  tensorboard = None
  if options.tensorboard:
    from openspiel_psro_ext.runs import tensorboard as tb  # pylint: disable=g-import-not-at-top

    tensorboard = tb.TensorboardLogger(os.path.join(output_dir, "tensorboard"))
  _install_interrupt_handler(run)
  if run.view.simulated:
    payoffs = (
      f"simulated payoffs (standard error <= {run.table.target_stderr:.4g}"
      " per meta-strategy value), approximate NashConv by RL best"
      " responses (a lower bound)"
    )
  else:
    payoffs = (
      "exact" if config.sims_per_entry <= 0 else f"{config.sims_per_entry}-sample"
    ) + " payoffs"
  size = f"{run.tree.num_histories} histories" if run.tree is not None else "not compiled"
  logging.info(
    "PSRO on %s (%s): meta-solver %s, oracle %s (%s backend), %s; writing %s",
    config.game,
    size,
    config.meta_solver,
    config.oracle,
    backend.name,
    payoffs,
    output_dir,
  )
  if run.oracle.trains:
    logging.info(
      "%s best responses get %g s each, ramping to %g s over %d"
      " iterations (set time_budget_s in --oracle_config or"
      " --oracle_budget_final_s to change).",
      config.oracle,
      run.oracle_time_budget(0),
      run.oracle_time_budget(config.oracle_budget_ramp_iterations),
      config.oracle_budget_ramp_iterations,
    )

  def on_iteration(record: IterationRecord) -> None:
    logging.info(format_record(record))
    if tensorboard is not None:
      tensorboard.log(record.iteration, record.to_json())
    if (
      options.verify_every
      and record.iteration % options.verify_every == 0
      and record.nash_conv is not None
    ):
      logging.info("  verified with OpenSpiel: %.9f", run.verify(_VERIFY_TOLERANCE))

  try:
    reason = run.run(on_iteration)
  finally:
    if tensorboard is not None:
      tensorboard.close()
  if not run.records:
    logging.info("Nothing to do: the run already meets its stopping rule.")
    return 0
  final = run.records[-1]
  summary = {
    "game": config.game,
    "evaluation": run.view.name,
    "stopped_by": reason,
    "iterations": len(run.records),
    "population_size": final.population_size,
    "nash_conv": final.nash_conv,
    "exploitability_per_player": final.exploitability_per_player,
    "wall_time_s": final.wall_time_s,
    "psro_time_s": sum(r.psro_time_s for r in run.records),
    "metrics_time_s": sum(r.metrics_time_s for r in run.records),
    "write_time_s": sum(r.write_time_s for r in run.records),
    "units": "NashConv (OpenSpiel's exploitability() is NashConv / 2 for two players)",
    **final.metrics,  # e.g. "elo/meta_strategy", "win_rate/cfr_plus".
  }
  if final.nash_conv is not None:
    logging.info(
      "Stopped by %s; verifying the last meta-strategy with OpenSpiel's"
      " exploitability.nash_conv...",
      reason,
    )
    verify_start = time.perf_counter()
    summary["nash_conv_openspiel"] = run.verify(_VERIFY_TOLERANCE)
    summary["verified"] = True
    summary["verification"] = (
      "open_spiel exploitability.nash_conv of the"
      " meta-strategy's behaviour policy (see verification.py)"
    )
    logging.info(
      "  verified: %.9f (%.2fs)", summary["nash_conv_openspiel"], time.perf_counter() - verify_start
    )
    quality = (
      f"NashConv {final.nash_conv:.9f} (verified with OpenSpiel:"
      f" {summary['nash_conv_openspiel']:.9f})"
    )
  else:
    summary["approx_nash_conv_note"] = (
      "estimated by fresh RL best responses against the meta-strategy: a lower"
      " bound on the true NashConv, up to sampling error"
    )
    quality = (
      f"approximate NashConv {final.metrics['approx_nash_conv']:.4f} +-"
      f" {final.metrics['approx_nash_conv_ci95']:.4f} (95%; a lower bound)"
      if "approx_nash_conv" in final.metrics
      else "no NashConv"
    )
  if options.compare_stock:
    summary["stock"] = _compare_stock(run, options)
  run.run_dir.write_summary(summary)
  logging.info("Writing plots...")
  for path in _render_plots(output_dir):
    logging.info("wrote %s", path)
  logging.info(
    "Final %s after %d iterations, stopped by %s. Clocks: the run %.1fs (PSRO"
    " %.1fs, evaluation %.1fs, writes %.1fs); this command %.1fs in all.",
    quality,
    len(run.records),
    reason,
    final.wall_time_s,
    summary["psro_time_s"],
    summary["metrics_time_s"],
    summary["write_time_s"],
    _command_seconds(),
  )
  if reason == "interrupted":
    logging.info(
      "Interrupted: finished iterations are saved; continue with --resume --output_dir=%s",
      output_dir,
    )
  return 0


def _compare_stock(run: psro_lib.PSRO, options: RunOptions) -> dict[str, Any]:
  try:
    from openspiel_psro_ext.compat import stock_baseline  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UsageError(
      f"--compare_stock needs stock psro_v2, whose import failed ({e}); install"
      " its extras with: pip install 'openspiel_psro_ext[stock]'"
    ) from e
  stock = stock_baseline.compare_with_stock(run, options.stock_sims_per_entry)
  table = stock_baseline.comparison_table(run.records, stock)
  for line in table.splitlines():
    logging.info(line)
  comparison = {
    "label": f"stock psro_v2 ({stock.sims_per_entry} games/entry)",
    "oracle": stock.oracle_used,
    "oracle_kind": stock.oracle_kind,
    "meta_solver": stock.meta_solver_used,
    "stock": stock.records,
    "stopped_by": stock.stopped_by,
    "summary": stock_baseline.speedup_summary(run.records, stock),
  }
  checkpoints.write_json(os.path.join(options.output_dir, "comparison.json"), comparison)
  return comparison


def entry_point() -> None:
  """Runs `main`: bad input is one line and exit code 2, a failed
  verification exit code 3; anything else keeps its traceback (a bug)."""

  def guarded(argv):
    try:
      return main(argv)
    except UsageError as e:  # GameTooLargeError, CheckpointError, ... included
      std_logging.shutdown()
      print(f"error: {e}", file=sys.stderr)
      sys.exit(_EXIT_USAGE)
    except psro_lib.VerificationError as e:
      std_logging.shutdown()
      print(
        f"error: verification failed: {e} The run directory keeps every"
        " finished iteration; please report this with it.",
        file=sys.stderr,
      )
      sys.exit(_EXIT_VERIFICATION)

  app.run(guarded)


if __name__ == "__main__":
  entry_point()
