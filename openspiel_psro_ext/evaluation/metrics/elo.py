"""Elo ratings from exact expected scores (a logistic / Bradley-Terry fit).

Method. Elo models the expected score of `a` against `b` as

    E[score] = 1 / (1 + 10^(-(r_a - r_b + h) / 400)),

where `score` is 1 for a win, 1/2 for a draw and 0 for a loss, and `h` is an
optional advantage of the first-named side (the seat-0 advantage in an
asymmetric two-player game). Given the exact expected score `s_m` of every
comparison `m` (no sampled games), the ratings are the maximum-likelihood fit
of that logistic model: they minimise the cross-entropy

    L(r, h) = -sum_m w_m [s_m log p_m + (1 - s_m) log(1 - p_m)],

with `p_m` the modelled score. `L` is convex, so Newton's method with a
backtracking line search finds the optimum in a few steps; the Hessian is
built from the comparison list in O(#comparisons) and solved densely. This is
the same model as OpenSpiel's `pyspiel.elo` (which fits integer win/draw
counts by minorisation-maximisation); here scores are fractional and exact.
Two details keep the fit finite and unique:

* scores are smoothed towards 1/2, `s <- (1 - eps) s + eps / 2` (eps = 1e-3),
  so a policy that always wins gets a large but finite rating;
* ratings have a free additive constant (and, with `h`, one per side), so some
  ratings are held fixed: the anchors. PSRO anchors the uniform random policy
  at 0 in each seat.
"""

from __future__ import annotations

import dataclasses

import numpy as np

ELO_SCALE = 400.0
DEFAULT_SMOOTHING = 1e-3
_NATURAL = np.log(10.0) / ELO_SCALE  # Elo points -> logit units.


@dataclasses.dataclass
class EloFit:
  """Result of `fit_elo`.

  Attributes:
    ratings: `[K]` Elo ratings (fixed entries as given).
    advantage: the fitted (or given) first-side advantage `h`, in Elo points.
    newton_steps: iterations used.
  """

  ratings: np.ndarray
  advantage: float
  newton_steps: int


def _loss(logits: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
  # -[s log sigma(x) + (1-s) log sigma(-x)] = softplus(x) - s x, stably.
  return float(weights @ (np.logaddexp(0.0, logits) - scores * logits))


def fit_elo(
  first: np.ndarray,
  second: np.ndarray,
  scores: np.ndarray,
  num_entities: int,
  *,
  weights: np.ndarray | None = None,
  fixed: dict[int, float] | None = None,
  fit_advantage: bool = False,
  advantage: float = 0.0,
  smoothing: float = DEFAULT_SMOOTHING,
  max_steps: int = 100,
  tolerance: float = 1e-10,
) -> EloFit:
  """Maximum-likelihood Elo ratings from expected scores.

  Args:
    first: `[M]` entity index of the first side of each comparison.
    second: `[M]` entity index of the second side.
    scores: `[M]` expected score of `first` against `second`, in [0, 1].
    num_entities: `K`, number of rated entities.
    weights: `[M]` comparison weights (number of games); default 1.
    fixed: entity -> Elo held fixed (anchors). Entities not in any comparison
      and not fixed get rating 0.
    fit_advantage: fit the first-side advantage `h`; otherwise use `advantage`.
    advantage: `h` in Elo points when not fitted.
    smoothing: `eps` of the score smoothing (see module doc).
    max_steps: Newton iterations at most.
    tolerance: stop when the Newton decrement is below this.

  Returns:
    An `EloFit`.
  """
  first = np.asarray(first, dtype=np.int64)
  second = np.asarray(second, dtype=np.int64)
  scores = (1.0 - smoothing) * np.asarray(scores, dtype=np.float64) + smoothing / 2
  weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64)
  fixed = dict(fixed or {})
  # Parameters in logit units: K ratings then h.
  theta = np.zeros(num_entities + 1)
  for entity, rating in fixed.items():
    theta[entity] = rating * _NATURAL
  theta[num_entities] = advantage * _NATURAL
  free = np.ones(num_entities + 1, dtype=bool)
  free[list(fixed)] = False
  free[num_entities] = fit_advantage
  free_index = np.flatnonzero(free)
  size = num_entities + 1

  def logits_of(t: np.ndarray) -> np.ndarray:
    return t[first] - t[second] + t[num_entities]

  # d logit / d theta: +1 for `first`, -1 for `second`, +1 for h.
  rows = np.concatenate([first, second, np.full_like(first, num_entities)])
  signs = np.concatenate([np.ones(len(first)), -np.ones(len(first)), np.ones(len(first))])
  comparison = np.tile(np.arange(len(first)), 3)
  slots = ((first, 1.0), (second, -1.0), (np.full_like(first, num_entities), 1.0))

  loss = _loss(logits_of(theta), scores, weights)
  steps = 0
  for steps in range(1, max_steps + 1):  # noqa: B007 (the count is read after the loop)
    logits = logits_of(theta)
    prob = 1.0 / (1.0 + np.exp(-logits))
    residual = weights * (prob - scores)
    curvature = weights * prob * (1.0 - prob)
    grad = np.bincount(rows, weights=signs * residual[comparison], minlength=size)
    # Hessian: sum_m curvature_m * sign_a * sign_b over each pair (a, b) of
    # the comparison's three parameter slots.
    flat_hess = np.zeros(size * size)
    for a_rows, a_sign in slots:
      for b_rows, b_sign in slots:
        flat_hess += np.bincount(
          a_rows * size + b_rows, weights=a_sign * b_sign * curvature, minlength=size * size
        )
    hess = flat_hess.reshape(size, size)
    g = grad[free_index]
    h = hess[np.ix_(free_index, free_index)]
    h[np.diag_indices_from(h)] += 1e-12
    try:
      step = g / h[0, 0] if len(g) == 1 else np.linalg.solve(h, g)
    except np.linalg.LinAlgError:
      step = np.linalg.lstsq(h, g, rcond=None)[0]
    decrement = float(g @ step)
    if decrement / 2 <= tolerance:
      break
    # Backtracking line search on the convex loss.
    size_factor = 1.0
    while True:
      candidate = theta.copy()
      candidate[free_index] -= size_factor * step
      new_loss = _loss(logits_of(candidate), scores, weights)
      if new_loss <= loss - 0.25 * size_factor * decrement or size_factor < 1e-8:
        break
      size_factor *= 0.5
    theta, loss = candidate, new_loss
  return EloFit(
    ratings=theta[:num_entities] / _NATURAL,
    advantage=float(theta[num_entities] / _NATURAL),
    newton_steps=steps,
  )


