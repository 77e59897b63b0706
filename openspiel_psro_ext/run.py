r"""Runs PSRO with exact NashConv: `python -m openspiel_psro_ext.run`.

Example:
  python -m openspiel_psro_ext.run --game=leduc_poker --compare_stock
  python -m openspiel_psro_ext.run --game=leduc_poker --oracle=exact

The default oracle is PPO (deep RL, run to its time budget); `--oracle=exact`
computes best responses in closed form.

The steps, each a function below: the flags (generated from the fields of
`PSROConfig` and `RunOptions`, so each default is written once) become a
config and options; the game's view is made once and every check runs on it
before anything is written; then the run iterates, one log line each, and
`finish` verifies, writes `summary.json` (`records.summary.RunSummary`),
compares with stock psro_v2 and plots.

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
import importlib.util
import json
import logging as std_logging
import os
import signal
import sys
import time
import types
import typing
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

# Only what reading the flags and the first checks need: the loop, its
# meta-solvers (scipy), the RL oracles (torch) and Ray load when used, so a
# refusal comes in about a second.
from openspiel_psro_ext import psro as psro_lib
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import tree_cache
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records import metrics as records_metrics
from openspiel_psro_ext.records.summary import RunSummary, StockComparison
from openspiel_psro_ext.runs import checkpoints

if typing.TYPE_CHECKING:
  from openspiel_psro_ext.psro import variants as variants_lib

FLAGS = flags.FLAGS

_VERIFY_TOLERANCE = 1e-6
_EXIT_USAGE = 2
_EXIT_VERIFICATION = 3

setting = psro_config.setting


def _default_cache_dir() -> str:
  cache_home = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
  return os.path.join(cache_home, "openspiel_psro_ext")


@dataclasses.dataclass
class RunOptions:
  """What the command does around the PSRO run (none of it changes results).

  Each field is a flag, declared with `psro_config.setting` as `PSROConfig`'s
  are. `algorithm_options` is a JSON object on the command line and the
  variant's `Options` here (`variants.options`, built by `check`; None: the variant's
  defaults).
  """

  output_dir: str = setting("", help="Run directory (empty: runs/<game>-<timestamp>).")
  resume: bool = setting(False, help="Continue the run in --output_dir.")
  verify_every: int = setting(
    0,
    help="Check NashConv with OpenSpiel's code every N iterations (0: only at the end);"
    " in the simulated view, estimate the approximate NashConv that often.",
    min=0,
  )
  metrics_every: int = setting(
    10,
    help="Compute win rates, Elo and diversity every N iterations and on the last one"
    " (0: never; their time is logged beside PSRO's).",
    min=0,
  )
  cache_dir: str = setting(
    default_factory=_default_cache_dir,
    help="Where per-game results that never change (the CFR+ baseline policy) are"
    " cached; empty: no cache.",
  )
  no_tree_cache: bool = setting(
    False,
    help="Always compile the game: neither read nor write the disk cache of compiled"
    " trees (game.tree_cache), which otherwise spares a command the compile of a game"
    " an earlier one compiled.",
  )
  tree_cache_dir: str = setting(
    "",
    help="The tree cache's folder (empty: $OPENSPIEL_PSRO_EXT_TREE_CACHE, else"
    " $XDG_CACHE_HOME/openspiel_psro_ext/trees).",
  )
  tensorboard: bool = setting(False, help="Also write TensorBoard event files.")
  compare_stock: bool = setting(
    False, help="Also run stock psro_v2 on the same settings and compare."
  )
  stock_sims_per_entry: int = setting(
    1000, help="Games per payoff entry for stock psro_v2 (its default).", min=1
  )
  backend: str = setting(
    "auto",
    help="Where best responses run: in this process, or as parallel Ray tasks (a local"
    " Ray, or --ray_address). auto: ray for RL oracles when Ray is installed and there"
    " are 2+ CPUs, else embedded.",
    choices=("auto", "embedded", "ray"),
  )
  ray_address: str | None = setting(
    None, help="An existing Ray cluster for --backend=ray (default: start a local one)."
  )
  approx_episodes: int = setting(
    200_000,
    help="Simulated view: training episodes of each approximate-NashConv best response"
    " (every --verify_every iterations and at the end).",
    min=1,
  )
  approx_eval_games: int = setting(
    20_000, help="Simulated view: games per value in the approximate NashConv.", min=1
  )
  approx_time_s: float = setting(
    120.0,
    help="Simulated view: each approximate-NashConv best response stops after this many"
    " seconds even short of --approx_episodes (0: no cap); long games (go, shogi) play"
    " few episodes a second, and a capped best response gives a looser lower bound.",
    min=0,
  )
  bot_simulations: tuple[int, ...] = setting(
    (),
    help="Play the output meta-strategy against OpenSpiel's MCTS bot (IS-MCTS in"
    " imperfect-information games) at each of these simulation counts, e.g. 10,100,1000,"
    " every --metrics_every iterations and on the last one (empty: no bot games).",
  )
  bot_games: int = setting(
    100, help="Games against each bot (--bot_simulations), split evenly over the seats.", min=1
  )
  algorithm_options: Any = setting(
    None,
    help='JSON settings of the variant, e.g. for p2sro {"num_active": 4, "max_chunks": 6}'
    " (see p2sro.PipelineOptions); a resumed run takes the same.",
    json_object=True,
  )


def _flag_type(hint: Any) -> Any:
  """The flag's kind for a field annotation: `float | None` is float,
  `tuple[int, ...]` is tuple."""
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
    hint = args[0]
  return typing.get_origin(hint) or hint


def define_flags(cls: type) -> None:
  """One absl flag per field of the dataclass `cls`, all from the field: its
  name, type and default, and the metadata of `psro_config.setting` (help,
  choices, aliases, JSON objects)."""
  hints = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    name, meta = field.name, field.metadata
    default: Any = field.default_factory() if callable(field.default_factory) else field.default
    kind = _flag_type(hints[name])
    if meta.get("json_object"):
      flags.DEFINE_string(name, json.dumps(default or {}), meta["help"])
    elif "aliases" in meta:
      choices, aliases = list(meta["choices"]), dict(meta["aliases"])
      text = meta["help"] + "".join(f" ({a}: an alias of {c}.)" for a, c in aliases.items())
      # Aliases parse but stay out of the `<a|b|c>` the help shows.
      flags.DEFINE_flag(
        flags.Flag(
          flags.EnumParser(choices + list(aliases)),
          flags.ArgumentSerializer(),
          name,
          default,
          f"<{'|'.join(choices)}>: {text}",
        )
      )
    elif "choices" in meta:
      flags.DEFINE_enum(name, default, list(meta["choices"]), meta["help"])
    elif kind is bool:
      flags.DEFINE_bool(name, default, meta["help"])
    elif kind is int:
      flags.DEFINE_integer(name, default, meta["help"])
    elif kind is float:
      flags.DEFINE_float(name, default, meta["help"])
    elif kind is str:
      flags.DEFINE_string(name, default, meta["help"])
    elif kind is tuple:
      flags.DEFINE_list(name, [str(v) for v in default], meta["help"])
    else:
      raise TypeError(f"no flag kind for {cls.__name__}.{name}: {hints[name]}")


define_flags(psro_config.PSROConfig)
define_flags(RunOptions)
# A shortcut into --oracle_config, so not a field of either.
flags.DEFINE_string(
  "device", None, "Torch device for RL oracles (cpu, cuda, cuda:N, mps); sets --oracle_config's."
)


def _json_flag(name: str, text: str) -> dict[str, Any]:
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise UsageError(f"--{name} is not valid JSON ({e}): {text!r}") from e
  if not isinstance(value, dict):
    raise UsageError(f"--{name} must be a JSON object, got {text!r}")
  return value


def _flag_values(cls: type) -> dict[str, Any]:
  """The flags of `cls`'s fields as field values (JSON objects and integer
  lists parsed; bad input is a `UsageError`)."""
  hints = typing.get_type_hints(cls)
  values = {}
  for field in dataclasses.fields(cls):
    value: Any = FLAGS[field.name].value
    if field.metadata.get("json_object"):
      value = _json_flag(field.name, value)
    elif _flag_type(hints[field.name]) is tuple:
      try:
        value = tuple(int(v) for v in value)
      except ValueError as e:
        raise UsageError(
          f"--{field.name} takes integers, e.g. 2,1; got {','.join(value)!r}."
        ) from e
    values[field.name] = value
  return values


def config_from_flags() -> psro_config.PSROConfig:
  """The `PSROConfig` the flags describe (its oracle-dependent defaults are
  resolved by `psro_config.check_settings`)."""
  values = _flag_values(psro_config.PSROConfig)
  if FLAGS.device is not None:
    psro_config.check_device(FLAGS.device)
    oracle_cls = psro_config.oracle_class(FLAGS.oracle)
    if "device" in oracle_cls.settings():
      values["oracle_config"]["device"] = FLAGS.device
    else:
      logging.info("--device=%s ignored: the %s oracle runs in numpy.", FLAGS.device, FLAGS.oracle)
  return psro_config.PSROConfig(**values)


def options_from_flags(config: psro_config.PSROConfig) -> RunOptions:
  """The `RunOptions` the flags describe, for a run of `config`
  (`algorithm_options` still the JSON object: `check` builds the variant's
  `Options` from it)."""
  values = _flag_values(RunOptions)
  values["output_dir"] = values["output_dir"] or os.path.join(
    "runs",
    f"{config.game.replace('(', '_').replace(')', '').replace(',', '_')}"
    f"-{time.strftime('%Y%m%d-%H%M%S')}",
  )
  return RunOptions(**values)


def settings_from_flags() -> tuple[psro_config.PSROConfig, RunOptions]:
  """The run's config and options; with --resume, the saved run's (`_resumed`)."""
  config = config_from_flags()
  options = options_from_flags(config)
  if options.resume:
    config, options = _resumed(config, options)
  return config, options


# What a resumed run may change: its stopping rules.
_STOPPING_RULES = ("iterations", "time_budget_s", "target_nash_conv")


def _resumed(
  config: psro_config.PSROConfig, options: RunOptions
) -> tuple[psro_config.PSROConfig, RunOptions]:
  """The saved run's settings, for `--resume`: a flag given that differs from
  the saved run is refused, a flag left unset takes the saved value (logged),
  and the stopping rules may change.

  Raises:
    UsageError: an explicit flag differs from the saved run, naming both.
  """
  path = os.path.join(options.output_dir, checkpoints.CONFIG_FILE)
  if not os.path.exists(path):  # nothing saved yet: a fresh start (RunDirectory.open)
    return config, options
  saved = psro_config.PSROConfig.from_dict(checkpoints.read_json(path))
  given = {name for name in FLAGS if FLAGS[name].present}
  if "device" in given:
    given.add("oracle_config")
  changes: dict[str, Any] = {}
  taken = []
  for field in dataclasses.fields(psro_config.PSROConfig):
    name, kept = field.name, getattr(saved, field.name)
    if name not in given:
      taken.append(f"{name}={kept!r}")
      continue
    asked = getattr(config, name)
    if name in _STOPPING_RULES:
      changes[name] = asked
    elif _resume_value(name, asked) != _resume_value(name, kept):
      raise checkpoints.CheckpointError(
        f"--resume with --{name}={asked!r}, but the run in {options.output_dir} used"
        f" {kept!r}; drop --{name} to continue it, or start a new run in another --output_dir."
      )
  saved_options = os.path.join(options.output_dir, checkpoints.ALGORITHM_OPTIONS_FILE)
  if "algorithm_options" not in given and os.path.exists(saved_options):
    options = dataclasses.replace(options, algorithm_options=checkpoints.read_json(saved_options))
    taken.append(f"algorithm_options={options.algorithm_options!r}")
  logging.info("--resume: the saved run's settings where no flag is given: %s.", ", ".join(taken))
  return dataclasses.replace(saved, **changes), options


def _resume_value(name: str, value: Any) -> Any:
  """A setting as the saved run would have written it."""
  if name == "game":
    return psro_config.game_string(value)
  if name == "evaluation":
    return psro_config.EVALUATION_ALIASES.get(value, value)
  if isinstance(value, tuple):
    return list(value)
  return value


def format_record(record: IterationRecord) -> str:
  """The one-line iteration log."""
  if record.nash_conv is not None and record.exploitability_per_player is not None:
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
  if record.approx_nash_conv is not None:
    line += (
      f" | approx NashConv {record.approx_nash_conv.value:.4f}"
      f" +- {record.approx_nash_conv.ci95:.4f} (lower bound)"
    )
  if record.run_metrics is not None:
    line += f" | {record.run_metrics.short_log()}"
  if record.bots is not None:
    line += f" | {record.bots.short_log()}"
  if record.evaluation_time_s > 0:
    line += f" ({record.evaluation_time_s:.2f}s)"
  return line


def evaluations(view: views.View, options: RunOptions, seed: int) -> list[psro_lib.Evaluation]:
  """The run's evaluation hooks: run metrics where the game has a tree, and the
  approximate NashConv in the simulated mode."""
  hooks = []
  if options.metrics_every > 0 and view.tree is not None:
    from openspiel_psro_ext.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top

    computer = metrics_lib.IterationMetrics(view.tree, cache_dir=options.cache_dir or None)

    def run_metrics(snap: psro_lib.Snapshot) -> records_metrics.RunMetrics:
      matrices = snap.matrices()
      assert matrices is not None  # the view has a tree
      return computer.compute(matrices, snap.sigma, snap.meta_games)

    hooks.append(psro_lib.Evaluation(run_metrics, every=options.metrics_every))
  if view.simulated:
    from openspiel_psro_ext.evaluation import approx_exploitability  # pylint: disable=g-import-not-at-top

    config = approx_exploitability.ApproxNashConvConfig(
      seed=seed, eval_games=options.approx_eval_games
    )
    config.oracle_config["total_episodes"] = options.approx_episodes
    config.oracle_config["time_budget_s"] = options.approx_time_s

    def approx(snap: psro_lib.Snapshot) -> records_metrics.ApproxNashConv:
      policies = snap.policies()
      assert policies is not None  # the simulated view's members
      return approx_exploitability.approx_nash_conv(
        snap.view.game, policies, snap.sigma, config, snap.backend
      ).estimate

    hooks.append(psro_lib.Evaluation(approx, every=options.verify_every))
  if options.bot_simulations:
    from openspiel_psro_ext.evaluation.metrics import bots  # pylint: disable=g-import-not-at-top

    try:
      bot_config = bots.BotConfig(options.bot_simulations, options.bot_games, seed=seed)
      bots.bot_kind(view.game)
    except ValueError as e:
      raise UsageError(f"--bot_simulations: {e}") from e

    def bot_games(snap: psro_lib.Snapshot) -> records_metrics.BotResults:
      game = snap.view.game
      members = bots.member_policies(game, snap.view.tree, snap.matrices(), snap.policies())
      return bots.versus_bots(game, members, snap.sigma, bot_config, snap.backend)

    hooks.append(psro_lib.Evaluation(bot_games, every=options.metrics_every))
  return hooks


def main(argv: Sequence[str]) -> int:
  """The command, step by step: settings, checks (all before any write), the
  run, and its end."""
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments {argv[1:]}")
  config, options = settings_from_flags()
  tree_cache.configure(directory=options.tree_cache_dir or None, enabled=not options.no_tree_cache)
  config, options, view, variant = check(config, options)
  run = make_run(config, options, view, variant)
  try:
    reason = iterate(run, options)
    return finish(run, options, reason)
  finally:
    run.backend.close()
    if run.run_dir is not None:
      run.run_dir.close()


def check(
  config: psro_config.PSROConfig, options: RunOptions
) -> tuple[psro_config.PSROConfig, RunOptions, views.View, variants_lib.base.Variant]:
  """Every check, before anything is written; the cheap ones first.

  Each setting's type, range and choices (`psro_config.check_settings`, which
  makes the game's view: the view is made once, here, and the run shares it);
  the variant's options; what the settings ask of the game; the backend and
  the output directory.

  Returns:
    The resolved config, the options with the variant's `Options`, the view
    and the variant.

  Raises:
    UsageError: naming the setting, its value and the fix.
  """
  checkpoints.RunDirectory.check(options.output_dir, options.resume)
  config, view = psro_config.check_settings(config, options)
  from openspiel_psro_ext.psro import variants as variants_lib  # pylint: disable=g-import-not-at-top

  assert config.algorithm is not None  # chosen by `check_settings`
  options = dataclasses.replace(
    options, algorithm_options=variants_lib.options(config.algorithm, options.algorithm_options)
  )
  variant = variants_lib.make(config.algorithm, options.algorithm_options)
  psro_config.check(config, view)
  variant.check(config, view)
  if options.compare_stock and view.tree is None:
    raise UsageError(
      f"--compare_stock measures stock psro_v2's NashConv exactly, which"
      f" needs the compiled tree; {config.game} runs in the simulated"
      " mode. Drop --compare_stock."
    )
  options = dataclasses.replace(options, backend=_backend_name(config, options))
  return config, options, view, variant


def make_run(
  config: psro_config.PSROConfig,
  options: RunOptions,
  view: views.View,
  variant: variants_lib.base.Variant,
) -> psro_lib.PSRO:
  """The run of `config` on the checked `view`; opens (or resumes) the run directory."""
  from openspiel_psro_ext import backends  # pylint: disable=g-import-not-at-top

  # Refuses an unreachable --ray_address before the run directory is opened;
  # Ray itself starts with the first best responses.
  backend = backends.make(
    options.backend, **({"address": options.ray_address} if options.backend == "ray" else {})
  )
  return psro_lib.PSRO(
    config,
    output_dir=options.output_dir,
    resume=options.resume,
    evaluations=evaluations(view, options, config.seed),
    view=view,
    backend=backend,
    variant=variant,
  ).restore()


def _backend_name(config: psro_config.PSROConfig, options: RunOptions) -> str:
  """`--backend`, with auto resolved; checks that Ray is there if needed
  (without importing it: that takes a second)."""
  has_ray = importlib.util.find_spec("ray") is not None
  name = options.backend
  if name == "auto":
    # Parallel best responses pay off when each one is seconds of training.
    trains = psro_config.oracle_class(config.oracle).trains
    wants_ray = options.ray_address or (trains and (os.cpu_count() or 1) > 1)
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


def iterate(run: psro_lib.PSRO, options: RunOptions) -> str:
  """Runs the iterations, one log line (and TensorBoard step) each; returns
  the stopping rule that ended them. Ctrl-C ends them after the current
  iteration's writes."""
  tensorboard = None
  if options.tensorboard:
    from openspiel_psro_ext.runs import tensorboard as tb  # pylint: disable=g-import-not-at-top

    tensorboard = tb.TensorboardLogger(os.path.join(options.output_dir, "tensorboard"))
  _install_interrupt_handler(run)
  _log_start(run, options)

  def on_iteration(record: IterationRecord) -> None:
    logging.info(format_record(record))
    if tensorboard is not None:
      tensorboard.log(record)
    if (
      options.verify_every
      and record.iteration % options.verify_every == 0
      and record.nash_conv is not None
    ):
      logging.info("  verified with OpenSpiel: %.9f", run.verify(_VERIFY_TOLERANCE))

  try:
    return run.run(on_iteration)
  finally:
    if tensorboard is not None:
      tensorboard.close()


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


