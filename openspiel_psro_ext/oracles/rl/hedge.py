"""Multiplicative weights over an opponent's population while a best response
trains (neural Anytime PSRO, McAleer et al. 2022).

PSRO trains player p's best response against a fixed mixture sigma_q of the
opponent's population. Anytime PSRO instead lets the mixture learn while the
best response trains: sigma_q is a no-regret learner (multiplicative weights,
Hedge) over q's members, playing against the best response as it improves.
Every `window` episodes,

    u_k  = mean payoff to q of the window's episodes in which member k played,
    w_k <- w_k exp(step * u_k),      sigma_q = w / sum(w),

on the game's own payoffs, as the paper's reference settings are; a member
not drawn in the window keeps its weight relative to the others (its `u_k`
is the mixture's average over the members drawn). The learner's output is
the time average of the iterates (each weighted by the episodes it played):
against a best response that improves, it aims at the mixture q can least
be exploited with, as the tabular Anytime PSRO's least exploitable mixture
is. The paper's reference settings, step 0.1 and a window
of 1000 episodes, are `HedgeOptions`' defaults. A request asks for these
learners with a `base.LearningMixture`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class HedgeOptions:
  """The opponent learner's settings (module doc); their ranges are declared
  where a run takes them (`AnytimeOptions.hedge_step`, `hedge_window`).

  Attributes:
    step: the learning rate, on the game's payoffs.
    window: episodes per update (fewer updates, less noise in each).
  """

  step: float = 0.1
  window: int = 1000


class OpponentHedge:
  """One opponent's mixture over its `N` members as a Hedge learner.

  Args:
    weights: `[N]` the starting mixture (every member needs some weight).
    options: step and window.
  """

  def __init__(self, weights: np.ndarray, options: HedgeOptions):
    weights = np.asarray(weights, dtype=np.float64)
    if np.any(weights <= 0):
      raise ValueError("multiplicative weights cannot raise a member of weight 0.")
    self.options = options
    self._log_weights = np.log(weights / weights.sum())
    self._sums = np.zeros(len(weights))
    self._counts = np.zeros(len(weights))
    self._weighted_sum = np.zeros(len(weights))  # the iterates times their episodes
    self.updates = 0

  @property
  def weights(self) -> np.ndarray:
    """`[N]` the current mixture."""
    w = np.exp(self._log_weights - self._log_weights.max())
    return w / w.sum()

  def average(self) -> np.ndarray:
    """`[N]` the iterates' average, each weighted by the episodes it played
    (the current mixture if no episode finished yet)."""
    pending = self._counts.sum()
    total = self._weighted_sum + pending * self.weights
    return total / total.sum() if total.sum() > 0 else self.weights

  def observe(self, members: np.ndarray, payoffs: np.ndarray) -> bool:
    """Takes finished episodes in order: `[n]` the member each played and
    `[n]` q's payoff in it. Returns whether the mixture changed."""
    members = np.asarray(members, dtype=np.int64)
    payoffs = np.asarray(payoffs, dtype=np.float64)
    n, changed, window = len(members), False, self.options.window
    start = 0
    while start < n:
      take = min(window - int(self._counts.sum()), n - start)
      part = slice(start, start + take)
      size = len(self._sums)
      self._sums += np.bincount(members[part], payoffs[part], minlength=size)
      self._counts += np.bincount(members[part], minlength=size)
      start += take
      if self._counts.sum() >= window:
        self._update()
        changed = True
    return changed

  def _update(self) -> None:
    weights, seen = self.weights, self._counts > 0
    mean = np.where(seen, self._sums / np.maximum(self._counts, 1), 0.0)
    average = weights[seen] @ mean[seen] / weights[seen].sum()
    payoff = np.where(seen, mean, average)
    self._weighted_sum += self._counts.sum() * weights
    self._log_weights += self.options.step * payoff
    self._log_weights -= self._log_weights.max()
    self._sums[:] = 0.0
    self._counts[:] = 0.0
    self.updates += 1
