"""Rectified Nash (PSRO_rN), Balduzzi et al. 2019, "Open-ended learning in
symmetric zero-sum games".

Meant for symmetric zero-sum games (e.g. a single population playing itself
with an antisymmetric payoff table `A = -A^T`); on other games it is still
well defined but has no guarantee.

Plain PSRO trains one best response against the Nash mixture `q`. PSRO_rN
instead trains, for every policy `i` in the Nash support (`p_i > 0`), a new
policy against the opponents `i` already beats or ties, weighted by Nash:

    target_i(j) ∝ q_j * [A[i, j] >= v],

where `v` is the player's game value (0 for an antisymmetric table, so the
condition reads "i beats or ties j"). Rectification amplifies each support
member's strengths instead of patching its weaknesses, which grows the
population's "gamescape" in many directions at once. Every Nash support member
gets a non-empty target: at equilibrium `(A q)_i = v`, so some `j` with
`q_j > 0` has `A[i, j] >= v`.

`rectified_nash` returns the Nash profile (the meta-strategy for evaluation);
`rectified_targets` returns the per-member targets the PSRO loop trains
against, one best response per target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from openspiel_psro_ext.meta_solvers import common
from openspiel_psro_ext.meta_solvers import nash as nash_lib


@dataclasses.dataclass(frozen=True)
class RectifiedTarget:
  """One training target of PSRO_rN.

  Attributes:
    player: the learning player `p`.
    policy: index `i` of the support member in player `p`'s population.
    weight: its Nash probability `p_i` (use it to weight or sample targets).
    opponent_mixture: distribution over the opponent's population, shape
      `[n_{1-p}]`, the Nash mixture restricted to the opponents `i` beats or
      ties and renormalised.
  """

  player: int
  policy: int
  weight: float
  opponent_mixture: np.ndarray


def rectified_targets(
  meta_games: Sequence[np.ndarray],
  profile: Sequence[np.ndarray] | None = None,
  support_tol: float = 1e-9,
  tie_tol: float = 1e-9,
) -> list[list[RectifiedTarget]]:
  """PSRO_rN targets for each player.

  Args:
    meta_games: `[M_0, M_1]` of shape `[n_0, n_1]` (zero-sum), or `[A]`.
    profile: a Nash profile `[x_0, x_1]`; computed with `nash` if omitted.
    support_tol: probabilities above this count as in the support.
    tie_tol: payoff tolerance (relative to the payoff range) for "ties".

  Returns:
    `targets[p]`: list of `RectifiedTarget`, one per support member of `p`.
  """
  tables = common.as_two_player(
    common.validate_meta_games(meta_games, solver="rectified_nash", min_players=1)
  )
  if len(tables) != 2:
    raise common.MetaGameError(
      "rectified_nash: defined for two-player (symmetric zero-sum) games;"
      f" got {len(tables)} players. Use 'prd' or 'alpharank'."
    )
  if profile is None:
    profile = nash_lib.nash(tables)
  profile = common.validate_profile(tables, profile)
  scale = max(1.0, max(float(np.abs(t).max()) for t in tables))
  targets = []
  for p in range(2):
    own = tables[p] if p == 0 else tables[p].T  # [n_p, n_{1-p}]
    q = profile[1 - p]
    value = float(profile[p] @ own @ q)
    beats = own >= value - tie_tol * scale  # [n_p, n_{1-p}]
    weighted = beats * q[None, :]
    members = []
    for i in np.flatnonzero(profile[p] > support_tol):
      mass = weighted[i].sum()
      mix = weighted[i] / mass if mass > 0 else q.copy()
      members.append(
        RectifiedTarget(player=p, policy=int(i), weight=float(profile[p][i]), opponent_mixture=mix)
      )
    targets.append(members)
  return targets


def rectified_nash(
  meta_games: Sequence[np.ndarray],
  *,
  general_sum_tol: float = 1e-7,
  incremental: nash_lib.IncrementalZeroSumNash | None = None,
) -> list[np.ndarray]:
  """The Nash profile PSRO_rN evaluates with (see `rectified_targets`).

  Args:
    meta_games: `[M_0, M_1]` of shape `[n_0, n_1]`, for symmetric zero-sum
      games.
    general_sum_tol, incremental: as for `nash.nash`.

  Returns:
    `[x_0, x_1]`, shapes `[n_0]`, `[n_1]`.
  """
  tables = common.validate_meta_games(meta_games, solver="rectified_nash")
  if len(tables) > 2:
    raise common.MetaGameError(
      "rectified_nash: defined for two-player (symmetric zero-sum) games;"
      f" got {len(tables)} players. Use 'prd' or 'alpharank'."
    )
  return nash_lib.nash(tables, general_sum_tol=general_sum_tol, incremental=incremental)
