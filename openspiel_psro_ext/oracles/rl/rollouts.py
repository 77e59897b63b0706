"""Vectorised environments for training best responses by RL.

The learner (one player) plays many games at once against opponents drawn from
their PSRO meta-strategies: at every episode start each opponent `q` draws one
member `k ~ sigma_q` of its population and plays it for the whole episode.

`TreeVecEnv` steps a compiled `GameTree` with numpy: the batch is a vector of
history ids. Chance and opponent nodes are advanced automatically (one
vectorised sampling step per tree level) until every game waits for the
learner, so each `step` is one learner decision for every game. The learner
only sees what an RL agent would: the observation of its own information state
(`obs_table[infostate]`, by default the information-state tensor), the legal
action mask, its rewards and episode ends. Episodes auto-reset. `reset_rows`
and `step_rows` give each observation as its row of the observation table
instead, for learners that evaluate their network once per distinct
observation (PPO).

`PyspielVecEnv` is the same interface over `pyspiel` states, for games too
large to compile (`simulation.GameBatch` plays its games: opponents are
batched policies, one forward pass per opponent for all waiting games):
slower than the tree, faster than OpenSpiel's `rl_environment`
(`benchmarks/rollouts.py` measures both).

Also here: `Budget` (episode / step / wall-time limits), `Progress` (a tiny
progress bar on the log), and `policy_value` (exact expected return of a
matrix policy against the request's opponents, for reports only -- never fed
back to the learner).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from typing import cast

import numpy as np
import pyspiel

from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import hedge
from openspiel_psro_ext.simulated import simulation

_TERMINAL = int(pyspiel.PlayerId.TERMINAL)


class TreeVecEnv:
  """`num_envs` games of a compiled tree, stepped together for one learner.

  Attributes:
    obs_shape: shape of one observation.
    num_actions: size of the action space.
  """

  def __init__(
    self,
    tree: GameTree,
    player: int,
    opponents: base.Opponents,
    num_envs: int,
    seed: int = 0,
    obs_table: np.ndarray | None = None,
  ):
    """Args.

    tree: the compiled game.
    player: the learner.
    opponents: whom the learner plays (`base.Opponents`), populations as
      `[N_q, I_q, A]` matrices: members drawn independently per opponent
      (`MemberMixture`), one joint profile per game (`JointMixture`), or
      mixtures that learn from the finished episodes (`LearningMixture`:
      one `hedge.OpponentHedge` per opponent, `hedges`).
    num_envs: games in the batch.
    seed: seeds chance, opponents and member draws.
    obs_table: `[I_p, ...]` what the learner observes at each of its
      information states; defaults to the information-state tensors.
    """
    self.tree = tree
    self.player = player
    self.num_envs = num_envs
    self.num_actions = tree.num_actions
    self._rng = np.random.default_rng(seed)
    table = tree.infostates[player]
    if obs_table is None:
      if table.tensors is None:
        raise ValueError(f"{tree.game} provides no information-state tensor; pass obs_table.")
      obs_table = table.tensors
    self.obs_table = np.asarray(obs_table, dtype=np.float32)
    self.obs_shape = self.obs_table.shape[1:]
    self.legal_mask = table.legal_mask
    self._is_terminal = tree.player == _TERMINAL
    # Chance and opponent nodes, which `_advance` plays through.
    self._moves_alone = (tree.player != player) & ~self._is_terminal
    self._returns = tree.returns[:, player].astype(np.float32)
    self._chance_cum = simulation.cumulative_rows(tree.chance_probs)
    # Per opponent: its player and cumulative behaviour rows.
    self._opponents: list[tuple[int, np.ndarray]] = []
    for q in range(tree.num_players):
      if q == player:
        continue
      pop = np.asarray(opponents.populations[q], dtype=np.float64)
      cum = np.zeros(pop.shape[:2] + (tree.child.shape[1],))
      cum[:, :, : pop.shape[2]] = simulation.cumulative_rows(pop)
      cum[:, :, pop.shape[2] :] = 1.0
      self._opponents.append((q, cum))
    self._members = np.zeros((len(self._opponents), num_envs), dtype=np.int64)
    # How members are drawn: per opponent its cumulative mixture, or one
    # cumulative joint (with its shape) for all of them.
    self._weight_cums: list[np.ndarray] = []
    self._joint: tuple[tuple[int, ...], np.ndarray] | None = None
    self.hedges: list[hedge.OpponentHedge] = []
    match opponents:
      case base.JointMixture(joint=joint):
        flat = np.asarray(joint, dtype=np.float64).reshape(-1)
        self._joint = (np.shape(joint), simulation.cumulative_rows(flat))
      case base.MemberMixture(weights=weights) | base.LearningMixture(weights=weights):
        self._weight_cums = [
          simulation.cumulative_rows(np.asarray(weights[q], dtype=np.float64))
          for q, _ in self._opponents
        ]
        if isinstance(opponents, base.LearningMixture):
          self.hedges = [
            hedge.OpponentHedge(np.asarray(weights[q]), opponents.learner)
            for q, _ in self._opponents
          ]
    self._hist = np.zeros(num_envs, dtype=np.int64)
    # `[B]` after each step: the terminal history each game ended in, or -1
    # (for tests and diagnostics; not an observation).
    self.terminal_histories = np.full(num_envs, -1, dtype=np.int64)

  # -- internals ------------------------------------------------------------

  def _draw_members(self, idx: np.ndarray) -> None:
    if self._joint is not None:  # one joint profile per game
      shape, joint_cum = self._joint
      profiles = simulation.sample_index(joint_cum, len(idx), self._rng)
      self._members[:, idx] = np.unravel_index(profiles, shape)
      return
    for j, weight_cum in enumerate(self._weight_cums):
      self._members[j, idx] = simulation.sample_index(weight_cum, len(idx), self._rng)

  def _advance(self, idx: np.ndarray) -> None:
    """Moves games `idx` through chance/opponent nodes to a learner node or end."""
    tree = self.tree
    while len(idx):
      h = self._hist[idx]
      moving = self._moves_alone[h]
      idx, h = idx[moving], h[moving]
      if not len(idx):
        return
      cum = self._chance_cum[h]  # chance rows; opponent rows filled below
      who = tree.player[h]
      for j, (q, opp_cum) in enumerate(self._opponents):
        at_q = who == q
        if at_q.any():
          cum[at_q] = opp_cum[self._members[j, idx[at_q]], tree.infostate[h[at_q]]]
      self._hist[idx] = tree.child[h, simulation.sample_rows(cum, self._rng)]

  def _reset_games(self, idx: np.ndarray) -> None:
    """Starts new episodes in games `idx` and moves them to a learner node.

    Episodes that end before the learner acts carry no learning signal and are
    redrawn.
    """
    for _ in range(1000):
      if not len(idx):
        return
      self._hist[idx] = 0
      self._draw_members(idx)
      self._advance(idx)
      idx = idx[self._is_terminal[self._hist[idx]]]
    raise RuntimeError("the learner almost never gets to act in this game.")

  def _observe(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return self.obs_table[rows], self.legal_mask[rows]

  # -- the RL interface -----------------------------------------------------

  def reset(self) -> tuple[np.ndarray, np.ndarray]:
    """Starts every game; returns `obs [B, *obs_shape]`, `legal [B, A]` bool."""
    return self._observe(self.reset_rows())

  def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plays one learner action in every game.

    Args:
      actions: `[B]` legal actions.

    Returns:
      `obs [B, ...]`, `legal [B, A]`, `reward [B]` float32, `done [B]` bool.
      Finished games restart at once: their `obs` is the new episode's first.
    """
    rows, reward, done = self.step_rows(actions)
    return (*self._observe(rows), reward, done)

  # The same interface with each observation given as its row of `obs_table`
  # (the learner's information-state index): a learner that evaluates its
  # network once per distinct observation (PPO) needs no `[B, ...]` copies.

  def reset_rows(self) -> np.ndarray:
    """Starts every game; returns `[B]` observation rows."""
    self._reset_games(np.arange(self.num_envs))
    return self.infostates

  def step_rows(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`step`, returning `[B]` observation rows instead of `obs` and `legal`."""
    actions = np.asarray(actions, dtype=np.int64)
    nxt = self.tree.child[self._hist, actions]
    if np.any(nxt < 0):
      raise ValueError("the learner played an illegal action.")
    self._hist = nxt
    self._advance(np.arange(self.num_envs))
    done = self._is_terminal[self._hist]
    self.terminal_histories = np.where(done, self._hist, -1)
    reward = np.where(done, self._returns[self._hist], 0.0).astype(np.float32)
    finished = np.flatnonzero(done)
    if len(finished):
      if self.hedges:
        self._observe_episodes(finished)
      self._reset_games(finished)
    return self.infostates, reward, done

  def _observe_episodes(self, finished: np.ndarray) -> None:
    """Feeds the finished games (before their reset redraws the members) to
    the opponents' learners, and samples from their new mixtures."""
    terminal = self._hist[finished]
    for j, ((q, _), learner) in enumerate(zip(self._opponents, self.hedges)):
      if learner.observe(self._members[j, finished], self.tree.returns[terminal, q]):
        self._weight_cums[j] = simulation.cumulative_rows(learner.weights)

  def learned_weights(self) -> list[np.ndarray | None] | None:
    """Against a `LearningMixture`, per player its learner's average (None
    at the learner); else None."""
    if not self.hedges:
      return None
    averages = iter(learner.average() for learner in self.hedges)
    return [None if q == self.player else next(averages) for q in range(self.tree.num_players)]

  @property
  def infostates(self) -> np.ndarray:
    """`[B]` the learner's current information-state indices (for tests)."""
    return self.tree.infostate[self._hist]


class PyspielVecEnv:
  """The `TreeVecEnv` interface over `pyspiel` states (no compilation).

  For games too large for a `GameTree`. Opponents are batched policies
  (`simulation.BatchedPolicy`, e.g. `TorchPolicy`), one member per opponent
  drawn by its meta-strategy at every episode start; chance samples its
  outcome probabilities. The games advance together (`simulation.GameBatch`):
  each opponent's policy makes one forward pass for all the games waiting on
  it. The learner observes what `simulation.observation_of` chooses: its
  information-state tensor, else its observation tensor.
  """

  def __init__(
    self,
    game: pyspiel.Game | str,
    player: int,
    opponents: base.MemberMixture,
    num_envs: int,
    seed: int = 0,
  ):
    """Args as `TreeVecEnv`, with `opponents.populations[q]` a list of
    batched policies (None at `player`), drawn independently."""
    if isinstance(game, str):
      game = pyspiel.load_game(game)
    self.game = game
    self.player = player
    self.num_envs = num_envs
    self.num_actions = game.num_distinct_actions()
    # The game's own shape (a board's `[C, H, W]` stays one) for the networks.
    self.observation = simulation.check_game(game)
    self.obs_shape = self.observation.shape
    seats = [
      None
      if q == player
      else simulation.Population(opponents.populations[q], np.asarray(opponents.weights[q]))
      for q in range(game.num_players())
    ]
    self._games = simulation.GameBatch(game, seats, num_envs, np.random.default_rng(seed))
    self._all = np.arange(num_envs)
    self._legal = np.zeros((num_envs, self.num_actions), dtype=bool)

  def _reset_games(self, idx: np.ndarray) -> None:
    """New episodes in games `idx`, moved to the learner's first decision.

    Episodes that end before the learner acts carry no learning signal and are
    redrawn.
    """
    for _ in range(1000):
      if not len(idx):
        return
      self._games.restart(idx)
      idx = self._games.advance(idx)
    raise RuntimeError("the learner almost never gets to act in this game.")

  def _observe(self) -> tuple[np.ndarray, np.ndarray]:
    obs, self._legal = self._games.observe(cast(Sequence[int], self._all), self.player)
    assert obs is not None  # asked for
    return obs.reshape((self.num_envs,) + self.obs_shape), self._legal

  def reset(self) -> tuple[np.ndarray, np.ndarray]:
    """Starts every game; returns `obs [B, *obs_shape]`, `legal [B, A]` bool."""
    self._reset_games(self._all)
    return self._observe()

  def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As `TreeVecEnv.step`: `obs`, `legal`, `reward [B]`, `done [B]`."""
    actions = np.asarray(actions, dtype=np.int64)
    if not self._legal[self._all, actions].all():
      raise ValueError("the learner played an illegal action.")
    self._games.apply(self._all, actions)
    finished = self._games.advance(self._all)
    done = np.zeros(self.num_envs, dtype=bool)
    done[finished] = True
    reward = np.zeros(self.num_envs, dtype=np.float32)
    if len(finished):
      reward[finished] = self._games.returns(finished)[:, self.player]
      self._reset_games(finished)
    return (*self._observe(), reward, done)

  def learned_weights(self) -> None:
    """Opponents here never learn (`TreeVecEnv.learned_weights`)."""
    return None


def make_env(
  request: base.BestResponseRequest, num_envs: int, seed: int, obs_table: np.ndarray | None = None
) -> TreeVecEnv | PyspielVecEnv:
  """The vectorised environment of an oracle request: over its compiled tree,
  or simulated with pyspiel when the request has none (then `obs_table` must
  be None: the learner observes `simulation.observation_of(game)`)."""
  opponents = request.opponents
  if request.tree is not None:
    return TreeVecEnv(request.tree, request.player, opponents, num_envs, seed, obs_table)
  if obs_table is not None:
    raise ValueError(
      "simulated environments observe the game's own tensors"
      " (simulation.observation_of); an observation table needs a compiled tree."
    )
  if isinstance(opponents, base.JointMixture):
    raise ValueError(
      "simulated environments draw opponents independently and"
      " cannot answer correlated opponents (a JointMixture); use a"
      " game that compiles."
    )
  if isinstance(opponents, base.LearningMixture):
    raise ValueError(
      "learning opponents (a LearningMixture) run on a compiled tree"
      " only; use a game that compiles."
    )
  if isinstance(opponents, base.ConditionedMixtures):
    raise ValueError("conditioned mixtures (NeuPL) run on a compiled tree only.")
  assert request.game is not None  # a request without a tree has its game
  return PyspielVecEnv(request.game, request.player, opponents, num_envs, seed)


def policy_value(request: base.BestResponseRequest, matrix: np.ndarray) -> float:
  """Exact expected return of `[I_p, A]` `matrix` against the request's mixture."""
  tree, p = request.tree, request.player
  if tree is None:
    raise ValueError("exact values need the request's compiled tree.")
  reach = request.opponent_terminal_reach() * tree.terminal_reach(p, matrix)
  return float(reach @ tree.terminal_returns[:, p])


@dataclasses.dataclass
class Budget:
  """Training limits; 0 means unlimited (at least one limit must be set)."""

  episodes: int = 0
  steps: int = 0
  seconds: float = 0.0

  def __post_init__(self):
    if not (self.episodes or self.steps or self.seconds):
      raise ValueError("set an episode, step or wall-time budget.")
    self.start = time.perf_counter()

  @property
  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def fraction(self, episodes: int, steps: int) -> float:
    """How much of the tightest limit is used, in [0, 1]."""
    used = [0.0]
    if self.episodes:
      used.append(episodes / self.episodes)
    if self.steps:
      used.append(steps / self.steps)
    if self.seconds:
      used.append(self.elapsed / self.seconds)
    return min(1.0, max(used))

  def done(self, episodes: int, steps: int) -> bool:
    return self.fraction(episodes, steps) >= 1.0

  def out_of_time(self) -> bool:
    """The wall-time limit (if any) is spent."""
    return bool(self.seconds) and self.elapsed >= self.seconds


class Progress:
  """A minimal progress bar: a line on stderr (if a tty) or periodic log lines."""

  def __init__(self, name: str, enabled: bool = True, log_every_s: float = 10.0):
    self.name = name
    self.enabled = enabled
    self._tty = enabled and sys.stderr.isatty()
    self._log_every = log_every_s
    self._last = time.perf_counter()

  def update(self, fraction: float, **values: float) -> None:
    if not self.enabled:
      return
    fields = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    filled = int(30 * fraction)
    line = f"{self.name} [{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:3.0f}% {fields}"
    if self._tty:
      sys.stderr.write("\r" + line)
      sys.stderr.flush()
    elif time.perf_counter() - self._last >= self._log_every:
      logging.info(line)
      self._last = time.perf_counter()

  def close(self) -> None:
    if self._tty:
      sys.stderr.write("\n")
      sys.stderr.flush()


class TrainingLog:
  """Episode counting, training curves (lists keyed by name) and progress bar.

  `track` takes every vectorised step's rewards and dones; `record` appends
  one curve point with the mean return of the episodes finished since the
  previous point.
  """

  def __init__(
    self,
    name: str,
    budget: Budget,
    num_envs: int,
    progress: bool,
    keys: Sequence[str],
    schedule_span: tuple[float, float] = (0.0, 1.0),
  ):
    self.budget = budget
    self.schedule_span = schedule_span
    self.episodes = 0
    self.steps = 0
    self.curves: dict[str, list[float]] = {
      k: [] for k in ("episodes", "steps", "seconds", "return", *keys)
    }
    self._running = np.zeros(num_envs)
    self._finished: list[np.ndarray] = []
    self._progress = Progress(name, progress)

  def track(self, reward: np.ndarray, done: np.ndarray) -> None:
    self._running += reward
    self._finished.append(self._running[done])
    self._running[done] = 0.0
    self.episodes += int(done.sum())
    self.steps += len(done)

  @property
  def fraction(self) -> float:
    """Where the schedules stand: the budget's spent fraction, mapped onto
    `schedule_span` (`TrainingPlan.schedule_span`)."""
    start, end = self.schedule_span
    return start + (end - start) * self.budget.fraction(self.episodes, self.steps)

  @property
  def done(self) -> bool:
    return self.budget.done(self.episodes, self.steps)

  def record(self, **values: float) -> None:
    returns = np.concatenate(self._finished) if self._finished else np.zeros(0)
    self._finished = []
    mean = float(returns.mean()) if len(returns) else float("nan")
    point = dict(
      episodes=self.episodes,
      steps=self.steps,
      seconds=self.budget.elapsed,
      **{"return": mean},
      **values,
    )
    for key, value in point.items():
      self.curves.setdefault(key, []).append(float(value))
    spent = self.budget.fraction(self.episodes, self.steps)
    self._progress.update(spent, ret=mean, eps=self.episodes)

  def close(self) -> None:
    self._progress.close()


def uniform_legal_actions(legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """`[B]` actions drawn uniformly among each row's legal actions."""
  cum = np.cumsum(legal, axis=1)
  pick = (rng.random(len(legal)) * cum[:, -1]).astype(np.int64)
  return (cum <= pick[:, None]).sum(axis=1)
