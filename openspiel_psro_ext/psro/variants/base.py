"""What a loop variant is: a small object the PSRO loop calls at named steps.

PSRO, XDO, Anytime PSRO, P2SRO and JPSRO share one skeleton, which the loop
(`psro.PSRO`) runs: meta-solve, evaluate the output, best-respond, expand
the populations, record, checkpoint, resume. A variant decides the steps in
between, and the loop calls it, in this order:

  check(config, view)       refuse a run it cannot do (a `UsageError`),
                            before anything is written;
  oracle_overrides(cls)     oracle settings it needs (resolved when the
                            loop builds the oracle);
  start(run)                the run is built: the variant keeps it (`Run`);
  restore(records)          a resumed run's records (the typed `state`s),
                            before the loop replays the meta-solves over
                            the saved populations;
  meta_solve()              iteration t's meta-strategy `sigma_t`;
  output(sigma)             the run's output (the record's meta-strategy)
                            and its exact NashConv (None: no compiled tree);
  requests(sigma)           the best responses to train, each built with the
                            loop's one request builder (`Run.request`);
  accept(requests, members) the answers -> per population, the new members;
  state()                   its typed state for the record (`records.variants`);
  stop()                    an extra reason to stop, or None;
  gap()                     what `target_nash_conv` bounds;
  snapshot(record, games)   what evaluation hooks see of a record;
  output_mixture()          the output as populations and weights (verify).

`Variant` implements every step but `meta_solve` as PSRO does; `PSRO`, the
default variant, meta-solves with the configured meta-solver. The loop owns
the run directory, records, seeds and resume; a variant owns only its state.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import pyspiel

from openspiel_psro_ext import backends, meta_solvers
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.oracles.rl import hedge
from openspiel_psro_ext.psro import evaluations, views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.records import IterationRecord, schema
from openspiel_psro_ext.records.variants import VariantState
from openspiel_psro_ext.runs import checkpoints

Requests = list[tuple[int, oracle_base.BestResponseRequest]]  # (population, request)
Members = list[list[oracle_base.PopulationMember]]  # per population

_T = TypeVar("_T")


class Run(Protocol):
  """What a variant sees of the run (`psro.PSRO`)."""

  config: PSROConfig
  view: views.View
  num_players: int
  populations: Members
  records: list[IterationRecord]
  meta_solver: meta_solvers.MetaSolverSpec
  solver_kwargs: dict[str, Any]
  oracle: oracle_base.Oracle
  backend: backends.Backend
  run_dir: checkpoints.RunDirectory | None

  @property
  def iteration(self) -> int: ...

  @property
  def table(self) -> Any: ...

  def population_matrices(self) -> list[np.ndarray]: ...

  def previous_member(self, population: int) -> oracle_base.PopulationMember | None: ...

  def request(
    self,
    population: int,
    opponents: oracle_base.Opponents,
    index: int,
    previous: oracle_base.PopulationMember | None,
    plan: oracle_base.TrainingPlan = ...,
  ) -> oracle_base.BestResponseRequest: ...


class VariantOptions(Protocol):
  """A variant's settings (a dataclass built from `--algorithm_options`)."""

  __dataclass_fields__: ClassVar[dict[str, Any]]

  def check(self) -> None:
    """Raises `UsageError` where one value rules out another (each value's
    own range is its `schema.setting` declaration, held by the variant)."""


_ZERO_SUM = (pyspiel.GameType.Utility.ZERO_SUM, pyspiel.GameType.Utility.CONSTANT_SUM)


def _check_tree(title: str, config: PSROConfig, view: views.View) -> None:
  if view.tree is None or view.simulated:
    raise UsageError(
      f"{title} works on the compiled tree, which {config.game} runs"
      " without here; use --evaluation=exact on a game that compiles."
    )


def _check_populations(title: str, config: PSROConfig) -> None:
  if config.symmetric:
    raise UsageError(f"{title} keeps one population per player; drop --symmetric.")


def check_compiled(title: str, config: PSROConfig, view: views.View) -> None:
  """Refuses what a variant over the compiled tree, with one population per
  player, cannot run."""
  _check_tree(title, config, view)
  _check_populations(title, config)