def _log_start(run: psro_lib.PSRO, options: RunOptions) -> None:
  """What the run is: the game, its view, the meta-solver and oracle."""
  config = run.config
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
    run.backend.name,
    payoffs,
    options.output_dir,
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


def finish(run: psro_lib.PSRO, options: RunOptions, reason: str) -> int:
  """The run's end: verification, `summary.json`, the stock comparison,
  plots and the final log line. Returns the exit code."""
  if not run.records:
    logging.info("Nothing to do: the run already meets its stopping rule.")
    return 0
  summary = summarize(run, reason, verify(run, reason))
  if options.compare_stock:
    summary = dataclasses.replace(summary, stock=_compare_stock(run, options))
  checkpoints.write_json(
    os.path.join(options.output_dir, checkpoints.SUMMARY_FILE), summary.to_json()
  )
  _write_plots(options.output_dir)
  _log_end(summary, options)
  return 0


def verify(run: psro_lib.PSRO, reason: str) -> float | None:
  """The last meta-strategy's NashConv by OpenSpiel's code, None without an
  exact NashConv.

  Raises:
    VerificationError: it differs from ours by more than the tolerance.
  """
  if run.records[-1].nash_conv is None:
    return None
  logging.info(
    "Stopped by %s; verifying the last meta-strategy with OpenSpiel's exploitability.nash_conv...",
    reason,
  )
  start = time.perf_counter()
  nash_conv = run.verify(_VERIFY_TOLERANCE)
  logging.info("  verified: %.9f (%.2fs)", nash_conv, time.perf_counter() - start)
  return nash_conv


