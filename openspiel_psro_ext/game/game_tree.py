"""A pyspiel game compiled once into flat numpy arrays.

Small imperfect-information games are tiny as trees (Kuhn poker has 58
histories, Leduc poker 9,457), so every exact computation PSRO needs -- payoff
tables, best responses, NashConv -- can be done with a handful of vectorised
array operations over the whole tree instead of walking `pyspiel` states.

Histories are numbered in depth-first pre-order (the root is 0, a parent always
comes before its children). Per history `h` we store:

  parent[h], action[h]   the parent history and the action that led to `h`
  player[h]              who acts at `h`: a player id, or pyspiel's CHANCE (-1)
                         / TERMINAL (-4) codes
  infostate[h]           the acting player's information-state index, or -1
  chance_reach[h]        product of chance probabilities on the path to `h`
  child[h, a]            the history reached by action `a` (-1 if illegal)
  chance_probs[h, a]     chance's distribution at chance nodes (0 elsewhere)
  returns[h, p]          player p's return at terminals (0 elsewhere)

Sequence form. With perfect recall, player p's own actions on the path to any
history are a fixed sequence of (information state, action) pairs, the same for
every history of an information state. Number p's sequences `s = I * A + a`
(`A` = number of distinct actions) and add the empty sequence as `S_p = I_p * A`.
For each information state we store the sequence that leads to it
(`parent_sequence`), and for each terminal `z` the last sequence of each player
(`terminal_sequence[p, z]`). A behaviour policy `pi_p` (an `[I_p, A]` matrix)
then has the realization plan

    x_p[I * A + a] = x_p[parent_sequence[I]] * pi_p[I, a],   x_p[S_p] = 1,

and the probability of reaching terminal `z` is
`chance_reach[z] * prod_p x_p[terminal_sequence[p, z]]`: a product of one
gathered number per player. Everything else in this package builds on that.

Compiling. One depth-first walk visits each history once and records only what
pyspiel alone can tell (who acts, the branches, returns, chance probabilities,
one information-state string per decision); the sequences, chance reach and
level order are then derived with numpy, one depth at a time. Deciding whether
a game compiles must be cheap. First, random playouts (`_sampled_size`,
Knuth's estimate) refuse within milliseconds a game they show to have more
histories than the limit, or to take far more CPU time than the limit to
count. Otherwise a walk still going after a fifth of its CPU-time limit counts
the rest of the game instead (one state per level of the current path in
memory), and the game is refused -- `GameTooLargeError`, pointing to the
simulated mode -- unless it all fits. `check_compilable` counts without
compiling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import os
import resource
import sys
import time
from collections.abc import Iterator
from typing import TypeAlias

import numpy as np
import pyspiel

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import tree_cache

_CHANCE = int(pyspiel.PlayerId.CHANCE)
_TERMINAL = int(pyspiel.PlayerId.TERMINAL)

DEFAULT_MAX_HISTORIES = 2_000_000
# A game still being counted after this long is refused rather than
# compiled, so the decision (with loading the game and the last checked
# stretch) comes within 5 s; counting `DEFAULT_MAX_HISTORIES` fits well inside.
# Limits are on the process's CPU time, so that other work on the machine does
# not turn a game that compiles into one that is refused.
DEFAULT_TIME_LIMIT_S = 4.5
# Memory a count may add before the game is refused: deep paths of heavy
# states (chess keeps its whole history in each) grow it; with the interpreter
# and imports a refusal then stays under 1 GB.
DEFAULT_MEMORY_LIMIT_MB = 512
# How the command line names the way on for games that do not compile.
SIMULATED_MODE_FLAG = "--evaluation=simulated"
# Share of the time limit spent recording before a compilation that has not
# finished checks, by counting, that the rest of the game fits.
_RECORDING_SHARE = 0.2


class NotCompilableError(UsageError):
  """The game cannot be compiled into a `GameTree`: the message says why in
  one line (the simulated mode may still play it: `psro.views` decides)."""


class GameTooLargeError(NotCompilableError):
  """The game has more histories than the compilation limits allow."""


class InconsistentGameError(UsageError):
  """pyspiel's game contradicts its own declaration (no mode can play it)."""


def check_legal_actions(game: pyspiel.Game, largest: int) -> None:
  """Refuses a legal action outside `[0, num_distinct_actions())`: every
  policy here (tabular rows, network heads) has one entry per distinct action.

  Raises:
    InconsistentGameError: one line naming the game and the action.
  """
  if largest >= game.num_distinct_actions():
    raise InconsistentGameError(
      f"{game} gives legal action {largest} while its num_distinct_actions() is"
      f" {game.num_distinct_actions()}: pyspiel's game contradicts its own declaration,"
      " and policies have one output per distinct action. Fix the game's parameters or"
      " its implementation."
    )


@dataclasses.dataclass
class _Replay:
  """Rebuilds the `pyspiel.State`s of compiled histories from their paths.

  Holding one state per information state costs memory (tens of kilobytes
  each in chess-like games) that most runs never use, so they are rebuilt on
  demand instead. Picklable, so trees still travel to Ray workers.
  """

  game: pyspiel.Game
  parent: np.ndarray
  action: np.ndarray

  def __call__(self, histories: np.ndarray) -> list[pyspiel.State]:
    """The states of `[N]` histories, sharing the work on common ancestors."""
    needed = np.zeros(len(self.parent), dtype=bool)
    frontier = np.unique(histories)
    while frontier.size:
      needed[frontier] = True
      frontier = self.parent[frontier]
      frontier = np.unique(frontier[frontier >= 0])
      frontier = frontier[~needed[frontier]]
    # Pre-order numbering: a parent is always built before its children.
    states: dict[int, pyspiel.State] = {}
    for h in np.flatnonzero(needed).tolist():
      par = int(self.parent[h])
      states[h] = (
        self.game.new_initial_state() if par < 0 else states[par].child(int(self.action[h]))
      )
    return [states[h] for h in histories.tolist()]