def check_two_player_zero_sum(title: str, config: PSROConfig, view: views.View) -> None:
  """`check_compiled` for a variant of two-player zero-sum games only."""
  _check_tree(title, config, view)
  game_type = view.game.get_type()
  if view.num_players != 2 or game_type.utility not in _ZERO_SUM:
    raise UsageError(
      f"{title} solves two-player zero-sum games; {config.game} has"
      f" {view.num_players} players and {game_type.utility}. Use"
      " --algorithm=psro."
    )
  _check_populations(title, config)


def against(player: int, per_player: Sequence[_T]) -> list[_T | None]:
  """`per_player` with None at `player` (what a request says of the learner)."""
  return [None if q == player else x for q, x in enumerate(per_player)]


def matrix(member: oracle_base.PopulationMember) -> np.ndarray:
  """A member's `[I, A]` behaviour matrix (variants over the compiled tree)."""
  if member.matrix is None:
    raise ValueError("a member without a behaviour matrix (simulated) in a compiled run.")
  return member.matrix


def restricted_nash(run: Run, members: list[np.ndarray] | None = None) -> list[np.ndarray]:
  """The meta-solver's meta-strategy over the run's payoff table: per
  player `[N_p]` (PSRO's step 2).

  `members`: per player, the `[n_p]` (increasing) indices of the members
  the restricted game holds (None: all); the others get weight 0.
  """
  meta_games = run.table.meta_games
  if run.config.symmetric:
    profile = run.meta_solver.solve([meta_games[0]], **run.solver_kwargs)
    return [np.asarray(profile[0], dtype=np.float64)] * run.num_players
  if members is not None:
    meta_games = [m[np.ix_(*members)] for m in meta_games]
  solved = [
    np.asarray(s, dtype=np.float64) for s in run.meta_solver.solve(meta_games, **run.solver_kwargs)
  ]
  if members is None:
    return solved
  sigma = [np.zeros(n) for n in run.table.shape]
  for full, part, index in zip(sigma, solved, members):
    full[index] = part
  return sigma


