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
                         `max(4 s, start)` at `oracle_budget_ramp_iterations`:
                         early meta-strategies are easy to exploit, late ones
                         near equilibrium leave small gains that take longer
                         training to find. A `time_budget_s` set in
                         `oracle_config` is kept constant unless a final
                         budget is given too; 0 means constant.

`check(config, tree)` refuses a config that cannot run, before anything is
written, with a `UsageError` naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.runs import checkpoints
from openspiel_psro_ext.simulated import simulation

RL_TIME_BUDGET_S = 300.0
EXACT_TIME_BUDGET_S = 60.0
RL_BUDGET_FINAL_S = 4.0
RL_AVERAGE_DECAY = 0.9

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


@dataclasses.dataclass
class PSROConfig:
  """Everything that determines a PSRO run's results.

  Attributes:
    game: an OpenSpiel game string.
    iterations: PSRO iterations (records) to run at most.
    meta_solver: a name from `meta_solvers.names()`.
    meta_solver_kwargs: the meta-solver's keyword arguments (checked against
      its parameters).
    oracle: a name from `oracles.names()`.
    oracle_config: overrides of the oracle's `Config` fields, over its PSRO
      preset (`Oracle.psro_defaults`).
    seed: seeds every random choice of the run.
    symmetric: one population shared by both players (2-player games whose
      players have matching information-state tables).
    sims_per_entry: 0 for exact payoff tables, else episodes sampled per
      entry (a like-for-like comparison with stock psro_v2).
    time_budget_s: stop after the iteration that passes this many seconds
      (0: no budget; None: see the module doc).
    target_nash_conv: stop once NashConv is at or below this (0: never).
    oracle_budget_final_s: the best-response budget schedule's final value
      (see the module doc).
    oracle_budget_ramp_iterations: iterations over which the budget ramps.
    best_responses_per_player: per population, how many best responses (with
      different seeds) it gets each iteration; empty: one each. RL best
      responses are noisy: more of them give the meta-solver better ones to
      choose from.
    max_histories: the compiled tree's size limit.
    evaluation: "exact" (compile the game; refuse one that does not),
      "sampled" (the simulated mode: sampled payoffs, approximate NashConv),
      or "auto" (exact where the game compiles); see `views`.
    payoff_target_stderr: the simulated mode's payoff entries are played
      until their standard error (weighted by the meta-strategy) is at most
      this; 0: 0.4% of the game's utility range.
    algorithm: PSRO or a variant of it, by name (`algorithms.names()`).
    meta_strategy_average_decay: 0, or the run's output (each record's
      meta-strategy, its NashConv, the final policy) is the exponential
      moving average of the meta-solver's meta-strategies, iteration s
      weighted `decay^(t-s)` at iteration t; best responses still train
      against each iteration's own (`IterationRecord.training_meta_strategy`).
      A restricted game's Nash over RL best responses overfits its own
      population: on Leduc the average with 0.9 (about the last 10
      iterations) was 25-45% less exploitable, simulated or compiled. None:
      0.9 for plain PSRO with an oracle that trains, else 0 (an exact
      oracle's double oracle reaches exactly 0; the variants output their own).
  """

  game: str = "leduc_poker"
  iterations: int = 400
  meta_solver: str = "nash"
  meta_solver_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  oracle: str = "ppo"
  oracle_config: dict[str, Any] = dataclasses.field(default_factory=dict)
  seed: int = 0
  symmetric: bool = False
  sims_per_entry: int = 0
  time_budget_s: float | None = None
  target_nash_conv: float = 0.01
  oracle_budget_final_s: float | None = None
  oracle_budget_ramp_iterations: int = 200
  best_responses_per_player: tuple[int, ...] = ()
  max_histories: int = game_tree_lib.DEFAULT_MAX_HISTORIES
  evaluation: str = "auto"
  payoff_target_stderr: float = simulation.SamplingConfig.target_stderr
  algorithm: str = "psro"
  meta_strategy_average_decay: float | None = None

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> PSROConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise UsageError(f"unknown PSRO config fields {unknown}; known: {sorted(known)}")
    data = dict(data)
    if "best_responses_per_player" in data:
      data["best_responses_per_player"] = tuple(data["best_responses_per_player"])
    return cls(**data)

  def to_dict(self) -> dict[str, Any]:
    """As JSON stores it (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(self)))


def default(field: str) -> Any:
  """`PSROConfig`'s default for `field` (the command line's flags use it)."""
  return getattr(PSROConfig(), field)


def resolve(config: PSROConfig) -> PSROConfig:
  """The config with every oracle-dependent default filled in."""
  oracle_cls = _oracle_class(config.oracle)
  changes: dict[str, Any] = {}
  if config.time_budget_s is None:
    changes["time_budget_s"] = RL_TIME_BUDGET_S if oracle_cls.trains else EXACT_TIME_BUDGET_S
  if config.oracle_budget_final_s is None:
    final = 0.0
    if oracle_cls.trains and "time_budget_s" not in config.oracle_config:
      start = float(_psro_oracle(oracle_cls, config.oracle_config).config.time_budget_s)
      final = max(RL_BUDGET_FINAL_S, start)
    changes["oracle_budget_final_s"] = final
  if config.meta_strategy_average_decay is None:
    changes["meta_strategy_average_decay"] = (
      RL_AVERAGE_DECAY if oracle_cls.trains and config.algorithm == "psro" else 0.0
    )
  return dataclasses.replace(config, **changes) if changes else config


def oracle_time_budget(config: PSROConfig, start_s: float, iteration: int) -> float:
  """The budget schedule: one best response's seconds at `iteration`."""
  final = config.oracle_budget_final_s or 0.0
  if final <= 0:
    return start_s
  fraction = min(iteration / config.oracle_budget_ramp_iterations, 1.0)
  return start_s + fraction * (final - start_s)


