"""Policies as matrices, and back to OpenSpiel `Policy` objects.

Over a compiled `GameTree`, player p's behaviour policy is an `[I_p, A]`
matrix: row `i` is the action distribution at the player's `i`-th information
state (zeros on illegal actions). A joint policy is a list of such matrices,
one per player. These helpers convert between that form and OpenSpiel's:

* any `open_spiel.python.policy.Policy` -> matrices (a `TabularPolicy` is read
  from its array; anything else is queried once per information state);
* matrices -> `TabularPolicy` (for OpenSpiel's own code), or a light
  `MatrixPolicy` that answers `action_probabilities` from the matrices.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from open_spiel.python import policy as policy_lib
import pyspiel

from openspiel_psro_ext.game_tree import GameTree

PolicyLike = policy_lib.Policy | Sequence[np.ndarray]

_ROW_SUM_TOLERANCE = 1e-6


# TabularPolicies of one game share `state_lookup` (copies share the dict), so
# the row indices of our information states are computed once per lookup.
# Entries hold the dict itself, so its id cannot be reused while cached.
_ROWS_CACHE: dict[tuple[int, int, int], tuple[dict, np.ndarray | None]] = {}
_ROWS_CACHE_SIZE = 64


def _tabular_rows(tree: GameTree, player: int,
                  policy: policy_lib.TabularPolicy) -> np.ndarray | None:
  """Rows of `policy.action_probability_array` for the player's states."""
  lookup = policy.state_lookup
  key = (id(tree), id(lookup), player)
  cached = _ROWS_CACHE.get(key)
  if cached is not None and cached[0] is lookup and len(cached[0]) == len(lookup):
    return cached[1]
  try:
    rows = np.asarray([lookup[s] for s in tree.infostates[player].strings],
                      dtype=np.int64)
  except KeyError:
    rows = None
  if len(_ROWS_CACHE) >= _ROWS_CACHE_SIZE:
    _ROWS_CACHE.pop(next(iter(_ROWS_CACHE)))
  _ROWS_CACHE[key] = (lookup, rows)
  return rows


def player_matrix(tree: GameTree, policy: policy_lib.Policy,
                  player: int, check: bool = True) -> np.ndarray:
  """`[I_p, A]` action probabilities of `policy` for `player`.

  Args:
    tree: the compiled game.
    policy: any OpenSpiel policy.
    player: whose part of the policy to read.
    check: validate the result (callers that validate a stack skip it).

  Raises:
    ValueError: the policy is not a distribution over legal actions somewhere.
  """
  table = tree.infostates[player]
  matrix = None
  if isinstance(policy, policy_lib.TabularPolicy):
    rows = _tabular_rows(tree, player, policy)
    if rows is not None:
      matrix = np.take(np.asarray(policy.action_probability_array, dtype=np.float64),
                       rows, axis=0)
  if matrix is None:
    matrix = np.zeros((table.num_infostates, tree.num_actions))
    for i, state in enumerate(table.states):
      try:
        probs = policy.action_probabilities(state, player)
      except (KeyError, IndexError) as e:
        raise ValueError(
            f"{type(policy).__name__} has no entry for player {player}'s"
            f" information state {table.strings[i]!r} of {tree.game}. Was it"
            " built for another game? (Simultaneous-move games are compiled"
            " turn-based: build the policy on pyspiel.convert_to_turn_based"
            " of the game.)") from e
      for action, prob in probs.items():
        matrix[i, action] = prob
  if check:
    check_matrices(tree, player, matrix)
  return matrix


def check_matrices(tree: GameTree, player: int, matrix: np.ndarray) -> None:
  """Raises ValueError unless `matrix` (`[I_p, A]` or `[N, I_p, A]`) holds
  distributions over legal actions."""
  table = tree.infostates[player]
  expected = (table.num_infostates, tree.num_actions)
  if matrix.shape[-2:] != expected:
    raise ValueError(f"player {player}'s policy matrix has shape {matrix.shape},"
                     f" expected {expected} ([infostates, actions]).")
  rows = matrix.reshape(-1, *expected)
  # Fast path: row sums and illegal mass as matrix-vector products (NaN and
  # inf propagate into the sums), one min for the sign; the search for the
  # offending information state runs only on failure.
  flat = rows.reshape(-1, expected[1])
  sums = flat @ np.ones(expected[1])
  illegal = (~table.legal_mask).ravel().astype(np.float64)
  ok = (np.isfinite(sums.sum())
        and flat.min(initial=0.0) >= -_ROW_SUM_TOLERANCE
        and np.abs(sums - 1.0).max(initial=0.0) <= _ROW_SUM_TOLERANCE
        and (rows.reshape(len(rows), -1) @ illegal).max(initial=0.0) <= _ROW_SUM_TOLERANCE)
  if ok:
    return
  if not np.all(np.isfinite(rows)) or np.any(rows < -_ROW_SUM_TOLERANCE):
    bad = np.flatnonzero((~np.isfinite(rows) | (rows < -_ROW_SUM_TOLERANCE)).any(axis=(0, 2)))
    raise ValueError(f"player {player}'s policy has negative or non-finite"
                     f" probabilities at information state {table.strings[bad[0]]!r}.")
  sums = rows.sum(axis=2)
  bad_rows = np.flatnonzero((np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE).any(axis=0))
  where = table.strings[bad_rows[0]] if bad_rows.size else "(illegal action)"
  raise ValueError(
      f"player {player}'s policy is not a probability distribution over legal"
      f" actions at information state {where!r}; normalise it over"
      " state.legal_actions().")


