"""The PSRO loop (Lanctot et al. 2017), exact where the game allows.

Each iteration t:

  1. the payoff table `M_t` of the current populations (exact sequence-form
     payoffs; only the new rows and columns are computed; or sampled with
     `sims_per_entry`, like stock OpenSpiel);
  2. the meta-strategy `sigma_t = meta_solver(M_t)`;
  3. the exact NashConv of `sigma_t` as a policy of the real game (a mixture's
     realization plan is the sigma-weighted sum of its members' plans); with
     `meta_strategy_average_decay` the output is the moving average of the
     `sigma_s` instead, `sigma_t` still trains;
  4. for each player a best response against `sigma_t` from the oracle (a
     solver that asks for rectified targets, `MetaSolverSpec.rectified`, gets
     one per support member, against the opponents that member beats or
     ties), appended to the populations.

Iteration t's `IterationRecord` describes `sigma_t` over the populations of
step 1. With an exact oracle and the Nash meta-solver this is the
double-oracle algorithm and NashConv goes to 0.

Steps 2-4 are the run's variant's (`variants.base.Variant`; plain PSRO by
default, or XDO, Anytime PSRO, P2SRO, JPSRO). The loop only loops: the
config is checked by `psro_config.check`, the run directory is a
`checkpoints.RunDirectory`, verification with OpenSpiel's code is
`verification`, where best responses run is a `backends.Backend`, and run
metrics are evaluation hooks (`evaluations`). Every random choice is seeded
from (seed, iteration, player). Resuming is a step after construction
(`restore`): it replays the payoff table and the variant's meta-solves over
the saved populations, so a resumed run ends with the same numbers as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import threadpoolctl

from openspiel_psro_ext import backends, errors, meta_solvers
from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext import records as records_lib
from openspiel_psro_ext.evaluation import verification
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.meta_solvers import common as meta_common
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.psro import evaluations as evaluations_lib
from openspiel_psro_ext.psro import variants, views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.runs import checkpoints

_PAYOFF_SEED_TAG = 7
_ORACLE_SEED_TAG = 11
_WHOLE_TRAINING = oracle_base.TrainingPlan()


def _seed(*parts: int) -> int:
  return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class PSRO:
  """A PSRO run (see module doc).

  Args:
    config: the run's settings; oracle-dependent defaults are resolved.
    output_dir: the run directory, or None to keep everything in memory.
    resume: continue the run in `output_dir`; call `restore` before running.
    evaluations: hooks (run metrics, approximate NashConv) whose values join
      the records; their time is `IterationRecord.evaluation_time_s`.
    backend: where best responses run (results do not depend on it).
    view: the game's view, made and checked from the same config (as the
      command does before any write); None: made and checked here.
    variant: the loop variant (`variants.make`), `config.algorithm`'s;
      None: that one with its default options.

  Attributes:
    view: the game as the loop sees it (`views`): compiled or simulated.
    variant: the loop variant whose steps the loop calls.
    populations: per population, its `PopulationMember`s (symmetric: one).
    records: the `IterationRecord` of every finished iteration.
    meta_strategies: the last meta-strategy, per player.
  """

  def __init__(
    self,
    config: PSROConfig,
    output_dir: str | None = None,
    resume: bool = False,
    evaluations: Sequence[evaluations_lib.Evaluation] = (),
    backend: backends.Backend | None = None,
    view: views.View | None = None,
    variant: variants.base.Variant | None = None,
  ):
    config, view, self.variant = _checked(config, view, variant)
    self.config = config
    self.view, self.tree, self.num_players = view, view.tree, view.num_players
    self.backend = backend if backend is not None else backends.EmbeddedBackend()
    self.view.use_backend(self.backend)
    self.evaluations = list(evaluations)
    oracle_cls = oracles_lib.get(config.oracle)
    overrides = self.variant.oracle_overrides(oracle_cls)
    self.oracle = oracle_cls.for_psro({**config.oracle_config, **overrides})
    assert config.meta_solver is not None  # chosen by `resolve`
    self.meta_solver = meta_solvers.spec(config.meta_solver)
    self.solver_kwargs = _solver_kwargs(self.meta_solver, config, self.num_players)
    self.populations: variants.base.Members = [[] for _ in range(self.view.num_populations)]
    self.records: list[IterationRecord] = []
    self.meta_strategies: list[np.ndarray] = []
    self.stop_requested = False
    self._add_batches: list[list[int]] = []
    self._wall_before = self._unrecorded_write_s = 0.0
    self.run_dir: checkpoints.RunDirectory | None = None
    if output_dir is not None:
      self.run_dir = checkpoints.RunDirectory.open(output_dir, config.to_dict(), resume)
      if self.variant.options is not None:
        self.run_dir.check_algorithm_options(self.variant.name, self.variant.options)
      if self.run_dir.state is not None:
        psro_config.check_resumable(self.run_dir.saved_config(), config, output_dir)
    self.variant.start(self)
    if self.run_dir is None or self.run_dir.state is None:
      self._add_and_write([[self.view.uniform_member(p)] for p in range(self.view.num_populations)])

  @property
  def table(self) -> Any:
    """The payoff table (`meta_games`, and `stderr` when sampled)."""
    return self.view.table

  @property
  def output_dir(self) -> str | None:
    return self.run_dir.path if self.run_dir is not None else None

  @property
  def iteration(self) -> int:
    """Index of the next iteration to run."""
    return len(self.records)

  def population_matrices(self) -> list[np.ndarray]:
    """Per player, `[N_p, I_p, A]` behaviour matrices (needs a compiled tree)."""
    matrices = self.view.population_matrices()
    if matrices is None:
      raise errors.UsageError(f"{self.view.game} is simulated: members have no behaviour matrices.")
    return matrices

  def previous_member(self, population: int) -> oracle_base.PopulationMember | None:
    """The population's newest best response (warm starts), if it has one."""
    return self.populations[population][-1] if len(self.populations[population]) > 1 else None

  def oracle_time_budget(self, iteration: int) -> float | None:
    """A best response's seconds at `iteration` (None: the oracle computes)."""
    if not self.oracle.trains:
      return None
    return psro_config.oracle_time_budget(self.config, self.oracle.config.time_budget_s, iteration)

  def request(
    self,
    population: int,
    opponents: oracle_base.Opponents,
    index: int,
    previous: oracle_base.PopulationMember | None,
    plan: oracle_base.TrainingPlan = _WHOLE_TRAINING,
  ) -> oracle_base.BestResponseRequest:
    """This iteration's `index`-th best response for `population` (all are
    built here), seeded from (seed, iteration, population, index)."""
    return oracle_base.BestResponseRequest(
      tree=self.view.request_tree,
      player=population,
      game=self.view.game,
      opponents=opponents,
      previous=previous,
      seed=_seed(self.config.seed, _ORACLE_SEED_TAG, self.iteration, population, index),
      time_budget_s=self.oracle_time_budget(self.iteration),
      plan=plan,
    )

  # -- the loop ------------------------------------------------------------

  def restore(self) -> PSRO:
    """Continues the run in the run directory (`resume`): its populations,
    table, records, the meta-solver's and the variant's state (its meta-solves
    replayed). Does nothing for a fresh run or a restored one; returns the run."""
    state = self.run_dir.state if self.run_dir is not None else None
    if self.run_dir is None or state is None or self.populations[0]:
      return self
    run_dir, records = self.run_dir, self.run_dir.records()
    self.variant.restore(records)
    for iteration, batch in enumerate(state.add_batches):
      self._add(
        [
          [self.view.load_member(run_dir, self.oracle, p, len(pop) + k) for k in range(count)]
          for p, (pop, count) in enumerate(zip(self.populations, batch))
        ]
      )
      if iteration < state.iterations_done:
        self.meta_strategies = self.variant.meta_solve()
    self.records = records
    self._wall_before = state.wall_time_s
    self.run_dir.rewrite_records(records)  # drops lines of an unfinished commit
    return self

  def run(self, on_iteration: Callable[[IterationRecord], None] | None = None) -> str:
    """Iterates until a stop condition; returns the reason."""
    while (reason := self.should_stop()) is None:
      record = self.step()
      if on_iteration is not None:
        on_iteration(record)
    self.finish()
    return reason

  def step(self) -> IterationRecord:
    """Runs one iteration; returns (and commits) its record."""
    if not self.populations[0]:
      raise errors.UsageError(f"{self.output_dir} holds a run to resume: call restore() first.")
    # The loop's linear algebra is matrix-vector sized: BLAS threads only add
    # synchronisation (far slower on a busy machine).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
      start = time.perf_counter()
      sigma = self.meta_strategies = self.variant.meta_solve()
      output, exact = self.variant.output(sigma)
      meta_games, shape = self.table.meta_games, list(self.table.shape)
      requests = self.variant.requests(sigma)
      answers = self.backend.best_responses(self.oracle, [r for _, r in requests])
      new_members = self.variant.accept(requests, answers)
      record = _record(self.iteration, shape, sigma, output, exact, meta_games, new_members)
      record.variant = self.variant.state()
      due = [e for e in self.evaluations if e.due(record.iteration)]
      evaluations_lib.evaluate(record, due, lambda: self.variant.snapshot(record, meta_games))
      write_s = self._add_and_write(new_members) + self._unrecorded_write_s
    wall_before = self.records[-1].wall_time_s if self.records else self._wall_before
    _clock(record, time.perf_counter() - start + self._unrecorded_write_s, write_s, wall_before)
    self.records.append(record)
    commit_start = time.perf_counter()
    if self.run_dir is not None:
      self.run_dir.commit(
        record, checkpoints.RunState(len(self.records), self._add_batches, record.wall_time_s)
      )
    # The commit cannot time itself into its own record: the next one counts it.
    self._unrecorded_write_s = time.perf_counter() - commit_start
    return record

  def should_stop(self) -> str | None:
    """Why the run should stop now, or None (the target needs an exact gap:
    an estimate is a lower bound, so it never stops a run)."""
    config = self.config
    if self.stop_requested:
      return "interrupted"
    if self.iteration >= config.iterations:
      return "iterations"
    if not self.records:
      return None
    reason, gap = self.variant.stop(), self.variant.gap()
    if reason is None and 0 < config.target_nash_conv and gap is not None:
      reason = self.variant.target_reason if gap <= config.target_nash_conv else None
    if reason is None and 0 < (config.time_budget_s or 0) <= self.records[-1].wall_time_s:
      reason = "time_budget"
    return reason

  def finish(self) -> None:
    """Runs the hooks the last record missed; writes the payoff table."""
    if not self.records:
      return
    last = self.records[-1]
    missed = [e for e in self.evaluations if not e.due(last.iteration)]
    if missed:
      block = tuple(slice(0, n) for n in last.population_size)
      meta_games = [t[block] for t in self.table.meta_games]
      spent = evaluations_lib.evaluate(
        last, missed, lambda: self.variant.snapshot(last, meta_games)
      )
      last.iteration_time_s += spent  # the clocks stay honest
      last.wall_time_s += spent
      if self.run_dir is not None:
        self.run_dir.rewrite_records(self.records)
    if self.run_dir is not None:
      self.run_dir.write_payoffs(self.table.meta_games, self.view.payoff_stderr())
      self.run_dir.sync()

  def verify(self, tolerance: float = 1e-6, method: str = "behaviour_mixture") -> float:
    """The last record's NashConv (the variant's output's) by OpenSpiel's code.

    Raises:
      VerificationError: ours and OpenSpiel's differ by more than `tolerance`.
    """
    last, (populations, weights) = self.records[-1], self.variant.output_mixture()
    label = f"{self.variant.title} iteration {last.iteration}: "
    if last.nash_conv is None:
      raise errors.UsageError(f"{label}no exact NashConv to verify (simulated).")
    return verification.verify(
      self.variant.tree, populations, weights, last.nash_conv, tolerance, method, label=label
    )

  # -- the populations -------------------------------------------------------

  def _add(self, new_members: variants.base.Members) -> None:
    """Appends members (per population) and the payoff table's new entries."""
    for pop, members in zip(self.populations, new_members):
      pop.extend(members)
    seed = _seed(self.config.seed, _PAYOFF_SEED_TAG, len(self._add_batches))
    self.view.add(new_members, seed, self.meta_strategies)
    self._add_batches.append([len(m) for m in new_members])

  def _add_and_write(self, new_members: variants.base.Members) -> float:
    """`_add`, then the new members' checkpoints; returns the writes' seconds."""
    first = [len(pop) for pop in self.populations]
    self._add(new_members)
    return 0.0 if self.run_dir is None else self.run_dir.write_members(first, new_members)


