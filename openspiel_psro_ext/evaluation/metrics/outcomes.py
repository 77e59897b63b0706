"""Exact outcome probabilities: win rate and expected return.

Under a joint policy the probability of reaching terminal `z` is
`chance(z) * prod_p x_p(z)` (see `game_tree`). Player p wins at `z` when its
return is positive, draws at zero and loses below, so with the indicator
`[u_p(z) > 0]` in place of the return, the same contraction that gives the
expected return gives the win probability:

    E[u_p]      = sum_z chance(z) prod_q x_q(z) u_p(z)
    P(win_p)    = sum_z chance(z) prod_q x_q(z) [u_p(z) > 0]
    P(draw_p)   = sum_z chance(z) prod_q x_q(z) [u_p(z) = 0]
    P(loss_p)   = 1 - P(win_p) - P(draw_p).

A PSRO meta-strategy enters through its realization plan, the sigma-weighted
sum of its members' plans; nothing is sampled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.records.metrics import Outcome

# Returns within this of zero count as draws.
DRAW_TOLERANCE = 1e-9


def outcome_indicators(tree: GameTree) -> tuple[np.ndarray, np.ndarray]:
  """`[Z, P]` win and draw indicators (float) of every terminal."""
  returns = tree.terminal_returns
  win = (returns > DRAW_TOLERANCE).astype(np.float64)
  draw = (np.abs(returns) <= DRAW_TOLERANCE).astype(np.float64)
  return win, draw


def seat_outcomes(tree: GameTree, seat: int, reaches: Sequence[np.ndarray]) -> Outcome:
  """Outcome distribution of `seat` under one joint profile.

  Args:
    tree: the compiled game.
    seat: whose outcome.
    reaches: per player `[Z]` terminal reach (a mixture's or a policy's).

  Returns:
    Its win, draw and loss probabilities and expected return.
  """
  joint = tree.terminal_chance_reach * np.prod(np.stack(reaches), axis=0)
  win, draw = outcome_indicators(tree)
  p_win = float(joint @ win[:, seat])
  p_draw = float(joint @ draw[:, seat])
  return Outcome(
    win_rate=p_win,
    draw_rate=p_draw,
    loss_rate=max(0.0, 1.0 - p_win - p_draw),
    expected_return=float(joint @ tree.terminal_returns[:, seat]),
  )


def pairwise_scores(
  tree: GameTree, reach0: np.ndarray, reach1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Seat 0's win and draw probabilities for every pair, two-player games.

  Args:
    tree: a two-player compiled game.
    reach0: `[K0, Z]` terminal reaches of seat-0 policies.
    reach1: `[K1, Z]` terminal reaches of seat-1 policies.

  Returns:
    (win, draw): `[K0, K1]` probabilities that seat 0 wins / draws.
  """
  win, draw = outcome_indicators(tree)
  chance = tree.terminal_chance_reach
  p_win = (reach0 * (chance * win[:, 0])) @ reach1.T
  p_draw = (reach0 * (chance * draw[:, 0])) @ reach1.T
  return p_win, p_draw


def pairwise_expected_returns(tree: GameTree, reach0: np.ndarray, reach1: np.ndarray) -> np.ndarray:
  """`[2, K0, K1]` both seats' expected returns for every pair (two players).

  Args:
    tree: a two-player compiled game.
    reach0: `[K0, Z]` terminal reaches of seat-0 policies.
    reach1: `[K1, Z]` terminal reaches of seat-1 policies.
  """
  weights = tree.terminal_chance_reach[:, None] * tree.terminal_returns  # [Z, 2]
  return np.stack([(reach0 * weights[:, p]) @ reach1.T for p in range(2)])


def pairwise_margin(tree: GameTree, reach0: np.ndarray, reach1: np.ndarray) -> np.ndarray:
  """`[K0, K1]` seat 0's expected return minus seat 1's (one contraction)."""
  returns = tree.terminal_returns
  weights = tree.terminal_chance_reach * (returns[:, 0] - returns[:, 1])
  return (reach0 * weights) @ reach1.T
