"""A PSRO run's settings: one dataclass, its defaults, and the checks on it.

`PSROConfig` holds everything that determines a run's results. The command
line takes its defaults from here, so a run started from Python and one
started with `python -m openspiel_psro_ext.run` agree unless told otherwise.
Settings whose default depends on the oracle are `None` until `resolve`
fills them in (the run directory's `config.json` holds the resolved values):

  time_budget_s          300 s for oracles that train (RL), 60 s for exact ones;
  oracle_budget_final_s  for oracles that train, each best response's budget
                         ramps linearly from the oracle's `time_budget_s` (its
                         PSRO preset, or `oracle_config`) at iteration 0 to
                         `max(final, start)` at `oracle_budget_ramp_iterations`,
                         with `final` the oracle's `psro_budget_final_s`
                         (PPO: 2.6 s) or else 4 s:
                         early meta-strategies are easy to exploit, late ones
                         near equilibrium leave small gains that take longer
                         training to find. A `time_budget_s` set in
                         `oracle_config` is kept constant unless a final
                         budget is given too; 0 means constant.

Each field is declared with `setting` (`records.schema`): its help text, and
the values it takes, beside it; the command line's flags are generated from
these fields. Two functions refuse a config, before anything is written, with
a `UsageError` naming the setting, its value and the fix:

  check_settings(config)  every setting's type, range and choices (the
                          oracle's, meta-solver's and variant's included),
                          and the game's view, which it makes;
  check(config, view)     what the settings ask of the game (players,
                          a compiled tree, symmetric tables).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyspiel

from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.records import schema
from openspiel_psro_ext.records.schema import setting
from openspiel_psro_ext.runs import checkpoints
from openspiel_psro_ext.simulated import simulation

if TYPE_CHECKING:
  from openspiel_psro_ext import meta_solvers

RL_TIME_BUDGET_S = 300.0
EXACT_TIME_BUDGET_S = 60.0
RL_BUDGET_FINAL_S = 4.0
RL_AVERAGE_DECAY = 0.9
# Where the user chooses none: Nash (two players, any sum), then projected
# replicator dynamics (any number of players).
DEFAULT_META_SOLVERS = ("nash", "prd")
# Older names of `evaluation` values: "sampled" named the simulated view, a
# word kept for sampled payoffs over the compiled tree (`sims_per_entry`).
EVALUATION_ALIASES = {"sampled": "simulated"}

# Settings that must match for `--resume` to continue a run (the stopping
# rules may change).
RESULT_FIELDS = (
  "game",
  "meta_solver",
  "meta_solver_kwargs",
  "oracle",
  "oracle_config",
  "seed",
  "symmetric",
  "sims_per_entry",
  "oracle_budget_final_s",
  "oracle_budget_ramp_iterations",
  "best_responses_per_player",
  "evaluation",
  "payoff_target_stderr",
  "algorithm",
  "meta_strategy_average_decay",
)

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")
_LARGEST_SEED = 2**63 - 1


@dataclasses.dataclass
class PSROConfig:
  """Everything that determines a PSRO run's results.

  Each field's `help` says what it sets (it is also the flag's help text);
  `None` defaults are oracle-dependent and filled in by `resolve` (see the
  module doc). Two settings deserve more than a line:

    best_responses_per_player: RL best responses are noisy, so more of them
      per iteration (with different seeds) give the meta-solver better ones
      to choose from.
    meta_strategy_average_decay: the output at iteration t weights iteration
      s's meta-strategy by `decay^(t-s)`, while best responses still train
      against each iteration's own (`IterationRecord.training_meta_strategy`).
      A restricted game's Nash over RL best responses overfits its own
      population; the average smooths that out. An exact oracle's double
      oracle reaches exactly 0 without it, and the variants output their own.
  """

  game: str = setting("leduc_poker", help="OpenSpiel game string.")
  iterations: int = setting(400, help="Maximum PSRO iterations.", min=1)
  meta_solver: str | None = setting(
    None,
    help="Meta-solver name (see meta_solvers.names()). Default: the first of"
    f" {list(DEFAULT_META_SOLVERS)} that supports the game's number of players.",
  )
  meta_solver_kwargs: dict[str, Any] = setting(
    default_factory=dict,
    help="JSON keyword arguments for the meta-solver (checked against its parameters).",
    json_object=True,
  )
  oracle: str = setting(
    "ppo",
    help="Best-response oracle (see oracles.names()): ppo, dqn, sac, mpo, crossq (deep RL)"
    " or exact (closed form over the compiled tree).",
  )
  oracle_config: dict[str, Any] = setting(
    default_factory=dict,
    help="JSON overrides of the oracle's Config fields, over its PSRO preset"
    " (Oracle.psro_defaults).",
    json_object=True,
  )
  seed: int = setting(0, help="Seed for every random choice of the run.", min=0, max=_LARGEST_SEED)
  symmetric: bool = setting(
    False,
    help="One population shared by both players (2-player games whose players have"
    " matching information-state tables).",
  )
  sims_per_entry: int = setting(
    0,
    help="0: exact payoff tables; N: N sampled games per entry (as stock psro_v2).",
    min=0,
    max=10**9,
  )
  time_budget_s: float | None = setting(
    None,
    help="Stop after the iteration that passes this many seconds of the run's whole clock"
    f" (0: none; default {RL_TIME_BUDGET_S:g} s for RL oracles,"
    f" {EXACT_TIME_BUDGET_S:g} s for exact).",
    min=0,
  )
  target_nash_conv: float = setting(0.01, help="Stop at or below this NashConv (0: never).", min=0)
  oracle_budget_final_s: float | None = setting(
    None,
    help="RL oracles: ramp each best response's time budget (the oracle's time_budget_s)"
    " up to this over --oracle_budget_ramp_iterations (0: constant). Default: the"
    f" oracle's PSRO preset (ppo 2.6 s, others {RL_BUDGET_FINAL_S:g} s), unless"
    " --oracle_config sets time_budget_s.",
    min=0,
  )
  oracle_budget_ramp_iterations: int = setting(
    200, help="Iterations over which --oracle_budget_final_s ramps.", min=1
  )
  best_responses_per_player: tuple[int, ...] = setting(
    (),
    help="Best responses each population gets per iteration, e.g. 2,1 (different seeds;"
    " default one each).",
    min=1,
  )
  max_histories: int = setting(
    game_tree_lib.DEFAULT_MAX_HISTORIES,
    help="Refuse to compile games with more histories than this.",
    min=1,
  )
  evaluation: str = setting(
    "auto",
    help="exact: compile the game (exact payoffs and NashConv; refused for games too"
    " large); simulated: play the game (payoffs from played games, approximate"
    " NashConv); auto: exact where the game compiles, decided in seconds.",
    choices=views.EVALUATIONS,
    aliases=EVALUATION_ALIASES,
  )
  payoff_target_stderr: float = setting(
    simulation.SamplingConfig.target_stderr,
    help="Simulated view: play each payoff entry until its standard error, weighted by"
    " the meta-strategy, is at most this (0: 0.4% of the game's utility range).",
    min=0,
  )
  algorithm: str | None = setting(
    None,
    help="PSRO or a variant of it (see algorithms.names()). Default: anytime_psro where"
    " an RL oracle meets a compiled two-player zero-sum game and no meta-solver or"
    " meta-strategy averaging was chosen (lower NashConv on the same clock, BUILD_NOTES.md),"
    " else psro.",
  )
  meta_strategy_average_decay: float | None = setting(
    None,
    help="0, or output the exponential moving average of the meta-strategies with this"
    " decay (best responses still train against each iteration's own). Default:"
    f" {RL_AVERAGE_DECAY:g} (about the last 10 iterations) for plain PSRO with an RL"
    " oracle, else 0.",
    min=0,
    below=1,
  )

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> PSROConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise UsageError(f"unknown PSRO config fields {unknown}; known: {sorted(known)}")
    data = dict(data)
    if "best_responses_per_player" in data:
      data["best_responses_per_player"] = tuple(data["best_responses_per_player"])
    if "evaluation" in data:  # runs written before the rename say "sampled"
      data["evaluation"] = EVALUATION_ALIASES.get(data["evaluation"], data["evaluation"])
    return cls(**data)

  def to_dict(self) -> dict[str, Any]:
    """As JSON stores it (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(self)))