@dataclasses.dataclass
class InfostateTable:
  """One player's information states, shapes `[I]` or `[I, ...]`.

  Attributes:
    player: whose information states these are.
    strings: `information_state_string` of each information state.
    index: the inverse map, string -> row.
    legal_mask: `[I, A]` bool, legal actions.
    parent_sequence: `[I]` the player's sequence leading to each information
      state (`num_sequences` is the empty sequence).
    level: `[I]` the number of the player's own actions before the state;
      information states are numbered by level, so it is non-decreasing.
    levels: information-state indices grouped by level, shallowest first.
    level_slices: the same groups as slices of the information-state axis.
    histories: `[I]` the first history (in depth-first order) of each
      information state.
  """

  player: int
  strings: list[str]
  index: dict[str, int]
  legal_mask: np.ndarray
  parent_sequence: np.ndarray
  level: np.ndarray
  levels: list[np.ndarray]
  level_slices: list[slice]
  histories: np.ndarray
  _replay: _Replay = dataclasses.field(repr=False)

  @property
  def num_infostates(self) -> int:
    return len(self.strings)

  @property
  def num_sequences(self) -> int:
    """Non-empty sequences; index `num_sequences` is the empty sequence."""
    return self.legal_mask.size

  @functools.cached_property
  def states(self) -> list[pyspiel.State]:
    """One `pyspiel.State` per information state (the one at `histories`).

    Used to query arbitrary `open_spiel.python.policy.Policy` objects; built
    on first use.
    """
    return self._replay(self.histories)

  @functools.cached_property
  def tensors(self) -> np.ndarray | None:
    """`[I, T]` float32 information-state tensors, None if the game has none.

    Read on first use (only the RL oracles need them), from `states`.
    """
    if not self.states:
      return None
    try:
      first = self.states[0].information_state_tensor(self.player)
    except (pyspiel.SpielError, NotImplementedError):
      return None
    tensors = np.empty((len(self.states), len(first)), dtype=np.float32)
    for row, state in enumerate(self.states):
      tensors[row] = state.information_state_tensor(self.player)
    return tensors

  @functools.cached_property
  def illegal_penalty(self) -> np.ndarray:
    """`[I, A]`: 0 on legal actions, -inf on illegal ones (for maxima)."""
    return np.where(self.legal_mask, 0.0, -np.inf)

  def uniform_policy(self) -> np.ndarray:
    """`[I, A]` uniform distribution over legal actions."""
    mask = self.legal_mask.astype(np.float64)
    return mask / mask.sum(axis=1, keepdims=True)


@dataclasses.dataclass
class GameTree:
  """A finite sequential perfect-recall game as flat arrays (see module doc)."""

  game: pyspiel.Game
  num_players: int
  num_actions: int
  parent: np.ndarray
  action: np.ndarray
  player: np.ndarray
  depth: np.ndarray
  infostate: np.ndarray
  chance_reach: np.ndarray
  child: np.ndarray
  chance_probs: np.ndarray
  returns: np.ndarray
  infostates: list[InfostateTable]
  terminals: np.ndarray
  terminal_sequence: np.ndarray

  @property
  def num_histories(self) -> int:
    return len(self.parent)

  @property
  def num_terminals(self) -> int:
    return len(self.terminals)

  @functools.cached_property
  def terminal_chance_reach(self) -> np.ndarray:
    """`[Z]` chance's contribution to the reach of each terminal."""
    return self.chance_reach[self.terminals]

  @functools.cached_property
  def terminal_returns(self) -> np.ndarray:
    """`[Z, P]` returns at each terminal."""
    return self.returns[self.terminals]

  def to_arrays(self) -> dict[str, np.ndarray]:
    """The tree as named arrays, which `from_arrays` turns back into it (the
    disk cache's entry, `tree_cache`): plain numbers and strings only."""
    arrays = {
      "parent": self.parent,
      "action": self.action,
      "player": self.player,
      "depth": self.depth,
      "infostate": self.infostate,
      "chance_reach": self.chance_reach,
      "child": self.child,
      "chance_probs": self.chance_probs,
      "returns": self.returns,
      "terminals": self.terminals,
      "terminal_sequence": self.terminal_sequence,
      "num_actions": np.asarray(self.num_actions),
    }
    for table in self.infostates:
      prefix = f"player{table.player}_"
      arrays[prefix + "strings"] = np.asarray(table.strings, dtype=np.str_)
      arrays[prefix + "legal_mask"] = table.legal_mask
      arrays[prefix + "parent_sequence"] = table.parent_sequence
      arrays[prefix + "level"] = table.level
      arrays[prefix + "histories"] = table.histories
      arrays[prefix + "level_bounds"] = np.asarray(
        [sl.start for sl in table.level_slices] + [table.level_slices[-1].stop], dtype=np.int64
      )
    return arrays

  @classmethod
  def from_arrays(cls, game: pyspiel.Game, arrays: dict[str, np.ndarray]) -> GameTree:
    """The tree `to_arrays` wrote, for `game` (the game it was compiled from)."""
    replay = _Replay(game, arrays["parent"], arrays["action"])
    tables = []
    for p in range(game.num_players()):
      prefix = f"player{p}_"
      strings = arrays[prefix + "strings"].tolist()
      bounds = arrays[prefix + "level_bounds"].tolist()
      level_slices = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
      tables.append(
        InfostateTable(
          player=p,
          strings=strings,
          index={key: i for i, key in enumerate(strings)},
          legal_mask=arrays[prefix + "legal_mask"],
          parent_sequence=arrays[prefix + "parent_sequence"],
          level=arrays[prefix + "level"],
          levels=[np.arange(sl.start, sl.stop) for sl in level_slices],
          level_slices=level_slices,
          histories=arrays[prefix + "histories"],
          _replay=replay,
        )
      )
    return cls(
      game=game,
      num_players=game.num_players(),
      num_actions=int(arrays["num_actions"]),
      parent=arrays["parent"],
      action=arrays["action"],
      player=arrays["player"],
      depth=arrays["depth"],
      infostate=arrays["infostate"],
      chance_reach=arrays["chance_reach"],
      child=arrays["child"],
      chance_probs=arrays["chance_probs"],
      returns=arrays["returns"],
      infostates=tables,
      terminals=arrays["terminals"],
      terminal_sequence=arrays["terminal_sequence"],
    )

  def uniform_policy(self) -> list[np.ndarray]:
    """Per-player `[I_p, A]` uniform random behaviour policies."""
    return [table.uniform_policy() for table in self.infostates]

  def realization_plans(self, player: int, policies: np.ndarray) -> np.ndarray:
    """Realization plans of a batch of behaviour policies.

    Args:
      player: whose policies these are.
      policies: `[I_p, A]` or `[N, I_p, A]` action probabilities.

    Returns:
      `[S_p + 1]` or `[N, S_p + 1]`: the probability that the player plays
      each of its sequences; the last entry is the empty sequence (always 1).
    """
    table = self.infostates[player]
    policies = np.asarray(policies, dtype=np.float64)
    single = policies.ndim == 2
    if single:
      policies = policies[None]
    n = policies.shape[0]
    num_seq = table.num_sequences
    plan = np.zeros((n, num_seq + 1))
    plan[:, num_seq] = 1.0
    per_state = plan[:, :num_seq].reshape(n, table.num_infostates, self.num_actions)
    for states in table.level_slices:
      above = plan[:, table.parent_sequence[states]]
      per_state[:, states, :] = above[:, :, None] * policies[:, states, :]
    return plan[0] if single else plan

  def terminal_reach(self, player: int, policies: np.ndarray) -> np.ndarray:
    """Player's own contribution to the reach of each terminal.

    Args:
      player: whose policies these are.
      policies: `[I_p, A]` or `[N, I_p, A]` action probabilities.

    Returns:
      `[Z]` or `[N, Z]`.
    """
    plan = self.realization_plans(player, policies)
    return plan[..., self.terminal_sequence[player]]


