"""Population diversity: behavioural distance and DPP expected cardinality.

Behavioural diversity (how differently the members act where play goes).
For player p, let `c(I)` be the probability that chance and the other players
(playing their meta-strategy mixtures) lead play into information state `I`,

    c(I) = sum_{h in I} chance(h) prod_{q != p} x_q(h),

and `rho_k(I) = x_k(I) c(I)` the probability that `I` is reached when member
`k` plays p's part (`x_k(I)` is k's own reach, the realization-plan entry of
the sequence leading to `I`). The distance between members `i` and `j` is the
total-variation distance of their action distributions averaged over the
states either of them reaches,

    d(i, j) = sum_I w_ij(I) TV(pi_i(I), pi_j(I)) / sum_I w_ij(I),
    w_ij = (rho_i + rho_j) / 2,   TV(p, q) = sum_a |p_a - q_a| / 2,

so `d` is in [0, 1]: the expected per-decision probability that the two would
act differently. Behavioural diversity is the mean over member pairs; it is
0 exactly when all members agree wherever any of them is reached.

Expected cardinality (Perez-Nieves et al. 2021, "Modelling Behavioural
Diversity for Learning in Open-Ended Games"). Member `k`'s payoff vector is its
row `m_k` of the meta-game against every opponent profile, scaled by the
game's largest absolute utility so entries lie in [-1, 1]. The determinantal
point process with kernel `L = M M^T` samples subsets of members; its expected
size

    E|Y| = tr(I - (L + I)^{-1}) = sum_i lambda_i / (1 + lambda_i),

(`lambda_i` the eigenvalues of `L`) counts effectively distinct payoff
vectors: it is at most rank(M), grows when a member with a new payoff vector
is added, and stays below 1 for any number of identical members. The value
depends on the payoff scale (poker payoffs far below the maximum utility give
small eigenvalues and E|Y| near ||M||_F^2), so compare it within a game. In a
two-player zero-sum game both players get the same value: `M M^T` and `M^T M`
share their non-zero eigenvalues.
"""

from __future__ import annotations

import numpy as np

from openspiel_psro_ext.game_tree import GameTree

# Elements of the [block, N, I] pairwise-distance buffer, bounding its memory.
_BLOCK_ELEMENTS = 4_000_000


def history_sequences(tree: GameTree) -> np.ndarray:
  """`[P, H]` each player's last sequence on the path to each history.

  The empty sequence of player p is `tree.infostates[p].num_sequences`.
  Computed one depth at a time (parents precede children).
  """
  num_histories = tree.num_histories
  seq = np.empty((tree.num_players, num_histories), dtype=np.int64)
  for p in range(tree.num_players):
    seq[p] = tree.infostates[p].num_sequences
  for depth in range(1, int(tree.depth.max(initial=0)) + 1):
    nodes = np.flatnonzero(tree.depth == depth)
    parents = tree.parent[nodes]
    seq[:, nodes] = seq[:, parents]
    mover = tree.player[parents]
    for p in range(tree.num_players):
      moved = mover == p
      seq[p, nodes[moved]] = (tree.infostate[parents[moved]] * tree.num_actions
                              + tree.action[nodes[moved]])
  return seq


def context_reach(tree: GameTree, player: int, plans: list[np.ndarray],
                  sequences: np.ndarray) -> np.ndarray:
  """`[I_p]` probability `c(I)` that chance and the others lead play into `I`.

  Args:
    tree: the compiled game.
    player: whose information states.
    plans: per player `[S_q + 1]` realization plans of the others' mixtures
      (the entry at `player` is ignored).
    sequences: `history_sequences(tree)`.
  """
  nodes = np.flatnonzero(tree.player == player)
  weight = tree.chance_reach[nodes].copy()
  for q in range(tree.num_players):
    if q != player:
      weight *= plans[q][sequences[q, nodes]]
  return np.bincount(tree.infostate[nodes], weights=weight,
                     minlength=tree.infostates[player].num_infostates)


def pairwise_behavioural_distance(tree: GameTree, player: int,
                                  population: np.ndarray,
                                  context: np.ndarray,
                                  plans: np.ndarray | None = None
                                  ) -> np.ndarray:
  """`[N, N]` reach-weighted TV distances `d(i, j)` (see module doc).

  Args:
    tree: the compiled game.
    player: whose population.
    population: `[N, I_p, A]` behaviour policies.
    context: `[I_p]` `context_reach` of the player's information states.
    plans: `[N, S_p + 1]` the members' realization plans, if already computed.
  """
  population = np.asarray(population, dtype=np.float64)
  n, num_states, num_actions = population.shape
  table = tree.infostates[player]
  if plans is None:
    plans = tree.realization_plans(player, population)
  own = plans[:, table.parent_sequence]
  rho = own * context  # [N, I]
  mass = rho.sum(axis=1)
  distance = np.zeros((n, n))
  block = max(1, _BLOCK_ELEMENTS // max(1, n * num_states))
  for start in range(0, n, block):
    rows = slice(start, min(n, start + block))
    tv = np.zeros((rows.stop - start, n, num_states))
    for a in range(num_actions):
      tv += np.abs(population[rows, None, :, a] - population[None, :, :, a])
    tv *= 0.5
    numerator = (np.einsum("ijs,is->ij", tv, rho[rows])
                 + np.einsum("ijs,js->ij", tv, rho))
    denominator = mass[rows, None] + mass[None, :]
    distance[rows] = np.divide(numerator, denominator,
                               out=np.zeros_like(numerator),
                               where=denominator > 0)
  return distance


def mean_pairwise(distance: np.ndarray) -> float:
  """Mean of the strictly upper triangle (0 for fewer than two members)."""
  n = len(distance)
  if n < 2:
    return 0.0
  return float(distance[np.triu_indices(n, 1)].mean())


def payoff_rows(meta_game: np.ndarray, player: int) -> np.ndarray:
  """`[N_p, prod_{q != p} N_q]` player p's payoff vectors, one row per member."""
  moved = np.moveaxis(np.asarray(meta_game, dtype=np.float64), player, 0)
  return moved.reshape(moved.shape[0], -1)


def expected_cardinality(rows: np.ndarray, scale: float = 1.0) -> float:
  """`E|Y| = tr(I - (L + I)^{-1})` of the DPP with `L = (M/scale)(M/scale)^T`.

  Args:
    rows: `[N, D]` payoff vectors `M`.
    scale: divides the payoffs (the game's largest absolute utility).
  """
  scaled = np.asarray(rows, dtype=np.float64) / scale
  if scaled.size == 0:
    return 0.0
  eigenvalues = np.clip(np.linalg.eigvalsh(scaled @ scaled.T), 0.0, None)
  return float(np.sum(eigenvalues / (1.0 + eigenvalues)))