def _oracle_class(name: str) -> type[oracles_lib.Oracle]:
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
  if not config.payoff_target_stderr >= 0:
    raise UsageError(
      f"payoff_target_stderr must be >= 0 (0: relative to the"
      f" game's utility range), got {config.payoff_target_stderr}."
    )
  return simulation.SamplingConfig(target_stderr=config.payoff_target_stderr)


def check(config: PSROConfig, view: Any) -> None:
  """Refuses a config that cannot run on the game's `views.View`.

  Raises:
    UsageError: naming the setting and the fix.
  """
  num_players, tree = view.num_players, view.tree
  if config.iterations < 1:
    raise UsageError(f"iterations must be at least 1, got {config.iterations}.")
  for name in ("time_budget_s", "target_nash_conv", "oracle_budget_final_s"):
    value = getattr(config, name)
    if value is not None and not value >= 0:
      raise UsageError(f"{name} must be 0 (none) or positive, got {value}.")
  if config.sims_per_entry < 0:
    raise UsageError(
      f"sims_per_entry must be 0 (exact payoff tables) or a"
      f" positive number of games, got {config.sims_per_entry}."
    )
  if config.oracle_budget_ramp_iterations < 1:
    raise UsageError(
      "oracle_budget_ramp_iterations must be at least 1, got"
      f" {config.oracle_budget_ramp_iterations}."
    )
  decay = config.meta_strategy_average_decay or 0.0
  if not 0 <= decay < 1:
    raise UsageError(
      f"meta_strategy_average_decay must be in [0, 1) (0: no averaging), got {decay}."
    )
  if decay and config.algorithm != "psro":
    raise UsageError(
      f"meta_strategy_average_decay averages plain PSRO's meta-"
      f"strategies; the {config.algorithm} variant outputs its own."
      " Set it to 0."
    )
  oracle_cls = _oracle_class(config.oracle)
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
  _psro_oracle(oracle_cls, config.oracle_config)  # unknown settings
  if "device" in config.oracle_config:
    check_device(config.oracle_config["device"])
  spec = _meta_solver_spec(config.meta_solver)
  if not spec.supports_players(num_players):
    raise UsageError(
      f"meta-solver {config.meta_solver!r} does not support {num_players}-player"
      f" games ({view.game}); use one of"
      f" {meta_solvers.names_supporting(num_players)}."
    )
  try:
    spec.check_kwargs(config.meta_solver_kwargs)
  except ValueError as e:
    raise UsageError(str(e)) from None
  populations = view.num_populations
  counts = tuple(config.best_responses_per_player)
  if counts and (len(counts) != populations or min(counts) < 1):
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


def _meta_solver_spec(name: str) -> meta_solvers.MetaSolverSpec:
  try:
    return meta_solvers.spec(name)
  except (KeyError, ValueError) as e:
    raise UsageError(f"unknown meta-solver {name!r}; choose one of {meta_solvers.names()}.") from e


def check_resumable(saved: dict[str, Any], current: PSROConfig, run_dir: str) -> None:
  """Refuses to resume a run with settings that change its results."""
  # A field the saved run predates had its default value.
  # Runs from before the moving average output their own meta-strategies.
  saved = {**PSROConfig().to_dict(), "meta_strategy_average_decay": 0.0, **saved}
  now = current.to_dict()
  for key in RESULT_FIELDS:
    if saved.get(key) != now.get(key):
      raise checkpoints.CheckpointError(
        f"--resume with {key}={now.get(key)!r}, but the run in {run_dir} used"
        f" {saved.get(key)!r}; resume with the same settings."
      )