class Variant(abc.ABC):
  """A loop variant (module doc); every step but `meta_solve` is PSRO's.

  Class attributes:
    name: its registry name (`--algorithm`).
    title: its name in messages.
    Options: its settings' dataclass (`--algorithm_options`), or None.

  Attributes:
    options: its settings (None without `Options`).
    run: the run, from `start` on.
  """

  name: ClassVar[str]
  title: ClassVar[str]
  Options: ClassVar[type[VariantOptions] | None] = None

  def __init__(self, options: Any = None):
    if self.Options is None:
      if options is not None:
        raise UsageError(f"algorithm {self.name!r} takes no options; got {options}.")
    else:
      options = options if options is not None else self.Options()
      # Options built in Python, not from --algorithm_options, meet their
      # declarations here.
      wrong = schema.object_problem(options, lambda key: f"{self.title} option {key}")
      if wrong is not None:
        raise UsageError(wrong)
      options.check()
    self.options = options
    self.run: Run

  @property
  def tree(self) -> GameTree:
    """The compiled game (variants that need it refuse others in `check`)."""
    tree = self.run.view.tree
    if tree is None:
      raise UsageError(f"{self.title} needs the compiled tree.")
    return tree

  def check(self, config: PSROConfig, view: views.View) -> None:
    """Refuses, with a `UsageError`, a run this variant cannot do."""
    del config, view

  def oracle_overrides(self, oracle_cls: type[oracle_base.Oracle]) -> dict[str, Any]:
    """Oracle settings this variant needs over the config's."""
    del oracle_cls
    return {}

  def start(self, run: Run) -> None:
    """Keeps the run, which is built (its populations may still be empty).

    Raises:
      UsageError: the run's config names another variant.
    """
    if run.config.algorithm != self.name:
      raise UsageError(f"the config runs {run.config.algorithm!r}, not {self.name!r}.")
    self.run = run

  def restore(self, records: list[IterationRecord]) -> None:
    """A resumed run's records, before the loop replays `meta_solve` over
    the saved populations (a deterministic variant rebuilds its state so)."""
    del records

  @abc.abstractmethod
  def meta_solve(self) -> list[np.ndarray]:
    """This iteration's meta-strategy: per player `[N_p]` probabilities."""

  def output(
    self, sigma: list[np.ndarray]
  ) -> tuple[list[np.ndarray], exploitability.NashConvResult | None]:
    """The run's output at this iteration (`sigma` itself, or with
    `meta_strategy_average_decay = d` the average of the meta-strategies so
    far, iteration s weighted `d^(t-s)`; members newer than an iteration
    count 0 in its term) and its exact NashConv (None without a tree). The
    previous record holds the previous average, so resuming continues it."""
    run, decay = self.run, self.run.config.meta_strategy_average_decay
    output = sigma
    if decay and run.records:
      # Z_t = sum_{k<=t} d^k = 1 + d Z_{t-1}: the previous average carries d Z_{t-1}.
      carried = decay * (1.0 - decay**run.iteration) / (1.0 - decay)
      output = [
        (carried * np.pad(before, (0, len(now) - len(before))) + now) / (carried + 1.0)
        for before, now in zip(run.records[-1].sigma, sigma)
      ]
    return output, run.view.nash_conv(output)

  def requests(self, sigma: list[np.ndarray]) -> Requests:
    """(population, request) for each of this iteration's best responses.

    Each population gets one (or `best_responses_per_player`) against the
    others' `sigma`, or, for a solver that asks for rectified targets, one per
    support member against the opponents that member beats or ties.
    """
    return self.mixture_requests(sigma)

  def mixture_requests(
    self, sigma: list[np.ndarray], learner: hedge.HedgeOptions | None = None
  ) -> Requests:
    """`requests` against the populations mixed by `sigma` (with `learner`,
    mixtures that learn from there: `oracle_base.LearningMixture`)."""
    run = self.run
    num_populations = len(run.populations)
    mixes: list[list[np.ndarray | None]]  # per population; None: sigma itself
    if run.meta_solver.rectified:
      meta_games = run.table.meta_games
      targets = meta_solvers.rectified_targets(
        meta_games[:1] if run.config.symmetric else meta_games, profile=sigma[:2]
      )
      mixes = [[t.opponent_mixture for t in targets[p]] for p in range(num_populations)]
    else:
      mixes = [[None]] * num_populations
    counts = run.config.best_responses_per_player or (1,) * num_populations
    requests = []
    for p in range(num_populations):
      populations = run.view.opponent_populations(p)
      for j, mix in enumerate(mixes[p] * counts[p]):
        weights = against(p, [sigma[q] if mix is None else mix for q in range(run.num_players)])
        opponents: oracle_base.Opponents = (
          oracle_base.MemberMixture(populations, weights)
          if learner is None
          else oracle_base.LearningMixture(populations, weights, learner)
        )
        requests.append((p, run.request(p, opponents, j, run.previous_member(p))))
    return requests

  def accept(self, requests: Requests, members: list[oracle_base.PopulationMember]) -> Members:
    """Per population, the new members from the answers (`members[i]`
    answers `requests[i]`)."""
    new: Members = [[] for _ in self.run.populations]
    for (p, _), member in zip(requests, members):
      new[p].append(member)
    return new

  def state(self) -> VariantState | None:
    """This iteration's state for the record (None: nothing to keep)."""
    return None

  def stop(self) -> str | None:
    """A reason of this variant's own to stop after the last record."""
    return None

  def gap(self) -> float | None:
    """What `target_nash_conv` bounds: the last record's exact NashConv."""
    return self.run.records[-1].nash_conv

  target_reason: ClassVar[str] = "target_nash_conv"  # the stop reason at the target

  def snapshot(self, record: IterationRecord, meta_games: list[np.ndarray]) -> evaluations.Snapshot:
    """What evaluation hooks see of `record`."""
    run = self.run
    return evaluations.Snapshot(
      run.view, list(record.population_size), record.sigma, meta_games, run.backend
    )

  def output_mixture(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The last record's output as per player `[N_p, I_p, A]` members and
    `[N_p]` weights (for verification with OpenSpiel's code)."""
    return self.run.population_matrices(), self.run.records[-1].sigma


class PSRO(Variant):
  """Plain PSRO: best responses to the meta-solver's meta-strategy."""

  name = "psro"
  title = "PSRO"

  def meta_solve(self) -> list[np.ndarray]:
    return restricted_nash(self.run)