# -- Deciding whether a game compiles ------------------------------------------


def _rss_bytes() -> int:
  """The process's resident memory now (its peak where /proc is missing)."""
  try:
    with open("/proc/self/statm", "rb") as f:
      return int(f.read().split()[1]) * _PAGE_SIZE
  except OSError:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Budget:
  """The CPU-time and memory limits of one count or compilation.

  Reading the clocks costs as much as visiting a history, so callers ask
  `spent` every 256 histories.
  """

  def __init__(self, time_limit_s: float | None, memory_limit_mb: float | None):
    self.start = time.process_time()
    self.time_limit_s = time_limit_s
    self.memory_limit_mb = memory_limit_mb
    self._rss_start: int | None = None  # Read at the first check: small games never check.
    self.stopped_by = ""  # Set by whoever stops because the budget is spent.

  def elapsed_s(self) -> float:
    return time.process_time() - self.start

  def spent(self, share: float = 1.0) -> str:
    """What of `share` of the budget is used up: "time", "memory" or ""."""
    if self.time_limit_s is not None and self.elapsed_s() > share * self.time_limit_s:
      return "time"
    if self.memory_limit_mb is not None:
      rss = _rss_bytes()
      if self._rss_start is None:
        self._rss_start = rss
      if rss - self._rss_start > self.memory_limit_mb * 2**20:
        return "memory"
    return ""


@dataclasses.dataclass(frozen=True)
class CompileEstimate:
  """What a bounded count of a game's histories found.

  Attributes:
    game: the game, as a string.
    num_histories: histories counted: the exact total when `complete`, else a
      lower bound.
    complete: whether the whole tree was counted.
    stopped_by: why an incomplete count stopped: "histories" (past
      `max_histories`), "time", "memory", or, before any count, "size"
      (random playouts show more than `max_histories`: `_sampled_size`)
      or "cost" (they show counting would take over `_TIME_MARGIN` times
      `time_limit_s`); "" when complete.
    elapsed_s: CPU seconds the count took.
    max_histories: the history limit it ran under.
    time_limit_s: the CPU-time limit it ran under (None: none).
    memory_limit_mb: the memory it could add (None: no limit).
  """

  game: str
  num_histories: int
  complete: bool
  stopped_by: str
  elapsed_s: float
  max_histories: int
  time_limit_s: float | None
  memory_limit_mb: float | None

  @property
  def compiles(self) -> bool:
    return self.complete and self.num_histories <= self.max_histories

  def refusal(self) -> str:
    """The one-line reason the game is refused ("" when it compiles)."""
    if self.compiles:
      return ""
    if self.stopped_by == "time":
      size = (
        f"has at least {self.num_histories:,} histories (counted in"
        f" {self.time_limit_s:g} s of CPU time without reaching the end)"
      )
    elif self.stopped_by == "memory":
      size = (
        f"has at least {self.num_histories:,} histories (counting them"
        f" took more than {self.memory_limit_mb:g} MB of memory)"
      )
    elif self.stopped_by == "size":
      size = (
        f"has more than {self.max_histories:,} histories (Knuth's estimate"
        f" from {_SIZE_PROBES} random playouts)"
      )
    elif self.stopped_by == "cost":
      size = (
        f"has too many histories to count in {self.time_limit_s:g} s of CPU"
        f" time (Knuth's estimate from {_SIZE_PROBES} random playouts: over"
        f" {_TIME_MARGIN * (self.time_limit_s or 0.0):g} s)"
      )
    else:
      size = (
        f"has more than {self.max_histories:,} histories (counted"
        f" {self.num_histories:,} in {self.elapsed_s:.1f} s before stopping)"
      )
    way_on = f"run it in the simulated mode ({SIMULATED_MODE_FLAG})"
    if self.stopped_by not in ("time", "memory", "size", "cost"):
      way_on += ", or raise max_histories if it fits in memory"
    return f"{self.game} {size}, too many to compile; {way_on}."

  @classmethod
  def stopped(
    cls,
    game: pyspiel.Game,
    count: int,
    complete: bool,
    max_histories: int,
    budget: _Budget,
  ) -> CompileEstimate:
    return cls(
      game=str(game),
      num_histories=count,
      complete=complete,
      stopped_by="" if complete else (budget.stopped_by or "histories"),
      elapsed_s=budget.elapsed_s(),
      max_histories=max_histories,
      time_limit_s=budget.time_limit_s,
      memory_limit_mb=budget.memory_limit_mb,
    )


