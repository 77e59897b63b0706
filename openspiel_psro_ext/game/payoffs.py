"""Exact payoff tables (meta-games) of policy populations.

With per-player terminal reaches `R_p[k, z]` (member `k` of player p's
population, see `game_tree`), the expected return of player `i` under the
pure profile `(k_0, ..., k_{P-1})` is

    M_i[k_0, ..., k_{P-1}] = sum_z chance(z) u_i(z) prod_p R_p[k_p, z],

one tensor contraction over terminals; for two players
`M_i = R_0 @ diag(chance * u_i) @ R_1.T`. No games are sampled. Tables follow
OpenSpiel's `meta_games` convention: a list with one `[N_0, ..., N_{P-1}]`
tensor per player.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.game import policies as policies_lib
from openspiel_psro_ext.game.game_tree import GameTree


def _contract(tree: GameTree, reaches: Sequence[np.ndarray]) -> np.ndarray:
  """`[P, N_0, ..., N_{P-1}]` payoffs from per-player `[N_p, Z]` reaches."""
  weights = (tree.terminal_chance_reach[:, None] * tree.terminal_returns).T  # [P, Z]
  num_players, num_terminals = weights.shape
  if len(reaches) != 2:
    letters = string.ascii_letters[: len(reaches)]
    spec = ",".join(f"{letter}z" for letter in letters) + ",yz->y" + letters
    return np.einsum(spec, *reaches, weights, optimize=True)
  # Two players: fold the weights into the smaller side, then one GEMM. PSRO
  # adds one member at a time, so this is a matrix-vector product.
  a, b = reaches
  if len(a) <= len(b):
    left = (a[:, None, :] * weights[None]).reshape(-1, num_terminals)
    return (left @ b.T).reshape(len(a), num_players, len(b)).transpose(1, 0, 2)
  right = (b[:, None, :] * weights[None]).reshape(-1, num_terminals)
  return (a @ right.T).reshape(len(a), len(b), num_players).transpose(2, 0, 1)


class GrowingArray:
  """Rows appended over time, stored with doubling capacity (no full copies)."""

  def __init__(self, row_shape: tuple[int, ...], dtype: npt.DTypeLike = np.float64):
    self._data = np.zeros((0,) + tuple(row_shape), dtype=dtype)
    self._size = 0

  def __len__(self) -> int:
    return self._size

  def append(self, rows: np.ndarray) -> None:
    needed = self._size + len(rows)
    if needed > len(self._data):
      grown = np.zeros(
        (max(needed, 2 * len(self._data), 4),) + self._data.shape[1:], dtype=self._data.dtype
      )
      grown[: self._size] = self._data[: self._size]
      self._data = grown
    self._data[self._size : needed] = rows
    self._size = needed

  @property
  def array(self) -> np.ndarray:
    """A view of the rows so far, `[N, ...]`."""
    return self._data[: self._size]


def population_reach(
  tree: GameTree, player: int, population: Sequence[policies_lib.PolicyLike] | np.ndarray
) -> np.ndarray:
  """`[N, Z]` terminal reaches of a population (policies or matrices)."""
  return tree.terminal_reach(player, policies_lib.population_array(tree, player, population))


def payoff_tensors(
  game: game_tree_lib.GameLike, populations: Sequence[Sequence[policies_lib.PolicyLike]]
) -> list[np.ndarray]:
  """Exact meta-game of the populations.

  Args:
    game: a pyspiel game, game string or compiled `GameTree`.
    populations: per player, a list of OpenSpiel policies or `[I_p, A]`
      matrices, or an `[N_p, I_p, A]` array.

  Returns:
    `meta_games`: one `[N_0, ..., N_{P-1}]` tensor per player.
  """
  tree = game_tree_lib.get_tree(game)
  if len(populations) != tree.num_players:
    raise ValueError(
      f"{tree.game} has {tree.num_players} players; got {len(populations)} populations."
    )
  reaches = [population_reach(tree, p, pop) for p, pop in enumerate(populations)]
  return list(_contract(tree, reaches))


class PayoffTable:
  """An exact meta-game that grows with the populations.

  Adding members computes only the new entries: for each non-empty set of
  players whose index ranges over new members, one contraction of that block.
  """

  def __init__(self, tree: GameTree):
    self.tree = tree
    self._reach_rows = [GrowingArray((tree.num_terminals,)) for _ in range(tree.num_players)]
    self._tensor = np.zeros((tree.num_players,) + (0,) * tree.num_players)

  @property
  def _reaches(self) -> list[np.ndarray]:
    return [rows.array for rows in self._reach_rows]

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(len(r) for r in self._reach_rows)

  @property
  def meta_games(self) -> list[np.ndarray]:
    """One `[N_0, ..., N_{P-1}]` payoff tensor per player (copies)."""
    return [t.copy() for t in self._tensor]

  def terminal_reach(self, player: int) -> np.ndarray:
    """`[N_p, Z]` terminal reaches of the player's members."""
    return self._reach_rows[player].array

  def _block(self, reaches: Sequence[np.ndarray], rng: np.random.Generator | None) -> np.ndarray:
    del rng
    return _contract(self.tree, reaches)

  def add(self, new_members: Sequence[np.ndarray | None], seed: int | None = None) -> None:
    """Appends members and computes the new entries.

    Args:
      new_members: per player, an `[K_p, I_p, A]` array (or a single `[I_p, A]`
        matrix, or None for no new member of that player).
      seed: seeds sampled estimates (unused by the exact table).
    """
    rng = np.random.default_rng(seed)
    old_sizes = self.shape
    new_reaches = []
    for p, members in enumerate(new_members):
      if members is None:
        new_reaches.append(np.zeros((0, self.tree.num_terminals)))
        continue
      members = np.asarray(members, dtype=np.float64)
      if members.ndim == 2:
        members = members[None]
      new_reaches.append(self.tree.terminal_reach(p, members))
    new_sizes = tuple(o + len(n) for o, n in zip(old_sizes, new_reaches))
    tensor = np.zeros((self.tree.num_players,) + new_sizes)
    tensor[(slice(None),) + tuple(slice(0, o) for o in old_sizes)] = self._tensor
    for uses_new in itertools.product((False, True), repeat=self.tree.num_players):
      if not any(uses_new):
        continue
      block = [n if new else r for new, n, r in zip(uses_new, new_reaches, self._reaches)]
      if any(len(b) == 0 for b in block):
        continue
      index = tuple(
        slice(o, s) if new else slice(0, o) for new, o, s in zip(uses_new, old_sizes, new_sizes)
      )
      tensor[(slice(None),) + index] = self._block(block, rng)
    for rows, new in zip(self._reach_rows, new_reaches):
      rows.append(new)
    self._tensor = tensor


