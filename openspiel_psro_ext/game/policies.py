"""Policies as matrices, and back to OpenSpiel `Policy` objects.

Over a compiled `GameTree`, player p's behaviour policy is an `[I_p, A]`
matrix: row `i` is the action distribution at the player's `i`-th information
state (zeros on illegal actions). A joint policy is a list of such matrices,
one per player. These helpers convert between that form and OpenSpiel's.

Every policy form OpenSpiel's own functions accept is read:

* a Python `open_spiel.python.policy.TabularPolicy` (read from its array);
* a C++ `pyspiel` tabular policy (`pyspiel.TabularPolicy`,
  `pyspiel.UniformRandomPolicy`, `data.kuhn_nash_equilibrium`), read from its
  `policy_table()`, and a dict `{information state: [(action, prob), ...]}`
  or `{information state: {action: prob}}` (`policy_utils.policy_to_dict`,
  what `pyspiel.nash_conv` takes);
* anything else with `action_probabilities` (a Python `Policy`, a C++
  `pyspiel.Policy`), queried once per information state.

Simultaneous-move games are compiled turn-based
(`pyspiel.convert_to_turn_based`), whose information-state strings are the
original ones behind a `"Current player: p\n"` line. A policy built on the
simultaneous-move game itself is read through the original strings, and a
queried one through the original game's states (found by replaying each
information state's history), so it need not be rebuilt on the conversion.

Matrices go back out as a `TabularPolicy` (for OpenSpiel's own code) or a
light `MatrixPolicy` that answers `action_probabilities` from the matrices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeGuard, cast

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib

from openspiel_psro_ext.game.game_tree import GameTree

#: A policy object OpenSpiel's functions accept (see the module doc), or
#: per-player `[I_p, A]` matrices.
PolicyLike: TypeAlias = (
  policy_lib.Policy | pyspiel.Policy | Mapping[str, Any] | Sequence[np.ndarray]
)

_ROW_SUM_TOLERANCE = 1e-6

# The turn-based conversion's information-state string of the acting player.
_CONVERTED_PREFIX = "Current player: {}\n"


def is_policy(obj: Any) -> bool:
  """True for an OpenSpiel policy object (not per-player matrices)."""
  return isinstance(obj, (policy_lib.Policy, pyspiel.Policy, Mapping)) or callable(
    getattr(obj, "action_probabilities", None)
  )


def is_converted_simultaneous(tree: GameTree) -> bool:
  """Whether `tree` compiles a simultaneous-move game's turn-based conversion."""
  return tree.game.get_type().short_name == "turn_based_simultaneous_game"


def original_keys(tree: GameTree, player: int) -> list[str]:
  """The player's information-state strings in the simultaneous-move game
  (the compiled strings without the conversion's line), in order; the
  compiled strings themselves for any other game."""
  strings = tree.infostates[player].strings
  if not is_converted_simultaneous(tree):
    return strings
  prefix = _CONVERTED_PREFIX.format(player)
  return [k[len(prefix) :] if k.startswith(prefix) else k for k in strings]


# Entries hold the tree itself, so its id cannot be reused while cached.
_INFOSTATE_ROWS: dict[tuple[int, int], tuple[GameTree, dict[str, int]]] = {}
_INFOSTATE_ROWS_SIZE = 16


def infostate_rows(tree: GameTree, player: int) -> dict[str, int]:
  """Information-state string -> row, for the compiled strings and (for a
  simultaneous-move game's conversion) the original game's."""
  table = tree.infostates[player]
  if not is_converted_simultaneous(tree):
    return table.index
  cached = _INFOSTATE_ROWS.get((id(tree), player))
  if cached is not None and cached[0] is tree:
    return cached[1]
  rows = {**table.index, **{k: i for i, k in enumerate(original_keys(tree, player))}}
  if len(_INFOSTATE_ROWS) >= _INFOSTATE_ROWS_SIZE:
    _INFOSTATE_ROWS.pop(next(iter(_INFOSTATE_ROWS)))
  _INFOSTATE_ROWS[(id(tree), player)] = (tree, rows)
  return rows


def _key_candidates(tree: GameTree, player: int) -> list[list[str]]:
  """The player's information-state strings, as compiled and as original."""
  strings = tree.infostates[player].strings
  if not is_converted_simultaneous(tree):
    return [strings]
  return [strings, original_keys(tree, player)]


