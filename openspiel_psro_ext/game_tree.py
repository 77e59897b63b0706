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
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import pyspiel

_CHANCE = int(pyspiel.PlayerId.CHANCE)
_TERMINAL = int(pyspiel.PlayerId.TERMINAL)

DEFAULT_MAX_HISTORIES = 2_000_000


class GameTooLargeError(ValueError):
  """The game has more histories than the compilation limit allows."""


@dataclasses.dataclass
class InfostateTable:
  """One player's information states, shapes `[I]` or `[I, ...]`.

  Attributes:
    strings: `information_state_string` of each information state.
    index: the inverse map, string -> row.
    tensors: `[I, T]` float32 information-state tensors, or None when the game
      does not provide them.
    legal_mask: `[I, A]` bool, legal actions.
    parent_sequence: `[I]` the player's sequence leading to each information
      state (`num_sequences` is the empty sequence).
    level: `[I]` the number of the player's own actions before the state;
      information states are numbered by level, so it is non-decreasing.
    levels: information-state indices grouped by level, shallowest first.
    level_slices: the same groups as slices of the information-state axis.
    states: one representative `pyspiel.State` per information state, used to
      query arbitrary `open_spiel.python.policy.Policy` objects.
  """

  strings: list[str]
  index: dict[str, int]
  tensors: np.ndarray | None
  legal_mask: np.ndarray
  parent_sequence: np.ndarray
  level: np.ndarray
  levels: list[np.ndarray]
  level_slices: list[slice]
  states: list[pyspiel.State]

  @property
  def num_infostates(self) -> int:
    return len(self.strings)

  @property
  def num_sequences(self) -> int:
    """Non-empty sequences; index `num_sequences` is the empty sequence."""
    return self.legal_mask.size

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

  def uniform_policy(self) -> list[np.ndarray]:
    """Per-player `[I_p, A]` uniform random behaviour policies."""
    return [table.uniform_policy() for table in self.infostates]

  def realization_plans(self, player: int,
                        policies: np.ndarray) -> np.ndarray:
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
    per_state = plan[:, :num_seq].reshape(n, table.num_infostates,
                                          self.num_actions)
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


def _check_game(game: pyspiel.Game) -> pyspiel.Game:
  game_type = game.get_type()
  if game_type.dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS:
    logging.info("Converting simultaneous-move %s to turn-based.", game)
    game = pyspiel.convert_to_turn_based(game)
    game_type = game.get_type()
  if game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
    raise ValueError(
        f"{game} has {game_type.dynamics} dynamics; only sequential games (and"
        " simultaneous ones, converted to turn-based) can be compiled.")
  if not game_type.provides_information_state_string:
    raise ValueError(
        f"{game} provides no information_state_string, so its information"
        " states (and perfect recall) cannot be identified; use a game that"
        " does, or sampled evaluation (sims_per_entry).")
  if game_type.chance_mode == pyspiel.GameType.ChanceMode.SAMPLED_STOCHASTIC:
    raise ValueError(
        f"{game} has sampled (not explicit) chance outcomes and cannot be"
        " compiled into an exact tree; use sampled evaluation (sims_per_entry).")
  return game