def summarize(run: psro_lib.PSRO, reason: str, nash_conv_openspiel: float | None) -> RunSummary:
  """The run's `RunSummary` from its records."""
  final = run.records[-1]
  return RunSummary(
    game=run.config.game,
    evaluation=run.view.name,
    stopped_by=reason,
    iterations=len(run.records),
    population_size=final.population_size,
    nash_conv=final.nash_conv,
    exploitability_per_player=final.exploitability_per_player,
    wall_time_s=final.wall_time_s,
    psro_time_s=sum(r.psro_time_s for r in run.records),
    evaluation_time_s=sum(r.evaluation_time_s for r in run.records),
    write_time_s=sum(r.write_time_s for r in run.records),
    nash_conv_openspiel=nash_conv_openspiel,
    run_metrics=final.run_metrics,
    approx_nash_conv=final.approx_nash_conv,
    bots=final.bots,
    variant=final.variant,
  )


def _write_plots(output_dir: str) -> None:
  try:
    from openspiel_psro_ext.runs import plots  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  logging.info("Writing plots...")
  for path in plots.render_run_plots(output_dir):
    logging.info("wrote %s", path)


def _log_end(summary: RunSummary, options: RunOptions) -> None:
  if summary.nash_conv is not None and summary.nash_conv_openspiel is not None:
    quality = (
      f"NashConv {summary.nash_conv:.9f} (verified with OpenSpiel:"
      f" {summary.nash_conv_openspiel:.9f})"
    )
  elif summary.approx_nash_conv is not None:
    quality = (
      f"approximate NashConv {summary.approx_nash_conv.value:.4f} +-"
      f" {summary.approx_nash_conv.ci95:.4f} (95%; a lower bound)"
    )
  else:
    quality = "no NashConv"
  if summary.bots is not None:
    logging.info("Against OpenSpiel's search bots: %s", summary.bots.short_log())
  logging.info(
    "Final %s after %d iterations, stopped by %s. Clocks: the run %.1fs (PSRO"
    " %.1fs, evaluation %.1fs, writes %.1fs); this command %.1fs in all.",
    quality,
    summary.iterations,
    summary.stopped_by,
    summary.wall_time_s,
    summary.psro_time_s,
    summary.evaluation_time_s,
    summary.write_time_s,
    _command_seconds(),
  )
  if summary.stopped_by == "interrupted":
    logging.info(
      "Interrupted: finished iterations are saved; continue with --resume --output_dir=%s",
      options.output_dir,
    )


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


