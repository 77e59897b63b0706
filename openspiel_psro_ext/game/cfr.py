"""CFR+ over a compiled tree, vectorised per level, on any restriction of it.

Counterfactual regret minimisation (Zinkevich et al. 2007) in its CFR+ form
(Tammelin 2014): every information state I of player p runs regret
matching+ over its actions. With the others' policies fixed, terminal z
carries the counterfactual weight `w_p(z)` of `exploitability` (chance and
the others' reach times p's return), and the counterfactual value of
sequence (I, a) is the sum over what follows it,

    q(I, a) = sum_{z after (I, a)} x_p(z | I, a) w_p(z),

where `x_p(z | I, a)` is p's own reach from (I, a) to z. One sweep over p's
information states from the deepest level up computes all of them at once:
summing `w_p` into the terminal sequences gives each sequence its immediate
value; a state's value `v(I) = sum_a pi(I, a) q(I, a)` is then added into
the sequence that leads to it (`InfostateTable.parent_sequence`). Levels
count the player's own actions, so this holds under perfect recall wherever
the histories of one state lie. CFR+ then updates

    R(I, a) <- max(R(I, a) + q(I, a) - v(I), 0),
    pi(I, a) = R(I, a) / sum_b R(I, b)   (uniform where all are 0),

alternating the players (p's update sees the others' newest policies), and
averages the policies weighted by the iteration number and p's own reach of
I (linear averaging). In two-player zero-sum games the average converges to
a Nash equilibrium. `predictive=True` is predictive CFR+ (Farina et al.
2021): the policy matches `max(R + r_t, 0)`, the regrets plus the last
instantaneous regret `r_t` as a prediction of the next, and the average is
weighted by the squared iteration number. Which of the two converges faster
depends on the game.

A restriction (XDO's restricted game) is an `[I_p, A]` mask of allowed
actions per player: regrets and policies live on allowed actions only, and
`restricted_nash_conv` measures the average against best responses that may
use allowed actions only. Growing a restriction keeps the regrets (new
actions start at 0), a warm start; `restart_average` drops the average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.game.game_tree import GameTree


def counterfactual_action_values(
  tree: GameTree, player: int, weights: np.ndarray, policy: np.ndarray
) -> np.ndarray:
  """`[I_p, A]` counterfactual values `q(I, a)` of `player` playing `policy`.

  Args:
    weights: `[Z]` counterfactual terminal weights `w_p(z)`.
    policy: `[I_p, A]` the player's own behaviour policy (below each state).
  """
  table = tree.infostates[player]
  num_seq = table.num_sequences
  seq_values = np.bincount(tree.terminal_sequence[player], weights=weights, minlength=num_seq + 1)
  per_state = seq_values[:num_seq].reshape(table.num_infostates, tree.num_actions)
  for states in reversed(table.level_slices[1:]):
    state_values = np.einsum("ia,ia->i", per_state[states], policy[states])
    # Sibling states may share a parent sequence: accumulate, don't assign.
    seq_values += np.bincount(
      table.parent_sequence[states], weights=state_values, minlength=num_seq + 1
    )
  return per_state


def regret_matching(regrets: np.ndarray, allowed: np.ndarray) -> np.ndarray:
  """`[I, A]` policy proportional to positive regrets (uniform on `allowed`
  where none is positive)."""
  positive = np.maximum(regrets, 0.0) * allowed
  totals = positive.sum(axis=1, keepdims=True)
  uniform = allowed / allowed.sum(axis=1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(totals > 0, positive / totals, uniform)


def normalized_average(average: np.ndarray, allowed: np.ndarray) -> np.ndarray:
  """`[I, A]` policy from reach-weighted policy sums (uniform on `allowed`
  where nothing was accumulated: states the average never reaches)."""
  totals = average.sum(axis=1, keepdims=True)
  uniform = allowed / allowed.sum(axis=1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(totals > 0, average / totals, uniform)


def restricted_nash_conv(
  tree: GameTree, policies: Sequence[np.ndarray], allowed: Sequence[np.ndarray]
) -> float:
  """NashConv of `policies` in the game restricted to `allowed` actions:
  each player's best response may play only its allowed actions."""
  reach = np.stack([tree.terminal_reach(p, m) for p, m in enumerate(policies)])
  on_policy = exploitability.on_policy_from_reach(tree, reach)
  gains = [
    exploitability.best_response_from_weights(
      tree, p, exploitability.counterfactual_weights(tree, p, reach), allowed=allowed[p]
    )[0]
    - on_policy[p]
    for p in range(tree.num_players)
  ]
  return float(np.sum(gains))