def population_array(tree: GameTree, player: int,
                     population: Sequence[PolicyLike | np.ndarray] | np.ndarray
                     ) -> np.ndarray:
  """`[N, I_p, A]` validated matrices of a population.

  Args:
    tree: the compiled game.
    player: whose population.
    population: OpenSpiel policies (only the player's part is read) or
      `[I_p, A]` matrices, or an `[N, I_p, A]` array.
  """
  if isinstance(population, np.ndarray):
    stacked = np.asarray(population, dtype=np.float64)
  else:
    table = tree.infostates[player]
    stacked = np.empty((len(population), table.num_infostates, tree.num_actions))
    for k, member in enumerate(population):
      stacked[k] = (player_matrix(tree, member, player, check=False)
                    if isinstance(member, policy_lib.Policy) else member)
  check_matrices(tree, player, stacked)
  return stacked


def policy_matrices(tree: GameTree, policy: PolicyLike) -> list[np.ndarray]:
  """Per-player `[I_p, A]` matrices of an OpenSpiel policy (or matrices)."""
  if isinstance(policy, policy_lib.Policy):
    return [player_matrix(tree, policy, p) for p in range(tree.num_players)]
  matrices = [np.asarray(m, dtype=np.float64) for m in policy]
  if len(matrices) != tree.num_players:
    raise ValueError(f"got {len(matrices)} policy matrices for a"
                     f" {tree.num_players}-player game; pass one per player.")
  for p, matrix in enumerate(matrices):
    check_matrices(tree, p, matrix)
  return matrices


def to_tabular_policy(tree: GameTree, matrices: Sequence[np.ndarray | None],
                      base: policy_lib.TabularPolicy | None = None
                      ) -> policy_lib.TabularPolicy:
  """A `TabularPolicy` holding the given per-player matrices.

  Args:
    tree: the compiled game.
    matrices: per-player `[I_p, A]` matrices; None leaves that player's rows as
      in `base` (uniform when `base` is None).
    base: a TabularPolicy to copy the layout and untouched rows from.
  """
  tabular = (base.__copy__() if base is not None
             else policy_lib.TabularPolicy(tree.game))
  for player, matrix in enumerate(matrices):
    if matrix is None:
      continue
    rows = _tabular_rows(tree, player, tabular)
    if rows is None:
      raise ValueError(f"the TabularPolicy of {tree.game} does not index player"
                       f" {player}'s information states by information-state"
                       " string.")
    tabular.action_probability_array[rows] = matrix
  return tabular


class MatrixPolicy(policy_lib.Policy):
  """An OpenSpiel `Policy` backed by per-player `[I_p, A]` matrices.

  Unlike a `TabularPolicy` it shares the matrices rather than copying a table
  for the whole game, so a population of thousands costs no more than its
  matrices.
  """

  def __init__(self, tree: GameTree, matrices: Sequence[np.ndarray]):
    super().__init__(tree.game, list(range(tree.num_players)))
    self.tree = tree
    self.matrices = [np.asarray(m, dtype=np.float64) for m in matrices]

  def action_probabilities(self, state: pyspiel.State,
                           player_id: int | None = None) -> dict[int, float]:
    player = state.current_player() if player_id is None else player_id
    table = self.tree.infostates[player]
    row = table.index.get(state.information_state_string(player))
    if row is None:
      raise ValueError(f"information state not in the compiled tree of"
                       f" {self.tree.game}: {state.information_state_string(player)!r}")
    probs = self.matrices[player][row]
    return {int(a): float(probs[a]) for a in np.flatnonzero(table.legal_mask[row])}