def _compare_stock(run: psro_lib.PSRO, options: RunOptions) -> StockComparison:
  """Runs stock psro_v2 on the run's settings, logs the table and writes
  `comparison.json`."""
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
  comparison = StockComparison(
    label=f"stock psro_v2 ({stock.sims_per_entry} games/entry)",
    oracle=stock.oracle_used,
    oracle_kind=stock.oracle_kind,
    meta_solver=stock.meta_solver_used,
    stock=stock.records,
    stopped_by=stock.stopped_by,
    summary=stock_baseline.speedup_summary(run.records, stock),
  )
  checkpoints.write_json(os.path.join(options.output_dir, "comparison.json"), comparison.to_json())
  return comparison


def entry_point() -> None:
  """Runs `main`: bad input is one line and exit code 2, a failed
  verification exit code 3; anything else keeps its traceback (a bug)."""

  def guarded(argv):
    try:
      return main(argv)
    except UsageError as e:  # GameTooLargeError, CheckpointError, ... included
      std_logging.shutdown()
      print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
      sys.exit(_EXIT_USAGE)
    except psro_lib.VerificationError as e:
      std_logging.shutdown()
      print(
        f"error: verification failed: {e} The run directory keeps every"
        " finished iteration; please report this with it.",
        file=sys.stderr,
      )
      sys.exit(_EXIT_VERIFICATION)

  def parse_flags(argv: list[str]) -> list[str]:
    try:
      return FLAGS(argv)
    except flags.Error as e:  # a value of the wrong kind: one line, as any bad input
      print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
      sys.exit(_EXIT_USAGE)

  app.run(guarded, flags_parser=parse_flags)


if __name__ == "__main__":
  entry_point()
