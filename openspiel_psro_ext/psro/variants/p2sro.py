"""Pipeline PSRO (P2SRO; McAleer et al. 2020) on PSRO's loop.

PSRO trains one best response at a time: iteration t+1's best response
cannot start before iteration t's is finished, so more workers do not make
it faster. P2SRO keeps, per player, the population in two parts,

    fixed:  pi_0, ..., pi_{n-1}        (they never change again)
    active: a_0, ..., a_{K-1}          (K of them train at once)

and trains every active policy at the same time, each against the restricted
game's Nash equilibrium over all policies *below* it:

    a_i  trains against  sigma_i = meta_Nash(fixed + a_0 .. a_{i-1}).

So a_0 is PSRO's best response (to the fixed population's meta-Nash) and
a_i pre-trains against what the population will be once the policies below
it are done. When the lowest active policy stops improving it becomes fixed
(joins the population: the payoff table grows by one row and column), a_1
becomes the lowest, and a new active policy starts at the top. With K = 1
this is PSRO whose best responses train in chunks.

One step of this loop (one `IterationRecord`):

  1. `sigma` = meta-Nash of the fixed population; the record's NashConv is
     its exact NashConv (as PSRO's), so the records are comparable to PSRO's;
  2. per level i and player p, the target `sigma_i` above (over the fixed
     members and the trained active ones below; an active policy that has
     not trained yet is left out) and the active policy's exact
     best-response gain against it,

         gain_i,p = max_beta u_p(beta, sigma_i) - u_p(a_i,p, sigma_i)  >= 0.

     Every level's restricted game is a leading block of one payoff table
     per step (the fixed members' cached terminal reaches and the trained
     levels'). A level's LP and gains need only that table and its own
     policies: in P2SRO's distributed form each worker solves its own
     level's restricted game. Here the driver runs them one level after
     another (on Ray too) and times each level's (`p2sro/level_seconds`);

  3. every active policy trains one chunk (the oracle's own budget: an
     episode budget `total_episodes` makes the run deterministic) that
     continues its own previous chunk (`request.previous` with
     `continues_previous`: the whole module). A new policy's first chunk
     gets the policy just below it (the highest trained level's, else the
     newest fixed member) as `previous`, for the oracle's PSRO warm starts
     (PPO's critic): as PSRO's next best response gets the last one. A
     policy's chunks are slices of one training run: chunk c of
     `max_chunks` covers `schedule_span = (c/m, (c+1)/m)` of the oracle's
     annealing (PPO's learning rate and entropy), so the policy anneals once
     over its chunks (a policy that waits at a higher level past m chunks
     trains on at the schedules' end). Restarting the schedules every chunk
     left PPO's gain stuck at 0.24 on Leduc against a fixed mixture after 36
     chunks, where one run of the same episodes reached 0.057 and the
     slices 0.062. All 2K chunks go to the backend as one batch (on Ray,
     one task each);
  4. the lowest level's gains are computed again against the same targets.
     It becomes fixed when the chunk improved neither player's gain by more
     than `plateau_improvement` (after `min_chunks` chunks), when both gains
     are at most `plateau_gain` (an exact oracle's are 0), or after
     `max_chunks` chunks (counted over all the levels a policy trained at:
     one that trained long enough higher up is fixed after its first chunk
     as the lowest). Both players' lowest policies become fixed
     together, as PSRO adds one best response per player and iteration.

The keys `p2sro/gain` and `p2sro/improvement` (per level, per player; None
where not defined), `p2sro/chunks` (per level), `p2sro/fixed` (whether the
lowest level became fixed), `p2sro/chunk_seconds` and `p2sro/chunk_episodes`
(per level, per player, what each chunk cost: the whole oracle call,
`stats["call_seconds"]`) and `p2sro/level_seconds` (per level, its target's
LP and its gains) join each record's metrics: `benchmarks/p2sro.py` runs a
virtual clock per worker on them.

Resume: the fixed population is the run's population (checkpointed as
PSRO's). The active policies change every step, so each step, before its
commit, writes them (matrix, module, chunk count) to
`p2sro_active/step<NNNNN>/` of the run directory, named by the number of
records the commit completes; resume loads the directory of the last
committed step and `meta_solve` replays over the fixed population as PSRO's.
Every chunk's seed is (seed, step, player, level), so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Any

import numpy as np

from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext import psro
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro.variants import xdo
from openspiel_psro_ext.runs import checkpoints

ACTIVE_DIR = "p2sro_active"
_ACTIVE_STATE = "active.json"


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """The pipeline's settings.

  Attributes:
    num_active: K, active policies per player (the workers: each level's two
      chunks are one worker's share of a step).
    plateau_improvement: the lowest level becomes fixed when a chunk lowers
      neither player's best-response gain by more than this (utility units).
    plateau_gain: ... or when both gains are at most this.
    min_chunks: chunks a policy trains at least before the improvement test.
    max_chunks: chunks after which the lowest level becomes fixed anyway.
  """

  num_active: int = 2
  plateau_improvement: float = 0.01
  plateau_gain: float = 1e-9
  min_chunks: int = 2
  max_chunks: int = 8

  def check(self) -> None:
    if self.num_active < 1:
      raise UsageError(f"P2SRO needs at least one active policy; got num_active={self.num_active}.")
    if not 1 <= self.min_chunks <= self.max_chunks:
      raise UsageError(
        f"P2SRO needs 1 <= min_chunks <= max_chunks; got {self.min_chunks} and {self.max_chunks}."
      )


@dataclasses.dataclass
class _Active:
  """One level of active policies: per player its member (None: untrained)."""

  members: list[oracle_base.PopulationMember | None]
  chunks: int = 0


class P2SRO(psro.PSRO):
  """Pipeline PSRO (module doc).

  Args:
    *args, **kwargs: as `psro.PSRO`.
    options: the pipeline's settings (default `PipelineOptions()`); a resumed
      run must use the saved ones (`RunDirectory.check_algorithm_options`).

  Attributes:
    active: the K levels, lowest first.
  """

  Options = PipelineOptions  # --algorithm_options (algorithms.options)

  def __init__(self, *args: Any, options: PipelineOptions | None = None, **kwargs: Any):
    self.options = options if options is not None else PipelineOptions()
    self.options.check()
    self.active: list[_Active] = []
    self._stats: dict[str, Any] = {}
    # Per level and player: the target mixture's `[Z]` terminal reach.
    self._targets: list[list[np.ndarray]] = []
    # Per level: this step's seconds of its target and gains (module doc).
    self._level_seconds: list[float] = []
    super().__init__(*args, **kwargs)
    self.active = [self._fresh() for _ in range(self.options.num_active)]
    if self.records:
      self._load_active()
    oracle_cls = oracles_lib.get(self.config.oracle)
    if "warm_start_actor" in oracle_cls.settings():
      # A critics' result carries its actor only with this: a chunk continues it.
      self.oracle = oracle_cls.for_psro({**self.config.oracle_config, "warm_start_actor": True})
    self.evaluations.append(psro.Evaluation(lambda snapshot: dict(self._stats), every=1))

  @classmethod
  def check_variant(cls, config, view):
    xdo.check_two_player_zero_sum("P2SRO", config, view)

  def _fresh(self) -> _Active:
    return _Active([None] * self.num_players)

  # -- targets and gains ---------------------------------------------------

  def _pipeline_table(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per player: the matrices `[N_p + T, I_p, A]`, terminal reaches
    `[N_p + T, Z]` and payoff table `[N_0 + T, N_1 + T]` of the fixed
    members followed by the T trained active levels (always the lowest ones:
    only a new top level is untrained). Each level's restricted game is a
    leading block of it; the fixed members' reaches come from the run's table."""
    tree, fixed = self.tree, self.population_matrices()
    trained = [a for a in self.active if a.chunks > 0]
    matrices, reaches = [], []
    for p in range(self.num_players):
      own = [a.members[p].matrix for a in trained]
      matrices.append(np.concatenate([fixed[p], np.stack(own)]) if own else fixed[p])
      reaches.append(
        np.concatenate([self.table.terminal_reach(p), tree.terminal_reach(p, np.stack(own))])
        if own
        else self.table.terminal_reach(p)
      )
    weighted = tree.terminal_chance_reach * reaches[1]
    tables = [
      reaches[0] @ (weighted * tree.terminal_returns[:, p]).T for p in range(self.num_players)
    ]
    return matrices, reaches, tables

  def _gain(
    self, player: int, member: oracle_base.PopulationMember | None, opponent_reach: np.ndarray
  ) -> float | None:
    """`member`'s exact best-response gain against the opponent's mixture,
    whose own `[Z]` terminal reach (without chance) is `opponent_reach`."""
    if member is None:
      return None
    tree = self.tree
    payoff = tree.terminal_chance_reach * opponent_reach * tree.terminal_returns[:, player]
    best, _ = exploitability.best_response_from_weights(tree, player, payoff)
    return float(best - tree.terminal_reach(player, member.matrix) @ payoff)

  # -- the steps P2SRO replaces --------------------------------------------

  def best_response_requests(self, sigma):
    """One chunk per active policy: level-major, players within a level."""
    matrices, reaches, tables = self._pipeline_table()
    # The warm-started solver state belongs to the fixed population's table.
    kwargs = {k: v for k, v in self._solver_kwargs.items() if k != "incremental"}
    self._targets, self._level_seconds = [], []
    requests = []
    below = 0  # trained levels below this one
    max_chunks = self.options.max_chunks
    for active in self.active:
      start = time.perf_counter()
      sizes = [len(s) + below for s in sigma]
      target = (
        sigma
        if not below
        else [
          np.asarray(s, dtype=np.float64)
          for s in self.meta_solver.solve([t[: sizes[0], : sizes[1]] for t in tables], **kwargs)
        ]
      )
      # Per player, the mixture's terminal reach (what gains are measured against).
      self._targets.append([target[p] @ reaches[p][: sizes[p]] for p in range(self.num_players)])
      self._level_seconds.append(time.perf_counter() - start)
      level = len(self._targets) - 1
      for p in range(self.num_players):
        requests.append(
          (
            p,
            oracle_base.BestResponseRequest(
              tree=self.view.request_tree,
              player=p,
              game=self.view.game,
              opponent_populations=[
                None if q == p else matrices[q][: sizes[q]] for q in range(self.num_players)
              ],
              opponent_weights=[None if q == p else target[q] for q in range(self.num_players)],
              previous=(active.members[p] if active.chunks else self._below(level, p)),
              continues_previous=active.chunks > 0,
              schedule_span=(
                min(active.chunks / max_chunks, 1.0),
                min((active.chunks + 1) / max_chunks, 1.0),
              ),
              seed=self.request_seed(p, level),
              time_budget_s=self.oracle_time_budget(self.iteration),
            ),
          )
        )
      below += active.chunks > 0
    return requests

  def _below(self, level: int, player: int) -> oracle_base.PopulationMember | None:
    """The policy just below `level` (module doc, step 3), or None."""
    for active in reversed(self.active[:level]):
      if active.chunks:
        return active.members[player]
    return self.previous_member(player)

  def _best_responses(self, requests):
    """Trains the chunks (one backend batch), moves the pipeline on, and
    returns per player the newly fixed member (if any) for the population."""
    gains_before = self._gains()
    trained = self.backend.best_responses(self.oracle, [r for _, r in requests])
    seconds, episodes = [], []
    for level, active in enumerate(self.active):
      chunk = trained[level * self.num_players : (level + 1) * self.num_players]
      active.members = list(chunk)
      active.chunks += 1
      seconds.append([m.stats.get("call_seconds") for m in chunk])
      episodes.append([m.stats.get("episodes") for m in chunk])
    gains = self._gains()
    improvements = [
      [None if b is None else b - a for b, a in zip(before, after)]
      for before, after in zip(gains_before, gains)
    ]
    lowest, opts = self.active[0], self.options
    plateau = lowest.chunks >= opts.min_chunks and all(
      i is not None and i <= opts.plateau_improvement for i in improvements[0]
    )
    fixed = (
      plateau or all(g <= opts.plateau_gain for g in gains[0]) or lowest.chunks >= opts.max_chunks
    )
    self._stats = {
      "p2sro/gain": gains,
      "p2sro/improvement": improvements,
      "p2sro/chunks": [a.chunks for a in self.active],
      "p2sro/fixed": fixed,
      "p2sro/chunk_seconds": seconds,
      "p2sro/chunk_episodes": episodes,
      "p2sro/level_seconds": list(self._level_seconds),
    }
    new_members: list[list[oracle_base.PopulationMember]] = [[] for _ in range(self.num_players)]
    if fixed:
      for p, member in enumerate(lowest.members):
        new_members[p].append(member)
      self.active = self.active[1:] + [self._fresh()]
    self._write_active()
    return new_members

  def _gains(self) -> list[list[float | None]]:
    """Per level, per player: the active policy's gain against its target
    (each level's seconds added to its `_level_seconds`)."""
    gains = []
    for level, (active, mixtures) in enumerate(zip(self.active, self._targets)):
      start = time.perf_counter()
      gains.append(
        [self._gain(p, active.members[p], mixtures[1 - p]) for p in range(self.num_players)]
      )
      self._level_seconds[level] += time.perf_counter() - start
    return gains

  # -- the active policies in the run directory ----------------------------

  def _active_dir(self, records_done: int) -> str:
    return self.run_dir.file(os.path.join(ACTIVE_DIR, f"step{records_done:05d}"))

  def _write_active(self) -> None:
    """Writes the pipeline as the commit of this step will leave it."""
    if self.run_dir is None:
      return
    path = self._active_dir(self.iteration + 1)
    shutil.rmtree(path, ignore_errors=True)  # an uncommitted try of this step
    os.makedirs(path)
    for level, active in enumerate(self.active):
      for p, member in enumerate(active.members):
        if member is None:
          continue
        name = os.path.join(path, f"level{level}_player{p}")
        checkpoints.write_npy(name + ".npy", member.matrix, durable=False)
        if member.module is not None and hasattr(member.module, "state_dict"):
          checkpoints.write_torch(name + ".pt", member.module.state_dict(), durable=False)
    checkpoints.write_json(
      os.path.join(path, _ACTIVE_STATE), {"chunks": [a.chunks for a in self.active]}
    )
    if self.iteration >= 1:  # keep the committed step's directory and this one
      shutil.rmtree(self._active_dir(self.iteration - 1), ignore_errors=True)

  def _load_active(self) -> None:
    """The pipeline as the last committed step left it."""
    path = self._active_dir(len(self.records))
    state_file = os.path.join(path, _ACTIVE_STATE)
    if not os.path.exists(state_file):
      raise checkpoints.CheckpointError(
        f"{self.run_dir.path} has no P2SRO active policies"
        f" for step {len(self.records)} ({state_file})."
      )
    state = checkpoints.read_json(state_file)
    for level, chunks in enumerate(state["chunks"]):
      active = self.active[level]
      active.chunks = chunks
      if not chunks:
        continue
      for p in range(self.num_players):
        name = os.path.join(path, f"level{level}_player{p}")
        shape = (self.tree.infostates[p].num_infostates, self.tree.num_actions)
        matrix = checkpoints.load_matrix(name + ".npy", shape)
        module = None
        if os.path.exists(name + ".pt") and self.oracle.restores_modules:
          module = self.oracle.restore_module(self.tree, p, checkpoints.load_torch(name + ".pt"))
        active.members[p] = oracle_base.PopulationMember(matrix=matrix, module=module)
