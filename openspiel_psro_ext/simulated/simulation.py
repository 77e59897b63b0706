"""Simulated games: many pyspiel games played at once by batched policies.

For games too large to compile (no `GameTree`), everything PSRO needs from a
game is estimated by playing it. The expected return of player `i` under the
pure profile `k = (k_0, ..., k_{P-1})` of population members,

    M_i[k] = E[u_i(z) | every seat p plays its member k_p],

is estimated by the mean of `n` simulated games, `M_i[k] ~ (1/n) sum_j u_i(z_j)`,
with standard error `s_i[k] / sqrt(n)` (`s_i` the sample standard deviation of
the returns): by the central limit theorem the estimate is within 1.96
standard errors of `M_i[k]` 95% of the time. `SimulatedPayoffTable` plays each
entry's games until its standard error reaches a target (between a minimum
and a maximum number of games), rather than a fixed count: entries whose
returns vary little are settled in few games.

Policies act on batches: a `BatchedPolicy` maps `[B, ...]` observations and
`[B, A]` legal-action masks to `[B, A]` action probabilities. What a policy
observes is what the game provides (`observation_of`): the acting player's
information-state tensor, else its observation tensor (the whole state in a
perfect-information game; in others it may forget the player's past).
`TorchPolicy` (the RL oracles' members) is a batched policy, as are
`UniformRandomPolicy`, `BatchedMatrixPolicy` (a tabular policy over a compiled
tree, to validate the simulated mode where exact answers exist) and
`StatePolicy` (an OpenSpiel policy acting on states, e.g. stock `psro_v2`'s
members: it is handed the games' states instead).

`GameBatch` plays `B` games together (a simultaneous-move game in its
turn-based form): chance samples its outcomes by their probabilities (sampled
chance included: play only ever samples), and every seat's policy makes one
forward pass for all the games waiting on that seat (per member, when a
seat's member differs between games). `play` uses it to return per-game
returns; `rollouts.PyspielVecEnv` uses it to train a learner against sampled
opponents.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyspiel
from open_spiel.python import observation as observation_lib

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game.game_tree import (
  GameTree,
  check_legal_actions,
  first_decision,
  quiet_stderr,
)

if TYPE_CHECKING:
  from open_spiel.python import policy as policy_lib

_TERMINAL = int(pyspiel.PlayerId.TERMINAL)
_CHANCE = int(pyspiel.PlayerId.CHANCE)


@runtime_checkable
class BatchedPolicy(Protocol):
  """A policy acting on batches of observations.

  Attributes:
    uses_observations: False if `probabilities` ignores `obs` (then the
      simulator passes None and skips computing observations).
  """

  uses_observations: bool

  def probabilities(self, obs: np.ndarray | None, legal: np.ndarray) -> np.ndarray:
    """`[B, ...]` observations (`observation_of`), `[B, A]` bool -> `[B, A]` probabilities."""


class UniformRandomPolicy:
  """Plays uniformly among the legal actions."""

  uses_observations = False

  def probabilities(self, obs: np.ndarray | None, legal: np.ndarray) -> np.ndarray:
    del obs
    return legal / legal.sum(axis=1, keepdims=True)


class BatchedMatrixPolicy:
  """An `[I_p, A]` matrix policy of a compiled game, acting from observations.

  Each information state is recognised by its information-state tensor, so a
  PSRO member known exactly over the tree can play simulated games (to check
  the simulated mode against exact values).
  """

  uses_observations = True

  def __init__(self, tree: GameTree, player: int, matrix: np.ndarray):
    tensors = tree.infostates[player].tensors
    if tensors is None:
      raise ValueError(f"{tree.game} has no information-state tensor.")
    self.matrix = np.asarray(matrix, dtype=np.float64)
    self._rows = {np.asarray(t, dtype=np.float32).tobytes(): i for i, t in enumerate(tensors)}
    if len(self._rows) != len(tensors):
      raise ValueError(f"{tree.game}: information-state tensors are not unique.")

  def probabilities(self, obs: np.ndarray | None, legal: np.ndarray) -> np.ndarray:
    obs = np.ascontiguousarray(obs, dtype=np.float32)
    rows = [self._rows[row.tobytes()] for row in obs]
    return self.matrix[rows] * legal


class StatePolicy:
  """An OpenSpiel `policy.Policy` (it acts on states) as a batched policy.

  Stock `psro_v2`'s members are such policies (`rl_policy.PGPolicy`, ...):
  wrapped, the simulator hands them the pyspiel states of the games waiting on
  their seat (`uses_states`), one `action_probabilities` call per state, so
  stock's populations are measured by the same estimator as ours.
  """

  uses_observations = False
  uses_states = True

  def __init__(self, policy: policy_lib.Policy, player: int, cache: bool = True):
    """`cache`: remember each information state's probabilities (a frozen
    policy: stock's per-state network calls are slow)."""
    self.policy, self.player = policy, player
    self._cache: dict[str, np.ndarray] | None = {} if cache else None

  def _row(self, state: pyspiel.State, num_actions: int) -> np.ndarray:
    key = None
    if (
      self._cache is not None
      and not self._cache
      and not state.get_game().get_type().provides_information_state_string
    ):
      self._cache = None  # no key to remember states by
    if self._cache is not None:
      key = state.information_state_string(self.player)
      if key in self._cache:
        return self._cache[key]
    row = np.zeros(num_actions)
    for action, prob in self.policy.action_probabilities(state, self.player).items():
      row[action] = prob
    if key is not None and self._cache is not None:
      self._cache[key] = row
    return row

  def probabilities(self, states: Sequence[pyspiel.State], legal: np.ndarray) -> np.ndarray:
    """`[B]` states, `[B, A]` bool -> `[B, A]` probabilities."""
    if not len(states):
      return np.zeros(legal.shape)
    return np.stack([self._row(state, legal.shape[1]) for state in states]) * legal

  def __getstate__(self) -> dict[str, Any]:
    return dict(self.__dict__, _cache=None if self._cache is None else {})


