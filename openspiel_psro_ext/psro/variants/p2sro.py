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
     another (on Ray too) and times each level's (`level_seconds`);

  3. every active policy trains one chunk (the oracle's own budget: an
     episode budget `total_episodes` makes the run deterministic) that
     continues its own previous chunk (`request.previous` with
     `continues_previous`: the whole module). A new policy's first chunk
     gets the policy just below it (the highest trained level's, else the
     newest fixed member) as `previous`, for the oracle's PSRO warm starts
     (PPO's critic): as PSRO's next best response gets the last one. A
     policy's chunks are slices of one training run (a `TrainingPlan`):
     chunk c of `max_chunks` continues chunk c-1 and covers
     `schedule_span = (c/m, (c+1)/m)` of the oracle's annealing (PPO's
     learning rate and entropy), so the policy anneals once over its chunks
     (a policy that waits at a higher level past m chunks trains on at the
     schedules' end); restarting the schedules every chunk keeps the
     learning rate and entropy high, and the gain stalls far above one
     run's. All 2K chunks go to the backend as one batch (on Ray, one task
     each);
  4. the lowest level's gains are computed again against the same targets.
     It becomes fixed when the chunk improved neither player's gain by more
     than `plateau_improvement` (after `min_chunks` chunks), when both gains
     are at most `plateau_gain` (an exact oracle's are 0), or after
     `max_chunks` chunks (counted over all the levels a policy trained at:
     one that trained long enough higher up is fixed after its first chunk
     as the lowest). Both players' lowest policies become fixed
     together, as PSRO adds one best response per player and iteration.

Each record's `variant` is a `PipelineState`: per level and player the
gains and their improvements, the chunks, whether the lowest level became
fixed, and what each chunk cost (the whole oracle call,
`stats["call_seconds"]`, and its episodes) and each level's LP and gains
took: `benchmarks/p2sro.py` runs a virtual clock per worker on them.

Resume: the fixed population is the run's population (checkpointed as
PSRO's). The active policies change every step, so each step, before its
commit, writes them (matrix, module, chunk count) to
`p2sro_active/step<NNNNN>/` of the run directory, named by the number of
records the commit completes; resume loads the directory of the last
committed step (`restore`) and `meta_solve` replays over the fixed
population as PSRO's.
Every chunk's seed is (seed, step, player, level), so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time

import numpy as np

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records import IterationRecord, schema
from openspiel_psro_ext.records.variants import PipelineState
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

  num_active: int = schema.setting(2, min=1, max=1024)
  plateau_improvement: float = schema.setting(0.01, min=0)
  plateau_gain: float = schema.setting(1e-9, min=0)
  min_chunks: int = schema.setting(2, min=1)
  max_chunks: int = schema.setting(8, min=1)

  def check(self) -> None:
    if self.min_chunks > self.max_chunks:
      raise UsageError(
        f"P2SRO needs min_chunks <= max_chunks; got {self.min_chunks} and {self.max_chunks}."
      )


@dataclasses.dataclass
class _Active:
  """One level of active policies: per player its member (None: untrained)."""

  members: list[oracle_base.PopulationMember | None]
  chunks: int = 0


class P2SRO(base.Variant):
  """Pipeline PSRO (module doc); `options` a `PipelineOptions` (a resumed
  run must use the saved ones, `RunDirectory.check_algorithm_options`).

  Attributes:
    active: the K levels, lowest first.
  """

  name = "p2sro"
  title = "P2SRO"
  Options = PipelineOptions
  options: PipelineOptions

  def __init__(self, options: PipelineOptions | None = None):
    super().__init__(options)
    self.active: list[_Active] = []
    self._state: PipelineState | None = None
    # Per level and player: the target mixture's `[Z]` terminal reach.
    self._targets: list[list[np.ndarray]] = []
    # Per level: this step's seconds of its target and gains (module doc).
    self._level_seconds: list[float] = []

  def check(self, config: PSROConfig, view: views.View) -> None:
    base.check_two_player_zero_sum(self.title, config, view)

  def oracle_overrides(self, oracle_cls: type[oracle_base.Oracle]) -> dict[str, bool]:
    # A critics' result carries its actor only with this: a chunk continues it.
    return {"warm_start_actor": True} if "warm_start_actor" in oracle_cls.settings() else {}

  def start(self, run: base.Run) -> None:
    super().start(run)
    self.active = [self._fresh() for _ in range(self.options.num_active)]

  def _fresh(self) -> _Active:
    return _Active([None] * self.run.num_players)

  def meta_solve(self) -> list[np.ndarray]:
    return base.restricted_nash(self.run)

  def state(self) -> PipelineState | None:
    return self._state

  # -- targets and gains ---------------------------------------------------

  def _pipeline_table(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per player: the matrices `[N_p + T, I_p, A]`, terminal reaches
    `[N_p + T, Z]` and payoff table `[N_0 + T, N_1 + T]` of the fixed
    members followed by the T trained active levels (always the lowest ones:
    only a new top level is untrained). Each level's restricted game is a
    leading block of it; the fixed members' reaches come from the run's table."""
    tree, fixed, table = self.tree, self.run.population_matrices(), self.run.table
    trained = [a for a in self.active if a.chunks > 0]
    matrices, reaches = [], []
    for p in range(self.run.num_players):
      own = [base.matrix(_trained(a.members[p])) for a in trained]
      matrices.append(np.concatenate([fixed[p], np.stack(own)]) if own else fixed[p])
      reaches.append(
        np.concatenate([table.terminal_reach(p), tree.terminal_reach(p, np.stack(own))])
        if own
        else table.terminal_reach(p)
      )
    weighted = tree.terminal_chance_reach * reaches[1]
    tables = [
      reaches[0] @ (weighted * tree.terminal_returns[:, p]).T for p in range(self.run.num_players)
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
    return float(best - tree.terminal_reach(player, base.matrix(member)) @ payoff)

  # -- the steps P2SRO replaces --------------------------------------------

  def requests(self, sigma):
    """One chunk per active policy: level-major, players within a level."""
    run = self.run
    matrices, reaches, tables = self._pipeline_table()
    # The warm-started solver state belongs to the fixed population's table.
    kwargs = {k: v for k, v in run.solver_kwargs.items() if k != "incremental"}
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
          for s in run.meta_solver.solve([t[: sizes[0], : sizes[1]] for t in tables], **kwargs)
        ]
      )
      # Per player, the mixture's terminal reach (what gains are measured against).
      self._targets.append([target[p] @ reaches[p][: sizes[p]] for p in range(run.num_players)])
      self._level_seconds.append(time.perf_counter() - start)
      level = len(self._targets) - 1
      plan = oracle_base.TrainingPlan(
        continues=active.chunks > 0,
        schedule_span=(
          min(active.chunks / max_chunks, 1.0),
          min((active.chunks + 1) / max_chunks, 1.0),
        ),
      )
      for p in range(run.num_players):
        opponents = oracle_base.MemberMixture(
          base.against(p, [m[:n] for m, n in zip(matrices, sizes)]), base.against(p, target)
        )
        previous = active.members[p] if active.chunks else self._below(level, p)
        requests.append((p, run.request(p, opponents, level, previous, plan)))
      below += active.chunks > 0
    return requests

  def _below(self, level: int, player: int) -> oracle_base.PopulationMember | None:
    """The policy just below `level` (module doc, step 3), or None."""
    for active in reversed(self.active[:level]):
      if active.chunks:
        return active.members[player]
    return self.run.previous_member(player)

  def accept(self, requests, members):
    """Moves the pipeline on with the trained chunks (`members`, in request
    order); returns per player the newly fixed member (if any)."""
    num_players = self.run.num_players
    gains_before = self._gains()
    seconds, episodes = [], []
    for level, active in enumerate(self.active):
      chunk = members[level * num_players : (level + 1) * num_players]
      active.members = list(chunk)
      active.chunks += 1
      seconds.append([m.stats.get("call_seconds") for m in chunk])
      episodes.append([m.stats.get("episodes") for m in chunk])
    gains = self._gains()
    improvements = [
      [None if b is None or a is None else b - a for b, a in zip(before, after)]
      for before, after in zip(gains_before, gains)
    ]
    lowest, opts = self.active[0], self.options
    plateau = lowest.chunks >= opts.min_chunks and all(
      i is not None and i <= opts.plateau_improvement for i in improvements[0]
    )
    fixed = (
      plateau
      or all(g is not None and g <= opts.plateau_gain for g in gains[0])
      or lowest.chunks >= opts.max_chunks
    )
    self._state = PipelineState(
      gain=gains,
      improvement=improvements,
      chunks=[a.chunks for a in self.active],
      fixed=fixed,
      chunk_seconds=seconds,
      chunk_episodes=episodes,
      level_seconds=list(self._level_seconds),
    )
    new_members: base.Members = [[] for _ in range(num_players)]
    if fixed:
      for p, member in enumerate(lowest.members):
        new_members[p].append(_trained(member))
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
        [self._gain(p, active.members[p], mixtures[1 - p]) for p in range(self.run.num_players)]
      )
      self._level_seconds[level] += time.perf_counter() - start
    return gains

  # -- the active policies in the run directory ----------------------------

  def _active_dir(self, run_dir: checkpoints.RunDirectory, records_done: int) -> str:
    return run_dir.file(os.path.join(ACTIVE_DIR, f"step{records_done:05d}"))

  def _write_active(self) -> None:
    """Writes the pipeline as the commit of this step will leave it."""
    run_dir, iteration = self.run.run_dir, self.run.iteration
    if run_dir is None:
      return
    path = self._active_dir(run_dir, iteration + 1)
    shutil.rmtree(path, ignore_errors=True)  # an uncommitted try of this step
    os.makedirs(path)
    for level, active in enumerate(self.active):
      for p, member in enumerate(active.members):
        if member is None:
          continue
        name = os.path.join(path, f"level{level}_player{p}")
        checkpoints.write_npy(name + ".npy", base.matrix(member), durable=False)
        if member.module is not None and hasattr(member.module, "state_dict"):
          checkpoints.write_torch(name + ".pt", member.module.state_dict(), durable=False)
    checkpoints.write_json(
      os.path.join(path, _ACTIVE_STATE), {"chunks": [a.chunks for a in self.active]}
    )
    if iteration >= 1:  # keep the committed step's directory and this one
      shutil.rmtree(self._active_dir(run_dir, iteration - 1), ignore_errors=True)

  def restore(self, records: list[IterationRecord]) -> None:
    """The pipeline as the last committed step left it."""
    run_dir, oracle, tree = self.run.run_dir, self.run.oracle, self.tree
    if run_dir is None or not records:
      return
    path = self._active_dir(run_dir, len(records))
    state_file = os.path.join(path, _ACTIVE_STATE)
    if not os.path.exists(state_file):
      raise checkpoints.CheckpointError(
        f"{run_dir.path} has no P2SRO active policies for step {len(records)} ({state_file})."
      )
    state = checkpoints.read_json(state_file)
    for level, chunks in enumerate(state["chunks"]):
      active = self.active[level]
      active.chunks = chunks
      if not chunks:
        continue
      for p in range(self.run.num_players):
        name = os.path.join(path, f"level{level}_player{p}")
        shape = (tree.infostates[p].num_infostates, tree.num_actions)
        matrix = checkpoints.load_matrix(name + ".npy", shape)
        module = None
        if os.path.exists(name + ".pt") and oracle.restores_modules:
          module = oracle.restore_module(tree, p, checkpoints.load_torch(name + ".pt"))
        active.members[p] = oracle_base.PopulationMember(matrix=matrix, module=module)


def _trained(member: oracle_base.PopulationMember | None) -> oracle_base.PopulationMember:
  """A trained level's member (never None)."""
  if member is None:
    raise ValueError("an untrained P2SRO level has no member.")
  return member
