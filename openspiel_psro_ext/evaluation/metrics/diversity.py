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
0 exactly when all members agree wherever any of them is reached. A pair costs
`O(I_p A)`, so all `N(N-1)/2` pairs cost `O(N^2)`; `sample_pairs` draws a
uniform sample of distinct pairs instead, whose mean is an unbiased estimate
of the all-pairs mean with standard error at most `1 / (2 sqrt(S))` for `S`
pairs (distances lie in [0, 1]); when `S >= N(N-1)/2` it returns every pair
and the estimate is the exact mean.

Expected cardinality (Perez-Nieves et al. 2021, "Modelling Behavioural
Diversity for Learning in Open-Ended Games"). Member `k`'s payoff vector is its
row `m_k` of the meta-game against every opponent profile, scaled by the
game's largest absolute utility so entries lie in [-1, 1]. The determinantal
point process with kernel `L = M M^T` samples subsets of members; its expected
size

    E|Y| = tr(I - (L + I)^{-1}) = sum_i lambda_i / (1 + lambda_i),

(`lambda_i` the eigenvalues of `L`) counts effectively distinct payoff
vectors: it is at most rank(M), grows when a member with a new payoff vector
is added, and stays below 1 for any number of identical members. Over `K`
members against `D` opponent profiles the kernel costs `O(K^2 D)` and its
eigenvalues `O(K^3)`, so a run evaluates it over a bounded set of members (see
`iteration`), reading only their rows of the payoff table (`payoff_rows`). The value
depends on the payoff scale (poker payoffs far below the maximum utility give
small eigenvalues and E|Y| near ||M||_F^2), so compare it within a game. In a
two-player zero-sum game both players get the same value: `M M^T` and `M^T M`
share their non-zero eigenvalues.
"""

from __future__ import annotations

import numpy as np

from openspiel_psro_ext.game.game_tree import GameTree

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
      seq[p, nodes[moved]] = (
        tree.infostate[parents[moved]] * tree.num_actions + tree.action[nodes[moved]]
      )
  return seq


def context_reach(
  tree: GameTree, player: int, plans: list[np.ndarray], sequences: np.ndarray
) -> np.ndarray:
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
  return np.bincount(
    tree.infostate[nodes], weights=weight, minlength=tree.infostates[player].num_infostates
  )


def sample_pairs(
  num_members: int, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
  """Distinct member pairs `i < j`: all of them, or a uniform sample.

  Args:
    num_members: `N`.
    max_pairs: `S`, the most pairs returned (at least 1).
    rng: draws the sample when `N(N-1)/2 > S`.

  Returns:
    (first, second): `[min(S, N(N-1)/2)]` member indices with first < second;
    every pair, in row-major order, when `N(N-1)/2 <= S`.
  """
  if max_pairs < 1:
    raise ValueError(f"max_pairs must be at least 1, not {max_pairs}.")
  total = num_members * (num_members - 1) // 2
  if total <= max_pairs:
    first, second = np.triu_indices(num_members, 1)
    return first.astype(np.int64), second.astype(np.int64)
  # Unrank linear indices k over the pairs ordered by `second`: pair (i, j),
  # i < j, has k = j (j - 1) / 2 + i. The float root can be off by one.
  k = np.sort(rng.choice(total, size=max_pairs, replace=False)).astype(np.int64)
  second = ((1 + np.sqrt(1 + 8 * k.astype(np.float64))) // 2).astype(np.int64)
  second -= second * (second - 1) // 2 > k
  second += (second + 1) * second // 2 <= k
  first = k - second * (second - 1) // 2
  return first, second


def pair_behavioural_distance(
  tree: GameTree,
  player: int,
  population: np.ndarray,
  context: np.ndarray,
  first: np.ndarray,
  second: np.ndarray,
  plans: np.ndarray | None = None,
) -> np.ndarray:
  """`[M]` reach-weighted TV distances `d(first[m], second[m])` (module doc).

  Costs `O(M I_p A)` time and at most `_BLOCK_ELEMENTS` buffer elements.

  Args:
    tree: the compiled game.
    player: whose population.
    population: `[N, I_p, A]` behaviour policies.
    context: `[I_p]` `context_reach` of the player's information states.
    first: `[M]` indices into `population`.
    second: `[M]` indices into `population`.
    plans: `[N, S_p + 1]` the members' realization plans, if already computed.
  """
  population = np.asarray(population, dtype=np.float64)
  _, num_states, num_actions = population.shape
  if plans is None:
    plans = tree.realization_plans(player, population)
  rho = plans[:, tree.infostates[player].parent_sequence] * context  # [N, I]
  mass = rho.sum(axis=1)
  first = np.asarray(first, dtype=np.int64)
  second = np.asarray(second, dtype=np.int64)
  distance = np.zeros(len(first))
  block = max(1, _BLOCK_ELEMENTS // max(1, num_states * num_actions))
  for start in range(0, len(first), block):
    i, j = first[start : start + block], second[start : start + block]
    tv = 0.5 * np.abs(population[i] - population[j]).sum(axis=2)  # [b, I]
    numerator = np.einsum("bs,bs->b", tv, rho[i] + rho[j])
    denominator = mass[i] + mass[j]
    distance[start : start + block] = np.divide(
      numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0
    )
  return distance


def pairwise_behavioural_distance(
  tree: GameTree,
  player: int,
  population: np.ndarray,
  context: np.ndarray,
  plans: np.ndarray | None = None,
) -> np.ndarray:
  """`[N, N]` reach-weighted TV distances `d(i, j)` of every pair, O(N^2).

  Args:
    tree: the compiled game.
    player: whose population.
    population: `[N, I_p, A]` behaviour policies.
    context: `[I_p]` `context_reach` of the player's information states.
    plans: `[N, S_p + 1]` the members' realization plans, if already computed.
  """
  n = len(population)
  first, second = np.triu_indices(n, 1)
  distance = np.zeros((n, n))
  distance[first, second] = pair_behavioural_distance(
    tree, player, population, context, first, second, plans=plans
  )
  return distance + distance.T


def mean_pairwise(distance: np.ndarray) -> float:
  """Mean of the strictly upper triangle (0 for fewer than two members)."""
  n = len(distance)
  if n < 2:
    return 0.0
  return float(distance[np.triu_indices(n, 1)].mean())


def payoff_rows(
  meta_game: np.ndarray, player: int, members: np.ndarray | None = None
) -> np.ndarray:
  """`[K, prod_{q != p} N_q]` player p's payoff vectors, one row per member.

  Args:
    meta_game: `[N_0, ..., N_{P-1}]` player p's payoff tensor.
    player: p.
    members: `[K]` the members whose rows to read (default: all); only those
      rows are copied, so the cost is `O(K prod_{q != p} N_q)`.
  """
  table = np.asarray(meta_game)
  if members is not None:
    # Indexing, not np.take: take copies a strided view whole first.
    table = table[(slice(None),) * player + (np.asarray(members, dtype=np.int64),)]
  moved = np.moveaxis(table.astype(np.float64, copy=False), player, 0)
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