@dataclasses.dataclass
class Population:
  """One seat's population and the meta-strategy over it.

  Attributes:
    members: the `N` batched policies.
    weights: `[N]` probabilities (a member is drawn per game).
  """

  members: Sequence[BatchedPolicy]
  weights: np.ndarray

  def __post_init__(self) -> None:
    self.weights = np.asarray(self.weights, dtype=np.float64)
    if len(self.members) != len(self.weights) or not len(self.members):
      raise ValueError(
        f"a population needs one weight per member; got"
        f" {len(self.members)} members, {len(self.weights)} weights."
      )
    if np.any(self.weights < 0) or self.weights.sum() <= 0:
      raise ValueError(
        f"population weights must be non-negative with a positive sum; got {self.weights}."
      )

  @classmethod
  def of(cls, policy: Population | BatchedPolicy) -> Population:
    """A population of one member, or `policy` itself if it is one."""
    return policy if isinstance(policy, Population) else cls([policy], np.ones(1))

  def draw(self, num: int, rng: np.random.Generator) -> np.ndarray:
    """`[num]` member indices drawn by weight."""
    return sample_index(cumulative_rows(self.weights), num, rng)


INFORMATION_STATE = "info_state"
OBSERVATION = "observation"
# Games that give strings only: hashed character trigrams of the string.
INFORMATION_STATE_STRING = "info_state_string"
OBSERVATION_STRING = "observation_string"
STRING_KINDS = (INFORMATION_STATE_STRING, OBSERVATION_STRING)
STRING_FEATURES = 1024


def encode_string(text: str, size: int = STRING_FEATURES) -> np.ndarray:
  """`[size]` float32 features of a state's string: each character trigram is
  hashed into one of `size` buckets, and a bucket holds log(1 + its count).

  A trigram's three bytes form a 24-bit code; Knuth's multiplicative hash
  (times 2654435761, low 32 bits) spreads the codes, and the hash's top bits
  pick the bucket (multiply-shift range reduction). It is arithmetic on
  arrays, the same in every process, and whole strings hash at numpy speed
  (policies read one string per decision).

  Lossy (order beyond three characters and colliding trigrams are lost), so
  policies that observe it may confuse states; it lets games that give no
  tensor (cribbage, tarok) run at all.
  """
  data = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.uint64)
  if len(data) < 3:  # a short string is one (zero-padded) trigram
    data = np.concatenate([data, np.zeros(3 - len(data), np.uint64)])
  codes = (data[:-2] << np.uint64(16)) | (data[1:-1] << np.uint64(8)) | data[2:]
  hashed = (codes * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
  buckets = (hashed * np.uint64(size)) >> np.uint64(32)
  return np.log1p(np.bincount(buckets.astype(np.int64), minlength=size)).astype(np.float32)


def state_observation(state: pyspiel.State, player: int, kind: str) -> np.ndarray:
  """`[size]` float32: what a policy observing `kind` sees of `state`."""
  if kind == INFORMATION_STATE_STRING:
    return encode_string(state.information_state_string(player))
  if kind == OBSERVATION_STRING:
    return encode_string(state.observation_string(player))
  return np.asarray(getattr(state, _tensor_method(kind))(player), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class Observation:
  """What simulated policies observe of a game, chosen by `observation_of`.

  Attributes:
    kind: `INFORMATION_STATE` (the information-state tensor),
      `OBSERVATION` (the observation tensor), or for games with neither,
      `INFORMATION_STATE_STRING` / `OBSERVATION_STRING` (`encode_string`).
    shape: one observation's shape as the game gives it: spatial games keep
      theirs (chess `[20, 8, 8]`, `[C, H, W]`) for convolutional networks; the
      simulator hands policies `[B, size]` rows, which they reshape.
    perfect_recall: whether one tensor determines the player's information
      state: always for the information-state tensor, and for the
      observation tensor of a perfect-information game (it is the state);
      otherwise the observation may forget what the player saw before, which
      a recurrent network over the sequence of observations recalls.
    fast: pyspiel's observer writes the tensor into one buffer (else each
      state's `*_tensor(player)` method is called).
  """

  kind: str
  shape: tuple[int, ...]
  perfect_recall: bool
  fast: bool = True

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))