def _branches(state: pyspiel.State) -> list[int]:
  """The actions (chance outcomes at chance nodes) leaving a state; [] at terminals."""
  player = state.current_player()
  if player == _CHANCE:
    return [outcome for outcome, _ in state.chance_outcomes()]
  if player == _TERMINAL:
    return []
  return state.legal_actions()


# Knuth's estimate (Knuth 1975): play a random path from the root, a
# player's move uniform among its legal actions and chance's by its
# probabilities; with q_0, q_1, ... the probabilities of the moves taken,
# W_d = 1 / (q_0 q_1 ... q_{d-1}) estimates the number of histories at depth
# d (each is reached with probability the product of its moves' q's), and
# X = W_0 + W_1 + ... (W_0 = 1) the number of histories, without bias.
# (Chance by its probabilities, not uniform: a game that goes on with
# probability 7/8 each round, e.g. python_iterated_prisoners_dilemma, is
# then played as long as it is, and shown too large.) Weighting each W_d by
# the CPU time the count spends on the path's history of depth d (making it,
# listing its branches) gives, the same way, an unbiased estimate C of the
# CPU time of counting them all.
#
# One playout can be far off (a game's few long paths may hold most of its
# histories), but X and C are nonnegative: capped at `_SIZE_CAP` times the
# limit and divided by that cap, they lie in [0, 1] with a mean of at most
# the true size (or time) over the cap. Hoeffding's bound for the mean of n
# such variables, P(mean >= q) <= exp(-n KL(q || p)) for q > p their true
# mean (KL: the Bernoulli relative entropy), says when `_SIZE_PROBES`
# playouts show a game above the limit: one within it is refused with
# probability under `_SIZE_ERROR`, and a fixed seed makes the answer
# repeatable. The caps keep playouts short (chess is judged after a few
# moves, nim or tiny_bridge_4p within milliseconds, where a count takes
# seconds); the playouts stop once the answer is settled either way, or after
# `_SIZE_TIME_S` of CPU time, and an unsettled game is left to the count.
_SIZE_PROBES = 256
_SIZE_ERROR = 1e-6
_SIZE_CAP = 20  # times the limit
# Refuse on time only where counting would take over this many times the
# limit: the playouts' clock readings are noisier than the count's.
_TIME_MARGIN = 2
_SIZE_TIME_S = 0.5


def _bernoulli_kl(q: float, p: float) -> float:
  """KL(q || p) between Bernoulli distributions, for 0 < p < 1."""
  kl = q * math.log(q / p) if q > 0 else 0.0
  if q < 1:
    kl += (1 - q) * math.log((1 - q) / (1 - p))
  return kl


def _shown_above(p: float) -> float:
  """The least average q of `_SIZE_PROBES` variables in [0, 1] that shows
  their mean to be above p (Hoeffding: n KL(q || p) >= ln(1 / error))."""
  need = math.log(1 / _SIZE_ERROR) / _SIZE_PROBES
  lo, hi = p, 1.0
  for _ in range(50):  # bisection: KL(q || p) grows with q above p
    mid = (lo + hi) / 2
    lo, hi = (lo, mid) if _bernoulli_kl(mid, p) >= need else (mid, hi)
  return hi


def _sampled_size(game: pyspiel.Game, max_histories: int, time_limit_s: float | None = None) -> str:
  """What random playouts show of `game` (see above): "size" (more than
  `max_histories` histories), "cost" (with a `time_limit_s`: counting them
  would take over `_TIME_MARGIN` times the limit), or "" (neither: the
  bounded count decides)."""
  clock = time.process_time
  tick = math.inf  # what two readings of the clock cost: taken off each timing
  for _ in range(8):
    begin = clock()
    tick = min(tick, clock() - begin)
  timed = time_limit_s is not None and time_limit_s > 0
  cap_x = _SIZE_CAP * max(max_histories, 1)
  cap_c = _SIZE_CAP * _TIME_MARGIN * (time_limit_s or 0.0)
  need = _shown_above(1 / _SIZE_CAP) * _SIZE_PROBES  # of the sums of capped estimates
  rng = np.random.default_rng(0)
  sum_x = sum_c = 0.0
  start = clock()
  for probe in range(_SIZE_PROBES):
    state = game.new_initial_state()
    begin = clock()
    branches = _branches(state)
    cost = max(0.0, clock() - begin - tick)
    total = weight = 1.0
    # A playout cut short at `_SIZE_TIME_S` only lowers the sums: still sound.
    while (
      branches and (total <= cap_x or (timed and cost <= cap_c)) and begin - start < _SIZE_TIME_S
    ):
      if state.current_player() == _CHANCE:
        probs = np.cumsum([prob for _, prob in state.chance_outcomes()])
        i = min(int(np.searchsorted(probs, rng.random() * probs[-1], side="right")), len(probs) - 1)
        weight *= probs[-1] / (probs[i] - (probs[i - 1] if i else 0.0))
      else:
        i = int(rng.integers(len(branches)))
        weight *= len(branches)
      action = branches[i]
      begin = clock()
      child = state.child(action)  # timed as the count makes its histories,
      branches = _branches(child)
      cost += weight * max(0.0, clock() - begin - tick)
      total += weight
      del child  # but played in place: some games' copies break a few moves
      state.apply_action(action)  # on (morpion_solitaire's crash)
    sum_x += min(total / cap_x, 1.0)
    if sum_x >= need:
      return "size"
    if timed:
      sum_c += min(cost / cap_c, 1.0)
      if sum_c >= need:
        return "cost"
    left = _SIZE_PROBES - probe - 1  # each adds at most 1 to either sum
    if max(sum_x, sum_c if timed else 0.0) + left < need or clock() - start > _SIZE_TIME_S:
      break
  return ""