class CFRPlus:
  """CFR+ on a compiled tree, restricted to allowed actions (module doc).

  Args:
    tree: the compiled game.
    allowed: per player `[I_p, A]` bool masks, each state with at least one
      allowed action; None: every legal action.
    predictive: predictive CFR+ (module doc).

  Attributes:
    iterations: CFR+ iterations since the average last restarted (its
      linear weights count from there).
    total_iterations: all iterations run.
  """

  def __init__(
    self, tree: GameTree, allowed: Sequence[np.ndarray] | None = None, predictive: bool = False
  ):
    self.tree, self.predictive = tree, predictive
    shapes = [t.legal_mask.shape for t in tree.infostates]
    self.regrets = [np.zeros(s) for s in shapes]
    self._predictions = [np.zeros(s) for s in shapes]  # last instantaneous regrets
    self.average_sums = [np.zeros(s) for s in shapes]
    self.iterations = self.total_iterations = 0
    self.allowed: list[np.ndarray] = []
    self.restrict(allowed if allowed is not None else [t.legal_mask for t in tree.infostates])

  def restrict(self, allowed: Sequence[np.ndarray]) -> None:
    """Sets the allowed actions; regrets of actions still allowed are kept."""
    allowed = [
      np.asarray(a, dtype=bool) & t.legal_mask for a, t in zip(allowed, self.tree.infostates)
    ]
    for p, mask in enumerate(allowed):
      if not mask.any(axis=1).all():
        raise ValueError(
          f"player {p}: {int((~mask.any(axis=1)).sum())} information states have no allowed action."
        )
      self.regrets[p] *= mask
      self._predictions[p] *= mask
      self.average_sums[p] *= mask
    self.allowed = allowed
    self._float_allowed = [m.astype(np.float64) for m in allowed]
    self.current = [self._matched_policy(p) for p in range(len(allowed))]

  def restart_average(self) -> None:
    """Drops the average policy; the next iterations' weights count from 1."""
    for sums in self.average_sums:
      sums[:] = 0.0
    self.iterations = 0

  def iterate(self, count: int) -> None:
    """Runs `count` CFR+ iterations (alternating updates)."""
    tree = self.tree
    reach = np.stack([tree.terminal_reach(p, m) for p, m in enumerate(self.current)])
    power = 2 if self.predictive else 1
    for _ in range(count):
      self.iterations += 1
      self.total_iterations += 1
      for p in range(tree.num_players):
        table = tree.infostates[p]
        weights = exploitability.counterfactual_weights(tree, p, reach)
        policy = self.current[p]
        values = counterfactual_action_values(tree, p, weights, policy)
        state_values = np.einsum("ia,ia->i", values, policy)
        instant = self._instant_regrets(p, values, state_values)
        self.regrets[p] = np.maximum(self.regrets[p] + instant, 0.0)
        plan = tree.realization_plans(p, policy)
        self.average_sums[p] += (self.iterations**power * plan[table.parent_sequence])[
          :, None
        ] * policy
        if self.predictive:
          self._predictions[p] = instant
        self.current[p] = self._matched_policy(p)
        reach[p] = tree.terminal_reach(p, self.current[p])

  def _instant_regrets(
    self, player: int, values: np.ndarray, state_values: np.ndarray
  ) -> np.ndarray:
    """`[I, A]` regrets of this iteration: `q(I, a) - v(I)` on allowed actions."""
    return (values - state_values[:, None]) * self._float_allowed[player]

  def _matched_policy(self, player: int) -> np.ndarray:
    """`[I, A]` regret matching+ (predictive: on regrets plus the prediction)."""
    return regret_matching(
      self.regrets[player] + self._predictions[player], self._float_allowed[player]
    )

  def average_policy(self) -> list[np.ndarray]:
    """Per player `[I_p, A]`: the average policy (module doc)."""
    return [normalized_average(s, m) for s, m in zip(self.average_sums, self._float_allowed)]

  def restricted_gap(self) -> float:
    """The average's NashConv in the restricted game."""
    return restricted_nash_conv(self.tree, self.average_policy(), self.allowed)

  def solve(self, target_nash_conv: float, max_iterations: int, check_every: int = 10) -> float:
    """Iterates until the average's restricted NashConv is at most the target
    (checked every `check_every` iterations) or `max_iterations` more ran.

    Returns:
      The average's restricted NashConv when it stopped.
    """
    done = 0
    while True:
      gap = self.restricted_gap() if self.iterations else np.inf
      if gap <= target_nash_conv or done >= max_iterations:
        return gap
      step = min(check_every, max_iterations - done)
      self.iterate(step)
      done += step