def default(field: str) -> Any:
  """`PSROConfig`'s default for `field` (the command line's flags use it)."""
  return getattr(PSROConfig(), field)


def resolve(config: PSROConfig, view: views.View | None = None) -> PSROConfig:
  """The config with every oracle-dependent default filled in, the algorithm
  (`default_algorithm`, which needs the game's `view`) and the meta-solver
  (`default_meta_solver`) chosen where none is, and an `evaluation` alias
  replaced by its name.

  Without `view`, the view is made here where the algorithm needs one.
  """
  oracle_cls = oracle_class(config.oracle)
  changes: dict[str, Any] = {}
  if config.algorithm is None:
    if view is None:
      view = make_view(config)
    changes["algorithm"] = default_algorithm(config, view)
    logging.info(
      "algorithm %s: the default for %s with oracle %s (--algorithm to choose).",
      changes["algorithm"],
      view.game,
      config.oracle,
    )
  algorithm = changes.get("algorithm", config.algorithm)
  if config.evaluation in EVALUATION_ALIASES:
    changes["evaluation"] = EVALUATION_ALIASES[config.evaluation]
    logging.info(
      "evaluation=%s is an alias of evaluation=%s.", config.evaluation, changes["evaluation"]
    )
  if config.time_budget_s is None:
    changes["time_budget_s"] = RL_TIME_BUDGET_S if oracle_cls.trains else EXACT_TIME_BUDGET_S
  if config.oracle_budget_final_s is None:
    final = 0.0
    if oracle_cls.trains and "time_budget_s" not in config.oracle_config:
      start = float(_psro_oracle(oracle_cls, config.oracle_config).config.time_budget_s)
      final = max(budget_final_s(oracle_cls), start)
    changes["oracle_budget_final_s"] = final
  if config.meta_solver is None:
    num_players = views.load_game(config.game).num_players()
    changes["meta_solver"] = default_meta_solver(num_players)
    logging.info(
      "meta-solver %s: the default for %d-player games (--meta_solver to choose).",
      changes["meta_solver"],
      num_players,
    )
  if config.meta_strategy_average_decay is None:
    changes["meta_strategy_average_decay"] = (
      RL_AVERAGE_DECAY if oracle_cls.trains and algorithm == "psro" else 0.0
    )
  return dataclasses.replace(config, **changes) if changes else config