# TabularPolicies of one game share `state_lookup` (copies share the dict), so
# the row indices of our information states are computed once per lookup.
# Entries hold the dict itself, so its id cannot be reused while cached.
_ROWS_CACHE: dict[tuple[int, int, int], tuple[dict, np.ndarray | None]] = {}
_ROWS_CACHE_SIZE = 512  # a PSRO population of TabularPolicies each has its own lookup


def _tabular_rows(
  tree: GameTree, player: int, policy: policy_lib.TabularPolicy
) -> np.ndarray | None:
  """Rows of `policy.action_probability_array` for the player's states."""
  lookup = policy.state_lookup
  key = (id(tree), id(lookup), player)
  cached = _ROWS_CACHE.get(key)
  if cached is not None and cached[0] is lookup and len(cached[0]) == len(lookup):
    return cached[1]
  rows = None
  for strings in _key_candidates(tree, player):
    try:
      rows = np.asarray([lookup[s] for s in strings], dtype=np.int64)
      break
    except KeyError:
      continue
  if len(_ROWS_CACHE) >= _ROWS_CACHE_SIZE:
    _ROWS_CACHE.pop(next(iter(_ROWS_CACHE)))
  _ROWS_CACHE[key] = (lookup, rows)
  return rows


def _table_matrix(tree: GameTree, player: int, table: Mapping[str, Any]) -> np.ndarray | None:
  """`[I_p, A]` from `{information state: [(a, p), ...] or {a: p}}`."""
  for strings in _key_candidates(tree, player):
    if strings and strings[0] not in table:
      continue
    matrix = np.zeros((len(strings), tree.num_actions))
    for i, key in enumerate(strings):
      entry = table.get(key)
      if entry is None:
        break
      items = entry.items() if isinstance(entry, Mapping) else entry
      for action, prob in items:
        matrix[i, int(action)] = prob
    else:
      return matrix
  return None


def _simultaneous_game(tree: GameTree) -> pyspiel.Game:
  """The simultaneous-move game whose turn-based conversion `tree` compiles."""
  params = dict(tree.game.get_parameters()["game"])
  return pyspiel.load_game(params.pop("name"), params)


# Entries hold the tree itself, so its id cannot be reused while cached.
_ORIGINAL_STATES: dict[tuple[int, int], tuple[GameTree, list[pyspiel.State]]] = {}
_ORIGINAL_STATES_SIZE = 16


def original_states(tree: GameTree, player: int) -> list[pyspiel.State]:
  """Per information state of `player`, a simultaneous-move game state of it.

  Replays each representative history of the turn-based conversion on the
  original game: the conversion plays a simultaneous node's actions one
  player at a time (players without legal actions skipped), so they are
  gathered until the node's joint action is complete.
  """
  cached = _ORIGINAL_STATES.get((id(tree), player))
  if cached is not None and cached[0] is tree:
    return cached[1]
  game = _simultaneous_game(tree)
  states = []
  for converted in tree.infostates[player].states:
    state, pending = game.new_initial_state(), []
    for action in converted.history():
      if not state.is_simultaneous_node():
        state.apply_action(action)
        continue
      actors = [q for q in range(game.num_players()) if state.legal_actions(q)]
      pending.append(action)
      if len(pending) == len(actors):
        joint = [pyspiel.INVALID_ACTION] * game.num_players()
        for q, a in zip(actors, pending):
          joint[q] = a
        state.apply_actions(joint)
        pending = []
    states.append(state)
  if len(_ORIGINAL_STATES) >= _ORIGINAL_STATES_SIZE:
    _ORIGINAL_STATES.pop(next(iter(_ORIGINAL_STATES)))
  _ORIGINAL_STATES[(id(tree), player)] = (tree, states)
  return states


def _ask(tree: GameTree, policy: Any, player: int, states: list[pyspiel.State]) -> np.ndarray:
  """`[I_p, A]` from `policy.action_probabilities` at the given states."""
  # Python policies take the player (needed at simultaneous nodes); C++
  # `pyspiel.Policy` and other duck-typed policies answer for the state's
  # current player, which is `player` at every representative state.
  with_player = isinstance(policy, policy_lib.Policy)
  matrix = np.zeros((len(states), tree.num_actions))
  for i, state in enumerate(states):
    try:
      probs = (
        policy.action_probabilities(state, player)
        if with_player
        else policy.action_probabilities(state)
      )
    except (KeyError, IndexError) as e:
      raise _missing_entry(tree, policy, player, i) from e
    for action, prob in probs.items():
      matrix[i, action] = prob
  return matrix


