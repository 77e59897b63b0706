"""Checking our exact NashConv of a meta-strategy with OpenSpiel's own code.

A PSRO meta-strategy mixes population members: player p plays member k with
probability sigma_p[k] for the whole game. By Kuhn's theorem (perfect recall)
the mixture plays like one behaviour policy,

    pi_p(a | I) = sum_k sigma_p[k] x_k(I) pi_k(a | I) / sum_k sigma_p[k] x_k(I),

where x_k(I) is the probability that member k plays its own actions on the
way to information state I (the product of its action probabilities there).
OpenSpiel's `PolicyAggregator` computes the same policy by walking the game
once per member; `behaviour_mixture` computes it with one gather and product
over the players' own paths, which it reads from pyspiel's state histories
(not from the compiled tree's sequence form, which our NashConv uses), and
OpenSpiel's `exploitability.nash_conv` then evaluates it. So the check stays
independent of our NashConv code while costing one OpenSpiel NashConv rather
than one aggregation per member. `method="policy_aggregator"` keeps stock's
path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from openspiel_psro_ext.game import policies as policies_lib
from openspiel_psro_ext.game.game_tree import GameTree

METHODS = ("behaviour_mixture", "policy_aggregator")


class VerificationError(RuntimeError):
  """Our exact NashConv disagrees with OpenSpiel's."""


def own_paths(tree: GameTree, player: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The player's own decisions before each of its information states.

  Replays each information state's representative history in pyspiel and
  notes where `player` acted.

  Returns:
    `(rows, actions, mask)`, each `[I_p, D]` (D: the longest path): the
    information-state row and action of each own decision, and which entries
    are real (the rest is padding).
  """
  table = tree.infostates[player]
  paths = []
  for state in table.states:
    replay, path = tree.game.new_initial_state(), []
    for action in state.history():
      if replay.current_player() == player:
        path.append((table.index[replay.information_state_string(player)], action))
      replay.apply_action(action)
    paths.append(path)
  depth = max((len(p) for p in paths), default=0)
  rows = np.zeros((len(paths), depth), dtype=np.int64)
  actions = np.zeros((len(paths), depth), dtype=np.int64)
  mask = np.zeros((len(paths), depth), dtype=bool)
  for i, path in enumerate(paths):
    if path:
      rows[i, : len(path)], actions[i, : len(path)] = zip(*path)
      mask[i, : len(path)] = True
  return rows, actions, mask


def behaviour_mixture(
  tree: GameTree, player: int, population: np.ndarray, weights: np.ndarray
) -> np.ndarray:
  """`[I_p, A]` behaviour policy of a mixture of `[N, I_p, A]` members.

  Where no member with positive weight reaches an information state, the
  weighted average of the members' own probabilities stands in (it cannot
  change the mixture's play).
  """
  weights = np.asarray(weights, dtype=np.float64)
  support = weights > 0
  members, weights = np.asarray(population)[support], weights[support]
  rows, actions, mask = own_paths(tree, player)
  steps = np.where(mask, members[:, rows, actions], 1.0)  # [N, I, D]
  reach = weights[:, None] * steps.prod(axis=2)  # [N, I]
  total = reach.sum(axis=0)
  fallback = np.einsum("k,kia->ia", weights / weights.sum(), members)
  mixed = np.einsum("ki,kia->ia", reach, members)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(total[:, None] > 0, mixed / total[:, None], fallback)


def support_policies(
  tree: GameTree, populations: Sequence[np.ndarray], sigma: Sequence[np.ndarray]
) -> tuple[list[list[Any]], list[np.ndarray]]:
  """OpenSpiel `TabularPolicy`s and weights of a meta-strategy's support.

  Args:
    populations: per player, `[N_p, I_p, A]` members (at least `len(sigma[p])`).
    sigma: per player, `[n_p]` probabilities over the first `n_p` members.
  """
  pops, weights = [], []
  for p, sigma_p in enumerate(sigma):
    sigma_p = np.asarray(sigma_p, dtype=np.float64)
    support = np.flatnonzero(sigma_p > 0)
    members = []
    for k in support:
      per_player: list[np.ndarray | None] = [None] * tree.num_players
      per_player[p] = populations[p][k]
      members.append(policies_lib.openspiel_policy(tree, per_player))
    pops.append(members)
    weights.append(sigma_p[support] / sigma_p[support].sum())
  return pops, weights


def openspiel_nash_conv(
  tree: GameTree,
  populations: Sequence[np.ndarray],
  sigma: Sequence[np.ndarray],
  method: str = "behaviour_mixture",
) -> float:
  """NashConv of a meta-strategy by OpenSpiel's `exploitability.nash_conv`.

  Args:
    populations: per player, `[N_p, I_p, A]` members.
    sigma: per player, `[n_p]` probabilities over the first `n_p` members.
    method: how the mixture becomes one OpenSpiel policy (module doc).
  """
  from open_spiel.python.algorithms import exploitability as os_exploitability  # pylint: disable=g-import-not-at-top

  if method == "policy_aggregator":
    from open_spiel.python.algorithms import policy_aggregator  # pylint: disable=g-import-not-at-top

    pops, weights = support_policies(tree, populations, sigma)
    policy = policy_aggregator.PolicyAggregator(tree.game).aggregate(
      list(range(tree.num_players)), pops, weights
    )
  elif method == "behaviour_mixture":
    policy = policies_lib.openspiel_policy(
      tree,
      [
        behaviour_mixture(tree, p, np.asarray(populations[p])[: len(s)], s)
        for p, s in enumerate(sigma)
      ],
    )
  else:
    raise ValueError(f"unknown verification method {method!r}; choose one of {METHODS}.")
  return float(os_exploitability.nash_conv(tree.game, policy))


def verify(
  tree: GameTree,
  populations: Sequence[np.ndarray],
  sigma: Sequence[np.ndarray],
  ours: float,
  tolerance: float = 1e-6,
  method: str = "behaviour_mixture",
  label: str = "",
) -> float:
  """OpenSpiel's NashConv of the meta-strategy, checked against `ours`.

  Raises:
    VerificationError: the two differ by more than `tolerance`.
  """
  theirs = openspiel_nash_conv(tree, populations, sigma, method)
  if not abs(theirs - ours) <= tolerance:
    raise VerificationError(
      f"{label}our NashConv {ours:.10f} differs from OpenSpiel's {theirs:.10f}"
      f" ({method}) by more than {tolerance}."
    )
  return theirs