def default_algorithm(config: PSROConfig, view: views.View) -> str:
  """Anytime PSRO where it applies and was measured better, else plain PSRO.

  Anytime PSRO (`variants.anytime_psro`) outputs the least exploitable
  mixture of the members, exactly over the compiled tree, so it needs the
  tree, two players and zero sum; with an RL oracle on Leduc it reached a
  lower NashConv than plain PSRO on the same clock (`benchmarks/psro_rl.py`,
  figures in benchmarks/RESULTS.md). A chosen meta-solver
  or meta-strategy averaging is plain PSRO's (Anytime PSRO uses neither),
  and with the exact oracle plain PSRO is kept (the exact benchmarks' runs).
  """
  from openspiel_psro_ext.psro import variants  # pylint: disable=g-import-not-at-top  (cycle)

  if (
    not oracle_class(config.oracle).trains
    or config.meta_solver is not None
    or config.meta_strategy_average_decay
  ):
    return "psro"
  chosen = "anytime_psro"
  try:
    variants.make(chosen).check(dataclasses.replace(config, algorithm=chosen), view)
  except UsageError:
    return "psro"
  return chosen


def default_meta_solver(num_players: int) -> str:
  """The first of `DEFAULT_META_SOLVERS` (else of the registry) that solves
  `num_players`-player meta-games."""
  from openspiel_psro_ext import meta_solvers  # pylint: disable=g-import-not-at-top  (scipy)

  for name in (*DEFAULT_META_SOLVERS, *meta_solvers.names()):
    if name in meta_solvers.names() and meta_solvers.spec(name).supports_players(num_players):
      return name
  raise UsageError(f"no registered meta-solver supports {num_players}-player games.")


def budget_final_s(oracle_cls: type[oracles_lib.Oracle]) -> float:
  """Where an RL oracle's budget ramp ends by default (module doc)."""
  return oracle_cls.psro_budget_final_s or RL_BUDGET_FINAL_S