def _count_histories(
  frames: list[tuple[pyspiel.State, list[int]]], limit: int, budget: _Budget
) -> tuple[int, bool]:
  """Counts the histories below `frames`, depth-first.

  Args:
    frames: (state, branches) pairs: the histories reached from each state by
      its listed branches, and their subtrees, are counted. The lists are
      consumed.
    limit: stop once the count passes this.
    budget: stop when it is spent.

  Children are made one at a time, so memory is one state per level of the
  current path, whatever the size of the game.

  Returns:
    (count, complete): `complete` is True when everything was counted.
  """
  count = 0
  # Frames of states made here are marked True: their last child is made in
  # place, as nothing else holds them. The callers' states are left alone.
  stack = [(state, branches, False) for state, branches in frames if branches]
  while stack:
    state, branches, owned = stack[-1]
    action = branches.pop()
    if branches:
      child = state.child(action)
    else:
      stack.pop()
      if owned:
        state.apply_action(action)
        child = state
      else:
        child = state.child(action)
    count += 1
    if count > limit:
      return count, False
    if not count & 255:
      budget.stopped_by = budget.spent()
      if budget.stopped_by:
        return count, False
    branches = _branches(child)
    if branches:
      stack.append((child, branches, True))
  return count, True


def first_decision(game: pyspiel.Game) -> pyspiel.State | None:
  """The first decision state on a seeded random path through chance (None
  if the path ends, or is still dealing after `_PROBE_STEPS` moves: some
  games, e.g. crazy_eights, deal for long)."""
  rng = np.random.default_rng(0)
  state = game.new_initial_state()
  for _ in range(_PROBE_STEPS):
    if state.is_terminal():
      return None
    if not state.is_chance_node():
      return state
    outcomes, probs = zip(*state.chance_outcomes())
    state.apply_action(outcomes[rng.choice(len(outcomes), p=probs)])
  return None


_PROBE_STEPS = 1000


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
  """Silences file descriptor 2, where pyspiel's C++ prints each error it
  raises, around a probe whose failure is an answer, not an error."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def _probe_information_state(game: pyspiel.Game) -> None:
  """Checks that a decision state of `game` has an information state.

  The type flag `provides_information_state_string` is not trusted alone: some
  games (e.g. `python_iterated_prisoners_dilemma`, once turn-based) leave it
  False yet return one, and OpenSpiel's own best response uses it. Where no
  decision is found (`first_decision`) the walk finds out.
  """
  state = first_decision(game)
  if state is None:
    return
  try:
    with quiet_stderr():
      state.information_state_string(state.current_player())
  except (pyspiel.SpielError, NotImplementedError, AttributeError) as e:
    raise NotCompilableError(
      f"{game} provides no information_state_string ({_first_line(e)}), so its"
      " information states (and perfect recall) cannot be identified."
    ) from e


def _first_line(error: BaseException) -> str:
  """The first line of an error's message (pyspiel's can run to hundreds)."""
  lines = str(error).strip().splitlines()
  return lines[0] if lines else type(error).__name__


# Simultaneous-move games already logged as converted (one line per game).
_CONVERTED: set[str] = set()


def turn_based(game: pyspiel.Game) -> pyspiel.Game:
  """`game`, or its turn-based form if it is a simultaneous-move game.

  Players then move one after another, each without seeing the others'
  moves of the same round (`pyspiel.convert_to_turn_based`): the same game
  for PSRO, which both views play (the log says so once per game).
  """
  if game.get_type().dynamics != pyspiel.GameType.Dynamics.SIMULTANEOUS:
    return game
  if str(game) not in _CONVERTED:
    _CONVERTED.add(str(game))
    logging.info("%s is a simultaneous-move game: PSRO plays its turn-based form.", game)
  return pyspiel.convert_to_turn_based(game)


# Games loaded by `load_game`, by the string asked for and by pyspiel's own.
_GAMES: dict[str, pyspiel.Game] = {}
_MAX_GAMES = 32


def load_game(game_string: str) -> pyspiel.Game:
  """`pyspiel.load_game`, once per game string in this process.

  One command asks for its game several times (checking the string, making
  the view, compiling), and loading is not always cheap: colored_trails
  reads its boards, 0.3 s each time. A game object is immutable (states are
  made from it, it never changes), so one serves every caller.
  """
  game = _GAMES.get(game_string)
  if game is None:
    game = pyspiel.load_game(game_string)
    if len(_GAMES) >= _MAX_GAMES:
      _GAMES.clear()
    _GAMES[game_string] = _GAMES[str(game)] = game
  return game


def _check_game(game: pyspiel.Game | str) -> pyspiel.Game:
  """Loads `game`, makes it turn-based, and refuses what cannot compile.

  Raises:
    NotCompilableError: the game is not sequential (after conversion), has
      sampled chance, or its states have no information-state string.
  """
  if isinstance(game, str):
    game = load_game(game)
  game = turn_based(game)
  game_type = game.get_type()
  if game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
    raise NotCompilableError(
      f"{game} has {game_type.dynamics} dynamics; only sequential games (and"
      " simultaneous ones, converted to turn-based) can be compiled."
    )
  if game_type.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
    raise NotCompilableError(
      f"{game} has sampled (not explicit) chance outcomes and cannot be"
      " compiled into an exact tree."
    )
  if not game_type.provides_information_state_string:
    _probe_information_state(game)
  return game


def check_compilable(
  game: pyspiel.Game | str,
  max_histories: int = DEFAULT_MAX_HISTORIES,
  time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
  memory_limit_mb: float | None = DEFAULT_MEMORY_LIMIT_MB,
) -> CompileEstimate:
  """Counts the histories of `game`, within limits, without compiling it.

  Cheap: nothing recorded per history, one state per level of the current
  path held at a time, and it stops at `max_histories + 1` histories, after
  `time_limit_s` CPU seconds, or once it has added `memory_limit_mb` of
  memory, whichever comes first. (`compile_game` decides the same way without
  a separate count: a caller about to compile can just call it and catch
  `GameTooLargeError`.)

  Raises:
    NotCompilableError: the game can never compile (see `_check_game`).
  """
  budget = _Budget(time_limit_s, memory_limit_mb)
  game = _check_game(game)
  with _pyspiel_failures(game):
    budget.stopped_by = _sampled_size(game, max_histories, time_limit_s)
    if budget.stopped_by:
      return CompileEstimate.stopped(game, 0, False, max_histories, budget)
    root = game.new_initial_state()
    below, complete = _count_histories([(root, _branches(root))], max_histories - 1, budget)
  return CompileEstimate.stopped(game, 1 + below, complete, max_histories, budget)


def compiles(
  game: pyspiel.Game | str,
  max_histories: int = DEFAULT_MAX_HISTORIES,
  time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
  memory_limit_mb: float | None = DEFAULT_MEMORY_LIMIT_MB,
) -> bool:
  """Whether `compile_game` would compile `game` (False if it never could)."""
  try:
    return check_compilable(game, max_histories, time_limit_s, memory_limit_mb).compiles
  except NotCompilableError:
    return False


@contextlib.contextmanager
def _pyspiel_failures(game: pyspiel.Game) -> Iterator[None]:
  """Turns pyspiel failing on one of `game`'s states, while it is walked, into
  a one-line `NotCompilableError` naming the game and pyspiel's message."""
  try:
    yield
  except (pyspiel.SpielError, RuntimeError, NotImplementedError) as e:
    raise NotCompilableError(
      f"pyspiel failed while walking {game}'s histories: {_first_line(e)}"
    ) from e


