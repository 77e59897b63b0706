"""The PSRO loop (Lanctot et al. 2017), exact where the game allows.

Each iteration t:

  1. the payoff table `M_t` of the current populations (exact sequence-form
     payoffs; only the new rows and columns are computed; or sampled with
     `sims_per_entry`, like stock OpenSpiel);
  2. the meta-strategy `sigma_t = meta_solver(M_t)`;
  3. the exact NashConv of `sigma_t` as a policy of the real game (a mixture's
     realization plan is the sigma-weighted sum of its members' plans);
  4. for each player a best response against `sigma_t` from the oracle
     (`rectified_nash`: one per support member, against the opponents that
     member beats or ties), appended to the populations.

Iteration t's record describes `sigma_t` over the populations of step 1, so
`population_size` and `meta_strategy` always match. With an exact oracle and
the Nash meta-solver this is the double-oracle algorithm and NashConv goes to 0.

Everything a run produces can be written to a run directory (`checkpoints`);
`PSRO(config, output_dir, resume=True)` continues a killed run and ends with
the same numbers as an uninterrupted one, because every random choice is
seeded from (seed, iteration, player) and resuming replays the payoff table
and meta-solver over the saved population.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any, Callable

import numpy as np
import threadpoolctl

from openspiel_psro_ext import backends
from openspiel_psro_ext import checkpoints
from openspiel_psro_ext import exploitability
from openspiel_psro_ext import game_tree as game_tree_lib
from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext import payoffs
from openspiel_psro_ext import policies as policies_lib
from openspiel_psro_ext.oracles import base as oracle_base

# The command line's budget ramp for RL oracles (from their `psro_defaults`
# time_budget_s): short best responses early, when the meta-strategy is easy
# to exploit, longer ones near equilibrium (benchmarks/psro_rl.py).
RL_BUDGET_FINAL_S = 4.0
RL_BUDGET_RAMP_ITERATIONS = 200

_PAYOFF_SEED_TAG = 7
_ORACLE_SEED_TAG = 11


@dataclasses.dataclass
class PSROConfig:
  """Everything that determines a PSRO run's results.

  Attributes:
    game: an OpenSpiel game string.
    iterations: PSRO iterations (records) to run.
    meta_solver: a name from `meta_solvers.names()`.
    meta_solver_kwargs: keyword arguments for the meta-solver.
    oracle: a name from `oracles.names()`.
    oracle_config: overrides of the oracle's `Config` fields.
    seed: seeds every random choice of the run.
    symmetric: keep one population shared by both players (2-player games
      whose players have matching information-state tables, e.g. symmetric
      matrix games).
    sims_per_entry: 0 for exact payoff tables, else episodes sampled per
      entry (for a like-for-like comparison with stock psro_v2).
    time_budget_s: stop after the iteration that passes this many seconds
      (0: no budget).
    target_nash_conv: stop once NashConv is at or below this (0: never).
    oracle_budget_final_s: RL oracles: ramp the wall-time budget of each best
      response linearly from the oracle's `time_budget_s` (`oracle_config`,
      else its `psro_defaults`) at iteration 0
      to this at `oracle_budget_ramp_iterations` and after (0: constant).
      Late meta-strategies are near equilibrium: the gains left to find are
      small and take longer training to find.
    oracle_budget_ramp_iterations: iterations over which the budget ramps.
    best_responses_per_player: per population, how many best responses (with
      different seeds) it gets each iteration; empty: one each. RL best
      responses are noisy, and one player's are often the weaker side: more
      of them give the meta-solver better ones to choose from.
    max_histories: the compiled tree's size limit.
  """

  game: str = "leduc_poker"
  iterations: int = 100
  meta_solver: str = "nash"
  meta_solver_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  oracle: str = "exact"
  oracle_config: dict[str, Any] = dataclasses.field(default_factory=dict)
  seed: int = 0
  symmetric: bool = False
  sims_per_entry: int = 0
  time_budget_s: float = 0.0
  target_nash_conv: float = 0.0
  oracle_budget_final_s: float = 0.0
  oracle_budget_ramp_iterations: int = 100
  best_responses_per_player: tuple[int, ...] = ()
  max_histories: int = game_tree_lib.DEFAULT_MAX_HISTORIES

  @classmethod
  def from_dict(cls, data: dict[str, Any]) -> "PSROConfig":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
      raise ValueError(f"unknown PSRO config fields {unknown}; known: {sorted(known)}")
    return cls(**data)


def _seed(*parts: int) -> int:
  return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def make_oracle(name: str, overrides: dict[str, Any]) -> oracle_base.Oracle:
  """An oracle by name with its PSRO preset, then `overrides` (`Oracle.for_psro`)."""
  return oracles_lib.get(name).for_psro(overrides)


class PSRO:
  """A PSRO run over a compiled game (see module doc).

  Attributes:
    config: the run's `PSROConfig`.
    tree: the compiled game.
    populations: per player, the list of `PopulationMember`s (shared by both
      players when symmetric).
    records: the metrics of every finished iteration.
    backend: where the best responses run (`backends`; results do not depend
      on it, so it is not part of the config).
  """

  def __init__(self, config: PSROConfig, output_dir: str | None = None,
               resume: bool = False,
               extra_metrics: Callable[["PSRO", list[np.ndarray]], dict[str, Any]] | None = None,
               backend: backends.Backend | None = None):
    self.config = config
    self.backend = backend if backend is not None else backends.EmbeddedBackend()
    self.output_dir = output_dir
    self.extra_metrics = extra_metrics
    self.tree = game_tree_lib.get_tree(config.game, config.max_histories)
    self.num_players = self.tree.num_players
    self.oracle = make_oracle(config.oracle, config.oracle_config)
    self._check_config()
    self.solver = meta_solvers.get(config.meta_solver)
    self._solver_kwargs = dict(config.meta_solver_kwargs)
    if config.meta_solver in ("nash", "rectified_nash") and self.num_players == 2:
      # One warm-started LP per run: successive tables share most of a support.
      self._solver_kwargs.setdefault("incremental", meta_solvers.IncrementalZeroSumNash())
    self.populations: list[list[oracle_base.PopulationMember]] = [
        [] for _ in range(self._num_populations)]
    self._matrices = [payoffs.GrowingArray(
        (self.tree.infostates[p].num_infostates, self.tree.num_actions))
        for p in range(self._num_populations)]
    self.table = (payoffs.PayoffTable(self.tree) if config.sims_per_entry <= 0 else
                  payoffs.SampledPayoffTable(self.tree, config.sims_per_entry))
    self.records: list[dict[str, Any]] = []
    self.meta_strategies: list[np.ndarray] = []
    self.stop_requested = False
    self._add_batches: list[list[int]] = []
    self._elapsed_before = 0.0
    if output_dir is not None:
      self._prepare_output_dir(resume)
    if not self.populations[0]:
      uniform = self.tree.uniform_policy()
      self._expand([[oracle_base.PopulationMember(matrix=uniform[p])]
                    for p in range(self._num_populations)])

  # -- set-up --------------------------------------------------------------

  @property
  def _num_populations(self) -> int:
    return 1 if self.config.symmetric else self.num_players

  def _check_config(self) -> None:
    config = self.config
    if config.iterations < 1:
      raise ValueError(f"iterations must be at least 1, got {config.iterations}.")
    if config.oracle_budget_final_s > 0:
      if not oracles_lib.trains(config.oracle):
        raise ValueError(f"oracle_budget_final_s ramps an RL oracle's time_budget_s;"
                         f" oracle {config.oracle!r} has none. Set it to 0.")
      if config.oracle_budget_ramp_iterations < 1:
        raise ValueError("oracle_budget_ramp_iterations must be at least 1, got"
                         f" {config.oracle_budget_ramp_iterations}.")
    counts = tuple(config.best_responses_per_player)
    if counts and (len(counts) != self._num_populations or min(counts) < 1):
      raise ValueError(
          f"best_responses_per_player={list(counts)} needs one count of at least 1"
          f" per population ({self._num_populations}).")
    if config.meta_solver not in meta_solvers.names():
      raise ValueError(f"unknown meta-solver {config.meta_solver!r}; choose one"
                       f" of {meta_solvers.names()}.")
    if config.meta_solver in ("nash", "rectified_nash") and self.num_players != 2:
      raise ValueError(
          f"meta-solver {config.meta_solver!r} needs a 2-player game;"
          f" {self.tree.game} has {self.num_players}. Use 'prd' or 'alpharank'.")
    if config.symmetric:
      # Member k plays row i of its matrix at information state i of either
      # seat; `_check_symmetric` verifies that this makes the game symmetric.
      tables = self.tree.infostates
      if self.num_players != 2 or tables[0].legal_mask.shape != tables[1].legal_mask.shape \
          or not np.array_equal(tables[0].legal_mask, tables[1].legal_mask):
        raise ValueError(
            f"symmetric=True needs a 2-player game whose players have matching"
            f" information-state tables; {self.tree.game} does not. Drop"
            " --symmetric.")

  def _prepare_output_dir(self, resume: bool) -> None:
    out = self.output_dir
    state_path = os.path.join(out, checkpoints.STATE_FILE)
    has_files = os.path.isdir(out) and any(not n.startswith(".") for n in os.listdir(out))
    if resume and os.path.exists(state_path):
      self._restore(checkpoints.read_json(state_path))
      return
    started_here = os.path.exists(os.path.join(out, checkpoints.CONFIG_FILE))
    if has_files and not (resume and started_here):
      raise checkpoints.CheckpointError(
          f"{out} has no {checkpoints.CONFIG_FILE}; it is not a run directory"
          " this package wrote." if resume else
          f"output directory {out} is not empty; pass --resume to continue"
          " that run, or choose another --output_dir.")
    # A fresh run (also --resume of a run that never finished an iteration).
    os.makedirs(os.path.join(out, checkpoints.POPULATION_DIR), exist_ok=True)
    checkpoints.write_json(os.path.join(out, checkpoints.CONFIG_FILE),
                           dataclasses.asdict(self.config))

  def _restore(self, state: dict[str, Any]) -> None:
    """Rebuilds populations, table, solver state and records from disk."""
    saved = checkpoints.read_json(os.path.join(self.output_dir, checkpoints.CONFIG_FILE))
    # As saved: JSON turns tuples into lists. A field the saved run predates
    # had its default value.
    current = json.loads(json.dumps(dataclasses.asdict(self.config)))
    saved = {**json.loads(json.dumps(dataclasses.asdict(PSROConfig()))), **saved}
    for key in ("game", "meta_solver", "oracle", "seed", "symmetric", "sims_per_entry",
                "meta_solver_kwargs", "oracle_config", "oracle_budget_final_s",
                "oracle_budget_ramp_iterations", "best_responses_per_player"):
      if saved.get(key) != current.get(key):
        raise checkpoints.CheckpointError(
            f"--resume with {key}={current.get(key)!r}, but the"
            f" run in {self.output_dir} used {saved.get(key)!r}; resume with the same"
            " settings.")
    done = int(state["iterations_done"])
    records = checkpoints.read_metrics(self.output_dir)
    if len(records) < done:
      raise checkpoints.CheckpointError(
          f"{checkpoints.METRICS_FILE} has {len(records)} records but"
          f" {checkpoints.STATE_FILE} says {done} iterations finished.")
    batches = state["add_batches"]
    counts = np.zeros(self._num_populations, dtype=np.int64)
    for iteration, batch in enumerate(batches):
      members = []
      for p, count in enumerate(batch):
        members.append([self._load_member(p, int(counts[p] + k)) for k in range(count)])
        counts[p] += count
      self._expand(members, write=False)
      if iteration < done:
        self.meta_strategies = self._solve()
    self.records = records[:done]
    self._elapsed_before = float(state["wall_time_s"])
    checkpoints.write_text(os.path.join(self.output_dir, checkpoints.METRICS_FILE),
                           "".join(checkpoints.to_json_line(r) + "\n" for r in self.records))
    logging.info("Resumed %s after iteration %d.", self.output_dir, done - 1)

  def _load_member(self, player: int, index: int) -> oracle_base.PopulationMember:
    table = self.tree.infostates[player]
    matrix = checkpoints.load_matrix(
        checkpoints.member_path(self.output_dir, player, index, ".npy"),
        (table.num_infostates, self.tree.num_actions))
    module_path = checkpoints.member_path(self.output_dir, player, index, ".pt")
    module = None
    if os.path.exists(module_path) and self.oracle.restores_modules:
      module = self.oracle.restore_module(self.tree, player,
                                          checkpoints.load_torch(module_path))
    return oracle_base.PopulationMember(matrix=matrix, module=module)

  # -- the loop ------------------------------------------------------------

  @property
  def iteration(self) -> int:
    """Index of the next iteration to run."""
    return len(self.records)

  def population_matrices(self) -> list[np.ndarray]:
    """Per player, `[N_p, I_p, A]` behaviour matrices of the population."""
    stacked = [rows.array for rows in self._matrices]
    return stacked * self.num_players if self.config.symmetric else stacked

  def _solve(self) -> list[np.ndarray]:
    meta_games = self.table.meta_games
    if self.config.symmetric:
      profile = self.solver([meta_games[0]], **self._solver_kwargs)
      return [np.asarray(profile[0])] * self.num_players
    return [np.asarray(s, dtype=np.float64)
            for s in self.solver(meta_games, **self._solver_kwargs)]

  def _expand(self, new_members: list[list[oracle_base.PopulationMember]],
              write: bool = True) -> None:
    """Appends members (per population) and the payoff table's new entries."""
    start = [len(pop) for pop in self.populations]
    for pop, members in zip(self.populations, new_members):
      pop.extend(members)
    stacked = [np.stack([m.matrix for m in members]) if members else None
               for members in new_members]
    for rows, new in zip(self._matrices, stacked):
      if new is not None:
        rows.append(new)
    if self.config.symmetric:
      stacked = stacked * self.num_players
    self.table.add(stacked, seed=_seed(self.config.seed, _PAYOFF_SEED_TAG,
                                       len(self._add_batches)))
    self._add_batches.append([len(m) for m in new_members])
    if self.config.symmetric:
      self._check_symmetric()
    if write and self.output_dir is not None:
      for p, members in enumerate(new_members):
        for k, member in enumerate(members):
          index = start[p] + k
          checkpoints.write_npy(checkpoints.member_path(self.output_dir, p, index, ".npy"),
                                member.matrix)
          if member.module is not None and hasattr(member.module, "state_dict"):
            checkpoints.write_torch(
                checkpoints.member_path(self.output_dir, p, index, ".pt"),
                member.module.state_dict())

  def _check_symmetric(self) -> None:
    """A shared population needs M_1 = M_0^T (roles swap with the seats)."""
    m0, m1 = self.table.meta_games
    if not np.allclose(m1, m0.T, atol=1e-9 if self.config.sims_per_entry <= 0 else 0.1):
      raise ValueError(
          f"{self.tree.game} is not symmetric under a shared population: the"
          " payoff table is not M_1 = M_0^T when both seats play the same"
          " policy. Drop --symmetric.")

  def _best_responses(self, sigma: list[np.ndarray]
                      ) -> list[list[oracle_base.PopulationMember]]:
    """Per population, this iteration's new members (one backend batch)."""
    matrices = self.population_matrices()
    targets = None
    if self.config.meta_solver == "rectified_nash":
      meta_games = self.table.meta_games
      tables = [meta_games[0]] if self.config.symmetric else meta_games
      targets = meta_solvers.rectified_targets(tables, profile=sigma[:2])
    requests, owners = [], []
    for p in range(self._num_populations):
      previous = self.populations[p][-1] if len(self.populations[p]) > 1 else None
      jobs = ([t.opponent_mixture for t in targets[p]]
              if targets is not None else [None])
      copies = (self.config.best_responses_per_player[p]
                if self.config.best_responses_per_player else 1)
      for j, opponent_mix in enumerate(jobs * copies):
        weights = [None if q == p else (sigma[q] if opponent_mix is None else opponent_mix)
                   for q in range(self.num_players)]
        requests.append(oracle_base.BestResponseRequest(
            tree=self.tree, player=p,
            opponent_populations=[None if q == p else matrices[q]
                                  for q in range(self.num_players)],
            opponent_weights=weights, previous=previous,
            seed=_seed(self.config.seed, _ORACLE_SEED_TAG, self.iteration, p, j)))
        owners.append(p)
    new: list[list[oracle_base.PopulationMember]] = [[] for _ in range(self._num_populations)]
    for p, member in zip(owners, self.backend.best_responses(self._iteration_oracle(),
                                                             requests)):
      new[p].append(member)
    return new

  def oracle_time_budget(self, iteration: int) -> float:
    """The RL oracle's `time_budget_s` at `iteration` (see the config)."""
    config = self.config
    start = self.oracle.config.time_budget_s
    if config.oracle_budget_final_s <= 0:
      return start
    fraction = min(iteration / config.oracle_budget_ramp_iterations, 1.0)
    return start + fraction * (config.oracle_budget_final_s - start)

  def _iteration_oracle(self) -> oracle_base.Oracle:
    if self.config.oracle_budget_final_s <= 0:
      return self.oracle
    return type(self.oracle)(dataclasses.replace(
        self.oracle.config, time_budget_s=self.oracle_time_budget(self.iteration)))

  def step(self) -> dict[str, Any]:
    """Runs one iteration; returns (and writes) its record."""
    # The loop's linear algebra is matrix-vector sized: BLAS threads only add
    # synchronisation (10-100x slower on a busy 2-core machine).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
      return self._step()

  def _step(self) -> dict[str, Any]:
    start = time.perf_counter()
    sigma = self._solve()
    self.meta_strategies = sigma
    matrices = self.population_matrices()
    reaches = [self.table.terminal_reach(q) for q in range(self.num_players)]
    mixture_reach = [s[s > 0] @ r[s > 0] for s, r in zip(sigma, reaches)]
    result = exploitability.nash_conv_from_reach(self.tree, mixture_reach)
    new_members = self._best_responses(sigma)
    record = {
        "iteration": self.iteration,
        "population_size": [len(m) for m in matrices],
        "nash_conv": result.nash_conv,
        "exploitability_per_player": result.player_improvements.tolist(),
        "on_policy_values": result.on_policy_values.tolist(),
        "meta_strategy": [s.tolist() for s in sigma],
        "support_size": [int((s > 0).sum()) for s in sigma],
        "oracle": {k: v for m in new_members for member in m
                   for k, v in member.stats.items() if np.isscalar(v)},
    }
    metrics_time = 0.0
    if self.extra_metrics is not None:
      # Evaluation, not PSRO: kept out of wall_time_s (as stock's measurement is).
      metrics_start = time.perf_counter()
      record.update(self.extra_metrics(self, matrices))
      metrics_time = time.perf_counter() - metrics_start
      record["metrics_time_s"] = metrics_time
    self._expand(new_members)
    elapsed = time.perf_counter() - start - metrics_time
    previous_total = self.records[-1]["wall_time_s"] if self.records else self._elapsed_before
    record["iteration_time_s"] = elapsed
    record["wall_time_s"] = previous_total + elapsed
    self.records.append(record)
    self._commit()
    return record

  def _commit(self) -> None:
    if self.output_dir is None:
      return
    out = self.output_dir
    checkpoints.write_npy(os.path.join(out, checkpoints.PAYOFFS_FILE),
                          np.stack(self.table.meta_games))
    checkpoints.write_text(os.path.join(out, checkpoints.METRICS_FILE),
                           "".join(checkpoints.to_json_line(r) + "\n" for r in self.records))
    checkpoints.write_json(os.path.join(out, checkpoints.STATE_FILE), {
        "iterations_done": len(self.records),
        "add_batches": self._add_batches,
        "wall_time_s": self.records[-1]["wall_time_s"],
    })

  def should_stop(self) -> str | None:
    """Why the run should stop now, or None."""
    config = self.config
    if self.stop_requested:
      return "interrupted"
    if self.iteration >= config.iterations:
      return "iterations"
    if self.records and config.target_nash_conv > 0 and \
        self.records[-1]["nash_conv"] <= config.target_nash_conv:
      return "target_nash_conv"
    if self.records and config.time_budget_s > 0 and \
        self.records[-1]["wall_time_s"] >= config.time_budget_s:
      return "time_budget"
    return None

  def run(self, on_iteration: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Iterates until a stop condition; returns the reason."""
    while (reason := self.should_stop()) is None:
      record = self.step()
      if on_iteration is not None:
        on_iteration(record)
    return reason

  # -- checks --------------------------------------------------------------

  def support_policies(self, sigma: list[np.ndarray] | None = None
                       ) -> tuple[list[list[Any]], list[np.ndarray]]:
    """OpenSpiel `TabularPolicy`s and weights of a meta-strategy's support.

    `sigma` defaults to the last meta-strategy; an earlier one (from a
    record) covers the first `len(sigma[p])` members of each population.
    """
    matrices = self.population_matrices()
    pops, weights = [], []
    for p, sigma_p in enumerate(self.meta_strategies if sigma is None else sigma):
      sigma_p = np.asarray(sigma_p, dtype=np.float64)
      support = np.flatnonzero(sigma_p > 0)
      members = []
      for k in support:
        per_player = [None] * self.num_players
        per_player[p] = matrices[p][k]
        members.append(policies_lib.to_tabular_policy(self.tree, per_player))
      pops.append(members)
      weights.append(sigma_p[support] / sigma_p[support].sum())
    return pops, weights

  def openspiel_nash_conv(self, sigma: list[np.ndarray] | None = None) -> float:
    """NashConv of a meta-strategy by OpenSpiel's own code.

    `PolicyAggregator` + `exploitability.nash_conv` on TabularPolicies of the
    support of `sigma` (default: the last meta-strategy).
    """
    from open_spiel.python.algorithms import exploitability as os_exploitability  # pylint: disable=g-import-not-at-top
    from open_spiel.python.algorithms import policy_aggregator  # pylint: disable=g-import-not-at-top
    pops, weights = self.support_policies(sigma)
    aggregated = policy_aggregator.PolicyAggregator(self.tree.game).aggregate(
        list(range(self.num_players)), pops, weights)
    return float(os_exploitability.nash_conv(self.tree.game, aggregated))

  def verify(self, tolerance: float = 1e-6) -> float:
    """Recomputes the last NashConv with OpenSpiel's own code.

    Returns OpenSpiel's figure (`openspiel_nash_conv`).

    Raises:
      VerificationError: the two differ by more than `tolerance`.
    """
    theirs = self.openspiel_nash_conv()
    ours = self.records[-1]["nash_conv"]
    if abs(theirs - ours) > tolerance:
      raise VerificationError(
          f"iteration {self.records[-1]['iteration']}: our NashConv {ours:.10f}"
          f" differs from OpenSpiel's {theirs:.10f} by more than {tolerance}.")
    return theirs


class VerificationError(RuntimeError):
  """Our exact NashConv disagrees with OpenSpiel's."""