class MemberCFRPlus(CFRPlus):
  """CFR+ on NXDO's restricted game: at each state, a player picks one of its
  population members and plays that member's action distribution there.

  The restricted game keeps the extensive form, like XDO's, but its actions
  at a state I of player p are p's K members (McAleer et al. 2021, NXDO):
  choosing member k plays `pi_k(. | I)`. With regrets `R(I, k)` over members,
  p's behaviour is the mixture

      pi(a | I) = sum_k w(I, k) pi_k(a | I),    w(I, .) = RM+(R(I, .)),

  and member k's counterfactual value is `sum_a pi_k(a | I) q(I, a)`, so one
  sweep of `counterfactual_action_values` serves every member. Unlike XDO's
  action restriction, a stochastic member (an RL best response) adds its
  distribution, not every action it gives some probability: the output can
  mix, state by state, only what the members play. The average is the
  reach-weighted average of the behaviours, as in CFR+.

  Args:
    tree: the compiled game.
    members: per player `[K_p, I_p, A]` behaviour policies.
    predictive: predictive CFR+ (module doc).
  """

  def __init__(self, tree: GameTree, members: Sequence[np.ndarray], predictive: bool = False):
    # Not CFRPlus.__init__: regrets live on members (`[I, K]`), not actions.
    self.tree, self.predictive = tree, predictive
    self.members = [np.asarray(m, dtype=np.float64) for m in members]
    self.regrets = [np.zeros(m.shape[1::-1]) for m in self.members]
    self._predictions = [np.zeros(m.shape[1::-1]) for m in self.members]
    self.average_sums = [np.zeros(t.legal_mask.shape) for t in tree.infostates]
    self.iterations = self.total_iterations = 0
    self.allowed = [t.legal_mask for t in tree.infostates]
    self._float_allowed = [m.astype(np.float64) for m in self.allowed]
    self.current = [self._matched_policy(p) for p in range(tree.num_players)]

  def restrict(self, allowed: Sequence[np.ndarray]) -> None:
    raise TypeError("members, not actions, restrict this game: grow it with extend().")

  def extend(self, members: Sequence[np.ndarray]) -> None:
    """Grows the populations (the first members unchanged): the new members'
    regrets start at 0, and the average restarts."""
    for p, grown in enumerate(members):
      old = len(self.members[p])
      if not np.array_equal(grown[:old], self.members[p]):
        raise ValueError(f"player {p}: extend keeps the existing {old} members first.")
      pad = np.zeros((grown.shape[1], len(grown) - old))
      self.regrets[p] = np.concatenate([self.regrets[p], pad], axis=1)
      self._predictions[p] = np.concatenate([self._predictions[p], pad], axis=1)
      self.members[p] = np.asarray(grown, dtype=np.float64)
    self.current = [self._matched_policy(p) for p in range(self.tree.num_players)]
    self.restart_average()

  def member_weights(self, player: int) -> np.ndarray:
    """`[I, K]` the current mixture over members at each state."""
    regrets = self.regrets[player] + self._predictions[player]
    return regret_matching(regrets, np.ones_like(regrets))

  def _instant_regrets(
    self, player: int, values: np.ndarray, state_values: np.ndarray
  ) -> np.ndarray:
    member_values = np.einsum("ia,kia->ik", values, self.members[player])
    return member_values - state_values[:, None]

  def _matched_policy(self, player: int) -> np.ndarray:
    return np.einsum("ik,kia->ia", self.member_weights(player), self.members[player])

  def restricted_gap(self) -> float:
    """The average's NashConv when each best response picks members."""
    tree = self.tree
    policies = self.average_policy()
    reach = np.stack([tree.terminal_reach(p, m) for p, m in enumerate(policies)])
    on_policy = exploitability.on_policy_from_reach(tree, reach)
    return float(
      sum(
        exploitability.best_response_from_weights(
          tree, p, exploitability.counterfactual_weights(tree, p, reach), choices=self.members[p]
        )[0]
        - on_policy[p]
        for p in range(tree.num_players)
      )
    )