def _queried_matrix(tree: GameTree, policy: Any, player: int) -> np.ndarray:
  """`[I_p, A]` by asking the policy at each information state."""
  if not is_converted_simultaneous(tree):
    return _ask(tree, policy, player, tree.infostates[player].states)
  game = getattr(policy, "game", None)
  if (
    isinstance(game, pyspiel.Game)
    and game.get_type().dynamics == pyspiel.GameType.Dynamics.SIMULTANEOUS
  ):
    return _ask(tree, policy, player, original_states(tree, player))
  try:
    return _ask(tree, policy, player, tree.infostates[player].states)
  except ValueError:
    # Built on the simultaneous-move game without saying so: ask its states.
    return _ask(tree, policy, player, original_states(tree, player))


def _missing_entry(tree: GameTree, policy: Any, player: int, row: int) -> ValueError:
  return ValueError(
    f"{type(policy).__name__} has no entry for player {player}'s information"
    f" state {tree.infostates[player].strings[row]!r} of {tree.game}. Was it"
    " built for another game?"
  )


class _PolicyTableHolder(Protocol):
  """A C++ `pyspiel` tabular policy: `policy_table()` maps information states
  to `[(action, prob), ...]`."""

  def policy_table(self) -> Mapping[str, Any]: ...


def _has_policy_table(obj: Any) -> TypeGuard[_PolicyTableHolder]:
  return callable(getattr(obj, "policy_table", None))


def _not_a_policy(obj: Any) -> TypeError:
  return TypeError(
    f"cannot read a policy from {type(obj).__name__}; pass an OpenSpiel"
    " policy (Python or pyspiel), a dict of information state ->"
    " [(action, prob)], or per-player [I_p, A] matrices."
  )


def player_matrix(
  tree: GameTree, policy: PolicyLike, player: int, check: bool = True
) -> np.ndarray:
  """`[I_p, A]` action probabilities of `policy` for `player`.

  Args:
    tree: the compiled game.
    policy: any policy form OpenSpiel accepts (see the module doc).
    player: whose part of the policy to read.
    check: validate the result (callers that validate a stack skip it).

  Raises:
    ValueError: the policy has no entry for one of the player's information
      states, or is not a distribution over legal actions somewhere.
  """
  matrix = None
  if isinstance(policy, policy_lib.TabularPolicy):
    rows = _tabular_rows(tree, player, policy)
    if rows is not None:
      matrix = np.take(np.asarray(policy.action_probability_array, dtype=np.float64), rows, axis=0)
  elif isinstance(policy, Mapping) or _has_policy_table(policy):
    table = policy if isinstance(policy, Mapping) else policy.policy_table()
    matrix = _table_matrix(tree, player, table)
    if matrix is None and isinstance(policy, Mapping):
      missing = next(
        (
          k
          for k, o in zip(tree.infostates[player].strings, original_keys(tree, player))
          if k not in policy and o not in policy
        ),
        None,
      )
      raise ValueError(
        f"the policy dict has no entry for player {player}'s information state"
        f" {missing!r} of {tree.game}; key it by information_state_string, as"
        " policy_utils.policy_to_dict does."
      )
  if matrix is None:
    if not is_policy(policy):
      raise _not_a_policy(policy)
    matrix = _queried_matrix(tree, policy, player)
  if check:
    check_matrices(tree, player, matrix)
  return matrix


def check_matrices(tree: GameTree, player: int, matrix: np.ndarray) -> None:
  """Raises ValueError unless `matrix` (`[I_p, A]` or `[N, I_p, A]`) holds
  distributions over legal actions."""
  table = tree.infostates[player]
  expected = (table.num_infostates, tree.num_actions)
  if matrix.shape[-2:] != expected:
    raise ValueError(
      f"player {player}'s policy matrix has shape {matrix.shape},"
      f" expected {expected} ([infostates, actions])."
    )
  rows = matrix.reshape(-1, *expected)
  # Fast path: row sums and illegal mass as matrix-vector products (NaN and
  # inf propagate into the sums), one min for the sign; the search for the
  # offending information state runs only on failure.
  flat = rows.reshape(-1, expected[1])
  sums = flat @ np.ones(expected[1])
  illegal = (~table.legal_mask).ravel().astype(np.float64)
  ok = (
    np.isfinite(sums.sum())
    and flat.min(initial=0.0) >= -_ROW_SUM_TOLERANCE
    and np.abs(sums - 1.0).max(initial=0.0) <= _ROW_SUM_TOLERANCE
    and (rows.reshape(len(rows), -1) @ illegal).max(initial=0.0) <= _ROW_SUM_TOLERANCE
  )
  if ok:
    return
  if not np.all(np.isfinite(rows)) or np.any(rows < -_ROW_SUM_TOLERANCE):
    bad = np.flatnonzero((~np.isfinite(rows) | (rows < -_ROW_SUM_TOLERANCE)).any(axis=(0, 2)))
    raise ValueError(
      f"player {player}'s policy has negative or non-finite"
      f" probabilities at information state {table.strings[bad[0]]!r}."
    )
  sums = rows.sum(axis=2)
  bad_rows = np.flatnonzero((np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE).any(axis=0))
  where = table.strings[bad_rows[0]] if bad_rows.size else "(illegal action)"
  raise ValueError(
    f"player {player}'s policy is not a probability distribution over legal"
    f" actions at information state {where!r}; normalise it over"
    " state.legal_actions()."
  )


