"""Correlated meta-solvers (JPSRO): CCE and CE of the meta-game, on HiGHS.

A correlated meta-strategy is a joint distribution `sigma` over joint
profiles `s = (s_0, ..., s_{P-1})`, a vector of `N = prod_p n_p` numbers.
Player p's deviation gains are linear in it:

  CCE: for each p and each deviation a,
         sum_s sigma(s) (M_p[a, s_{-p}] - M_p[s]) <= 0          (P * n_p rows)
  CE:  for each p, recommendation r and deviation a != r,
         sum_{s: s_p = r} sigma(s) (M_p[a, s_{-p}] - M_p[s]) <= 0 (P * n_p (n_p - 1))

so the (C)CE set is a polytope `{sigma >= 0, 1'sigma = 1, G sigma <= 0}`,
never empty (a Nash equilibrium's product is in it). A criterion picks one:

  welfare: maximise `sum_p sum_s sigma(s) M_p[s]`, a linear program.
           The default: exact (a simplex vertex), and it scales to JPSRO's
           meta-games of tens of thousands of profiles (benchmarks/jpsro.py);
  gini:    maximise the Gini impurity `1 - sum_s sigma(s)^2`, i.e. minimise
           `||sigma||^2`, a strictly convex QP: its solution is unique, so
           the meta-strategy does not depend on the solver's pivoting
           (Marris et al. 2021's MG(C)CE, stock jpsro's default `mgcce`).
           Its support is nearly full, so HiGHS's active-set QP slows fast
           as `N` grows (and large CEs end in a solve error): for small
           meta-games only.

Both are solved by HiGHS (`highspy`, one thread: its thread pool stalls on
a busy machine), with the CE rows sparse (each touches `N / n_p`
profiles). The solution is clipped at 0 and renormalised (HiGHS's feasibility
tolerance, 1e-7 here).

`cce`/`ce` return the marginals (the registry's contract: PSRO, stock
`psro_v2`); `cce_joint`/`ce_joint` the joint `[n_0, ..., n_{P-1}]`, which
the spec's `joint_solve` exposes to JPSRO and stock's `return_joint=True`.
"""

from __future__ import annotations

from collections.abc import Sequence

import highspy
import numpy as np
from scipy import sparse

from openspiel_psro_ext.meta_solvers import common

CRITERIA = ("gini", "welfare")
_FEASIBILITY_TOLERANCE = 1e-7


def _tables(meta_games: Sequence[np.ndarray], solver: str) -> list[np.ndarray]:
  """Per player tensors; one square table (symmetric game) becomes `[A, A^T]`."""
  tables = common.validate_meta_games(meta_games, solver=solver)
  return [tables[0], tables[0].T] if len(tables) == 1 else tables


def deviation_gains(meta_games: Sequence[np.ndarray], equilibrium: str) -> sparse.csr_matrix:
  """`G`, rows as in the module doc, over C-ordered joint profiles.

  Args:
    meta_games: per player `[n_0, ..., n_{P-1}]` payoff tensors.
    equilibrium: "cce" or "ce".

  Returns:
    `[rows, N]` sparse: CCE rows `(p, a)`, CE rows `(p, r, a != r)`, in order.
  """
  tables = _tables(meta_games, equilibrium)
  shape = tables[0].shape
  blocks = []
  for p, table in enumerate(tables):
    n = shape[p]
    # gains[a, ...] = M_p with s_p replaced by a, minus M_p.
    gains = np.stack([np.take(table, [a], axis=p) - table for a in range(n)])
    gains = gains.reshape(n, -1)
    if equilibrium == "cce":
      blocks.append(sparse.csr_matrix(gains))
      continue
    recommended = np.broadcast_to(
      np.arange(n).reshape([n if q == p else 1 for q in range(len(shape))]), shape
    ).reshape(-1)
    own = [np.flatnonzero(recommended == r) for r in range(n)]  # N / n_p each
    pairs = [(r, a) for r in range(n) for a in range(n) if a != r]
    width = gains.shape[1] // n
    cols = np.concatenate([own[r] for r, _ in pairs]) if pairs else np.zeros(0, np.int64)
    deviation = np.repeat([a for _, a in pairs], width).astype(np.int64)
    rows = np.repeat(np.arange(len(pairs)), width)
    blocks.append(
      sparse.csr_matrix((gains[deviation, cols], (rows, cols)), shape=(len(pairs), gains.shape[1]))
    )
  return sparse.vstack(blocks, format="csr")