def oracle_time_budget(config: PSROConfig, start_s: float, iteration: int) -> float:
  """The budget schedule: one best response's seconds at `iteration`."""
  final = config.oracle_budget_final_s or 0.0
  if final <= 0:
    return start_s
  fraction = min(iteration / config.oracle_budget_ramp_iterations, 1.0)
  return start_s + fraction * (final - start_s)


def oracle_class(name: str) -> type[oracles_lib.Oracle]:
  try:
    return oracles_lib.get(name)
  except ValueError as e:
    raise UsageError(str(e)) from None


def _psro_oracle(
  oracle_cls: type[oracles_lib.Oracle], overrides: dict[str, Any]
) -> oracles_lib.Oracle:
  """The oracle with its PSRO preset and `overrides` (unknown settings: UsageError)."""
  try:
    return oracle_cls.for_psro(overrides)
  except ValueError as e:
    raise UsageError(str(e)) from None


def sampling(config: PSROConfig) -> simulation.SamplingConfig:
  """How the simulated mode plays each payoff entry."""
  return simulation.SamplingConfig(target_stderr=config.payoff_target_stderr)


def flag(name: str) -> str:
  """How a setting is named in an error: as its flag."""
  return f"--{name}"


def game_string(text: str) -> str:
  """The game string as pyspiel prints it.

  Raises:
    UsageError: pyspiel cannot load it.
  """
  try:
    return str(views.load_game(text))
  except pyspiel.SpielError as e:
    reason = str(e).splitlines()[0].split(". Available")[0]
    raise UsageError(
      f"unknown or malformed --game={text!r} ({reason}); see pyspiel.registered_names()."
    ) from e


def make_view(config: PSROConfig) -> views.View:
  """The game as a run of `config` sees it: compiled or simulated."""
  return views.make_view(
    config.game,
    EVALUATION_ALIASES.get(config.evaluation, config.evaluation),
    config.max_histories,
    config.symmetric,
    config.sims_per_entry,
    sampling(config),
    # An oracle that computes over the tree turns auto's fallback into a refusal.
    needs_tree=config.oracle in oracles_lib.names() and not oracles_lib.trains(config.oracle),
  )


def check_settings(config: PSROConfig, *others: Any) -> tuple[PSROConfig, views.View]:
  """Holds every setting to its declaration (type, range, choices), before
  anything is written; returns the resolved config and the game's view.

  The order puts the cheap refusals first: the fields of `config` and of
  `others` (further settings dataclasses, e.g. the command's options, whose
  dataclass-valued fields, the variant's `Options`, are checked by their own
  declarations); then the game, by making its view (a game too large to
  compile for `evaluation="exact"` is refused in about a second, before the
  oracle's module and torch are imported); then the defaults are resolved
  and the oracle's settings (`oracle_config`, against its `Config`) and the
  meta-solver's parameters are checked.

  Raises:
    UsageError: `--<setting>=<value>: <what it takes>`, or what is unknown.
  """
  _raise(schema.object_problem(config, flag))
  for other in others:
    _raise(schema.object_problem(other, flag))
    for field in dataclasses.fields(other):
      value = getattr(other, field.name)
      if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _raise(schema.object_problem(value, functools.partial("--{} {}".format, field.name)))
  config = dataclasses.replace(config, game=game_string(config.game))
  view = make_view(config)
  oracle_cls = oracle_class(config.oracle)
  _check_mapping(oracle_cls.Config, config.oracle_config, "--oracle_config")
  _psro_oracle(oracle_cls, config.oracle_config)  # unknown settings
  config = resolve(config, view)
  spec = _meta_solver_spec(config.meta_solver)
  try:
    spec.check_kwargs(config.meta_solver_kwargs)
  except ValueError as e:
    raise UsageError(f"--meta_solver_kwargs: {e}") from None
  return config, view


def _check_mapping(cls: type, values: dict[str, Any], where: str) -> None:
  """`schema.problem` of a JSON object's values against `cls`'s fields."""
  _raise(schema.problem(schema.fields(cls), values, lambda key: f"{where} {key}"))