def _observer(game: pyspiel.Game, kind: str) -> Any:
  """pyspiel's observer of `kind` with a non-empty tensor, or None."""
  obs_type = observation_lib.INFO_STATE_OBS_TYPE if kind == INFORMATION_STATE else None
  try:
    observer = observation_lib.make_observation(game, obs_type)
  except (pyspiel.SpielError, RuntimeError, NotImplementedError, ValueError):
    return None
  if observer is None or observer.tensor is None or not observer.tensor.size:
    return None
  return observer


def _tensor_method(kind: str) -> str:
  return "information_state_tensor" if kind == INFORMATION_STATE else "observation_tensor"


def _probe(game: pyspiel.Game, kind: str) -> Observation | None:
  """How `game` gives the tensor of `kind`, or None if it does not."""
  recall = kind == INFORMATION_STATE or (
    game.get_type().information == pyspiel.GameType.Information.PERFECT_INFORMATION
  )
  observer = _observer(game, kind)
  if observer is not None:
    size = observer.tensor.size
    parts = list(observer.dict.values())
    if len(parts) == 1 and parts[0].size == size:
      return Observation(kind, tuple(parts[0].shape), recall)
    with quiet_stderr():
      try:
        shape = tuple(getattr(game, _tensor_method(kind) + "_shape")())
      except (pyspiel.SpielError, RuntimeError, NotImplementedError, AttributeError):
        shape = ()
    return Observation(kind, shape if int(np.prod(shape)) == size else (size,), recall)
  # Some games give tensors through their states only, whatever their type
  # and observer say (liars_dice_ir; the turn-based wrapper of a Python game).
  state = first_decision(game)
  if state is None:
    return None
  with quiet_stderr():  # pyspiel prints each error it raises here
    try:
      tensor = getattr(state, _tensor_method(kind))(state.current_player())
      shape = tuple(getattr(game, _tensor_method(kind) + "_shape")())
    except (pyspiel.SpielError, RuntimeError, NotImplementedError, AttributeError):
      return None
  if not len(tensor) or int(np.prod(shape)) != len(tensor):
    return None
  return Observation(kind, shape, recall, fast=False)


def _probe_string(game: pyspiel.Game) -> Observation | None:
  """The string a game without tensors gives (information state first), or None."""
  state = first_decision(game)
  if state is None:
    return None
  for kind in STRING_KINDS:
    with quiet_stderr():
      try:
        state_observation(state, state.current_player(), kind)
      except (pyspiel.SpielError, RuntimeError, NotImplementedError, AttributeError):
        continue
    return Observation(kind, (STRING_FEATURES,), perfect_recall=False, fast=False)
  return None


_OBSERVATIONS: dict[str, Observation] = {}


def observation_of(game: pyspiel.Game) -> Observation:
  """What simulated policies observe of `game`: its information-state
  tensor, else its observation tensor (see `Observation.perfect_recall`),
  else its information-state or observation string, encoded (`encode_string`).

  Raises:
    UsageError: the game gives no tensor and no string.
  """
  key = str(game)
  if key not in _OBSERVATIONS:
    found = _probe(game, INFORMATION_STATE) or _probe(game, OBSERVATION) or _probe_string(game)
    if found is None:
      raise UsageError(
        f"{game} provides neither an information-state tensor nor an observation"
        " tensor, nor their strings, one of which simulated policies observe."
      )
    if found.kind in STRING_KINDS:
      logging.info(
        "%s gives no tensor: policies observe its %s string as %d hashed character"
        " trigrams (lossy: states may look alike).",
        game,
        "information-state" if found.kind == INFORMATION_STATE_STRING else "observation",
        STRING_FEATURES,
      )
    elif not found.perfect_recall:
      logging.info(
        "%s gives no information-state tensor: policies observe its observation"
        " tensor, which may forget what the player saw before (imperfect recall).",
        game,
      )
    _OBSERVATIONS[key] = found
  return _OBSERVATIONS[key]


