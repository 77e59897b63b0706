"""The PSRO loop (Lanctot et al. 2017), exact where the game allows.

Each iteration t:

  1. the payoff table `M_t` of the current populations (exact sequence-form
     payoffs; only the new rows and columns are computed; or sampled with
     `sims_per_entry`, like stock OpenSpiel);
  2. the meta-strategy `sigma_t = meta_solver(M_t)`;
  3. the exact NashConv of `sigma_t` as a policy of the real game (a mixture's
     realization plan is the sigma-weighted sum of its members' plans);
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

import time
from typing import Any, Callable, Sequence

import numpy as np
import threadpoolctl

from openspiel_psro_ext import backends
from openspiel_psro_ext import checkpoints
from openspiel_psro_ext import errors
from openspiel_psro_ext import exploitability
from openspiel_psro_ext import game_tree as game_tree_lib
from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext import payoffs
from openspiel_psro_ext import psro_config
from openspiel_psro_ext import records as records_lib
from openspiel_psro_ext import verification
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro_config import PSROConfig  # pylint: disable=unused-import
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.verification import VerificationError  # pylint: disable=unused-import

#: `hook(populations [N_p, I_p, A] per player, sigma, meta_games) -> metrics`.
MetricsHook = Callable[[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray]],
                       dict[str, Any]]

_PAYOFF_SEED_TAG = 7
_ORACLE_SEED_TAG = 11


def _seed(*parts: int) -> int:
  return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class PSRO:
  """A PSRO run over a compiled game (see module doc).

  Args:
    config: the run's settings; oracle-dependent defaults are resolved.
    output_dir: the run directory, or None to keep everything in memory.
    resume: continue the run in `output_dir`.
    metrics_hook: run metrics, every `metrics_every` iterations and on the
      last one (their time is `IterationRecord.metrics_time_s`).
    metrics_every: the hook's cadence (0: only on the last iteration).
    backend: where best responses run (results do not depend on it).

  Attributes:
    populations: per population, its `PopulationMember`s (one population
      shared by both players when symmetric).
    records: the `IterationRecord` of every finished iteration.
    meta_strategies: the last meta-strategy, per player.
  """

  def __init__(self, config: PSROConfig, output_dir: str | None = None,
               resume: bool = False, metrics_hook: MetricsHook | None = None,
               metrics_every: int = 10, backend: backends.Backend | None = None):
    self.config = config = psro_config.resolve(config)
    self.tree = game_tree_lib.get_tree(config.game, config.max_histories)
    psro_config.check(config, self.tree)
    self.num_players = self.tree.num_players
    self.backend = backend if backend is not None else backends.EmbeddedBackend()
    self.metrics_hook, self.metrics_every = metrics_hook, metrics_every
    self.oracle = oracles_lib.get(config.oracle).for_psro(config.oracle_config)
    self.meta_solver = meta_solvers.spec(config.meta_solver)
    self._solver_kwargs = self.meta_solver.check_kwargs(config.meta_solver_kwargs)
    if self.meta_solver.incremental and self.num_players == 2:
      # One warm-started solver per run: successive tables share most of a support.
      self._solver_kwargs["incremental"] = self.meta_solver.new_incremental()
    populations = psro_config.num_populations(config, self.num_players)
    self.populations: list[list[oracle_base.PopulationMember]] = [[] for _ in range(populations)]
    self._matrices = [payoffs.GrowingArray((self.tree.infostates[p].num_infostates,
                                            self.tree.num_actions)) for p in range(populations)]
    self.table = (payoffs.PayoffTable(self.tree) if config.sims_per_entry <= 0 else
                  payoffs.SampledPayoffTable(self.tree, config.sims_per_entry))
    self.records: list[IterationRecord] = []
    self.meta_strategies: list[np.ndarray] = []
    self.stop_requested = False
    self._add_batches: list[list[int]] = []
    self._wall_before = 0.0
    self._unrecorded_write_s = 0.0
    self.run_dir = None
    if output_dir is not None:
      self.run_dir = checkpoints.RunDirectory.open(output_dir, config.to_dict(), resume)
      if self.run_dir.state is not None:
        psro_config.check_resumable(self.run_dir.saved_config(), config, output_dir)
        self._restore()
    if not self.populations[0]:
      uniform = self.tree.uniform_policy()
      self._add_and_write([[oracle_base.PopulationMember(matrix=uniform[p])]
                           for p in range(populations)])

  @property
  def output_dir(self) -> str | None:
    return self.run_dir.path if self.run_dir is not None else None

  @property
  def iteration(self) -> int:
    """Index of the next iteration to run."""
    return len(self.records)

  def population_matrices(self) -> list[np.ndarray]:
    """Per player, `[N_p, I_p, A]` behaviour matrices of the population."""
    stacked = [rows.array for rows in self._matrices]
    return stacked * self.num_players if self.config.symmetric else stacked

  def oracle_time_budget(self, iteration: int) -> float | None:
    """A best response's seconds at `iteration` (None: the oracle computes)."""
    if not self.oracle.trains:
      return None
    return psro_config.oracle_time_budget(self.config, self.oracle.config.time_budget_s,
                                          iteration)

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
      sigma = self.meta_strategies = self._solve()
      matrices = self.population_matrices()
      reaches = [self.table.terminal_reach(q) for q in range(self.num_players)]
      result = exploitability.nash_conv_from_reach(
          self.tree, [s[s > 0] @ r[s > 0] for s, r in zip(sigma, reaches)])
      new_members = self._best_responses(sigma)
      record = IterationRecord(
          iteration=self.iteration, population_size=[len(m) for m in matrices],
          meta_strategy=[s.tolist() for s in sigma],
          support_size=[int((s > 0).sum()) for s in sigma],
          nash_conv=result.nash_conv,
          exploitability_per_player=result.player_improvements.tolist(),
          on_policy_values=result.on_policy_values.tolist(),
          oracle=[[records_lib.scalar_stats(m.stats) for m in members]
                  for members in new_members])
      if self.metrics_hook is not None and self.metrics_every and \
          record.iteration % self.metrics_every == 0:
        metrics_start = time.perf_counter()
        record.metrics = self.metrics_hook(matrices, sigma, self.table.meta_games)
        record.metrics_time_s = time.perf_counter() - metrics_start
      write_s = self._add_and_write(new_members)
    record.write_time_s = write_s + self._unrecorded_write_s
    record.iteration_time_s = time.perf_counter() - start + self._unrecorded_write_s
    record.psro_time_s = record.iteration_time_s - record.write_time_s - record.metrics_time_s
    record.wall_time_s = (self.records[-1].wall_time_s if self.records
                          else self._wall_before) + record.iteration_time_s
    self.records.append(record)
    commit_start = time.perf_counter()
    if self.run_dir is not None:
      self.run_dir.commit(record, checkpoints.RunState(
          len(self.records), self._add_batches, record.wall_time_s))
    # The commit cannot time itself into its own record: the next one counts it.
    self._unrecorded_write_s = time.perf_counter() - commit_start
    return record

  def should_stop(self) -> str | None:
    """Why the run should stop now, or None."""
    config, last = self.config, self.records[-1] if self.records else None
    if self.stop_requested:
      return "interrupted"
    if self.iteration >= config.iterations:
      return "iterations"
    if last and config.target_nash_conv > 0 and last.nash_conv <= config.target_nash_conv:
      return "target_nash_conv"
    if last and config.time_budget_s > 0 and last.wall_time_s >= config.time_budget_s:
      return "time_budget"
    return None

  def finish(self) -> None:
    """Gives the last record its run metrics and writes the payoff table."""
    if not self.records:
      return
    last = self.records[-1]
    if self.metrics_hook is not None and not last.metrics:
      sizes = last.population_size
      start = time.perf_counter()
      last.metrics = self.metrics_hook(
          [m[:n] for m, n in zip(self.population_matrices(), sizes)], last.sigma,
          [t[tuple(slice(0, n) for n in sizes)] for t in self.table.meta_games])
      last.metrics_time_s = time.perf_counter() - start
      if self.run_dir is not None:
        self.run_dir.rewrite_records(self.records)
    if self.run_dir is not None:
      self.run_dir.write_payoffs(self.table.meta_games)
      self.run_dir.sync()

  def verify(self, tolerance: float = 1e-6, method: str = "behaviour_mixture") -> float:
    """The last record's NashConv by OpenSpiel's code (see `verification`).

    Raises:
      VerificationError: ours and OpenSpiel's differ by more than `tolerance`.
    """
    last = self.records[-1]
    return verification.verify(self.tree, self.population_matrices(), last.sigma,
                               last.nash_conv, tolerance, method,
                               label=f"iteration {last.iteration}: ")

  # -- steps ---------------------------------------------------------------

  def _solve(self) -> list[np.ndarray]:
    meta_games = self.table.meta_games
    if self.config.symmetric:
      profile = self.meta_solver.solve([meta_games[0]], **self._solver_kwargs)
      return [np.asarray(profile[0], dtype=np.float64)] * self.num_players
    return [np.asarray(s, dtype=np.float64)
            for s in self.meta_solver.solve(meta_games, **self._solver_kwargs)]

  def _best_responses(self, sigma: list[np.ndarray]
                      ) -> list[list[oracle_base.PopulationMember]]:
    """Per population, this iteration's new members (one backend batch)."""
    matrices = self.population_matrices()
    num_populations = len(self.populations)
    if self.meta_solver.rectified:
      meta_games = self.table.meta_games
      targets = meta_solvers.rectified_targets(
          meta_games[:1] if self.config.symmetric else meta_games, profile=sigma[:2])
      opponent_mixes = [[t.opponent_mixture for t in targets[p]]
                        for p in range(num_populations)]
    else:
      opponent_mixes = [[None]] * num_populations
    counts = self.config.best_responses_per_player or (1,) * num_populations
    requests, owners = [], []
    for p in range(num_populations):
      previous = self.populations[p][-1] if len(self.populations[p]) > 1 else None
      for j, mix in enumerate(opponent_mixes[p] * counts[p]):
        requests.append(oracle_base.BestResponseRequest(
            tree=self.tree, player=p,
            opponent_populations=[None if q == p else matrices[q]
                                  for q in range(self.num_players)],
            opponent_weights=[None if q == p else (sigma[q] if mix is None else mix)
                              for q in range(self.num_players)],
            previous=previous, time_budget_s=self.oracle_time_budget(self.iteration),
            seed=_seed(self.config.seed, _ORACLE_SEED_TAG, self.iteration, p, j)))
        owners.append(p)
    new: list[list[oracle_base.PopulationMember]] = [[] for _ in range(num_populations)]
    for p, member in zip(owners, self.backend.best_responses(self.oracle, requests)):
      new[p].append(member)
    return new

  def _add(self, new_members: list[list[oracle_base.PopulationMember]]) -> None:
    """Appends members (per population) and the payoff table's new entries."""
    for pop, members in zip(self.populations, new_members):
      pop.extend(members)
    stacked = [np.stack([m.matrix for m in members]) if members else None
               for members in new_members]
    for rows, new in zip(self._matrices, stacked):
      if new is not None:
        rows.append(new)
    self.table.add(stacked * self.num_players if self.config.symmetric else stacked,
                   seed=_seed(self.config.seed, _PAYOFF_SEED_TAG, len(self._add_batches)))
    self._add_batches.append([len(m) for m in new_members])
    if self.config.symmetric:
      self._check_symmetric()

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

  def _check_symmetric(self) -> None:
    """A shared population needs M_1 = M_0^T (roles swap with the seats)."""
    m0, m1 = self.table.meta_games
    if not np.allclose(m1, m0.T, atol=1e-9 if self.config.sims_per_entry <= 0 else 0.1):
      raise errors.UsageError(
          f"{self.tree.game} is not symmetric under a shared population: the"
          " payoff table is not M_1 = M_0^T when both seats play the same"
          " policy. Drop --symmetric.")

  def _restore(self) -> None:
    """Rebuilds populations, table, solver state and records from disk."""
    state = self.run_dir.state
    records = self.run_dir.records()
    counts = [0] * len(self.populations)
    for iteration, batch in enumerate(state.add_batches):
      members = []
      for p, count in enumerate(batch):
        members.append([self._load_member(p, counts[p] + k) for k in range(count)])
        counts[p] += count
      self._add(members)
      if iteration < state.iterations_done:
        self.meta_strategies = self._solve()
    self.records = records
    self._wall_before = state.wall_time_s
    self.run_dir.rewrite_records(records)  # drops lines of an unfinished commit

  def _load_member(self, player: int, index: int) -> oracle_base.PopulationMember:
    shape = (self.tree.infostates[player].num_infostates, self.tree.num_actions)
    matrix, state_dict = self.run_dir.load_member(player, index, shape)
    module = None
    if state_dict is not None and self.oracle.restores_modules:
      module = self.oracle.restore_module(self.tree, player, state_dict)
    return oracle_base.PopulationMember(matrix=matrix, module=module)
