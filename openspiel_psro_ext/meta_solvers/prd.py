"""Projected replicator dynamics (PRD), Lanctot et al. 2017 (PSRO paper).

Replicator dynamics grows each policy's probability in proportion to how much
it beats the player's current average:

    dx_p[a]/dt = x_p[a] * (u_p(a, x_{-p}) - u_p(x)),

where `u_p(a, x_{-p})` is the expected payoff of pure policy `a` against the
others' mixtures. PRD integrates this with Euler steps of size `dt` and
projects each step (in L2) onto the gamma-floored simplex
`{x : x[a] >= gamma, sum_a x[a] = 1}`, so that no policy's probability dies
out and every policy keeps receiving training signal. Like stock OpenSpiel,
`gamma` is the absolute floor; the paper writes it as `gamma / (K + 1)` for
`K + 1` policies, so pass `gamma / n` to reproduce that reading.

The answer is the average of the iterates (the time average of replicator
dynamics approaches the equilibrium in zero-sum games even when the
trajectory cycles), optionally over only the last `average_over_last_n`.

The Euler update preserves `sum_a x[a]` exactly, so the projection is the
identity unless some entry fell below `gamma`; the sort-based projection only
runs then. Two-player games use matrix-vector products, `k` players a chain
of tensor contractions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from openspiel_psro_ext.meta_solvers import common
from openspiel_psro_ext.records import schema


@dataclasses.dataclass(frozen=True)
class PRDConfig:
  """PRD hyperparameters.

  Attributes:
    iterations: number of Euler steps.
    dt: step size.
    gamma: exploration floor, the least probability of every policy.
    average_over_last_n: average only the last n iterates (None: all).
  """

  iterations: int = schema.setting(10_000, min=0, max=100_000_000)
  dt: float = schema.setting(1e-2, above=0)
  gamma: float = schema.setting(1e-6, min=0, below=1)
  average_over_last_n: int | None = schema.setting(None, min=1)

  def __post_init__(self) -> None:
    wrong = schema.object_problem(self, lambda key: f"PRDConfig.{key}")
    if wrong is not None:
      raise ValueError(wrong)


def project_to_floored_simplex(v: np.ndarray, gamma: float) -> np.ndarray:
  """L2 projection of `v` ([n]) onto `{x >= gamma, sum x = 1}`.

  The projection is `x = max(v - tau, gamma)` with the scalar `tau` chosen so
  that `x` sums to 1; sorting `v` finds the set of un-clipped entries.
  """
  n = v.size
  if gamma * n > 1.0:
    raise ValueError(f"gamma={gamma} is infeasible for {n} policies.")
  u = np.sort(v)[::-1]
  k = np.arange(1, n + 1)
  # With the top-k entries free and the rest at gamma: tau_k below.
  tau = (np.cumsum(u) - (1.0 - (n - k) * gamma)) / k
  free = u - tau > gamma
  last = int(np.flatnonzero(free)[-1]) if free.any() else 0
  return np.maximum(v - tau[last], gamma)


def _project_if_needed(x: np.ndarray, gamma: float) -> np.ndarray:
  """Projects `x` (summing to 1) onto the gamma-floored simplex, cheaply.

  Fast exact path: clip the entries below `gamma` and remove the excess
  uniformly from the others; that is the projection whenever no other entry
  is pushed under `gamma`. Otherwise the sort-based projection runs.
  """
  low = x < gamma
  if not low.any():
    return x
  free = ~low
  tau = (gamma * np.count_nonzero(low) - x[low].sum()) / np.count_nonzero(free)
  out = np.where(low, gamma, x - tau)
  if out[free].min() >= gamma:
    return out
  return project_to_floored_simplex(x, gamma)


def _step(x: np.ndarray, values: np.ndarray, dt: float, gamma: float) -> np.ndarray:
  x = x + dt * x * (values - values @ x)
  x /= x.sum()  # see the two-player loop: the sum drifts unstably otherwise
  if x.min() < gamma:
    x = _project_if_needed(x, gamma)
  return x


#: Stock `projected_replicator_dynamics`'s keyword names for ours (the
#: `psro_v2` bridge renames them with `MetaSolverSpec.from_stock_kwargs`).
STOCK_KWARGS = {
  "prd_iterations": "iterations",
  "prd_dt": "dt",
  "prd_gamma": "gamma",
  "average_over_last_n_strategies": "average_over_last_n",
  "prd_initial_strategies": "initial_strategies",
}
#: Stock's defaults where ours differ (1e5 steps of 1e-3; ours 1e4 of 1e-2).
STOCK_DEFAULTS = {"iterations": 100_000, "dt": 1e-3}


def prd(
  meta_games: Sequence[np.ndarray],
  *,
  iterations: int | None = None,
  dt: float | None = None,
  gamma: float | None = None,
  average_over_last_n: int | None = None,
  initial_strategies: Sequence[np.ndarray] | None = None,
  config: PRDConfig | None = None,
) -> list[np.ndarray]:
  """Runs projected replicator dynamics on a `k`-player meta-game.

  Keyword arguments override the matching `config` fields. Stock OpenSpiel's
  names (`prd_iterations`, ...) are mapped onto these by the registry's
  `STOCK_KWARGS`, not accepted here.

  Args:
    meta_games: list of `k` payoff tensors of shape `[n_0, ..., n_{k-1}]`.
    iterations, dt, gamma, average_over_last_n: see `PRDConfig`.
    initial_strategies: starting mixtures (default uniform).
    config: a `PRDConfig`; defaults to `PRDConfig()`.

  Returns:
    List of `k` mixtures, the `p`-th of shape `[n_p]`: the iterate average.
  """
  # The keyword arguments given, by `PRDConfig` field name.
  mine: dict[str, Any] = {
    "iterations": iterations,
    "dt": dt,
    "gamma": gamma,
    "average_over_last_n": average_over_last_n,
  }
  cfg = dataclasses.replace(
    config or PRDConfig(), **{k: v for k, v in mine.items() if v is not None}
  )

  tables = common.as_two_player(common.validate_meta_games(meta_games, solver="prd"))
  shape = tables[0].shape
  k = len(tables)
  for p, n in enumerate(shape):
    if cfg.gamma * n > 1.0:
      raise common.MetaGameError(
        f"prd: gamma={cfg.gamma} times player {p}'s {n} policies exceeds 1; lower gamma."
      )
  if initial_strategies is None:
    xs = [np.full(n, 1.0 / n) for n in shape]
  else:
    xs = common.validate_profile(tables, initial_strategies)
    xs = [project_to_floored_simplex(x, cfg.gamma) for x in xs]

  total = cfg.iterations + 1  # iterates x^0 .. x^T, as stock averages them.
  window = total if cfg.average_over_last_n is None else min(total, cfg.average_over_last_n)
  start_avg = total - window
  sums = [np.zeros(n) for n in shape]
  if start_avg == 0:
    for s, x in zip(sums, xs):
      s += x

  dt, gamma = cfg.dt, cfg.gamma
  if k == 2:
    # Both players at once: z = [x; y], values = [[0, A], [B^T, 0]] z, and
    # `seg` sums z * values within each player's block.
    n0, n1 = shape
    big = np.zeros((n0 + n1, n0 + n1))
    big[:n0, n0:] = tables[0]
    big[n0:, :n0] = tables[1].T
    seg = np.zeros((n0 + n1, n0 + n1))
    seg[:n0, :n0] = 1.0
    seg[n0:, n0:] = 1.0
    z = np.concatenate(xs)
    zsum = np.concatenate(sums)
    for t in range(1, total):
      w = z * (big @ z)
      z = z + dt * (w - z * (seg @ w))
      # The Euler step keeps each block's sum only up to rounding, and the sum
      # is unstable (d(sum)/dt = sum(w) (1 - sum)): renormalise every step, or
      # on payoffs like Leduc's the drift grows until it overflows.
      z /= seg @ z
      if z.min() < gamma:
        z = np.concatenate([_project_if_needed(z[:n0], gamma), _project_if_needed(z[n0:], gamma)])
      if t >= start_avg:
        zsum += z
    sums = [zsum[:n0], zsum[n0:]]
  else:
    for t in range(1, total):
      values = [common.action_values(tables[p], xs, p) for p in range(k)]
      xs = [_step(xs[p], values[p], dt, gamma) for p in range(k)]
      if t >= start_avg:
        for s, x in zip(sums, xs):
          s += x
  return [s / s.sum() for s in sums]