def check_game(game: pyspiel.Game) -> Observation:
  """What policies observe of `game`, or a one-line `UsageError` if it
  cannot be simulated here.

  Simultaneous-move games are simulated in their turn-based form
  (`game_tree.turn_based`); chance, explicit or sampled, is played by
  sampling its outcomes.
  """
  game_type = game.get_type()
  if game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
    raise UsageError(
      f"{game} is a simultaneous-move game; simulate its turn-based form (game_tree.turn_based)."
    )
  if game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
    raise UsageError(f"{game} has {game_type.dynamics} dynamics; only sequential games play here.")
  return observation_of(game)


class _Observer:
  """Writes one player's observations of many states into one buffer."""

  def __init__(self, game: pyspiel.Game, observation: Observation):
    self.observation = observation
    if observation.fast:
      observer = _observer(game, observation.kind)
      # The observer writes the tensor into one numpy buffer, faster than
      # converting `information_state_tensor()`'s Python list.
      native = getattr(observer, "_observation", None)  # pyspiel's own (a C++ game)
      set_from = native.set_from if native is not None else observer.set_from
      view = memoryview(observer.tensor)

      def append(state: pyspiel.State, player: int, raw: bytearray) -> None:
        set_from(state, player)
        raw += view

    else:
      kind = observation.kind

      def append(state: pyspiel.State, player: int, raw: bytearray) -> None:
        raw += state_observation(state, player, kind).tobytes()

    self.append = append