class SampledPayoffTable(PayoffTable):
  """A payoff table estimated from `sims_per_entry` sampled episodes per entry.

  Stock psro_v2 estimates each entry by playing games; here each episode's
  terminal is drawn from its exact distribution
  `chance(z) * prod_p R_p[k_p, z]` over the compiled tree, which is the same
  random variable as a played game, sampled without walking states.
  """

  def __init__(self, tree: GameTree, sims_per_entry: int):
    super().__init__(tree)
    if sims_per_entry < 1:
      raise ValueError(f"sims_per_entry must be positive, got {sims_per_entry}.")
    self.sims_per_entry = sims_per_entry

  def _block(self, reaches: Sequence[np.ndarray], rng: np.random.Generator | None) -> np.ndarray:
    rng = rng or np.random.default_rng()
    shape = tuple(len(r) for r in reaches)
    weights = self.tree.terminal_chance_reach
    out = np.zeros((self.tree.num_players,) + shape)
    returns = self.tree.terminal_returns
    for profile in np.ndindex(*shape):
      probs = weights * np.prod([r[k] for r, k in zip(reaches, profile)], axis=0)
      cumulative = np.cumsum(probs)
      draws = np.searchsorted(
        cumulative, rng.random(self.sims_per_entry) * cumulative[-1], side="right"
      )
      draws = np.minimum(draws, len(probs) - 1)
      out[(slice(None),) + profile] = returns[draws].mean(axis=0)
    return out
