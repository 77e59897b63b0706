"""α-Rank (Omidshafiei et al. 2019) over the joint profiles of a meta-game.

Model (one population per player): the state is a pure joint profile
`s = (s_0, ..., s_{k-1})`. A mutant of population `p` switches to `r_p != s_p`
and takes over with the fixation probability of the Fermi process of
population size `m` and selection intensity `alpha`,

    rho(u) = (1 - e^{-u}) / (1 - e^{-m u}),   u = alpha * (f_p(r) - f_p(s)),

(`rho(0) = 1/m`, `f_p` population `p`'s payoff); the move has rate
`eta * rho(u)`, `eta = 1 / sum_p (n_p - 1)`. α-Rank is the stationary
distribution `pi` of this chain over the `N = prod_p n_p` profiles; its
per-player marginals are the PSRO meta-strategy. A single square table `[A]`
is one population (`eta = 1 / (n - 1)`) under stock OpenSpiel's two models:
- local selection (`use_local_selection_model=True`, stock's default):
  `u = alpha * (A[r, s] - A[s, r])`;
- global (`False`): with `i` mutants among `m`, fitnesses
  `f_r(i) = ((i-1) A[r,r] + (m-i) A[r,s]) / (m-1)` and
  `f_s(i) = ((m-i-1) A[s,s] + i A[s,r]) / (m-1)`, and
  `rho = 1 / sum_{l=0}^{m-1} exp(-alpha D_l)`, `D_l = sum_{i<=l} (f_r(i) - f_s(i))`.

Numerics: everything is in the log domain, so no finite payoff table at any
alpha over- or underflows. `log rho(-v) = -(m-1) v + log rho(v)` and
`log rho(v) = log(expm1(-v) / expm1(-m v))`.
- Up to `gth_max_states` profiles, Grassmann-Taksar-Heyman (GTH) state
  reduction on log-rates: eliminating state `k` reroutes every path
  `i -> k -> j` (`R[i,j] += R[i,k] R[k,j] / s_k`, `s_k = sum_{j<k} R[k,j]`),
  and back-substitution `pi_k = sum_{i<k} pi_i R[i,k] / s_k` rebuilds `pi`
  from `pi_0 = 1`. Only sums, products and quotients of positive numbers
  occur, so each `log pi_k` is accurate to rounding even when rates span
  thousands of orders of magnitude (nearly decomposable chains, where stock's
  eigen-solver finds several unit eigenvalues or overflows).
- Larger chains: GMRES on the jump chain `P[s, r] = rate(s, r) / out(s)`
  (block-sparse, never built), `pi ∝ mu / out` in logs. The answer is used only
  when certified: a residual below `solver_tol`; every profile reaches the
  heaviest one by jumps of probability at least `significance` (the chain is
  not nearly decomposable); and `mu` far above GMRES's noise wherever `out` is
  tiny. Otherwise GTH runs up to `dense_max_states` profiles, beyond which
  `AlphaRankDegenerateError` says so.

The α → ∞ limit (`alpha=float("inf")`). Each log-rate is `-alpha c + b + o(1)`:
a gaining move has `c = 0, b = log eta`, a neutral one `c = 0, b = log(eta/m)`,
a losing one `c = (m-1) |d|, b = log eta` (global model: `c = max_l(-D_l)`,
`b = log eta - log #{l attaining it}`). By the Markov chain tree theorem
`pi_i ~ B_i e^{-alpha C_i}`, with `C_i` the least cost of a spanning tree into
`i` and `B_i` the sum of `e^{b(T)}` over those trees, so the limit puts mass
`∝ B_i` on the profiles of least `C_i`. GTH computes exactly this in the
semiring of leading terms `(c, B)` (sums keep the smaller `c`, adding `B`s on
ties; products add `c`s and multiply `B`s): with no subtraction, no leading
term cancels. Costs within `1e-9` of their scale count as ties.

Alpha sweep (`alpha=None`, the paper's recipe): alpha grows from `alpha_start`
by `sweep_factor` until `pi` stops changing (`rtol`, `atol`, as stock's
`sweep_pi_vs_alpha`). A log-rate carries a rounding error of
`eps alpha (m-1) |payoff gap|` per step, so past `1e-7 / (eps (m-1) spread N)`
the sweep returns the α → ∞ limit instead (or its last answer where the limit
is too large to solve). No random perturbation is ever added.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import logsumexp

from openspiel_psro_ext.meta_solvers import common

_LOG = logging.getLogger(__name__)


class AlphaRankDegenerateError(ArithmeticError):
  """The chain is too large for the exact solver and too ill-conditioned for
  the certified sparse one at this alpha."""


@dataclasses.dataclass(frozen=True)
class AlphaRankConfig:
  """α-Rank hyperparameters.

  Attributes:
    alpha: selection intensity; `float("inf")` for the α → ∞ limit; None
      runs the alpha sweep.
    m: population size of the Fermi process (at least 2).
    use_local_selection_model: single population only: fitness against the
      current opponent (True, stock's default) or against the whole
      finite population (False). Multi-population games have one model (as
      in stock, which ignores this flag there).
    alpha_start, sweep_factor, sweep_max_steps: the sweep's geometric grid.
    rtol, atol: the sweep stops when successive `pi` are `np.allclose`.
    gth_max_states: chains up to this size are solved by log-domain GTH;
      larger ones by the certified sparse solver first.
    dense_max_states: largest chain GTH takes when the sparse solver cannot
      certify its answer (GTH costs `N^3 / 3` log-additions).
    significance: probability of jumping into a set of profiles above which
      the jump counts as likely in the sparse solver's closed-class check.
    solver_tol: L1 residual of `mu (I - P)` the sparse solver must reach.
    solver_max_iters: GMRES iterations before giving up.
  """

  alpha: float | None = None
  m: int = 50
  use_local_selection_model: bool = True
  alpha_start: float = 1e-4
  sweep_factor: float = 2.0
  sweep_max_steps: int = 80
  rtol: float = 1e-5
  atol: float = 1e-8
  gth_max_states: int = 200
  dense_max_states: int = 1500
  significance: float = 1e-6
  solver_tol: float = 1e-12
  solver_max_iters: int = 500

  def __post_init__(self) -> None:
    if self.alpha is not None and not self.alpha >= 0:
      raise ValueError(f"alpha must be >= 0 (or inf, or None to sweep), got {self.alpha}.")
    if self.m < 2:
      raise ValueError(f"population size m must be at least 2, got {self.m}.")


@dataclasses.dataclass(frozen=True)
class AlphaRankResult:
  """Output of `compute`.

  Attributes:
    joint: stationary distribution over profiles, shape `[N]`, profiles in
      C order (last player fastest), as stock `egt.utils` numbers them.
    marginals: per-player marginals, `marginals[p]` of shape `[n_p]`.
    alpha: the alpha used (the sweep's final one when swept).
    log_joint: `log joint` (`-inf` for mass 0), accurate where `joint`
      underflows; None for `alpha=inf`.
  """

  joint: np.ndarray
  marginals: list[np.ndarray]
  alpha: float
  log_joint: np.ndarray | None = None


# ---------------------------------------------------------------------------
# Log-rates, one block per moving population.
# ---------------------------------------------------------------------------


def log_fixation_probability(u: np.ndarray, m: int) -> np.ndarray:
  """`log rho(u)` for `rho(u) = (1 - e^{-u}) / (1 - e^{-m u})`, stably.

  `|u| < 1e-12` uses the neutral `1/m`; see the module docstring.
  """
  u = np.asarray(u, dtype=np.float64)
  v = np.abs(u)
  out = np.full(u.shape, -math.log(m))
  live = v >= 1e-12
  w = v[live]
  out[live] = np.log(np.expm1(-w) / np.expm1(-m * w))
  out -= (m - 1) * np.where(u < 0, v, 0.0)
  return out


@dataclasses.dataclass(frozen=True)
class _Block:
  """The moves of one population: `axis` of the profile tensor changes.

  Tensors have the profile shape without `axis`, then `[n, n]` for a move
  `s -> r` with the other axes fixed. A finite-alpha block holds the mover's
  `payoffs` `f` (shape: profile shape without `axis`, then `[n]`; the gain
  of `s -> r` is `f(r) - f(s)`), or the payoff `gain` tensor itself (single
  population), or the `log_rate` tensor; rates are derived on demand. An
  α → ∞ block holds `cost` (the exponents `c`) and `log_rate` (the
  log-coefficients `b`), see the module docstring.
  """

  axis: int
  alpha: float
  m: int
  log_eta: float
  payoffs: np.ndarray | None = None
  gain_values: np.ndarray | None = None
  log_rate_values: np.ndarray | None = None
  cost: np.ndarray | None = None

  @property
  def gain(self) -> np.ndarray:
    """`[..., n, n]` payoff gains of the moves."""
    if self.payoffs is not None:
      return _payoff_gains(self.payoffs)
    if self.gain_values is None:
      raise ValueError("a block built from log-rates holds no gains.")
    return self.gain_values

  @property
  def log_rate(self) -> np.ndarray:
    """Log-rates, `-inf` on the diagonal."""
    if self.log_rate_values is not None:
      return self.log_rate_values
    out = log_fixation_probability(self.alpha * self.gain, self.m) + self.log_eta
    n = out.shape[-1]
    out[..., np.eye(n, dtype=bool)] = -np.inf
    return out

  def scaled_rates(self) -> tuple[np.ndarray, np.ndarray]:
    """`(E, log_row)`: `rate = E * exp(log_row)` with `max_r E[..., s, r]`
    near 1, so no row of `E` underflows whatever the rates' scale."""
    if self.payoffs is not None:
      return self._scaled_from_payoffs()
    if self.gain_values is None:
      log_rate = self.log_rate
      log_row = np.max(log_rate, axis=-1)
      return np.exp(log_rate - log_row[..., None]), log_row
    # rho increases with the gain, so each row's largest rate is its best
    # move's: log_row comes from an [.., n] array, E needs no logarithm.
    gain = self.gain
    n = gain.shape[-1]
    off = ~np.eye(n, dtype=bool)
    best = np.max(np.where(off, gain, -np.inf), axis=-1)
    log_row = log_fixation_probability(self.alpha * best, self.m) + self.log_eta
    e = np.empty(gain.shape)
    flat_gain = gain.reshape(-1, n, n)
    flat_e = e.reshape(-1, n, n)
    flat_row = log_row.reshape(-1, n)
    chunk = max(1, (1 << 15) // (n * n))
    for lo in range(0, flat_gain.shape[0], chunk):
      d = flat_gain[lo : lo + chunk]
      w = np.abs(d) * self.alpha
      np.maximum(w, 1e-300, out=w)  # rho(0+) = 1/m without a 0/0
      ratio = np.expm1(-w) / np.expm1(-self.m * w)
      # exp(log rho - log_row): the e^{-(m-1) |u|} factor of losing moves.
      expo = np.minimum(d, 0.0)
      expo *= (self.m - 1) * self.alpha
      expo += (self.log_eta - flat_row[lo : lo + chunk])[..., None]
      expo[..., ~off] = -np.inf  # no self-moves (and no overflow there)
      np.exp(expo, out=expo)
      np.multiply(ratio, expo, out=flat_e[lo : lo + chunk])
    return e, log_row

  def _scaled_from_payoffs(self) -> tuple[np.ndarray, np.ndarray]:
    """`scaled_rates` of a multi-population block, with half the transcendentals.

    `rho(|u|)` is symmetric in `(s, r)` and a losing move's rate is its
    reverse's times `e^{-(m-1)|u|}`, so the two `expm1`s and the `exp` run on
    the `n (n-1) / 2` pairs `s < r` only. Each row is scaled by
    `e^{log_eta - log_row}`; rows whose scale would overflow (no gainful
    move, all moves below `e^{-300}` of `eta`) are recomputed exactly.
    """
    f = self.payoffs
    assert f is not None, "called on payoff blocks only"
    alpha, m = self.alpha, self.m
    n = f.shape[-1]
    flat_f = f.reshape(-1, n)
    rows = flat_f.shape[0]
    # Best other policy for each s: the top payoff, or the runner-up at it.
    order = np.argsort(flat_f, axis=-1)
    top = np.take_along_axis(flat_f, order[:, -1:], axis=-1)
    second = np.take_along_axis(flat_f, order[:, -2:-1], axis=-1)
    best = np.where(np.arange(n)[None, :] == order[:, -1:], second, top) - flat_f
    log_row = log_fixation_probability(alpha * best, m) + self.log_eta
    log_scale = self.log_eta - log_row
    deep = log_scale > 300.0
    scale = np.exp(np.minimum(log_scale, 300.0))
    e = np.zeros((rows, n, n))
    iu, ju = np.triu_indices(n, 1)
    chunk = max(1, (1 << 15) // iu.size)
    for lo in range(0, rows, chunk):
      fc = flat_f[lo : lo + chunk]
      sc = scale[lo : lo + chunk]
      du = fc[:, ju] - fc[:, iu]  # gain of iu -> ju
      w = np.abs(du)
      w *= alpha
      np.maximum(w, 1e-300, out=w)  # rho(0+) = 1/m without a 0/0
      ratio = np.expm1(-w)
      ratio /= np.expm1(-m * w)
      w *= -(m - 1)
      lose = np.exp(w, out=w)
      lose *= ratio
      up = du > 0
      ec = e[lo : lo + chunk]
      ec[:, iu, ju] = np.where(up, ratio, lose) * sc[:, iu]
      ec[:, ju, iu] = np.where(up, lose, ratio) * sc[:, ju]
    for row, s in zip(*np.nonzero(deep)):
      exact = log_fixation_probability(alpha * (flat_f[row] - flat_f[row, s]), m) + self.log_eta
      exact[s] = -np.inf  # no self-move
      e[row, s] = np.exp(exact - log_row[row, s])
    return e.reshape(f.shape + (n,)), log_row.reshape(f.shape)


def _payoff_gains(f: np.ndarray) -> np.ndarray:
  """`d[..., s, r] = f[..., r] - f[..., s]` for `f` of shape `[..., n]`."""
  return f[..., None, :] - f[..., :, None]


def _local_block(
  gain: np.ndarray, alpha: float, m: int, log_eta: float, tie: float, axis: int
) -> _Block:
  """Block for moves whose fixation depends on the payoff gain `d` alone."""
  if not math.isinf(alpha):
    return _Block(axis, alpha, m, log_eta, gain_values=gain)
  n = gain.shape[-1]
  diag = np.eye(n, dtype=bool)
  ties = np.abs(gain) <= tie
  cost = np.where(ties, 0.0, (m - 1) * np.maximum(-gain, 0.0))
  coef = np.where(ties, log_eta - math.log(m), log_eta)
  cost[..., diag] = np.inf
  coef[..., diag] = -np.inf
  return _Block(axis, alpha, m, log_eta, log_rate_values=coef, cost=cost)


def _global_block(a: np.ndarray, alpha: float, m: int, log_eta: float, tie: float) -> _Block:
  """Single-population block of stock's global (non-local) selection model."""
  n = a.shape[0]
  i = np.arange(1, m)  # mutants 1..m-1
  diag_a = np.diag(a)
  # f_r(i) - f_s(i) for s (axis 0), r (axis 1), i (axis 2).
  a_rs = a.T[:, :, None]  # A[r, s] at [s, r]
  a_sr = a[:, :, None]
  f_r = ((i - 1) * diag_a[None, :, None] + (m - i) * a_rs) / (m - 1)
  f_s = ((m - i - 1) * diag_a[:, None, None] + i * a_sr) / (m - 1)
  partial = np.concatenate(
    [np.zeros((n, n, 1)), np.cumsum(f_r - f_s, axis=2)], axis=2
  )  # D_0 = 0, D_1..D_{m-1}
  diag = np.eye(n, dtype=bool)
  if math.isinf(alpha):
    worst = np.max(-partial, axis=2)
    count = np.sum(-partial >= worst[..., None] - tie, axis=2)
    cost = worst.copy()
    coef = log_eta - np.log(count)
    cost[diag] = np.inf
    coef[diag] = -np.inf
    return _Block(0, alpha, m, log_eta, log_rate_values=coef, cost=cost)
  log_rate = log_eta - logsumexp(-alpha * partial, axis=2)
  log_rate[diag] = -np.inf
  return _Block(0, alpha, m, log_eta, log_rate_values=log_rate)


def _blocks(
  tables: Sequence[np.ndarray], alpha: float, m: int, local: bool
) -> tuple[tuple[int, ...], list[_Block]]:
  """The chain's profile shape and its move blocks."""
  scale = max(1.0, max(float(np.max(np.abs(t))) for t in tables))
  tie = 1e-12 * scale
  if len(tables) == 1:
    a = tables[0]
    n = a.shape[0]
    if n == 1:
      return (1,), []
    log_eta = -math.log(n - 1)
    if local:
      return (n,), [_local_block(a.T - a, alpha, m, log_eta, tie, 0)]
    return (n,), [_global_block(a, alpha, m, log_eta, tie)]
  shape = tables[0].shape
  log_eta = -math.log(max(sum(n - 1 for n in shape), 1))
  blocks = []
  for p, n_p in enumerate(shape):
    if n_p > 1:
      f = np.moveaxis(tables[p], p, -1)
      if math.isinf(alpha):
        blocks.append(_local_block(_payoff_gains(f), alpha, m, log_eta, tie, p))
      else:
        blocks.append(_Block(p, alpha, m, log_eta, payoffs=f))
  return shape, blocks


def _dense(shape: tuple[int, ...], blocks: list[_Block], field: str = "log_rate") -> np.ndarray:
  """`[N, N]` matrix of a block field (`-inf`, or `inf` for cost, off-moves)."""
  n_total = int(np.prod(shape))
  fill = np.inf if field == "cost" else -np.inf
  out = np.full((n_total, n_total), fill)
  ids = np.arange(n_total).reshape(shape)
  for block in blocks:
    idp = np.moveaxis(ids, block.axis, -1)
    values = getattr(block, field)
    rows = np.broadcast_to(idp[..., :, None], values.shape)
    cols = np.broadcast_to(idp[..., None, :], values.shape)
    out[rows, cols] = values
  np.fill_diagonal(out, fill)
  return out


def log_rate_matrix(
  meta_games: Sequence[np.ndarray],
  alpha: float,
  m: int = 50,
  use_local_selection_model: bool = True,
) -> np.ndarray:
  """Dense `[N, N]` log-rates of the α-Rank chain (`-inf`: no move).

  For checks on small chains: `pi` is stationary iff for every profile `i`,
  `logsumexp_s(log pi_s + L[s, i]) = log pi_i + logsumexp_j L[i, j]`.
  """
  tables = common.validate_meta_games(meta_games, solver="alpharank")
  if math.isinf(alpha):
    raise ValueError("log_rate_matrix needs a finite alpha.")
  shape, blocks = _blocks(tables, alpha, m, use_local_selection_model)
  return _dense(shape, blocks)


# ---------------------------------------------------------------------------
# Exact solvers: GTH in the log semiring and in the semiring of leading terms.
# ---------------------------------------------------------------------------


def _log_gth(log_rates: np.ndarray) -> np.ndarray:
  """`log pi` of the chain with log-rates `[N, N]` (irreducible)."""
  r = np.array(log_rates, dtype=np.float64)
  n = r.shape[0]
  s = np.zeros(n)
  for k in range(n - 1, 0, -1):
    s[k] = logsumexp(r[k, :k])
    if not np.isfinite(s[k]):
      raise AlphaRankDegenerateError("alpha-rank chain is reducible (a profile has no move)")
    np.logaddexp(r[:k, :k], r[:k, k, None] + (r[k, :k] - s[k])[None, :], out=r[:k, :k])
  log_pi = np.zeros(n)
  for k in range(1, n):
    log_pi[k] = logsumexp(log_pi[:k] + r[:k, k]) - s[k]
  return log_pi - logsumexp(log_pi)


def _lead_add(
  c1: np.ndarray, b1: np.ndarray, c2: np.ndarray, b2: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
  """Leading term of `B1 e^{-a c1} + B2 e^{-a c2}` (a -> inf), elementwise."""
  first = c1 < c2 - tol
  second = c2 < c1 - tol
  both = np.logaddexp(b1, b2)
  return (np.minimum(c1, c2), np.where(first, b1, np.where(second, b2, both)))


def _lead_sum(c: np.ndarray, b: np.ndarray, tol: float) -> tuple[float, float]:
  """Leading term of `sum_j B_j e^{-a c_j}`."""
  lead = np.min(c)
  return lead, logsumexp(np.where(c <= lead + tol, b, -np.inf))


def _limit_gth(cost: np.ndarray, coef: np.ndarray) -> np.ndarray:
  """The α → ∞ stationary distribution from leading terms `(cost, coef)`."""
  c = np.array(cost, dtype=np.float64)
  b = np.array(coef, dtype=np.float64)
  n = c.shape[0]
  finite = c[np.isfinite(c)]
  tol = 1e-9 * max(1.0, float(finite.max()) if finite.size else 1.0)
  sc = np.zeros(n)
  sb = np.zeros(n)
  for k in range(n - 1, 0, -1):
    sc[k], sb[k] = _lead_sum(c[k, :k], b[k, :k], tol)
    if not np.isfinite(sc[k]):
      raise AlphaRankDegenerateError("alpha-rank chain is reducible (a profile has no move)")
    c[:k, :k], b[:k, :k] = _lead_add(
      c[:k, :k],
      b[:k, :k],
      c[:k, k, None] + (c[k, :k] - sc[k])[None, :],
      b[:k, k, None] + (b[k, :k] - sb[k])[None, :],
      tol,
    )
  pc = np.zeros(n)
  pb = np.zeros(n)
  for k in range(1, n):
    pc[k], pb[k] = _lead_sum(pc[:k] + c[:k, k], pb[:k] + b[:k, k], tol)
    pc[k] -= sc[k]
    pb[k] -= sb[k]
  stable = pc <= pc.min() + tol
  pi = np.where(stable, np.exp(pb - pb[stable].max()), 0.0)
  return pi / pi.sum()


# ---------------------------------------------------------------------------
# Certified sparse solver for large chains.
# ---------------------------------------------------------------------------


def _block_flow(x: np.ndarray, block_probs: list[tuple[int, np.ndarray]]) -> np.ndarray:
  """`x P` for the profile tensor `x` and jump-probability blocks."""
  out = np.zeros_like(x)
  for axis, probs in block_probs:
    xp = np.moveaxis(x, axis, -1)
    flow = np.einsum("...s,...sr->...r", xp, probs)
    out += np.moveaxis(flow, -1, axis)
  return out


def _reaches(
  target: tuple[int | np.integer, ...],
  shape: tuple[int, ...],
  block_probs: list[tuple[int, np.ndarray]],
  significance: float,
) -> bool:
  """True if every profile reaches `target` by likely jumps (BFS backwards):
  a profile joins once its probability of jumping into the profiles already
  joined is at least `significance`."""
  reached = np.zeros(shape, dtype=bool)
  reached[target] = True
  while True:
    into = np.zeros(shape)
    indicator = reached.astype(np.float64)
    for axis, probs in block_probs:
      xp = np.moveaxis(indicator, axis, -1)
      into += np.moveaxis(np.einsum("...sr,...r->...s", probs, xp), -1, axis)
    new = (into >= significance) & ~reached
    if not new.any():
      return bool(reached.all())
    reached |= new


def _gmres(
  apply: Callable[[np.ndarray], np.ndarray],
  b: np.ndarray,
  x0: np.ndarray,
  rtol: float,
  max_iters: int,
  restart: int = 60,
) -> np.ndarray:
  """GMRES for `apply(x) = b` (Arnoldi with re-orthogonalised Gram-Schmidt)."""
  x = x0.copy()
  b_norm = float(np.linalg.norm(b))
  done = 0
  while done < max_iters:
    r = b - apply(x)
    beta = float(np.linalg.norm(r))
    if beta <= rtol * b_norm:
      break
    size = min(restart, max_iters - done)
    basis = np.empty((size + 1, b.size))
    basis[0] = r / beta
    hess = np.zeros((size + 1, size))
    y: np.ndarray = np.zeros(0)
    for j in range(size):
      w = apply(basis[j])
      done += 1
      for _ in range(2):
        h = basis[: j + 1] @ w
        w -= h @ basis[: j + 1]
        hess[: j + 1, j] += h
      hess[j + 1, j] = np.linalg.norm(w)
      target = np.zeros(j + 2)
      target[0] = beta
      y = np.linalg.lstsq(hess[: j + 2, : j + 1], target, rcond=None)[0]
      left = np.linalg.norm(target - hess[: j + 2, : j + 1] @ y)
      if left <= rtol * b_norm or hess[j + 1, j] <= 1e-300:
        break
      basis[j + 1] = w / hess[j + 1, j]
    x += y @ basis[: y.size]
  return x


def _sparse_log_pi(
  shape: tuple[int, ...], blocks: list[_Block], cfg: AlphaRankConfig, log_pi0: np.ndarray | None
) -> np.ndarray | None:
  """Certified `log pi` by GMRES on the jump chain; None if not certified."""
  n_total = int(np.prod(shape))
  log_out = np.full(shape, -np.inf)
  scaled = []
  for block in blocks:
    e, log_row = block.scaled_rates()
    scaled.append((e, log_row))
    log_block_out = log_row + np.log(e.sum(axis=-1))
    log_out = np.logaddexp(log_out, np.moveaxis(log_block_out, -1, block.axis))
  probs = []
  for block, (e, log_row) in zip(blocks, scaled):
    lo = np.moveaxis(log_out, block.axis, -1)
    e *= np.exp(log_row - lo)[..., None]
    probs.append((block.axis, e))
  del scaled

  def matvec(x: np.ndarray) -> np.ndarray:
    x = x.reshape(shape)
    return (x - _block_flow(x, probs)).ravel() + x.sum() / n_total

  rhs = np.full(n_total, 1.0 / n_total)
  if log_pi0 is not None:  # warm start: mu ∝ pi * out.
    x0 = log_pi0.reshape(shape) + log_out
    x0 = np.exp(x0 - logsumexp(x0)).ravel()
  else:
    x0 = rhs.copy()
  mu = _gmres(matvec, rhs, x0, 0.5 * cfg.solver_tol, cfg.solver_max_iters)
  mu = mu.reshape(shape)
  top = float(mu.max())
  if not top > 0:
    return None
  residual = np.abs(mu - _block_flow(mu, probs)).sum() / mu.sum()
  if residual > cfg.solver_tol or mu.min() < -1e3 * cfg.solver_tol * top:
    _LOG.info("alpharank: sparse solver residual %.2g on %d profiles.", residual, n_total)
    return None
  if not _reaches(np.unravel_index(int(np.argmax(mu)), shape), shape, probs, cfg.significance):
    _LOG.info("alpharank: nearly decomposable chain on %d profiles.", n_total)
    return None
  with np.errstate(divide="ignore"):
    log_mu = np.log(np.maximum(mu, 0.0))
  log_pi = log_mu - log_out
  log_pi -= logsumexp(log_pi)
  # A profile without a gainful or neutral move ("deep sink": every rate
  # below e^{-7} eta / m) turns a small error in its mu into a large one in
  # pi = mu / out: its mu must be resolved far above GMRES's noise.
  log_eta = blocks[0].log_eta
  deep = log_out < log_eta - math.log(cfg.m) - 7.0
  if np.any(deep & (mu < 1e-3 * top)):
    _LOG.info("alpharank: unresolved sink among %d profiles.", n_total)
    return None
  return log_pi.ravel()


# ---------------------------------------------------------------------------
# Public API.
# ---------------------------------------------------------------------------


def _solve(
  tables: Sequence[np.ndarray],
  alpha: float,
  cfg: AlphaRankConfig,
  log_pi0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
  """`(pi, log pi)` at one alpha (`log pi` None for alpha = inf)."""
  shape, blocks = _blocks(tables, alpha, cfg.m, cfg.use_local_selection_model)
  n_total = int(np.prod(shape))
  if n_total == 1:
    return np.ones(1), np.zeros(1)
  if math.isinf(alpha):
    if n_total > cfg.dense_max_states:
      raise AlphaRankDegenerateError(
        f"alpha=inf is solved exactly for up to dense_max_states="
        f"{cfg.dense_max_states} profiles; this chain has {n_total}. Use a"
        " finite alpha."
      )
    pi = _limit_gth(_dense(shape, blocks, "cost"), _dense(shape, blocks))
    return pi, None
  log_pi = None
  if n_total > cfg.gth_max_states:
    log_pi = _sparse_log_pi(shape, blocks, cfg, log_pi0)
    if log_pi is None and n_total > cfg.dense_max_states:
      raise AlphaRankDegenerateError(
        f"alpha-rank at alpha={alpha:g} on {n_total} profiles: the chain is"
        " too ill-conditioned for the sparse solver and larger than"
        f" dense_max_states={cfg.dense_max_states} for the exact one. Use a"
        " smaller alpha, or the sweep (alpha=None)."
      )
  if log_pi is None:
    log_pi = _log_gth(_dense(shape, blocks))
  pi = np.exp(log_pi)
  return pi / pi.sum(), log_pi


def _resolvable_alpha(tables: Sequence[np.ndarray], m: int) -> float:
  """Largest alpha at which log-rates (`alpha (m-1) |payoff gap|`) keep a
  relative error of `pi` near 1e-7 through `N` rounded log-domain steps."""
  spread = max(float(np.ptp(t)) for t in tables)
  n_total = int(np.prod(tables[0].shape))
  return 1e-7 / (np.finfo(np.float64).eps * (m - 1) * max(spread, 1e-300) * n_total)


def _marginals(tables: Sequence[np.ndarray], joint: np.ndarray) -> list[np.ndarray]:
  if len(tables) == 1:
    return [joint.copy(), joint.copy()]
  shape = tables[0].shape
  pi = joint.reshape(shape)
  k = len(shape)
  return [pi.sum(axis=tuple(q for q in range(k) if q != p)) for p in range(k)]


def compute(
  meta_games: Sequence[np.ndarray], config: AlphaRankConfig | None = None, **overrides: Any
) -> AlphaRankResult:
  """α-Rank stationary distribution and marginals.

  Args:
    meta_games: list of `k` payoff tensors of shape `[n_0, ..., n_{k-1}]`
      (multi-population), or `[A]` with square `A` (single population).
    config: `AlphaRankConfig`; keyword `overrides` replace its fields
      (e.g. `alpha=10.0`, `m=50`, `use_local_selection_model=False`).

  Returns:
    `AlphaRankResult` (joint `[N]`, marginals, alpha, log joint).
  """
  cfg = dataclasses.replace(config or AlphaRankConfig(), **overrides)
  tables = common.validate_meta_games(meta_games, solver="alpharank")
  if cfg.alpha is not None:
    joint, log_joint = _solve(tables, cfg.alpha, cfg)
    return AlphaRankResult(joint, _marginals(tables, joint), cfg.alpha, log_joint)
  alpha_max = _resolvable_alpha(tables, cfg.m)
  alpha = cfg.alpha_start
  # The previous step's (joint, log joint, alpha).
  prev: tuple[np.ndarray, np.ndarray | None, float] | None = None
  for _ in range(cfg.sweep_max_steps):
    if alpha > alpha_max:
      # Not settled where float64 resolves log-rates to ~1e-7: the sweep's
      # limit is the α → ∞ answer, computed exactly where its size allows.
      try:
        joint, log_joint = _solve(tables, float("inf"), cfg)
        alpha = float("inf")
      except AlphaRankDegenerateError:
        if prev is None:
          raise
        joint, log_joint, alpha = prev
      _LOG.info("alpharank sweep: alpha beyond %g; answer at alpha=%g", alpha_max, alpha)
      break
    try:
      joint, log_joint = _solve(tables, alpha, cfg, None if prev is None else prev[1])
    except AlphaRankDegenerateError:
      if prev is None:
        raise
      _LOG.info("alpharank sweep: no certified answer at alpha=%g", alpha)
      joint, log_joint, alpha = prev
      break
    if prev is not None and np.allclose(joint, prev[0], cfg.rtol, cfg.atol):
      break
    prev = (joint, log_joint, alpha)
    alpha *= cfg.sweep_factor
  return AlphaRankResult(joint, _marginals(tables, joint), alpha, log_joint)


#: Stock psro_v2 passes no α-Rank keyword of ours. Stock
#: `egt.alpharank.compute`'s default alpha is 100 (ours sweeps when None).
STOCK_KWARGS: dict[str, str] = {}
STOCK_DEFAULTS = {"alpha": 100.0}


def alpharank(
  meta_games: Sequence[np.ndarray],
  *,
  alpha: float | None = None,
  m: int = 50,
  use_local_selection_model: bool = True,
) -> list[np.ndarray]:
  """Per-player α-Rank marginals (the PSRO meta-strategy).

  Args:
    meta_games: list of `k` payoff tensors `[n_0, ..., n_{k-1}]`, or `[A]`.
    alpha: selection intensity; `float("inf")` for the limit; None (default)
      runs the alpha sweep.
    m: population size.
    use_local_selection_model: single-population model (see module doc).

  Returns:
    List of `k` marginals (two identical ones for a single `[A]`).
  """
  return compute(
    meta_games, alpha=alpha, m=m, use_local_selection_model=use_local_selection_model
  ).marginals