# -- Compiling ------------------------------------------------------------------


@dataclasses.dataclass
class _Walk:
  """The raw depth-first walk, histories in pre-order; shapes `[H]` unless said.

  Attributes:
    parent, action, player, depth: as in `GameTree`.
    infostate: the acting player's information state in order of first
      visit (renumbered by level later), -1 at chance and terminal histories.
    chance_edges: `[E, 3]` float rows (history, outcome, probability).
    terminals: `[Z]` terminal histories.
    terminal_returns: `[Z, P]` their returns.
    strings: per player, information-state strings in order of first visit.
    first_history: per player `[I_p]`, the first history of each information
      state.
    num_actions: the game's number of distinct actions `A`.
  """

  parent: np.ndarray
  action: np.ndarray
  player: np.ndarray
  depth: np.ndarray
  infostate: np.ndarray
  chance_edges: np.ndarray
  terminals: np.ndarray
  terminal_returns: np.ndarray
  strings: list[list[str]]
  first_history: list[np.ndarray]
  num_actions: int

  @property
  def num_histories(self) -> int:
    return len(self.parent)


def _walk(game: pyspiel.Game, max_histories: int, budget: _Budget) -> _Walk:
  """Visits every history once, depth-first, children in action order.

  The only per-history Python: one `current_player`, the branches, one
  `child` per edge and, at decisions, one information-state string looked up
  in a dict. Everything derived from these (sequences, reach, tables) is
  computed afterwards with numpy.

  Small games are walked within the first `_RECORDING_SHARE` of the budget's
  time. A walk still going then stops recording and counts what is left
  (`_count_histories`, faster and in bounded memory) within the rest
  of the budget; it goes on recording only if the total fits, so a game too
  large is refused within the budget and never held in memory.

  Raises:
    GameTooLargeError: more than `max_histories` histories, or more than can
      be counted within the budget.
  """

  def refuse(count: int) -> GameTooLargeError:
    return GameTooLargeError(
      CompileEstimate.stopped(game, count, False, max_histories, budget).refusal()
    )

  num_players = game.num_players()
  num_actions = game.num_distinct_actions()
  parent: list[int] = []
  action: list[int] = []
  player: list[int] = []
  depth: list[int] = []
  infostate: list[int] = []
  chance_edges: list[tuple[int, int, float]] = []
  terminals: list[int] = []
  terminal_returns: list[list[float]] = []
  index: list[dict[str, int]] = [{} for _ in range(num_players)]
  first_history: list[list[int]] = [[] for _ in range(num_players)]
  # A frame per ancestor of the current history with children still to visit:
  # (state, its history, those actions reversed, its depth). Children are
  # made one at a time, so memory is one state per level however wide the
  # game; the last child is made in place, as its parent is not needed again
  # (states are not kept: `_Replay` rebuilds those asked for).
  frames: list[tuple[pyspiel.State, int, list[int], int]] = []
  # Bound methods, looked up once: this loop runs once per history.
  add_parent, add_action, add_depth = parent.append, action.append, depth.append
  add_player, add_infostate = player.append, infostate.append
  add_frame, pop_frame = frames.append, frames.pop
  state, par, act, dep = game.new_initial_state(), -1, -1, 0
  h = 0
  counting = budget.time_limit_s is not None or budget.memory_limit_mb is not None
  while True:
    if h == max_histories:
      raise refuse(h + 1)
    add_parent(par)
    add_action(act)
    add_depth(dep)
    p = state.current_player()
    add_player(p)
    if p >= 0:
      seen = index[p]
      key = state.information_state_string(p)
      i = seen.get(key)
      if i is None:
        i = seen[key] = len(seen)
        first_history[p].append(h)
      add_infostate(i)
      actions = state.legal_actions()
      if not actions:
        raise NotCompilableError(
          f"{game} has a decision of player {p} with no legal action (history"
          f" {state.history()[:20]}...); pyspiel's game is inconsistent there."
        )
      if actions[-1] >= num_actions:  # pyspiel lists them in ascending order
        check_legal_actions(game, actions[-1])
      actions.reverse()
      add_frame((state, h, actions, dep))
    elif p == _TERMINAL:
      add_infostate(-1)
      terminals.append(h)
      terminal_returns.append(state.returns())
    elif p == _CHANCE:
      add_infostate(-1)
      outcomes = state.chance_outcomes()
      chance_edges.extend((h, a, prob) for a, prob in outcomes)
      add_frame((state, h, [a for a, _ in reversed(outcomes)], dep))
    else:
      raise NotCompilableError(
        f"{game} has a history with current player {p} (neither"
        " a player, chance nor terminal); it cannot be compiled."
      )
    h += 1
    if counting and not h & 255 and budget.spent(_RECORDING_SHARE):
      # The unvisited histories are the subtrees of the frames' remaining
      # actions: count them (on copies of the lists) before going on.
      rest, complete = _count_histories(
        [(f_state, list(f_actions)) for f_state, _, f_actions, _ in frames],
        max_histories - h,
        budget,
      )
      if not complete:
        raise refuse(h + rest)
      counting = False
    if not frames:
      break
    state, par, remaining, dep = frames[-1]
    act = remaining.pop()
    dep += 1
    if remaining:
      state = state.child(act)
    else:
      pop_frame()
      state.apply_action(act)
  return _Walk(
    parent=np.asarray(parent, dtype=np.int64),
    action=np.asarray(action, dtype=np.int64),
    player=np.asarray(player, dtype=np.int64),
    depth=np.asarray(depth, dtype=np.int64),
    infostate=np.asarray(infostate, dtype=np.int64),
    chance_edges=np.asarray(chance_edges, dtype=np.float64).reshape(-1, 3),
    terminals=np.asarray(terminals, dtype=np.int64),
    terminal_returns=np.asarray(terminal_returns, dtype=np.float64).reshape(-1, num_players),
    strings=[list(seen) for seen in index],
    first_history=[np.asarray(f, dtype=np.int64) for f in first_history],
    num_actions=game.num_distinct_actions(),
  )


