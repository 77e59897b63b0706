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


def _tabular_rows(tree: GameTree, player: int,
                  policy: policy_lib.TabularPolicy) -> np.ndarray | None:
  """Rows of `policy.action_probability_array` for the player's states."""
  lookup = policy.state_lookup
  try:
    rows = [lookup[s] for s in tree.infostates[player].strings]
  except KeyError:
    return None
  return np.asarray(rows, dtype=np.int64)


def player_matrix(tree: GameTree, policy: policy_lib.Policy,
                  player: int) -> np.ndarray:
  """`[I_p, A]` action probabilities of `policy` for `player`.

  Raises:
    ValueError: the policy is not a distribution over legal actions somewhere.
  """
  table = tree.infostates[player]
  matrix = None
  if isinstance(policy, policy_lib.TabularPolicy):
    rows = _tabular_rows(tree, player, policy)
    if rows is not None:
      matrix = np.array(policy.action_probability_array[rows], dtype=np.float64)
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
  _check_matrix(tree, player, matrix)
  return matrix


def _check_matrix(tree: GameTree, player: int, matrix: np.ndarray) -> None:
  table = tree.infostates[player]
  expected = (table.num_infostates, tree.num_actions)
  if matrix.shape != expected:
    raise ValueError(f"player {player}'s policy matrix has shape {matrix.shape},"
                     f" expected {expected} ([infostates, actions]).")
  if not np.all(np.isfinite(matrix)) or np.any(matrix < -_ROW_SUM_TOLERANCE):
    bad = int(np.flatnonzero(~np.isfinite(matrix).all(1) |
                             (matrix < -_ROW_SUM_TOLERANCE).any(1))[0])
    raise ValueError(f"player {player}'s policy has negative or non-finite"
                     f" probabilities at information state {table.strings[bad]!r}.")
  illegal = np.abs(matrix[~table.legal_mask]).max(initial=0.0)
  sums = matrix.sum(axis=1)
  bad_rows = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
  if illegal > _ROW_SUM_TOLERANCE or bad_rows.size:
    where = table.strings[bad_rows[0]] if bad_rows.size else "(illegal action)"
    raise ValueError(
        f"player {player}'s policy is not a probability distribution over legal"
        f" actions at information state {where!r}; normalise it over"
        " state.legal_actions().")


def policy_matrices(tree: GameTree, policy: PolicyLike) -> list[np.ndarray]:
  """Per-player `[I_p, A]` matrices of an OpenSpiel policy (or matrices)."""
  if isinstance(policy, policy_lib.Policy):
    return [player_matrix(tree, policy, p) for p in range(tree.num_players)]
  matrices = [np.asarray(m, dtype=np.float64) for m in policy]
  if len(matrices) != tree.num_players:
    raise ValueError(f"got {len(matrices)} policy matrices for a"
                     f" {tree.num_players}-player game; pass one per player.")
  for p, matrix in enumerate(matrices):
    _check_matrix(tree, p, matrix)
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