def compile_game(game: pyspiel.Game | str,
                 max_histories: int = DEFAULT_MAX_HISTORIES) -> GameTree:
  """Walks every history of `game` once and returns its `GameTree`.

  Args:
    game: a pyspiel game or game string (e.g. "leduc_poker").
    max_histories: refuse games with more histories than this.

  Raises:
    GameTooLargeError: the game has more than `max_histories` histories.
    ValueError: the game is not sequential with explicit chance, or lacks
      perfect recall.
  """
  if isinstance(game, str):
    game = pyspiel.load_game(game)
  game = _check_game(game)
  num_players = game.num_players()
  num_actions = game.num_distinct_actions()
  provides_tensor = game.get_type().provides_information_state_tensor

  parent, action, player, depth, infostate = [], [], [], [], []
  chance_reach, returns_rows, child_edges, chance_edges = [], [], [], []
  tables = [dict(strings=[], index={}, tensors=[], legal=[], parent_seq=[],
                 level=[], states=[]) for _ in range(num_players)]
  terminals, terminal_seqs = [], []
  width = num_actions

  # Each stack entry: (state, parent id, action, depth, chance reach,
  # per-player last sequence, per-player level).
  empty_seq = [None] * num_players
  stack = [(game.new_initial_state(), -1, -1, 0, 1.0, tuple(empty_seq),
            (0,) * num_players)]
  while stack:
    state, par, act, dep, reach, seqs, levels = stack.pop()
    h = len(parent)
    if h >= max_histories:
      raise GameTooLargeError(
          f"{game} has more than {max_histories:,} histories (counted"
          f" {h:,} before stopping); raise max_histories if it fits in memory,"
          " or use sampled payoff evaluation (sims_per_entry).")
    parent.append(par)
    action.append(act)
    depth.append(dep)
    chance_reach.append(reach)
    if par >= 0:
      child_edges.append((par, act, h))
    if state.is_terminal():
      player.append(_TERMINAL)
      infostate.append(-1)
      returns_rows.append((h, state.returns()))
      terminals.append(h)
      terminal_seqs.append(seqs)
      continue
    if state.is_chance_node():
      player.append(_CHANCE)
      infostate.append(-1)
      outcomes = state.chance_outcomes()
      children = []
      for a, prob in outcomes:
        width = max(width, a + 1)
        chance_edges.append((h, a, prob))
        child_state = state.child(a)
        children.append((child_state, h, a, dep + 1, reach * prob, seqs,
                         levels))
      stack.extend(reversed(children))
      continue
    if state.is_simultaneous_node():
      raise ValueError(f"{game} has a simultaneous node after conversion.")
    p = state.current_player()
    player.append(p)
    table = tables[p]
    key = state.information_state_string(p)
    legal = state.legal_actions(p)
    idx = table["index"].get(key)
    if idx is None:
      idx = len(table["strings"])
      table["index"][key] = idx
      table["strings"].append(key)
      table["legal"].append(legal)
      table["parent_seq"].append(seqs[p])
      table["level"].append(levels[p])
      table["states"].append(state)
      if provides_tensor:
        table["tensors"].append(state.information_state_tensor(p))
    elif table["parent_seq"][idx] != seqs[p]:
      raise ValueError(
          f"{game} does not have perfect recall: information state {key!r} is"
          " reached through different sequences of the player's own actions.")
    infostate.append(idx)
    children = []
    next_levels = tuple(l + 1 if q == p else l for q, l in enumerate(levels))
    for a in legal:
      next_seqs = tuple((idx, a) if q == p else s for q, s in enumerate(seqs))
      children.append((state.child(a), h, a, dep + 1, reach, next_seqs,
                       next_levels))
    stack.extend(reversed(children))

  num_histories = len(parent)
  child = np.full((num_histories, width), -1, dtype=np.int64)
  if child_edges:
    edges = np.asarray(child_edges, dtype=np.int64)
    child[edges[:, 0], edges[:, 1]] = edges[:, 2]
  chance_probs = np.zeros((num_histories, width))
  for h, a, prob in chance_edges:
    chance_probs[h, a] = prob
  returns = np.zeros((num_histories, num_players))
  for h, r in returns_rows:
    returns[h] = r

  # Renumber each player's information states by level (stable), so that a
  # level is a contiguous slice: the level sweeps then use slices, not scatters.
  infostate = np.asarray(infostate, dtype=np.int64)
  player = np.asarray(player, dtype=np.int64)
  infostate_tables = []
  renumber = []
  for p, table in enumerate(tables):
    num_states = len(table["strings"])
    num_seq = num_states * num_actions
    level = np.asarray(table["level"], dtype=np.int64)
    order = np.argsort(level, kind="stable")  # new index -> old index
    new_of_old = np.empty(num_states, dtype=np.int64)
    new_of_old[order] = np.arange(num_states)
    renumber.append(new_of_old)
    infostate[player == p] = new_of_old[infostate[player == p]]
    legal_mask = np.zeros((num_states, num_actions), dtype=bool)
    for i, legal in enumerate(table["legal"]):
      legal_mask[new_of_old[i], legal] = True
    parent_seq = np.array(
        [num_seq if table["parent_seq"][o] is None else
         new_of_old[table["parent_seq"][o][0]] * num_actions + table["parent_seq"][o][1]
         for o in order], dtype=np.int64)
    level = level[order]
    bounds = np.searchsorted(level, np.arange(level.max() + 2)) if num_states else []
    level_slices = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    strings = [table["strings"][o] for o in order]
    tensors = (np.asarray(table["tensors"], dtype=np.float32)[order]
               if provides_tensor and num_states else None)
    infostate_tables.append(InfostateTable(
        strings=strings, index={key: i for i, key in enumerate(strings)},
        tensors=tensors, legal_mask=legal_mask, parent_sequence=parent_seq,
        level=level, levels=[np.arange(sl.start, sl.stop) for sl in level_slices],
        level_slices=level_slices, states=[table["states"][o] for o in order]))

  terminal_sequence = np.array(
      [[infostate_tables[p].num_sequences if seqs[p] is None
        else renumber[p][seqs[p][0]] * num_actions + seqs[p][1]
        for seqs in terminal_seqs] for p in range(num_players)],
      dtype=np.int64).reshape(num_players, len(terminals))

  return GameTree(
      game=game,
      num_players=num_players,
      num_actions=num_actions,
      parent=np.asarray(parent, dtype=np.int64),
      action=np.asarray(action, dtype=np.int64),
      player=player,
      depth=np.asarray(depth, dtype=np.int64),
      infostate=infostate,
      chance_reach=np.asarray(chance_reach),
      child=child,
      chance_probs=chance_probs,
      returns=returns,
      infostates=infostate_tables,
      terminals=np.asarray(terminals, dtype=np.int64),
      terminal_sequence=terminal_sequence)


@functools.lru_cache(maxsize=16)
def _cached_tree(game_string: str, max_histories: int) -> GameTree:
  return compile_game(pyspiel.load_game(game_string), max_histories)


GameLike = pyspiel.Game | str | GameTree


def get_tree(game: GameLike,
             max_histories: int = DEFAULT_MAX_HISTORIES) -> GameTree:
  """Returns the compiled tree of `game`, compiling it once per game string."""
  if isinstance(game, GameTree):
    return game
  if isinstance(game, str):
    game = pyspiel.load_game(game)
  return _cached_tree(str(game), max_histories)