def population_array(
  tree: GameTree, player: int, population: Sequence[PolicyLike | np.ndarray] | np.ndarray
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
      if is_policy(member):
        stacked[k] = player_matrix(tree, member, player, check=False)
      else:  # not a policy object: an `[I_p, A]` matrix
        stacked[k] = cast(np.ndarray, member)
  check_matrices(tree, player, stacked)
  return stacked


def policy_matrices(tree: GameTree, policy: PolicyLike) -> list[np.ndarray]:
  """Per-player `[I_p, A]` matrices of an OpenSpiel policy (or matrices)."""
  if is_policy(policy):
    return [player_matrix(tree, policy, p) for p in range(tree.num_players)]
  if not isinstance(policy, (Sequence, np.ndarray)):
    raise _not_a_policy(policy)
  matrices = [np.asarray(m, dtype=np.float64) for m in policy]
  if len(matrices) != tree.num_players:
    raise ValueError(
      f"got {len(matrices)} policy matrices for a"
      f" {tree.num_players}-player game; pass one per player."
    )
  for p, matrix in enumerate(matrices):
    check_matrices(tree, p, matrix)
  return matrices


def to_tabular_policy(
  tree: GameTree,
  matrices: Sequence[np.ndarray | None],
  base: policy_lib.TabularPolicy | None = None,
) -> policy_lib.TabularPolicy:
  """A `TabularPolicy` holding the given per-player matrices.

  Args:
    tree: the compiled game.
    matrices: per-player `[I_p, A]` matrices; None leaves that player's rows as
      in `base` (uniform when `base` is None).
    base: a TabularPolicy to copy the layout and untouched rows from.
  """
  tabular = base.__copy__() if base is not None else policy_lib.TabularPolicy(tree.game)
  for player, matrix in enumerate(matrices):
    if matrix is None:
      continue
    rows = _tabular_rows(tree, player, tabular)
    if rows is None:
      raise ValueError(
        f"the TabularPolicy of {tree.game} does not index player"
        f" {player}'s information states by information-state"
        " string."
      )
    tabular.action_probability_array[rows] = matrix
  return tabular


def openspiel_policy(tree: GameTree, matrices: Sequence[np.ndarray | None]) -> policy_lib.Policy:
  """An OpenSpiel policy holding the per-player `[I_p, A]` matrices (None:
  uniform), for OpenSpiel's own algorithms.

  A `TabularPolicy` where its table is keyed by our information-state
  strings; otherwise (e.g. the turn-based form of a Python game, which
  OpenSpiel's table keys by something else) a `MatrixPolicy`, which answers
  any state by its information-state string.
  """
  tabular = policy_lib.TabularPolicy(tree.game)
  rows = [_tabular_rows(tree, p, tabular) for p in range(tree.num_players)]
  if any(r is None for r, m in zip(rows, matrices) if m is not None):
    return MatrixPolicy(
      tree,
      [tree.infostates[p].uniform_policy() if m is None else m for p, m in enumerate(matrices)],
    )
  for r, m in zip(rows, matrices):
    if m is not None:
      tabular.action_probability_array[r] = m
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

  def action_probabilities(
    self, state: pyspiel.State, player_id: int | None = None
  ) -> dict[int, float]:
    player = state.current_player() if player_id is None else player_id
    table = self.tree.infostates[player]
    # States of the simultaneous-move game itself are answered too.
    row = infostate_rows(self.tree, player).get(state.information_state_string(player))
    if row is None:
      raise ValueError(
        f"information state not in the compiled tree of"
        f" {self.tree.game}: {state.information_state_string(player)!r}"
      )
    probs = self.matrices[player][row]
    return {int(a): float(probs[a]) for a in np.flatnonzero(table.legal_mask[row])}