def _depth_levels(depth: np.ndarray) -> list[np.ndarray]:
  """`[D]` groups of histories by depth, each a `[H_d]` index array."""
  order = np.argsort(depth, kind="stable")
  bounds = np.searchsorted(depth[order], np.arange(depth.max() + 2))
  return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _children_and_chance(walk: _Walk) -> tuple[np.ndarray, np.ndarray]:
  """`child` `[H, W]` and `chance_probs` `[H, W]` from the walk's edges.

  `W` is the number of distinct actions, or more when chance outcomes exceed it.
  """
  edges = walk.chance_edges
  chance_h = edges[:, 0].astype(np.int64)
  chance_a = edges[:, 1].astype(np.int64)
  width = max(walk.num_actions, int(chance_a.max()) + 1 if len(edges) else 0)
  child = np.full((walk.num_histories, width), -1, dtype=np.int64)
  child[walk.parent[1:], walk.action[1:]] = np.arange(1, walk.num_histories)
  chance_probs = np.zeros((walk.num_histories, width))
  chance_probs[chance_h, chance_a] = edges[:, 2]
  return child, chance_probs


def _propagate(
  walk: _Walk, levels: list[np.ndarray], chance_probs: np.ndarray, num_actions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per history, what accumulates along its path, one depth at a time.

  Args:
    walk: the walk's records.
    levels: histories grouped by depth (`_depth_levels`).
    chance_probs: `[H, W]` from `_children_and_chance`.
    num_actions: `A`.

  Returns:
    chance_reach: `[H]` product of chance probabilities on the path.
    last_sequence: `[P, H]` each player's last own (information state,
      action) on the path as `first_visit_index * A + action`, -1 if none.
    own_moves: `[P, H]` how many actions each player took on the path.
  """
  num_players = len(walk.strings)
  # What each edge adds, for all histories at once (the root's row is unused).
  par, act = np.maximum(walk.parent, 0), walk.action
  acting = walk.player[par]
  edge_prob = np.where(acting == _CHANCE, chance_probs[par, np.maximum(act, 0)], 1.0)
  edge_sequence = walk.infostate[par] * num_actions + act
  edge_mine = acting[None, :] == np.arange(num_players)[:, None]  # [P, H]
  chance_reach = np.ones(walk.num_histories)
  last_sequence = np.full((num_players, walk.num_histories), -1, dtype=np.int64)
  own_moves = np.zeros((num_players, walk.num_histories), dtype=np.int64)
  for histories in levels[1:]:
    par = walk.parent[histories]
    mine = edge_mine[:, histories]
    chance_reach[histories] = chance_reach[par] * edge_prob[histories]
    last_sequence[:, histories] = np.where(mine, edge_sequence[histories], last_sequence[:, par])
    own_moves[:, histories] = own_moves[:, par] + mine
  return chance_reach, last_sequence, own_moves


def _infostate_table(
  game: pyspiel.Game,
  walk: _Walk,
  player: int,
  child: np.ndarray,
  last_sequence: np.ndarray,
  own_moves: np.ndarray,
  num_actions: int,
  replay: _Replay,
) -> tuple[InfostateTable, np.ndarray]:
  """One player's `InfostateTable`, information states numbered by level.

  Args:
    game: the game, for error messages.
    walk: the walk's records.
    player: whose table this is.
    child: `[H, W]` from `_children_and_chance` (legal actions are the edges).
    last_sequence, own_moves: the player's `[H]` rows of `_propagate`.
    num_actions: `A`.
    replay: rebuilds the table's representative states when asked.

  Returns:
    (table, new_of_old): `new_of_old[i]` is the level-ordered index of the
    information state first visited `i`-th.

  Raises:
    NotCompilableError: the player does not have perfect recall.
  """
  first = walk.first_history[player]
  num_states = len(first)
  decisions = np.flatnonzero(walk.player == player)
  # Perfect recall: every history of an information state follows the same
  # last own sequence as its first history.
  expected = last_sequence[first][walk.infostate[decisions]]
  bad = np.flatnonzero(last_sequence[decisions] != expected)
  if bad.size:
    key = walk.strings[player][walk.infostate[decisions[bad[0]]]]
    raise NotCompilableError(
      f"{game} does not have perfect recall: information state {key[:80]!r} is"
      " reached through different sequences of the player's own actions."
    )
  # Stable renumbering by level: a level is then a contiguous slice, and
  # within a level states keep their depth-first order.
  level = own_moves[first]
  order = np.argsort(level, kind="stable")  # new index -> old index
  new_of_old = np.empty(num_states, dtype=np.int64)
  new_of_old[order] = np.arange(num_states)
  legal_mask = child[first[order], :num_actions] >= 0
  parent_sequence = _renumber_sequences(last_sequence[first[order]], new_of_old, num_actions)
  level = level[order]
  bounds = (
    np.searchsorted(level, np.arange(level.max() + 2))
    if num_states
    else np.zeros(1, dtype=np.int64)
  )
  level_slices = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
  strings = [walk.strings[player][o] for o in order]
  table = InfostateTable(
    player=player,
    strings=strings,
    index={key: i for i, key in enumerate(strings)},
    legal_mask=legal_mask,
    parent_sequence=parent_sequence,
    level=level,
    levels=[np.arange(sl.start, sl.stop) for sl in level_slices],
    level_slices=level_slices,
    histories=first[order],
    _replay=replay,
  )
  return table, new_of_old


def _renumber_sequences(
  sequences: np.ndarray, new_of_old: np.ndarray, num_actions: int
) -> np.ndarray:
  """First-visit sequences (`-1` = empty) to level-ordered ones (`S_p` = empty)."""
  empty = len(new_of_old) * num_actions
  known = sequences >= 0
  safe = np.where(known, sequences, 0)
  renumbered = new_of_old[safe // num_actions] * num_actions + safe % num_actions
  return np.where(known, renumbered, empty)


def compile_game(
  game: pyspiel.Game | str,
  max_histories: int = DEFAULT_MAX_HISTORIES,
  time_limit_s: float | None = DEFAULT_TIME_LIMIT_S,
  memory_limit_mb: float | None = DEFAULT_MEMORY_LIMIT_MB,
) -> GameTree:
  """Walks every history of `game` once and returns its `GameTree`.

  Steps: check the game (`_check_game`); walk the histories, refusing a game
  too large within the limits (`_walk`); derive edges
  (`_children_and_chance`) and per-path quantities (`_propagate`); build each
  player's level-ordered information states and sequence form
  (`_infostate_table`, `_renumber_sequences`).

  Args:
    game: a pyspiel game or game string (e.g. "leduc_poker").
    max_histories: refuse games with more histories than this.
    time_limit_s: refuse games whose histories cannot all be counted in this
      many CPU seconds (see `_walk`; a game that fits may take longer to
      compile); None: no time limit.
    memory_limit_mb: refuse games whose count adds more memory than this;
      None: no memory limit.

  Raises:
    GameTooLargeError: too many histories, or too many to count in time; the
      message names the simulated mode.
    NotCompilableError: the game is not sequential with explicit chance, has
      no information states, lacks perfect recall, or pyspiel fails on it.
  """
  budget = _Budget(time_limit_s, memory_limit_mb)
  game = _check_game(game)
  with _pyspiel_failures(game):
    budget.stopped_by = _sampled_size(game, max_histories, time_limit_s)
    if budget.stopped_by:
      raise GameTooLargeError(
        CompileEstimate.stopped(game, 0, False, max_histories, budget).refusal()
      )
    walk = _walk(game, max_histories, budget)
  num_players = game.num_players()
  num_actions = game.num_distinct_actions()
  child, chance_probs = _children_and_chance(walk)
  levels = _depth_levels(walk.depth)
  chance_reach, last_sequence, own_moves = _propagate(walk, levels, chance_probs, num_actions)
  infostate = walk.infostate.copy()
  tables, terminal_sequence = [], []
  replay = _Replay(game, walk.parent, walk.action)
  for p in range(num_players):
    table, new_of_old = _infostate_table(
      game, walk, p, child, last_sequence[p], own_moves[p], num_actions, replay
    )
    tables.append(table)
    decisions = walk.player == p
    infostate[decisions] = new_of_old[walk.infostate[decisions]]
    terminal_sequence.append(
      _renumber_sequences(last_sequence[p, walk.terminals], new_of_old, num_actions)
    )
  returns = np.zeros((walk.num_histories, num_players))
  returns[walk.terminals] = walk.terminal_returns
  return GameTree(
    game=game,
    num_players=num_players,
    num_actions=num_actions,
    parent=walk.parent,
    action=walk.action,
    player=walk.player,
    depth=walk.depth,
    infostate=infostate,
    chance_reach=chance_reach,
    child=child,
    chance_probs=chance_probs,
    returns=returns,
    infostates=tables,
    terminals=walk.terminals,
    terminal_sequence=np.asarray(terminal_sequence, dtype=np.int64).reshape(
      num_players, len(walk.terminals)
    ),
  )


@functools.cache
def _compiler_digest() -> str:
  """A digest of this module's source: part of the disk cache's key, so a
  changed compiler never reads trees an older one wrote."""
  with open(__file__, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()[:16]


@functools.lru_cache(maxsize=16)
def _cached_tree(game_string: str, max_histories: int) -> GameTree:
  """The tree from memory, else from the disk cache (`tree_cache`), else
  compiled (and stored there when compiling took long enough)."""
  game = load_game(game_string)
  key = tree_cache.key(game_string, _compiler_digest())
  arrays = tree_cache.load(key)
  if arrays is not None and len(arrays["parent"]) <= max_histories:
    logging.info("Loaded the compiled %s from the tree cache.", game_string)
    return GameTree.from_arrays(game, arrays)
  start = time.perf_counter()
  tree = compile_game(game, max_histories)
  tree_cache.store(key, tree.to_arrays(), time.perf_counter() - start)
  return tree


# Refusals by (game string, max_histories): asking again about a game too
# large answers at once instead of spending the time limit again.
_REFUSALS: dict[tuple[str, int], tuple[type[NotCompilableError], str]] = {}


GameLike: TypeAlias = pyspiel.Game | str | GameTree


def get_tree(game: GameLike, max_histories: int = DEFAULT_MAX_HISTORIES) -> GameTree:
  """Returns the compiled tree of `game`, compiling it once per game string.

  Raises:
    NotCompilableError: the game does not compile (`GameTooLargeError`: not
      under the default limits); remembered, so a second call raises at once.
  """
  if isinstance(game, GameTree):
    return game
  if isinstance(game, str):
    game = load_game(game)
  key = (str(game), max_histories)
  if key in _REFUSALS:
    kind, message = _REFUSALS[key]
    raise kind(message)
  try:
    return _cached_tree(*key)
  except NotCompilableError as e:
    _REFUSALS[key] = (type(e), str(e))
    raise
