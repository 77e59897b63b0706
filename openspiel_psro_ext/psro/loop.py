"""The PSRO loop (Lanctot et al. 2017), exact where the game allows.

Each iteration t:

  1. the payoff table `M_t` of the current populations (exact sequence-form
     payoffs; only the new rows and columns are computed; or sampled with
     `sims_per_entry`, like stock OpenSpiel);
  2. the meta-strategy `sigma_t = meta_solver(M_t)`;
  3. the exact NashConv of `sigma_t` as a policy of the real game (a mixture's
     realization plan is the sigma-weighted sum of its members' plans); with
     `meta_strategy_average_decay` the output is the moving average of the
     `sigma_s` instead (`averaged_meta_strategy`), `sigma_t` still trains;
  4. for each player a best response against `sigma_t` from the oracle (a
     solver that asks for rectified targets, `MetaSolverSpec.rectified`, gets
     one per support member, against the opponents that member beats or
     ties), appended to the populations.

Iteration t's `IterationRecord` describes `sigma_t` over the populations of
step 1. With an exact oracle and the Nash meta-solver this is the
double-oracle algorithm and NashConv goes to 0.

The loop only loops: the config is checked by `psro_config.check`, the run
directory is a `checkpoints.RunDirectory`, verification with OpenSpiel's code
is `verification`, where best responses run is a `backends.Backend`, and the
run metrics are a hook called every `metrics_every` iterations and on the
last one. Every random choice is seeded from (seed, iteration, player), and
resuming replays the payoff table and meta-solver over the saved population,
so a resumed run ends with the same numbers as an uninterrupted one.
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
from openspiel_psro_ext.meta_solvers import common as meta_common
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.psro.config import PSROConfig  # pylint: disable=unused-import
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.runs import checkpoints
from openspiel_psro_ext.simulated import simulation

_PAYOFF_SEED_TAG = 7
_ORACLE_SEED_TAG = 11


def _seed(*parts: int) -> int:
  return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


@dataclasses.dataclass
class Snapshot:
  """What one record describes, handed to evaluation hooks.

  Attributes:
    view: the run's view of the game (members beyond `sizes` are newer).
    sizes: per player, the members the meta-strategy mixes.
    sigma: per player, `[sizes[p]]` probabilities.
    meta_games: per player, the `sizes`-shaped payoff tensor.
    backend: where the run's best responses train (for hooks that train).
  """

  view: views.View
  sizes: list[int]
  sigma: list[np.ndarray]
  meta_games: list[np.ndarray]
  backend: backends.Backend

  def matrices(self) -> list[np.ndarray] | None:
    """Per player `[sizes[p], I_p, A]`, or None without a compiled tree."""
    matrices = self.view.population_matrices()
    return None if matrices is None else [m[:n] for m, n in zip(matrices, self.sizes)]

  def policies(self) -> list[list[simulation.BatchedPolicy]] | None:
    """Per player the first `sizes[p]` batched policies (simulated view)."""
    pols = self.view.policies
    return None if pols is None else [list(p[:n]) for p, n in zip(pols, self.sizes)]


@dataclasses.dataclass
class Evaluation:
  """A hook whose numbers join the records (`IterationRecord.metrics`).

  Attributes:
    compute: `Snapshot -> {key: value}`.
    every: runs on iterations `0, every, 2 every, ...` (0: none of them), and
      always on the run's last iteration.
  """

  compute: Callable[[Snapshot], dict[str, Any]]
  every: int = 0

  def due(self, iteration: int) -> bool:
    return self.every > 0 and iteration % self.every == 0


class PSRO:
  """A PSRO run (see module doc).

  Args:
    config: the run's settings; oracle-dependent defaults are resolved.
    output_dir: the run directory, or None to keep everything in memory.
    resume: continue the run in `output_dir`.
    evaluations: hooks (run metrics, approximate NashConv) whose numbers join
      the records; their time is `IterationRecord.metrics_time_s`.
    backend: where best responses run (results do not depend on it).
    view: the game's view, if already made (`views.make_view`, from the same
      config).

  Attributes:
    view: the game as the loop sees it (`views`): compiled or simulated.
    populations: per population, its `PopulationMember`s (one population
      shared by both players when symmetric).
    records: the `IterationRecord` of every finished iteration.
    meta_strategies: the last meta-strategy, per player.
  """

  def __init__(
    self,
    config: PSROConfig,
    output_dir: str | None = None,
    resume: bool = False,
    evaluations: Sequence[Evaluation] = (),
    backend: backends.Backend | None = None,
    view: views.View | None = None,
  ):
    self.config = config = psro_config.resolve(config)
    self.view = (
      view
      if view is not None
      else views.make_view(
        config.game,
        config.evaluation,
        config.max_histories,
        config.symmetric,
        config.sims_per_entry,
        psro_config.sampling(config),
      )
    )
    psro_config.check(config, self.view)
    self.check_variant(config, self.view)
    self.tree, self.num_players = self.view.tree, self.view.num_players
    self.backend = backend if backend is not None else backends.EmbeddedBackend()
    self.view.use_backend(self.backend)
    self.evaluations = list(evaluations)
    self.oracle = oracles_lib.get(config.oracle).for_psro(config.oracle_config)
    self.meta_solver = meta_solvers.spec(config.meta_solver)
    self._solver_kwargs = self.meta_solver.check_kwargs(config.meta_solver_kwargs)
    if self.meta_solver.incremental and self.num_players == 2:
      # One warm-started solver per run: successive tables share most of a support.
      self._solver_kwargs["incremental"] = self.meta_solver.new_incremental()
    self.populations: list[list[oracle_base.PopulationMember]] = [
      [] for _ in range(self.view.num_populations)
    ]
    self.records: list[IterationRecord] = []
    self.meta_strategies: list[np.ndarray] = []
    self.stop_requested = False
    self._add_batches: list[list[int]] = []
    self._wall_before = 0.0
    self._unrecorded_write_s = 0.0
    self.run_dir = None
    if output_dir is not None:
      self.run_dir = checkpoints.RunDirectory.open(output_dir, config.to_dict(), resume)
      options = getattr(self, "options", None)  # a variant's (`algorithms.options`)
      if options is not None:
        self.run_dir.check_algorithm_options(config.algorithm, dataclasses.asdict(options))
      if self.run_dir.state is not None:
        psro_config.check_resumable(self.run_dir.saved_config(), config, output_dir)
        self._restore()
    if not self.populations[0]:
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
      raise errors.UsageError(
        f"{self.view.game} is simulated: its members have no behaviour matrices."
      )
    return matrices

  def oracle_time_budget(self, iteration: int) -> float | None:
    """A best response's seconds at `iteration` (None: the oracle computes)."""
    if not self.oracle.trains:
      return None
    return psro_config.oracle_time_budget(self.config, self.oracle.config.time_budget_s, iteration)

  # -- the loop ------------------------------------------------------------

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
    # The loop's linear algebra is matrix-vector sized: BLAS threads only add
    # synchronisation (10-100x slower on a busy 2-core machine).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
      start = time.perf_counter()
      sigma = self.meta_strategies = self.meta_solve()
      output = self.averaged_meta_strategy(sigma)
      meta_games = self.table.meta_games
      exact = self.output_nash_conv(output)
      new_members = self._best_responses(self.best_response_requests(sigma))
      record = IterationRecord(
        iteration=self.iteration,
        population_size=list(self.table.shape),
        meta_strategy=[s.tolist() for s in output],
        training_meta_strategy=(None if output is sigma else [s.tolist() for s in sigma]),
        support_size=[int((s > 0).sum()) for s in output],
        nash_conv=None if exact is None else exact.nash_conv,
        exploitability_per_player=(None if exact is None else exact.player_improvements.tolist()),
        on_policy_values=(
          exact.on_policy_values.tolist()
          if exact is not None
          else [
            float(meta_common.action_values(m, output, p) @ output[p])
            for p, m in enumerate(meta_games)
          ]
        ),
        oracle=[[records_lib.scalar_stats(m.stats) for m in members] for members in new_members],
      )
      self._evaluate(record, [e for e in self.evaluations if e.due(record.iteration)], meta_games)
      write_s = self._add_and_write(new_members)
    record.write_time_s = write_s + self._unrecorded_write_s
    record.iteration_time_s = time.perf_counter() - start + self._unrecorded_write_s
    record.psro_time_s = record.iteration_time_s - record.write_time_s - record.metrics_time_s
    record.wall_time_s = (
      self.records[-1].wall_time_s if self.records else self._wall_before
    ) + record.iteration_time_s
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
    """Why the run should stop now, or None (the NashConv target needs an
    exact NashConv: an estimate is a lower bound, so it never stops a run)."""
    config, last = self.config, self.records[-1] if self.records else None
    if self.stop_requested:
      return "interrupted"
    if self.iteration >= config.iterations:
      return "iterations"
    if (
      last
      and config.target_nash_conv > 0
      and last.nash_conv is not None
      and last.nash_conv <= config.target_nash_conv
    ):
      return "target_nash_conv"
    if last and config.time_budget_s > 0 and last.wall_time_s >= config.time_budget_s:
      return "time_budget"
    return None

  def finish(self) -> None:
    """Runs the hooks the last record missed; writes the payoff table."""
    if not self.records:
      return
    last = self.records[-1]
    missed = [e for e in self.evaluations if not e.due(last.iteration)]
    if missed:
      sizes = last.population_size
      before = last.metrics_time_s
      self._evaluate(
        last, missed, [t[tuple(slice(0, n) for n in sizes)] for t in self.table.meta_games]
      )
      last.iteration_time_s += last.metrics_time_s - before  # the clocks stay honest
      last.wall_time_s += last.metrics_time_s - before
      if self.run_dir is not None:
        self.run_dir.rewrite_records(self.records)
    if self.run_dir is not None:
      self.run_dir.write_payoffs(self.table.meta_games, self.view.payoff_stderr())
      self.run_dir.sync()

  def verify(self, tolerance: float = 1e-6, method: str = "behaviour_mixture") -> float:
    """The last record's NashConv by OpenSpiel's code (see `verification`).

    Raises:
      VerificationError: ours and OpenSpiel's differ by more than `tolerance`.
    """
    last = self.records[-1]
    return verification.verify(
      self.tree,
      self.population_matrices(),
      last.sigma,
      last.nash_conv,
      tolerance,
      method,
      label=f"iteration {last.iteration}: ",
    )

  # -- the steps a loop variant may replace (see `algorithms`) --------------

  @classmethod
  def check_variant(cls, config: PSROConfig, view: views.View) -> None:
    """Refuses, with a `UsageError`, a config this loop variant cannot run."""
    del config, view

  def meta_solve(self) -> list[np.ndarray]:
    """This iteration's meta-strategy: per player `[N_p]` probabilities."""
    return self._solve()

  def averaged_meta_strategy(self, sigma: list[np.ndarray]) -> list[np.ndarray]:
    """The run's output at this iteration: `sigma` itself, or with
    `meta_strategy_average_decay = d` the average of the meta-solver's
    meta-strategies so far, iteration s weighted `d^(t-s)` (members newer
    than an iteration count 0 in its term). The previous record holds the
    previous average, so resuming continues it."""
    decay = self.config.meta_strategy_average_decay  # resolved: never None here
    if not decay or not self.records:
      return sigma
    # Z_t = sum_{k<=t} d^k = 1 + d Z_{t-1}: the previous average carries d Z_{t-1}.
    carried = decay * (1.0 - decay**self.iteration) / (1.0 - decay)
    return [
      (carried * np.pad(before, (0, len(now) - len(before))) + now) / (carried + 1.0)
      for before, now in zip(self.records[-1].sigma, sigma)
    ]

  def output_nash_conv(self, sigma: list[np.ndarray]) -> Any:
    """`exploitability.NashConvResult` of the run's output (None: no tree)."""
    return self.view.nash_conv(sigma)

  def best_response_requests(
    self, sigma: list[np.ndarray]
  ) -> list[tuple[int, oracle_base.BestResponseRequest]]:
    """(population, request) for each of this iteration's best responses.

    Each population gets one (or `best_responses_per_player`) against the
    others' `sigma`, or, for a solver that asks for rectified targets, one per
    support member against the opponents that member beats or ties.
    """
    num_populations = len(self.populations)
    if self.meta_solver.rectified:
      meta_games = self.table.meta_games
      targets = meta_solvers.rectified_targets(
        meta_games[:1] if self.config.symmetric else meta_games, profile=sigma[:2]
      )
      opponent_mixes = [[t.opponent_mixture for t in targets[p]] for p in range(num_populations)]
    else:
      opponent_mixes = [[None]] * num_populations
    counts = self.config.best_responses_per_player or (1,) * num_populations
    requests = []
    for p in range(num_populations):
      for j, mix in enumerate(opponent_mixes[p] * counts[p]):
        weights = [sigma[q] if mix is None else mix for q in range(self.num_players)]
        requests.append(
          (
            p,
            self.view.request(
              p,
              weights,
              self.previous_member(p),
              self.request_seed(p, j),
              self.oracle_time_budget(self.iteration),
            ),
          )
        )
    return requests

  def evaluation_snapshot(self, record: IterationRecord, meta_games: list[np.ndarray]) -> Snapshot:
    """What evaluation hooks see of `record` (a variant whose output is not a
    mixture of members shows them its output)."""
    return Snapshot(self.view, list(record.population_size), record.sigma, meta_games, self.backend)

  def previous_member(self, population: int) -> oracle_base.PopulationMember | None:
    """The population's newest best response (warm starts), if it has one."""
    return self.populations[population][-1] if len(self.populations[population]) > 1 else None

  def request_seed(self, population: int, index: int) -> int:
    """Seed of this iteration's `index`-th best response for `population`."""
    return _seed(self.config.seed, _ORACLE_SEED_TAG, self.iteration, population, index)

  # -- steps ---------------------------------------------------------------

  def _evaluate(
    self, record: IterationRecord, hooks: Sequence[Evaluation], meta_games: list[np.ndarray]
  ) -> None:
    if not hooks:
      return
    start = time.perf_counter()
    snapshot = self.evaluation_snapshot(record, meta_games)
    for hook in hooks:
      record.metrics.update(hook.compute(snapshot))
    record.metrics_time_s += time.perf_counter() - start

  def _solve(self) -> list[np.ndarray]:
    meta_games = self.table.meta_games
    if self.config.symmetric:
      profile = self.meta_solver.solve([meta_games[0]], **self._solver_kwargs)
      return [np.asarray(profile[0], dtype=np.float64)] * self.num_players
    return [
      np.asarray(s, dtype=np.float64)
      for s in self.meta_solver.solve(meta_games, **self._solver_kwargs)
    ]

  def _best_responses(
    self, requests: list[tuple[int, oracle_base.BestResponseRequest]]
  ) -> list[list[oracle_base.PopulationMember]]:
    """Per population, this iteration's new members (one backend batch)."""
    new: list[list[oracle_base.PopulationMember]] = [[] for _ in self.populations]
    members = self.backend.best_responses(self.oracle, [r for _, r in requests])
    for (p, _), member in zip(requests, members):
      new[p].append(member)
    return new

  def _add(self, new_members: list[list[oracle_base.PopulationMember]]) -> None:
    """Appends members (per population) and the payoff table's new entries."""
    for pop, members in zip(self.populations, new_members):
      pop.extend(members)
    self.view.add(
      new_members,
      _seed(self.config.seed, _PAYOFF_SEED_TAG, len(self._add_batches)),
      self.meta_strategies,
    )
    self._add_batches.append([len(m) for m in new_members])

  def _add_and_write(self, new_members: list[list[oracle_base.PopulationMember]]) -> float:
    """`_add`, then the new members' checkpoints; returns the writes' seconds."""
    start = [len(pop) for pop in self.populations]
    self._add(new_members)
    if self.run_dir is None:
      return 0.0
    write_start = time.perf_counter()
    for p, members in enumerate(new_members):
      for k, member in enumerate(members):
        self.run_dir.write_member(p, start[p] + k, member.matrix, member.module)
    return time.perf_counter() - write_start

  def _restore(self) -> None:
    """Rebuilds populations, table, solver state and records from disk."""
    state = self.run_dir.state
    records = self.run_dir.records()
    counts = [0] * len(self.populations)
    for iteration, batch in enumerate(state.add_batches):
      members = []
      for p, count in enumerate(batch):
        members.append(
          [self.view.load_member(self.run_dir, self.oracle, p, counts[p] + k) for k in range(count)]
        )
        counts[p] += count
      self._add(members)
      if iteration < state.iterations_done:  # rebuilds a variant's state too
        self.meta_strategies = self.meta_solve()
    self.records = records
    self._wall_before = state.wall_time_s
    self.run_dir.rewrite_records(records)  # drops lines of an unfinished commit