def seat_elo(
  scores: np.ndarray, anchor0: int, anchor1: int
) -> tuple[np.ndarray, np.ndarray, float]:
  """Elo of two seats' pools from seat 0's expected scores.

  Every seat-0 policy `i` meets every seat-1 policy `j`, with seat 0's expected
  score `scores[i, j]`. Ratings of both seats share one scale plus a seat-0
  advantage `h`; `anchor0` (seat 0) and `anchor1` (seat 1) are held at 0,
  which fixes the scale's two free constants. Within a seat the fit is
  monotone: a policy whose score is at least another's against every
  opponent, and higher against one, is rated strictly higher.

  Args:
    scores: `[K0, K1]` seat 0's expected score in [0, 1].
    anchor0: index of the seat-0 anchor policy.
    anchor1: index of the seat-1 anchor policy.

  Returns:
    (ratings0 `[K0]`, ratings1 `[K1]`, seat-0 advantage h).
  """
  k0, k1 = scores.shape
  first, second = np.divmod(np.arange(k0 * k1), k1)
  fit = fit_elo(
    first,
    second + k0,
    scores.ravel(),
    k0 + k1,
    fixed={anchor0: 0.0, k0 + anchor1: 0.0},
    fit_advantage=True,
  )
  return fit.ratings[:k0], fit.ratings[k0:], fit.advantage


def rating_against(
  scores: np.ndarray, opponent_ratings: np.ndarray, advantage: float = 0.0
) -> float:
  """Elo of one newcomer from its scores against already-rated opponents.

  The opponents' ratings stay fixed (the newcomer does not move them); this
  rates a meta-strategy mixture on the scale of its population.

  Args:
    scores: `[K]` the newcomer's expected score against each opponent.
    opponent_ratings: `[K]` their Elo.
    advantage: the newcomer's side advantage `h` (its seat's, in Elo).
  """
  k = len(scores)
  fit = fit_elo(
    np.zeros(k, dtype=np.int64),
    np.arange(1, k + 1),
    scores,
    k + 1,
    fixed={j + 1: r for j, r in enumerate(opponent_ratings)},
    advantage=advantage,
  )
  return float(fit.ratings[0])
