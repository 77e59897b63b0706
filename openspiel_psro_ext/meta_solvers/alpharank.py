"""α-Rank (Omidshafiei et al. 2019) over the joint profiles of a meta-game.

Model (multi-population, one population per player): the state is a pure
joint profile `s = (s_0, ..., s_{k-1})`. A mutant of population `p` switches
to `r_p != s_p` and takes over with the fixation probability of the Fermi
process of population size `m` and selection intensity `alpha`,

    rho(u) = (1 - e^{-u}) / (1 - e^{-m u}),   u = alpha * (f_p(r) - f_p(s)),

(`rho(0) = 1/m`), where `f_p` is population `p`'s payoff. Each such move has
rate `eta * rho(u)` with `eta = 1 / sum_p (n_p - 1)`. α-Rank is the stationary
distribution `pi` of this Markov chain over the `N = prod_p n_p` profiles;
its per-player marginals are the PSRO meta-strategy. A single square table
`[A]` is a symmetric game of one population (stock's local selection model,
`u = alpha * (A[r, s] - A[s, r])`, `eta = 1 / (n - 1)`).

Numerics (where we differ from stock `open_spiel.python.egt.alpharank`):
- `rho` is evaluated in a cancellation- and overflow-free form (`expm1`), so
  very unfavourable moves get tiny positive rates instead of `inf/inf`.
- The chain is built sparsely (`N * sum_p (n_p - 1)` moves) and vectorised.
- `pi` solves the balance equations `pi R = pi diag(R 1)` of the rate matrix
  `R` without forming `1 - sum` diagonals. Up to `gth_max_states` profiles we
  use Grassmann-Taksar-Heyman (GTH) elimination, which uses no subtractions
  and so stays accurate on nearly decomposable chains: stock's dense
  eigen-solver sees several eigenvalues within 1e-10 of 1 there and raises
  'Expected 1 stationary distribution' (about one random game in ten at
  alpha >= 1). Larger chains use lazy power iteration on the embedded jump
  chain with an a-posteriori error bound from the observed contraction rate,
  falling back to a dense LU solve when it contracts too slowly.
- If rates underflow to exactly 0, states outside the float chain's closed
  class get mass exactly 0 (they are transient); if there are several closed
  classes, `pi` is not determined in float64 and we raise
  `AlphaRankDegenerateError` rather than pick one.

Alpha sweep (`alpha=None`, the paper's recipe): starting from `alpha_start`,
alpha is multiplied by `sweep_factor` until `pi` stops changing (`rtol`,
`atol`, as stock's `sweep_pi_vs_alpha`); if a larger alpha becomes degenerate
in float64 first, the sweep returns the last well-posed `pi` (its limit as far
as float64 resolves it). No random perturbation is ever added.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse
from scipy.sparse import csgraph

from openspiel_psro_ext.meta_solvers import common

_LOG = logging.getLogger(__name__)


class AlphaRankDegenerateError(ArithmeticError):
  """The α-Rank chain is reducible in float64 at this alpha."""


@dataclasses.dataclass(frozen=True)
class AlphaRankConfig:
  """α-Rank hyperparameters.

  Attributes:
    alpha: selection intensity; None runs the alpha sweep.
    m: population size of the Fermi process.
    alpha_start, sweep_factor, sweep_max_steps: the sweep's geometric grid.
    rtol, atol: the sweep stops when successive `pi` are `np.allclose`.
    gth_max_states: largest chain solved by GTH elimination.
    power_tol: L1 error bound at which power iteration stops.
    power_max_iters: power iterations before the dense fallback.
  """
  alpha: float | None = None
  m: int = 50
  alpha_start: float = 1e-4
  sweep_factor: float = 2.0
  sweep_max_steps: int = 80
  rtol: float = 1e-5
  atol: float = 1e-8
  gth_max_states: int = 1000
  power_tol: float = 1e-12
  power_max_iters: int = 2000


@dataclasses.dataclass(frozen=True)
class AlphaRankResult:
  """Output of `compute`.

  Attributes:
    joint: stationary distribution over profiles, shape `[N]`, profiles in
      C order (last player fastest), as stock `egt.utils` numbers them.
    marginals: per-player marginals, `marginals[p]` of shape `[n_p]`.
    alpha: the alpha used (the sweep's final one when swept).
  """
  joint: np.ndarray
  marginals: list[np.ndarray]
  alpha: float


def log_fixation_probability(u: np.ndarray, m: int) -> np.ndarray:
  """`log rho(u)` for `rho(u) = (1 - e^{-u}) / (1 - e^{-m u})`, stably.

  For `u > 0`: `rho = expm1(-u) / expm1(-m u)`. For `u = -v < 0`, multiplying
  through by `e^{-m v}` gives `rho = e^{-(m-1) v} expm1(-v) / expm1(-m v)`,
  whose log never overflows. `|u| < 1e-12` uses the neutral `1/m`.
  """
  u = np.asarray(u, dtype=np.float64)
  out = np.full(u.shape, -np.log(m))
  pos = u > 1e-12
  neg = u < -1e-12
  up = u[pos]
  out[pos] = np.log(np.expm1(-up) / np.expm1(-m * up))
  v = -u[neg]
  out[neg] = -(m - 1) * v + np.log(np.expm1(-v) / np.expm1(-m * v))
  return out


def transition_rates(tables: Sequence[np.ndarray], alpha: float,
                     m: int) -> scipy.sparse.csr_matrix:
  """Sparse off-diagonal rate matrix `R` ([N, N]) of the α-Rank chain."""
  if len(tables) == 1:  # single population, local selection model.
    a = tables[0]
    n = a.shape[0]
    u = alpha * (a.T - a)  # u[s, r] = alpha * (A[r, s] - A[s, r])
    rate = np.exp(log_fixation_probability(u, m)) / max(n - 1, 1)
    np.fill_diagonal(rate, 0.0)
    return scipy.sparse.csr_matrix(rate)
  shape = tables[0].shape
  n_total = int(np.prod(shape))
  eta = 1.0 / max(sum(n - 1 for n in shape), 1)
  ids = np.arange(n_total).reshape(shape)
  rows, cols, vals = [], [], []
  for p, n_p in enumerate(shape):
    if n_p == 1:
      continue
    f = np.moveaxis(tables[p], p, -1)  # [..., n_p]
    idp = np.moveaxis(ids, p, -1)
    diff = f[..., None, :] - f[..., :, None]  # [..., s_p, r_p]: f(r) - f(s)
    off = np.broadcast_to(~np.eye(n_p, dtype=bool), diff.shape)
    rows.append(np.broadcast_to(idp[..., :, None], diff.shape)[off])
    cols.append(np.broadcast_to(idp[..., None, :], diff.shape)[off])
    vals.append(eta * np.exp(log_fixation_probability(alpha * diff[off], m)))
  if not vals:  # a single profile: no moves.
    return scipy.sparse.csr_matrix((n_total, n_total))
  return scipy.sparse.csr_matrix(
      (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
      shape=(n_total, n_total))


def _closed_classes(rates: scipy.sparse.csr_matrix) -> list[np.ndarray]:
  """Closed communicating classes (state indices) of the positive-rate graph."""
  graph = rates.copy()
  graph.data = (graph.data > 0).astype(np.float64)
  graph.eliminate_zeros()
  n_comp, labels = csgraph.connected_components(graph, directed=True,
                                                connection="strong")
  coo = graph.tocoo()
  leaves = labels[coo.row] != labels[coo.col]
  open_comp = np.zeros(n_comp, dtype=bool)
  open_comp[labels[coo.row[leaves]]] = True
  return [np.flatnonzero(labels == c) for c in np.flatnonzero(~open_comp)]


def _gth(rates: np.ndarray) -> np.ndarray:
  """Stationary distribution by GTH (subtraction-free) state reduction.

  Eliminating state `k` (last first) reroutes every path `i -> k -> j`:
  `R[i, j] += R[i, k] R[k, j] / s_k` with `s_k = sum_{j<k} R[k, j]` the rate
  out of `k` into the remaining states. Back-substitution
  `pi_k = sum_{i<k} pi_i R[i, k] / s_k` then rebuilds `pi` from `pi_0 = 1`.
  """
  r = np.array(rates, dtype=np.float64)
  np.fill_diagonal(r, 0.0)
  n = r.shape[0]
  s = np.zeros(n)
  for k in range(n - 1, 0, -1):
    s[k] = r[k, :k].sum()
    if s[k] <= 0:
      raise AlphaRankDegenerateError("rate matrix is reducible in float64")
    r[:k, :k] += np.outer(r[:k, k], r[k, :k] / s[k])
  pi = np.zeros(n)
  pi[0] = 1.0
  for k in range(1, n):
    pi[k] = pi[:k] @ r[:k, k] / s[k]
  return pi / pi.sum()


def _power(rates: scipy.sparse.csr_matrix, out: np.ndarray,
           pi0: np.ndarray | None, tol: float, max_iters: int,
           check: int = 20) -> np.ndarray | None:
  """Lazy power iteration on the jump chain; None if not certified."""
  n = out.size
  jump_t = (scipy.sparse.diags(1.0 / out) @ rates).T.tocsr()
  mu = np.full(n, 1.0 / n) if pi0 is None else pi0 * out / (pi0 @ out)
  d_prev = None
  for it in range(1, max_iters + 1):
    nxt = 0.5 * (mu + jump_t @ mu)
    if it % check == 0:
      d = float(np.abs(nxt - mu).sum())
      if d == 0.0:
        mu = nxt
        break
      if d_prev is not None and d < d_prev:
        rho = (d / d_prev) ** (1.0 / check)
        if rho < 1.0 and d * rho / (1.0 - rho) < tol:
          mu = nxt
          break
      d_prev = d
    mu = nxt
  else:
    return None
  pi = mu / out
  return pi / pi.sum()


def stationary_distribution(rates: scipy.sparse.csr_matrix,
                            config: AlphaRankConfig = AlphaRankConfig(),
                            pi0: np.ndarray | None = None) -> np.ndarray:
  """`pi` with `pi R = pi diag(R 1)`, `sum pi = 1`, for rate matrix `R`.

  Raises:
    AlphaRankDegenerateError: if the float64 chain has several closed classes.
  """
  n = rates.shape[0]
  if n == 1:
    return np.ones(1)
  closed = _closed_classes(rates)
  if len(closed) != 1:
    raise AlphaRankDegenerateError(
        f"the alpha-rank chain has {len(closed)} closed classes in float64"
        " (rates underflowed to 0): alpha is too large for these payoffs. Use"
        " the alpha sweep (alpha=None) or a smaller alpha.")
  if closed[0].size < n:
    # States outside the unique closed class are transient: mass exactly 0.
    members = closed[0]
    pi = np.zeros(n)
    sub0 = None if pi0 is None else pi0[members] + 1e-300
    pi[members] = stationary_distribution(rates[members][:, members], config,
                                          sub0)
    return pi
  if n <= config.gth_max_states:
    return _gth(rates.toarray())
  out = np.asarray(rates.sum(axis=1)).ravel()
  pi = _power(rates, out, pi0, config.power_tol, config.power_max_iters)
  if pi is not None:
    return pi
  _LOG.info("alpharank: power iteration slow on %d states; dense solve.", n)
  gen_t = (rates - scipy.sparse.diags(out)).T.toarray()
  gen_t[-1, :] = 1.0
  rhs = np.zeros(n)
  rhs[-1] = 1.0
  return common.normalize_distribution(scipy.linalg.solve(gen_t, rhs))


def _marginals(tables: Sequence[np.ndarray], joint: np.ndarray) -> list[np.ndarray]:
  if len(tables) == 1:
    return [joint.copy(), joint.copy()]
  shape = tables[0].shape
  pi = joint.reshape(shape)
  k = len(shape)
  return [pi.sum(axis=tuple(q for q in range(k) if q != p)) for p in range(k)]


def compute(meta_games: Sequence[np.ndarray],
            config: AlphaRankConfig | None = None, **overrides) -> AlphaRankResult:
  """α-Rank stationary distribution and marginals.

  Args:
    meta_games: list of `k` payoff tensors of shape `[n_0, ..., n_{k-1}]`
      (multi-population), or `[A]` with square `A` (single population).
    config: `AlphaRankConfig`; keyword `overrides` replace its fields
      (e.g. `alpha=10.0`, `m=50`).

  Returns:
    `AlphaRankResult` (joint `[N]`, marginals, alpha).
  """
  cfg = dataclasses.replace(config or AlphaRankConfig(), **overrides)
  tables = common.validate_meta_games(meta_games, solver="alpharank")
  if cfg.alpha is not None:
    rates = transition_rates(tables, cfg.alpha, cfg.m)
    joint = stationary_distribution(rates, cfg)
    return AlphaRankResult(joint, _marginals(tables, joint), cfg.alpha)
  alpha, prev, prev_alpha = cfg.alpha_start, None, None
  for _ in range(cfg.sweep_max_steps):
    try:
      joint = stationary_distribution(transition_rates(tables, alpha, cfg.m),
                                      cfg, pi0=prev)
    except AlphaRankDegenerateError:
      if prev is None:
        raise
      _LOG.info("alpharank sweep: float64 limit reached at alpha=%g", alpha)
      joint, alpha = prev, prev_alpha
      break
    if prev is not None and np.allclose(joint, prev, cfg.rtol, cfg.atol):
      break
    prev, prev_alpha = joint, alpha
    alpha *= cfg.sweep_factor
  return AlphaRankResult(joint, _marginals(tables, joint), alpha)


#: Stock psro_v2 passes no α-Rank keywords of ours; stock
#: `egt.alpharank.compute`'s default alpha is 100 (ours sweeps when None).
STOCK_KWARGS: dict[str, str] = {}
STOCK_DEFAULTS = {"alpha": 100.0}


def alpharank(meta_games: Sequence[np.ndarray], *, alpha: float | None = None,
              m: int = 50) -> list[np.ndarray]:
  """Per-player α-Rank marginals (the PSRO meta-strategy).

  Args:
    meta_games: list of `k` payoff tensors `[n_0, ..., n_{k-1}]`, or `[A]`.
    alpha: selection intensity; None (default) runs the alpha sweep.
    m: population size.

  Returns:
    List of `k` marginals (two identical ones for a single `[A]`).
  """
  return compute(meta_games, alpha=alpha, m=m).marginals