def _checked(
  config: PSROConfig, view: views.View | None, variant: variants.base.Variant | None
) -> tuple[PSROConfig, views.View, variants.base.Variant]:
  """The resolved config, its game's view and its variant. A view given was
  made and checked by the caller (the command), once; else the settings
  are checked here as the command checks them."""
  if variant is not None and config.algorithm is None:
    config = dataclasses.replace(config, algorithm=variant.name)
  unchecked = view is None
  if view is None:
    config, view = psro_config.check_settings(config)
  config = psro_config.resolve(config, view)
  assert config.algorithm is not None  # chosen by `resolve`
  variant = variant if variant is not None else variants.make(config.algorithm)
  if unchecked:
    psro_config.check(config, view)
    variant.check(config, view)
  return config, view, variant


def _solver_kwargs(
  spec: meta_solvers.MetaSolverSpec, config: PSROConfig, num_players: int
) -> dict[str, Any]:
  """The meta-solver's checked parameters, with its warm-started state."""
  kwargs = spec.check_kwargs(config.meta_solver_kwargs)
  if spec.incremental and num_players == 2:
    # One warm-started solver per run: successive tables share most of a support.
    kwargs["incremental"] = spec.new_incremental()
  return kwargs


def _clock(record: IterationRecord, iteration_s: float, write_s: float, wall_before: float) -> None:
  """Fills in the record's clocks (`records` module doc)."""
  record.write_time_s = write_s
  record.iteration_time_s = iteration_s
  record.psro_time_s = iteration_s - write_s - record.evaluation_time_s
  record.wall_time_s = wall_before + iteration_s


def _record(
  iteration: int,
  shape: list[int],
  sigma: list[np.ndarray],
  output: list[np.ndarray],
  exact: exploitability.NashConvResult | None,
  meta_games: list[np.ndarray],
  new_members: list[list[oracle_base.PopulationMember]],
) -> IterationRecord:
  """Iteration `iteration`'s record (its clocks filled in by the loop)."""
  return IterationRecord(
    iteration=iteration,
    population_size=shape,
    meta_strategy=[s.tolist() for s in output],
    training_meta_strategy=(None if output is sigma else [s.tolist() for s in sigma]),
    support_size=[int((s > 0).sum()) for s in output],
    nash_conv=None if exact is None else exact.nash_conv,
    exploitability_per_player=(None if exact is None else exact.player_improvements.tolist()),
    on_policy_values=(
      exact.on_policy_values.tolist()
      if exact is not None
      else [
        float(meta_common.action_values(m, output, p) @ output[p]) for p, m in enumerate(meta_games)
      ]
    ),
    oracle=[[records_lib.scalar_stats(m.stats) for m in members] for members in new_members],
  )