def _solve_highs(gains: sparse.csr_matrix, welfare: np.ndarray | None) -> np.ndarray:
  """The polytope's max-welfare point (`welfare` given) or min-norm point."""
  num_rows, num = gains.shape
  matrix = sparse.vstack([gains, sparse.csr_matrix(np.ones((1, num)))], format="csc")
  lp = highspy.HighsLp()
  lp.num_col_, lp.num_row_ = num, num_rows + 1
  lp.col_cost_ = np.zeros(num) if welfare is None else -welfare
  lp.col_lower_, lp.col_upper_ = np.zeros(num), np.full(num, highspy.kHighsInf)
  lp.row_lower_ = np.concatenate([np.full(num_rows, -highspy.kHighsInf), [1.0]])
  lp.row_upper_ = np.concatenate([np.zeros(num_rows), [1.0]])
  lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
  lp.a_matrix_.start_ = matrix.indptr
  lp.a_matrix_.index_ = matrix.indices
  lp.a_matrix_.value_ = matrix.data
  model = highspy.HighsModel()
  model.lp_ = lp
  if welfare is None:  # objective 0.5 x'Hx with H = 2I: ||sigma||^2
    model.hessian_.dim_ = num
    model.hessian_.format_ = highspy.HessianFormat.kTriangular
    model.hessian_.start_ = np.arange(num + 1)
    model.hessian_.index_ = np.arange(num)
    model.hessian_.value_ = np.full(num, 2.0)
  highs = common.new_highs(feasibility_tolerance=_FEASIBILITY_TOLERANCE)
  highs.passModel(model)
  highs.run()
  status = highs.getModelStatus()
  if status != highspy.HighsModelStatus.kOptimal:
    raise common.MetaGameError(
      f"HiGHS did not solve the correlated meta-game of {num} profiles"
      f" ({highs.modelStatusToString(status)}); the gini criterion is for small"
      " meta-games: use criterion='welfare' (--meta_solver_kwargs)."
    )
  sigma = np.maximum(np.asarray(highs.getSolution().col_value), 0.0)
  return sigma / sigma.sum()


def joint_distribution(
  meta_games: Sequence[np.ndarray], equilibrium: str, criterion: str = "welfare"
) -> np.ndarray:
  """The `criterion`'s `equilibrium` ("cce"/"ce") of the meta-game.

  Returns:
    `[n_0, ..., n_{P-1}]` joint distribution (a square single table gives
    the symmetric two-player game's `[n, n]`).
  """
  if equilibrium not in ("cce", "ce"):
    raise ValueError(f"equilibrium must be 'cce' or 'ce', got {equilibrium!r}.")
  if criterion not in CRITERIA:
    raise common.MetaGameError(
      f"{equilibrium}: criterion must be one of {list(CRITERIA)}, got {criterion!r}."
    )
  tables = _tables(meta_games, equilibrium)
  welfare = None
  if criterion == "welfare":
    welfare = np.sum(tables, axis=0).reshape(-1)
    # Rounding noise of a constant-sum game's welfare is no objective: with
    # exact zeros HiGHS stops at the first feasible point instead of pivoting on noise.
    welfare[np.abs(welfare) <= 1e-9 * (1.0 + np.abs(tables).max())] = 0.0
  sigma = _solve_highs(deviation_gains(tables, equilibrium), welfare)
  return sigma.reshape(tables[0].shape)


def marginals(joint: np.ndarray) -> list[np.ndarray]:
  """Per player `[n_p]` marginal of a `[n_0, ..., n_{P-1}]` joint."""
  axes = range(joint.ndim)
  return [joint.sum(axis=tuple(q for q in axes if q != p)) for p in axes]


def cce_joint(meta_games: Sequence[np.ndarray], *, criterion: str = "welfare") -> np.ndarray:
  """Joint CCE `[n_0, ..., n_{P-1}]` chosen by `criterion` (module doc)."""
  return joint_distribution(meta_games, "cce", criterion)


def ce_joint(meta_games: Sequence[np.ndarray], *, criterion: str = "welfare") -> np.ndarray:
  """Joint CE `[n_0, ..., n_{P-1}]` chosen by `criterion` (module doc)."""
  return joint_distribution(meta_games, "ce", criterion)


def cce(meta_games: Sequence[np.ndarray], *, criterion: str = "welfare") -> list[np.ndarray]:
  """Per player `[n_p]` marginals of `cce_joint`."""
  return marginals(cce_joint(meta_games, criterion=criterion))


def ce(meta_games: Sequence[np.ndarray], *, criterion: str = "welfare") -> list[np.ndarray]:
  """Per player `[n_p]` marginals of `ce_joint`."""
  return marginals(ce_joint(meta_games, criterion=criterion))


def meta_gaps(meta_games: Sequence[np.ndarray], joint: np.ndarray) -> tuple[float, float]:
  """(CCE gap, CE gap) of `joint` in the meta-game: sums over players (and
  recommendations) of the largest positive deviation gain."""
  tables = _tables(meta_games, "gaps")
  flat = np.asarray(joint, dtype=np.float64).reshape(-1)
  gaps = []
  for equilibrium in ("cce", "ce"):
    values = deviation_gains(tables, equilibrium) @ flat
    total, start = 0.0, 0
    for n in tables[0].shape:
      groups = n if equilibrium == "cce" else n * (n - 1)
      block = values[start : start + groups]
      start += groups
      per = block.reshape(1, n) if equilibrium == "cce" else block.reshape(n, n - 1)
      total += float(np.maximum(per.max(axis=1, initial=0.0), 0).sum())
    gaps.append(total)
  return gaps[0], gaps[1]