class GameBatch:
  """`B` pyspiel games played together by per-seat populations.

  `seats[p]` is player p's `Population`, or None for a player the caller
  moves itself (an RL learner): `advance` stops the games where such a player
  is to act. `members[p, b]` is the member of seat `p` playing game `b`.
  """

  def __init__(
    self,
    game: pyspiel.Game,
    seats: Sequence[Population | None],
    num_games: int,
    rng: np.random.Generator,
  ):
    observation = check_game(game)
    if len(seats) != game.num_players():
      raise ValueError(f"{game} has {game.num_players()} players; got {len(seats)} seats.")
    self.game = game
    self.seats = list(seats)
    self.num_games = num_games
    self.num_actions = game.num_distinct_actions()
    self.states: list[pyspiel.State] = [None] * num_games
    self.members = np.full((len(seats), num_games), -1, dtype=np.int64)
    self._rng = rng
    self._observer = _Observer(game, observation)
    self._uniforms = _uniform_stream(rng)

  def restart(self, idx: np.ndarray, members: np.ndarray | None = None) -> None:
    """New games at `idx`, each seat's member drawn by weight (or given as
    `members [P, len(idx)]`)."""
    states, new_state = self.states, self.game.new_initial_state
    for b in idx.tolist() if isinstance(idx, np.ndarray) else idx:
      states[b] = new_state()
    for p, seat in enumerate(self.seats):
      if seat is not None:
        self.members[p, idx] = seat.draw(len(idx), self._rng) if members is None else members[p]

  def observe(
    self, idx: Sequence[int], player: int, with_obs: bool = True
  ) -> tuple[np.ndarray | None, np.ndarray]:
    """`[n, T]` observations (`check_game`'s; or None) and `[n, A]` legal masks."""
    states = [self.states[b] for b in idx]
    # One pass over the states, appending raw float32 bytes: numpy's per-row
    # assignment cost more than pyspiel's own `set_from`.
    actions, raw = [], bytearray()
    if with_obs:
      append = self._observer.append
      for state in states:
        actions.append(state.legal_actions(player))
        append(state, player, raw)
    else:
      actions = [state.legal_actions(player) for state in states]
    counts = np.fromiter(map(len, actions), np.int64, len(actions))
    flat = np.fromiter(itertools.chain.from_iterable(actions), np.int64, int(counts.sum()))
    if flat.size:
      check_legal_actions(self.game, int(flat.max()))
    legal = np.zeros((len(states), self.num_actions), dtype=bool)
    legal[np.repeat(np.arange(len(states)), counts), flat] = True
    if not with_obs:
      return None, legal
    return np.frombuffer(raw, dtype=np.float32).reshape(len(states), -1), legal

  def apply(self, idx: Sequence[int] | np.ndarray, actions: np.ndarray) -> None:
    states = self.states
    for b, a in zip(idx, actions.tolist()):
      states[b].apply_action(a)

  def _seat_step(self, player: int, idx: list[int]) -> None:
    seat = self.seats[player]
    assert seat is not None, "only seats with a population are stepped here"
    members = self.members[player, idx]
    idx_arr = np.asarray(idx)
    needs_obs = any(seat.members[m].uses_observations for m in np.unique(members))
    obs, legal = self.observe(idx, player, needs_obs)
    probs = np.zeros(legal.shape)
    for m in np.unique(members):
      at = members == m
      member = seat.members[m]
      inputs: list[pyspiel.State] | np.ndarray | None
      if getattr(member, "uses_states", False):  # a `StatePolicy`
        inputs = [self.states[b] for b in idx_arr[at]]
      else:
        inputs = None if obs is None else obs[at]
      probs[at] = member.probabilities(inputs, legal[at])
    self.apply(idx_arr, sample_actions(probs * legal, self._rng))

  def advance(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
    """Plays games `idx` until each is over or waits on a caller-moved player.

    Returns:
      the games of `idx` that are over.
    """
    pending = idx.tolist() if isinstance(idx, np.ndarray) else list(idx)
    over = []
    states, seats, uniforms = self.states, self.seats, self._uniforms
    moved_by_caller = [seat is None for seat in seats]
    while pending:
      by_seat: dict[int, list[int]] = {}
      for b in pending:
        state = states[b]
        player = state.current_player()
        while player == _CHANCE:  # chance moves at once: no batching to gain
          u, total = next(uniforms), 0.0
          for action, prob in state.chance_outcomes():  # noqa: B007 (the drawn action is applied after the loop)
            total += prob
            if u < total:
              break
          state.apply_action(action)  # the last outcome if rounding left u >= total
          player = state.current_player()
        if player >= 0:
          if not moved_by_caller[player]:
            by_seat.setdefault(player, []).append(b)
        elif player == _TERMINAL:
          over.append(b)
        else:
          raise ValueError(f"{self.game}: player {player} to move is not supported.")
      pending = []
      for player, games in by_seat.items():
        self._seat_step(player, games)
        pending += games
    return np.asarray(sorted(over), dtype=np.int64)

  def returns(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
    """`[n, P]` returns of (finished) games `idx`."""
    return np.array([self.states[b].returns() for b in idx], dtype=np.float64)


def _uniform_stream(rng: np.random.Generator) -> Iterator[float]:
  """Uniforms in [0, 1) one at a time, drawn from `rng` in blocks (fast `next`)."""
  while True:
    yield from rng.random(4096).tolist()


def cumulative_rows(probs: np.ndarray) -> np.ndarray:
  """Row-normalised cumulative sums (last column exactly 1 on non-empty rows)."""
  cum = np.cumsum(probs, axis=-1)
  total = cum[..., -1:]
  return np.divide(cum, total, out=np.ones_like(cum), where=total > 0)


def sample_rows(cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """One index per row of `[B, A]` cumulative probabilities.

  With `u` in (0, 1], the first index whose cumulative mass reaches `u` always
  has positive probability, so zero-probability actions never occur.
  """
  u = 1.0 - rng.random(len(cum))
  if cum.shape[1] > 16:
    return (cum < u[:, None]).sum(axis=1)
  # Column by column: numpy sums a boolean over a short last axis slowly.
  index = np.zeros(len(cum), dtype=np.int64)
  for column in cum.T:
    index += column < u
  return index


def sample_index(cum: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
  """`[num]` draws from one `[N]` cumulative distribution.

  The same draws as `sample_rows` on `num` copies of the row, from the same
  uniforms, by bisection: O(num log N) instead of O(num N), which matters
  when N is a population of hundreds drawn for every episode.
  """
  return np.searchsorted(cum, 1.0 - rng.random(num), side="left")


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """`[B]` actions drawn from `[B, A]` (unnormalised) probabilities."""
  return sample_rows(cumulative_rows(probs), rng)


def play(
  game: pyspiel.Game,
  seats: Sequence[Population | BatchedPolicy],
  num_games: int,
  rng: np.random.Generator,
  members: np.ndarray | None = None,
  batch_size: int = 4096,
) -> np.ndarray:
  """`[num_games, P]` returns of games played by the seats.

  Args:
    game: the pyspiel game.
    seats: per player, a `Population` (a member drawn per game) or a policy.
    num_games: how many games.
    rng: draws chance outcomes, members and actions.
    members: `[P, num_games]` member indices fixing each game's profile
      (None: drawn by the populations' weights).
    batch_size: games in flight at once.
  """
  populations = [Population.of(s) for s in seats]
  out = np.zeros((num_games, game.num_players()))
  for start in range(0, num_games, batch_size):
    stop = min(num_games, start + batch_size)
    batch = GameBatch(game, populations, stop - start, rng)
    idx = np.arange(stop - start)
    batch.restart(idx, None if members is None else members[:, start:stop])
    batch.advance(idx)
    out[start:stop] = batch.returns(idx)
  return out


@dataclasses.dataclass(frozen=True)
class PlayTask:
  """A share of simulated games, seeded on its own (a backend runs many at
  once; the split and the seeds do not depend on the backend).

  Attributes:
    num_games: games to play.
    seed: seeds the task's random stream (chance, members, actions).
    members: `[P, num_games]` member indices, or None (drawn by weight).
  """

  num_games: int
  seed: tuple[int, ...]
  members: np.ndarray | None = None

  def run(self, game: pyspiel.Game, seats: Sequence[Population | BatchedPolicy]) -> np.ndarray:
    """`[num_games, P]` returns."""
    return play(game, seats, self.num_games, np.random.default_rng(list(self.seed)), self.members)


def split_tasks(
  num_games: int, seed: Sequence[int], task_games: int, members: np.ndarray | None = None
) -> list[PlayTask]:
  """`num_games` games (with `[P, num_games]` fixed members, if given) in
  tasks of at most `task_games`, task `i` seeded by `(*seed, i)`."""
  return [
    PlayTask(
      min(num_games, start + task_games) - start,
      tuple(seed) + (i,),
      None if members is None else members[:, start : start + task_games],
    )
    for i, start in enumerate(range(0, num_games, task_games))
  ]


class SerialPlayer:
  """Plays tasks one after another in this process (`backends.Backend.play`
  runs them in parallel on Ray)."""

  def play(
    self, game: pyspiel.Game, seats: Sequence[Population | BatchedPolicy], tasks: Sequence[PlayTask]
  ) -> list[np.ndarray]:
    return [task.run(game, seats) for task in tasks]


@dataclasses.dataclass
class SamplingConfig:
  """How many games each payoff entry gets.

  Each entry of importance `w` (its weight in the meta-strategy's values,
  see `SimulatedPayoffTable.add`) first plays `max(floor_games, w *
  min_games)` games, then more (in multiples of `batch_games`, as many as
  its sample variance says it needs) until its standard error, weighted by
  `w`, is at most the target, or it has `max_games`.

  Scaling the minimum by `w` keeps its guarantee: a member's value against
  the others' mixture, `sum_k w(k) M[i, k]`, has variance `sum_k w(k)^2
  s_k^2 / n_k <= max_k s_k^2 / min_games` when every `n_k >= w(k)
  min_games`, as if one entry of full weight had `min_games` games. It
  matters with many players: a 6-player table of 3 members each has 729
  entries, most of tiny weight.

  Attributes:
    target_stderr: the target in payoff units; 0: `relative_stderr` times
      the game's utility range (`max_utility - min_utility`: Leduc 26 chips,
      limit hold'em hundreds, so one number fits every game).
    relative_stderr: the target as a share of the utility range.
    min_games: the first games of an entry of full importance.
    floor_games: the first games of any entry (its sample variance decides
      the rest).
    max_games: the most games of an entry.
    batch_games: the step of an entry's top-ups.
    task_games: games per task (`backends.Backend.play` runs tasks at once).
  """

  target_stderr: float = 0.0
  relative_stderr: float = 0.004
  min_games: int = 64
  floor_games: int = 8
  max_games: int = 4096
  batch_games: int = 64
  task_games: int = 4096

  def __post_init__(self) -> None:
    if (
      not 2 <= self.floor_games <= self.min_games <= self.max_games
      or self.batch_games < 1
      or self.task_games < 1
    ):
      raise ValueError(
        "need 2 <= floor_games <= min_games <= max_games, batch_games >= 1 and"
        f" task_games >= 1; got {self}."
      )
    if self.target_stderr < 0 or self.relative_stderr <= 0:
      raise ValueError(
        f"target_stderr must be >= 0 (0: relative to the utility"
        f" range) and relative_stderr > 0; got {self}."
      )

  def target(self, game: pyspiel.Game) -> float:
    """The target standard error in `game`'s payoff units."""
    if self.target_stderr > 0:
      return self.target_stderr
    return self.relative_stderr * utility_range(
      game, "set target_stderr (payoff_target_stderr) in payoff units"
    )


def utility_range(game: pyspiel.Game, fix: str) -> float:
  """`max_utility - min_utility` of `game`, for settings given as a fraction
  of it.

  Raises:
    ValueError: the game reports no finite positive range; `fix` says what
      to set instead.
  """
  span = float(game.max_utility() - game.min_utility())
  if not np.isfinite(span) or span <= 0:
    raise ValueError(f"{game} reports no finite utility range; {fix}.")
  return span


class SimulatedPayoffTable:
  """A meta-game estimated by simulated games, growing with the populations.

  The interface of `payoffs.PayoffTable` (`add`, `shape`, `meta_games`), plus
  each entry's standard error (`stderr`) and game count (`games`). Adding
  members plays the new entries' games, and tops up old entries that the
  current meta-strategy made more important (see `add`).

  Attributes:
    player: runs the games' tasks (`SerialPlayer` here; a `backends.Backend`
      runs them on Ray); set it before `add`.
  """

  def __init__(self, game: pyspiel.Game, config: SamplingConfig | None = None):
    check_game(game)
    self.game = game
    self.config = config or SamplingConfig()
    self.target_stderr = self.config.target(game)
    self.num_players = game.num_players()
    self.members: list[list[BatchedPolicy]] = [[] for _ in range(self.num_players)]
    self.player = SerialPlayer()
    shape = (self.num_players,) + (0,) * self.num_players
    # Per entry and player: games, mean, summed squared deviation (Welford).
    self._games = np.zeros(shape[1:], dtype=np.int64)
    self._mean = np.zeros(shape)
    self._sq_dev = np.zeros(shape)
    self.games_played = 0

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(len(m) for m in self.members)

  @property
  def meta_games(self) -> list[np.ndarray]:
    """One `[N_0, ..., N_{P-1}]` estimated payoff tensor per player (copies)."""
    return [t.copy() for t in self._mean]

  @property
  def stderr(self) -> list[np.ndarray]:
    """Per player, `[N_0, ..., N_{P-1}]` standard errors of `meta_games`."""
    return list(self._stderr())

  @property
  def games(self) -> np.ndarray:
    """`[N_0, ..., N_{P-1}]` games played per entry."""
    return self._games.copy()

  def _stderr(self) -> np.ndarray:
    n = np.maximum(self._games, 1)
    var = self._sq_dev / np.maximum(n - 1, 1)
    return np.sqrt(var / n)

  def restore(
    self,
    members: Sequence[Sequence[BatchedPolicy]],
    meta_games: Sequence[np.ndarray],
    stderr: Sequence[np.ndarray],
    games: np.ndarray,
  ) -> None:
    """Sets the table from saved `meta_games`, `stderr` and `games` (resume),
    playing no games; later `add`s extend it as usual."""
    shape = tuple(len(m) for m in members)
    games = np.asarray(games, dtype=np.int64)
    mean = np.asarray(meta_games, dtype=np.float64)
    err = np.asarray(stderr, dtype=np.float64)
    if games.shape != shape or mean.shape != (self.num_players,) + shape or err.shape != mean.shape:
      raise ValueError(
        f"saved table shapes {mean.shape}, {err.shape}, {games.shape}"
        f" do not match populations of sizes {shape}."
      )
    self.members = [list(m) for m in members]
    self._games, self._mean = games, mean
    # stderr^2 = sq_dev / (n - 1) / n.
    self._sq_dev = err**2 * games * np.maximum(games - 1, 1)

  def add(
    self,
    new_members: Sequence[Sequence[BatchedPolicy] | BatchedPolicy | None],
    seed: int | None = None,
    weights: Sequence[np.ndarray] | None = None,
  ) -> None:
    """Appends members and estimates the new entries.

    How many games an entry needs depends on what the meta-solver does with
    it. Player p's value of member i against the others' meta-strategy,
    `sum_k w(k) M_p[i, k]` over the others' profiles `k` with weights
    `w(k) = prod_{q != p} sigma_q[k_q]`, has variance `sum_k w(k)^2 s_k^2 / n_k`
    (`s_k` the entry's standard deviation, `n_k` its games). Playing
    `n_k = w(k) (s_k / target)^2` games per entry brings it to `target^2
    sum_k w(k) = target^2` (near the fewest games: the Lagrangian optimum has
    `n_k` proportional to `w(k) s_k`). So an entry is played until
    `w(k) stderr_k^2 <= target^2`, with `w` the largest of its players'
    weights. A new member, about to join the support, weighs the share it
    would get there, `1 / (support + 1)`; every entry first plays its share
    of `min_games` (`SamplingConfig`), at least `floor_games`; old entries
    whose weight rose since they were played are topped up.

    Args:
      new_members: per player, a list of batched policies (or one policy, or
        None for no new member of that player).
      seed: seeds the games.
      weights: per player, the meta-strategy over the members before this
        add (`[N_p]`), or None (or empty): every entry to the full target.
    """
    if len(new_members) != self.num_players:
      raise ValueError(
        f"{self.game} has {self.num_players} players; got {len(new_members)} lists of new members."
      )
    old = self.shape
    for p, new in enumerate(new_members):
      if new is None:
        continue
      self.members[p].extend([new] if isinstance(new, BatchedPolicy) else new)
    shape = self.shape
    grown = [
      np.zeros(shape, np.int64),
      np.zeros((self.num_players,) + shape),
      np.zeros((self.num_players,) + shape),
    ]
    block = tuple(slice(0, o) for o in old)
    grown[0][block] = self._games
    grown[1][(slice(None),) + block] = self._mean
    grown[2][(slice(None),) + block] = self._sq_dev
    self._games, self._mean, self._sq_dev = grown
    if self._games.size:
      seed_seq = np.random.SeedSequence(seed)
      self._estimate(
        self._importance(weights, old), tuple(int(x) for x in seed_seq.generate_state(2))
      )

  def _importance(self, weights: Sequence[np.ndarray] | None, old: tuple[int, ...]) -> np.ndarray:
    """`[N_0, ..., N_{P-1}]` weights `w(k)` of the entries (see `add`)."""
    shape = self.shape
    if not weights:
      return np.ones(shape)
    per_player = []
    for q, n in enumerate(shape):
      sigma = np.asarray(weights[q], dtype=np.float64)
      if len(sigma) != old[q]:
        raise ValueError(
          f"weights of player {q} have {len(sigma)} entries; its"
          f" population had {old[q]} members before this add."
        )
      w = np.full(n, 1.0 / (np.count_nonzero(sigma) + 1))
      w[: old[q]] = sigma / sigma.sum()
      per_player.append(w)
    importance = np.zeros(shape)
    for p in range(self.num_players):
      w = np.ones(shape)
      for q in range(self.num_players):
        if q != p:
          w = w * per_player[q].reshape([-1 if d == q else 1 for d in range(self.num_players)])
      importance = np.maximum(importance, w)
    return importance

  def _estimate(self, importance: np.ndarray, seed: tuple[int, ...]) -> None:
    """Plays games until every entry meets the sampling config (rounds of
    tasks, each round's games split into seeded tasks run by `player`)."""
    cfg, target2 = self.config, self.target_stderr**2
    seats = [Population(m, np.ones(len(m))) for m in self.members]
    for round_index in itertools.count():
      games = self._games
      variance = self._sq_dev.max(axis=0) / np.maximum(games - 1, 1)
      # Games the entry's sample variance says it needs, in whole batches.
      need = np.ceil(importance * variance / max(target2, 1e-300))
      extra = np.maximum(
        cfg.batch_games, np.ceil((need - games) / cfg.batch_games) * cfg.batch_games
      )
      minimum = np.maximum(cfg.floor_games, np.ceil(cfg.min_games * importance))
      wanted = np.where(games < minimum, minimum, np.where(need > games, games + extra, games))
      counts = np.minimum(wanted, cfg.max_games).astype(np.int64) - games
      profiles = np.argwhere(counts > 0)  # [E, P]
      if not len(profiles):
        break
      counts = counts[tuple(profiles.T)]
      members = np.repeat(profiles, counts, axis=0).T  # [P, games]
      tasks = split_tasks(members.shape[1], seed + (round_index,), cfg.task_games, members)
      returns = np.concatenate(self.player.play(self.game, seats, tasks))
      self.games_played += len(returns)
      starts = np.concatenate([[0], np.cumsum(counts)])
      for j, profile in enumerate(map(tuple, profiles)):
        self._merge(profile, returns[starts[j] : starts[j + 1]])
    logging.debug("simulated payoff entries: %d games in all so far", self.games_played)

  def _merge(self, profile: tuple[int, ...], returns: np.ndarray) -> None:
    """Adds `[n, P]` returns to an entry's running mean and squared deviation."""
    n_a, n_b = self._games[profile], len(returns)
    index = (slice(None),) + profile
    mean_b = returns.mean(axis=0)
    sq_b = ((returns - mean_b) ** 2).sum(axis=0)
    delta = mean_b - self._mean[index]
    total = n_a + n_b
    self._mean[index] += delta * n_b / total
    self._sq_dev[index] += sq_b + delta**2 * n_a * n_b / total
    self._games[profile] = total
