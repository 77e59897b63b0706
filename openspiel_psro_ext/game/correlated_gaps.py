"""Exact CCE and CE gaps of a joint distribution over population profiles.

JPSRO's output is a joint distribution `sigma` over joint profiles
`s = (s_0, ..., s_{P-1})`, `s_p` a member of player p's population: a
mediator draws `s` and recommends `s_p` to player p. Where player q's member
`k` reaches terminal z with `x_q^k(z)` (its own product of action
probabilities, `game_tree.GameTree.terminal_reach`), the opponents of p under
`sigma` reach z with

    r_{-p}(z) = sum_s sigma(s) prod_{q != p} x_q^{s_q}(z),

a sigma-weighted sum of products of the members' reaches: still one number
per terminal, so a full-game best response to it is the usual sweep over the
compiled tree (`exploitability.best_response_from_weights`) with the weights
`chance(z) u_p(z) r_{-p}(z)`.

Coarse correlated equilibrium (CCE): a player commits to deviate before
seeing its recommendation. Its gain is

    g_p = max_{pi'} sum_s sigma(s) u_p(pi', s_{-p}) - sum_s sigma(s) u_p(s),

and `cce_gap = sum_p max(g_p, 0)` (a gain may be negative: correlation can
pay more than any unilateral commitment).

Correlated equilibrium (CE), JPSRO's full-game form: player p sees its
recommended member k and may deviate to any full-game policy. With
`sigma(k, .)` the joint restricted to `s_p = k` (unnormalised, so each term
is already weighted by the probability of the recommendation),

    g_{p,k} = max_{pi'} sum_{s: s_p = k} sigma(s) (u_p(pi', s_{-p}) - u_p(s)),

and `ce_gap = sum_p sum_k max(g_{p,k}, 0)`. A CE is a CCE, and
`ce_gap >= cce_gap`. For a product `sigma` (independent players) the CCE gap
is NashConv.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.game.game_tree import GameTree

# Rows of the `[rows, Z]` product buffer per chunk: bounds its memory (32 MB).
_CHUNK_ENTRIES = 1 << 22


def correlated_reach(reaches: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
  """`[B, Z]`: per batch row, the weighted sum of products of members' reaches.

  Args:
    reaches: per included player, `[N_i, Z]` members' terminal reaches.
    weights: `[B, N_0, ..., N_{m-1}]` weights of the joint profiles of the
      included players (zeros are skipped: a meta-solver's joint is sparse).

  Returns:
    `[B, Z]`: `sum_s weights[b, s] prod_i reaches[i][s_i, z]`.
  """
  weights = np.asarray(weights, dtype=np.float64)
  batch, shape = weights.shape[0], weights.shape[1:]
  if tuple(len(r) for r in reaches) != shape:
    raise ValueError(
      f"weights over profiles of shape {shape} for populations of"
      f" sizes {[len(r) for r in reaches]}."
    )
  flat = weights.reshape(batch, -1)
  columns = np.flatnonzero(np.any(flat != 0, axis=0))
  members = np.unravel_index(columns, shape)
  num_terminals = reaches[0].shape[1]
  out = np.zeros((batch, num_terminals))
  chunk = max(1, _CHUNK_ENTRIES // num_terminals)
  for start in range(0, len(columns), chunk):
    part = slice(start, start + chunk)
    product = reaches[0][members[0][part]].copy()
    for reach, index in zip(reaches[1:], members[1:]):
      product *= reach[index[part]]
    out += flat[:, columns[part]] @ product
  return out


def opponent_joint_reach(
  tree: GameTree, player: int, reaches: Sequence[np.ndarray | None], opponent_joint: np.ndarray
) -> np.ndarray:
  """`[Z]` chance times the correlated opponents' reach (module doc).

  Args:
    tree: the compiled game.
    player: the best responder.
    reaches: per player `[N_q, Z]` members' terminal reaches (None at `player`).
    opponent_joint: `[N_q for q != player]` distribution over the opponents'
      joint profiles.
  """
  others: list[np.ndarray] = []
  for q in range(tree.num_players):
    reach = reaches[q]
    if q == player:
      continue
    if reach is None:
      raise ValueError(
        f"opponent {q}'s reaches are missing; only the best responder's may be None."
      )
    others.append(reach)
  return tree.terminal_chance_reach * correlated_reach(others, opponent_joint[None])[0]


@dataclasses.dataclass
class CorrelatedGaps:
  """Exact equilibrium gaps of a joint distribution (module doc).

  Attributes:
    cce_gap: `sum_p max(g_p, 0)`.
    ce_gap: `sum_p sum_k max(g_{p,k}, 0)`.
    cce_gains: `[P]` the gains `g_p`.
    ce_gains: per player `[N_p]` the gains `g_{p,k}` (0 off the support).
    values: `[P]` expected returns under the joint distribution.
  """

  cce_gap: float
  ce_gap: float
  cce_gains: np.ndarray
  ce_gains: list[np.ndarray]
  values: np.ndarray


def joint_gaps(tree: GameTree, reaches: Sequence[np.ndarray], joint: np.ndarray) -> CorrelatedGaps:
  """Exact CCE and CE gaps of `joint` in the full game.

  Args:
    tree: the compiled game.
    reaches: per player `[N_p, Z]` members' terminal reaches.
    joint: `[N_0, ..., N_{P-1}]` distribution over joint profiles.
  """
  joint = np.asarray(joint, dtype=np.float64)
  num_players = tree.num_players
  cce_gains, values = np.zeros(num_players), np.zeros(num_players)
  ce_gains = []
  for p in range(num_players):
    # Batch over p's recommendation k: the opponents' reach given s_p = k.
    by_recommendation = np.moveaxis(joint, p, 0)
    support = np.flatnonzero(by_recommendation.reshape(len(by_recommendation), -1).any(1))
    others = [reaches[q] for q in range(num_players) if q != p]
    weights = correlated_reach(others, by_recommendation[support]) * (
      tree.terminal_chance_reach * tree.terminal_returns[:, p]
    )  # [K, Z]
    on_policy = (weights * reaches[p][support]).sum(axis=1)  # [K]
    deviation, _ = exploitability.best_response_from_weights(tree, p, weights)
    gains = np.zeros(len(by_recommendation))
    gains[support] = deviation - on_policy
    ce_gains.append(gains)
    committed, _ = exploitability.best_response_from_weights(tree, p, weights.sum(axis=0))
    values[p] = on_policy.sum()
    cce_gains[p] = committed - values[p]
  return CorrelatedGaps(
    cce_gap=float(np.maximum(cce_gains, 0).sum()),
    ce_gap=float(sum(np.maximum(g, 0).sum() for g in ce_gains)),
    cce_gains=cce_gains,
    ce_gains=ce_gains,
    values=values,
  )