def _raise(problem: str | None) -> None:
  if problem is not None:
    raise UsageError(problem)


def check(config: PSROConfig, view: Any) -> None:
  """Refuses a config that cannot run on the game's `views.View` (its
  settings each passed `check_settings`).

  Raises:
    UsageError: naming the setting and the fix.
  """
  from openspiel_psro_ext import meta_solvers  # pylint: disable=g-import-not-at-top  (scipy)

  num_players, tree = view.num_players, view.tree
  decay = config.meta_strategy_average_decay or 0.0
  if decay and config.algorithm != "psro":
    raise UsageError(
      f"meta_strategy_average_decay averages plain PSRO's meta-"
      f"strategies; the {config.algorithm} variant outputs its own."
      " Set it to 0."
    )
  oracle_cls = oracle_class(config.oracle)
  if view.simulated and not oracle_cls.trains:
    raise UsageError(
      f"oracle {config.oracle!r} needs the compiled tree; the simulated"
      f" mode trains best responses: use one of"
      f" {[n for n in oracles_lib.names() if oracles_lib.trains(n)]}."
    )
  if view.simulated and config.sims_per_entry:
    raise UsageError(
      "sims_per_entry samples payoffs over the compiled tree; the"
      " simulated mode plays games to payoff_target_stderr. Drop"
      " --sims_per_entry."
    )
  if (config.oracle_budget_final_s or 0) > 0 and not oracle_cls.trains:
    raise UsageError(
      f"oracle_budget_final_s ramps the budget of an oracle that"
      f" trains; oracle {config.oracle!r} computes its best"
      " responses exactly. Set it to 0."
    )
  spec = _meta_solver_spec(config.meta_solver)
  if not spec.supports_players(num_players):
    raise UsageError(
      f"meta-solver {config.meta_solver!r} does not support {num_players}-player"
      f" games ({view.game}); use one of"
      f" {meta_solvers.names_supporting(num_players)}."
    )
  populations = view.num_populations
  counts = tuple(config.best_responses_per_player)
  if counts and len(counts) != populations:
    raise UsageError(
      f"best_responses_per_player={list(counts)} needs one count of at least 1"
      f" per population ({populations})."
    )
  if config.symmetric:
    # Member k plays row i of its matrix at information state i of either
    # seat; the loop also checks that the payoff table is then symmetric.
    tables = tree.infostates
    if (
      num_players != 2
      or tables[0].legal_mask.shape != tables[1].legal_mask.shape
      or not np.array_equal(tables[0].legal_mask, tables[1].legal_mask)
    ):
      raise UsageError(
        f"symmetric=True needs a 2-player game whose players have matching"
        f" information-state tables; {tree.game} does not. Drop --symmetric."
      )


def check_device(device: str) -> None:
  """Refuses a torch device name this package does not run on."""
  if not _DEVICE.match(str(device)):
    raise UsageError(
      f"device {device!r} is not one this package runs on; use cpu, cuda, cuda:N or mps."
    )


def _meta_solver_spec(name: str | None) -> meta_solvers.MetaSolverSpec:
  from openspiel_psro_ext import meta_solvers  # pylint: disable=g-import-not-at-top  (scipy)

  try:
    if name is None:
      raise KeyError(name)
    return meta_solvers.spec(name)
  except (KeyError, ValueError) as e:
    raise UsageError(f"unknown meta-solver {name!r}; choose one of {meta_solvers.names()}.") from e


def check_resumable(saved: dict[str, Any], current: PSROConfig, run_dir: str) -> None:
  """Refuses to resume a run with settings that change its results."""
  # A field the saved run predates had its default value.
  # Runs from before the moving average output their own meta-strategies.
  saved = {**PSROConfig().to_dict(), "meta_strategy_average_decay": 0.0, **saved}
  saved["evaluation"] = EVALUATION_ALIASES.get(saved["evaluation"], saved["evaluation"])
  now = current.to_dict()
  for key in RESULT_FIELDS:
    if saved.get(key) != now.get(key):
      raise checkpoints.CheckpointError(
        f"--resume with {key}={now.get(key)!r}, but the run in {run_dir} used"
        f" {saved.get(key)!r}; resume with the same settings."
      )
