"""Exact Nash equilibria of two-player meta-games.

Zero-sum (or constant-sum) games are solved by linear programming. With `A`
the row player's `[n, m]` payoff matrix, von Neumann's minimax theorem says

    v* = max_{x in Delta_n} min_j (x^T A)_j = min_{y in Delta_m} max_i (A y)_i,

and the left problem is the LP

    maximise v  s.t.  (A^T x)_j >= v for all j,  sum_i x_i = 1,  x >= 0.

The column player's equilibrium strategy `y` is the vector of dual prices of
the `m` inequality constraints (LP duality turns the left problem into the
right one), so one HiGHS solve (`scipy.optimize.linprog`) returns both.

`(x, y)` is an equilibrium iff its duality gap `max_i (A y)_i - min_j (x^T A)_j`
is 0; that gap is also the meta-game NashConv and certifies every answer here.

PSRO calls the meta-solver on a table that grows by one row and column per
iteration. `IncrementalZeroSumNash` keeps one HiGHS model across calls and
appends the new variables and constraints, so the dual simplex restarts from
the previous optimal basis; its answers carry the same certificate.

General-sum two-player games use the Lemke-Howson algorithm with a
lexicographic ratio test (exact up to floating point, finds one equilibrium,
terminates on degenerate games); games with more than two players have no LP
or complementary-pivoting formulation here: use `prd` or `alpharank`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

from openspiel_psro_ext.meta_solvers import common

if TYPE_CHECKING:
  import highspy


@dataclasses.dataclass(frozen=True)
class ZeroSumSolution:
  """Equilibrium of the zero-sum matrix game `A` (row player maximises).

  Attributes:
    row: row player's strategy, shape `[n]`.
    col: column player's strategy, shape `[m]`.
    value: game value `row^T A col` for the row player.
    gap: duality gap `max_i (A col)_i - min_j (row^T A)_j` (= NashConv).
  """

  row: np.ndarray
  col: np.ndarray
  value: float
  gap: float


def _solve_lp(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
  """Solves the maximin LP of `a` ([n, m]); returns (x, y, value)."""
  n, m = a.shape
  # Shift payoffs to be >= 1 so that v > 0: keeps HiGHS well scaled; the
  # equilibria are invariant and the value shifts back.
  shift = 1.0 - float(a.min())
  c = np.zeros(n + 1)
  c[-1] = -1.0
  a_ub = np.empty((m, n + 1))
  a_ub[:, :n] = -(a.T + shift)
  a_ub[:, n] = 1.0
  a_eq = np.ones((1, n + 1))
  a_eq[0, n] = 0.0
  bounds = [(0.0, None)] * n + [(None, None)]
  res = optimize.linprog(
    c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=np.ones(1), bounds=bounds, method="highs"
  )
  if res.status != 0:
    raise RuntimeError(f"HiGHS failed on the zero-sum LP: {res.message}")
  x = common.normalize_distribution(res.x[:n])
  y = common.normalize_distribution(-res.ineqlin.marginals)
  return x, y, float(res.x[n]) - shift


def _certify(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> ZeroSumSolution:
  ay = a @ y
  xa = x @ a
  return ZeroSumSolution(row=x, col=y, value=float(x @ ay), gap=float(ay.max() - xa.min()))


def solve_zero_sum(a: np.ndarray) -> ZeroSumSolution:
  """Exact equilibrium of the zero-sum game with row payoffs `a` ([n, m])."""
  a = np.asarray(a, dtype=np.float64)
  x, y, _ = _solve_lp(a)
  return _certify(a, x, y)


class IncrementalZeroSumNash:
  """Warm-started zero-sum Nash for a payoff table that grows over PSRO.

  Usage: keep one instance per PSRO run and call `solve(A)` with the current
  `[n, m]` table each iteration. One HiGHS model of the maximin LP lives
  across calls: a new row of `A` is a new variable `x_i`, a new column a new
  constraint `(A^T x)_j >= v`, so when the table only grew, the columns and
  rows are appended and the dual simplex restarts from the previous optimal
  basis (a few pivots instead of a cold solve). Any other table (shrunk, or
  with changed entries) rebuilds the model. Every answer is certified by its
  duality gap; one above `tol` falls back to the cold `solve_zero_sum`.

  Attributes:
    tol: certificate tolerance on the gap, relative to `max(1, max|A|)`.
    stats: counts of `calls`, `warm_solves` (model extended), `cold_solves`
      (model rebuilt) and `fallbacks` (certificate failed, cold LP used).
  """

  def __init__(self, tol: float = 1e-9):
    self.tol = tol
    self._highs: highspy.Highs | None = None
    self._table = np.zeros((0, 0))
    self.stats = {"calls": 0, "warm_solves": 0, "cold_solves": 0, "fallbacks": 0}

  def reset(self) -> None:
    """Forgets the model; the next call solves from scratch."""
    self._highs = None
    self._table = np.zeros((0, 0))

  def _new_model(self) -> highspy.Highs:
    import highspy  # pylint: disable=g-import-not-at-top

    highs = common.new_highs(feasibility_tolerance=1e-10)
    highs.changeObjectiveSense(highspy.ObjSense.kMaximize)
    # Variable 0 is the value v (free); row 0 is sum_i x_i = 1.
    highs.addVar(-highspy.kHighsInf, highspy.kHighsInf)
    highs.changeColCost(0, 1.0)
    highs.addRow(1.0, 1.0, 0, np.zeros(0, dtype=np.int32), np.zeros(0))
    return highs

  def _extend(self, highs: highspy.Highs, a: np.ndarray) -> None:
    """Appends a's new rows (variables) and columns (constraints)."""
    import highspy  # pylint: disable=g-import-not-at-top

    n0, m0 = self._table.shape
    n, m = a.shape
    existing_rows = np.arange(m0 + 1, dtype=np.int32)
    for i in range(n0, n):
      values = np.concatenate([[1.0], a[i, :m0]])
      highs.addCol(0.0, 0.0, highspy.kHighsInf, m0 + 1, existing_rows, values)
    all_vars = np.arange(n + 1, dtype=np.int32)
    for j in range(m0, m):
      values = np.concatenate([[-1.0], a[:, j]])
      highs.addRow(0.0, highspy.kHighsInf, n + 1, all_vars, values)

  def solve(self, a: np.ndarray) -> ZeroSumSolution:
    """Returns a certified equilibrium of `a` ([n, m], row player maximises)."""
    a = np.asarray(a, dtype=np.float64)
    n, m = a.shape
    n0, m0 = self._table.shape
    self.stats["calls"] += 1
    grown = (
      self._highs is not None and n >= n0 and m >= m0 and np.array_equal(a[:n0, :m0], self._table)
    )
    if self._highs is None or not grown:
      self._highs = self._new_model()
      self._table = np.zeros((0, 0))
      self.stats["cold_solves"] += 1
    else:
      self.stats["warm_solves"] += 1
    highs = self._highs
    self._extend(highs, a)
    self._table = a.copy()
    highs.run()
    solution = highs.getSolution()
    x = np.maximum(np.asarray(solution.col_value[1:]), 0.0)
    y = np.abs(np.asarray(solution.row_dual[1:]))
    tol = self.tol * max(1.0, float(np.abs(a).max()))
    if x.sum() > 0 and y.sum() > 0:
      sol = _certify(a, x / x.sum(), y / y.sum())
      if sol.gap <= tol:
        return sol
    self.stats["fallbacks"] += 1
    return solve_zero_sum(a)


# ---------------------------------------------------------------------------
# General-sum: Lemke-Howson.
# ---------------------------------------------------------------------------


def _lex_min_ratio(tab: np.ndarray, col: int, slack_cols: np.ndarray, eps: float) -> int:
  """Row chosen by the lexicographic minimum-ratio test for entering `col`."""
  pos = np.flatnonzero(tab[:, col] > eps)
  if pos.size == 0:
    raise RuntimeError("Lemke-Howson: unbounded ray (numerical breakdown).")
  keys = [0] + list(slack_cols)
  for k in keys:
    ratios = tab[pos, k] / tab[pos, col]
    best = ratios.min()
    pos = pos[ratios <= best + eps * max(1.0, abs(best))]
    if pos.size == 1:
      break
  return int(pos[0])


def lemke_howson(
  a: np.ndarray, b: np.ndarray, initial_label: int = 0, max_pivots: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
  """One Nash equilibrium of the bimatrix game `(a, b)` by Lemke-Howson.

  Both players maximise; `a`, `b` have shape `[n, m]`. With payoffs made
  positive, the best-response polytopes are `P = {x >= 0: B^T x <= 1}` and
  `Q = {y >= 0: A y <= 1}`. Labels `0..n-1` are the row strategies
  (`x_i = 0` or row `i` a best response) and `n..n+m-1` the columns; a pair
  of vertices carrying all `n + m` labels is (after normalisation) a Nash
  equilibrium. Starting from `(0, 0)`, dropping `initial_label` and
  alternately pivoting in the two tableaux traces a path to one.

  Returns:
    `(x, y)`, probability vectors of shape `[n]` and `[m]`.
  """
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  n, m = a.shape
  a = a - a.min() + 1.0
  b = b - b.min() + 1.0
  eps = 1e-12 * max(a.max(), b.max())
  # Tableau over Q: rows r_i = 1 - (A y)_i. Columns: [rhs, y (n..n+m-1),
  # r (0..n-1)]; variables are named by their label.
  tab_q = np.hstack([np.ones((n, 1)), a, np.eye(n)])
  lab_q = np.concatenate([np.arange(n, n + m), np.arange(n)])  # col -> label
  basis_q = list(range(n))  # labels of basic variables (slacks r_i)
  # Tableau over P: rows s_j = 1 - (B^T x)_j. Columns: [rhs, x (0..n-1),
  # s (n..n+m-1)].
  tab_p = np.hstack([np.ones((m, 1)), b.T, np.eye(m)])
  lab_p = np.concatenate([np.arange(n), np.arange(n, n + m)])
  basis_p = list(range(n, n + m))
  slack_q = np.arange(1 + m, 1 + m + n)
  slack_p = np.arange(1 + n, 1 + n + m)

  def pivot(
    tab: np.ndarray, basis: list[int], lab: np.ndarray, slack: np.ndarray, entering: int
  ) -> int:
    col = 1 + int(np.flatnonzero(lab == entering)[0])
    row = _lex_min_ratio(tab, col, slack, eps)
    leaving = basis[row]
    tab[row] /= tab[row, col]
    others = np.arange(tab.shape[0]) != row
    tab[others] -= np.outer(tab[others, col], tab[row])
    basis[row] = entering
    return leaving

  entering = initial_label
  # Dropping a row label moves x in P first, a column label moves y in Q.
  in_p = initial_label < n
  for _ in range(max_pivots):
    if in_p:
      leaving = pivot(tab_p, basis_p, lab_p, slack_p, entering)
    else:
      leaving = pivot(tab_q, basis_q, lab_q, slack_q, entering)
    if leaving == initial_label:
      break
    # The label that left is now duplicated; the variable carrying it in the
    # other tableau enters next.
    entering = leaving
    in_p = not in_p
  else:
    raise RuntimeError("Lemke-Howson did not terminate.")
  x = np.zeros(n)
  y = np.zeros(m)
  for row, label in enumerate(basis_p):
    if label < n:
      x[label] = tab_p[row, 0]
  for row, label in enumerate(basis_q):
    if label >= n:
      y[label - n] = tab_q[row, 0]
  return common.normalize_distribution(x), common.normalize_distribution(y)


# ---------------------------------------------------------------------------
# The `nash` meta-solver.
# ---------------------------------------------------------------------------


def nash(
  meta_games: Sequence[np.ndarray],
  *,
  general_sum_tol: float = 1e-7,
  incremental: IncrementalZeroSumNash | None = None,
) -> list[np.ndarray]:
  """Exact Nash equilibrium of a two-player meta-game.

  Zero-sum or constant-sum games (`M_0 + M_1` constant) are solved by LP,
  general-sum games by Lemke-Howson (one equilibrium, not necessarily the
  welfare-best one). The returned profile's meta-game NashConv is checked.

  Args:
    meta_games: `[M_0, M_1]`, each of shape `[n_0, n_1]`; or a bare matrix
      `A` for the zero-sum game `[A, -A]`; or `[A]` for a symmetric game.
    general_sum_tol: accepted NashConv of a Lemke-Howson answer, relative
      to the payoff range.
    incremental: optional `IncrementalZeroSumNash` reused across calls.

  Returns:
    `[x_0, x_1]` with shapes `[n_0]`, `[n_1]`.

  Raises:
    MetaGameError: for more than two players (use `prd` or `alpharank`) or
      invalid payoffs.
  """
  tables = common.validate_meta_games(meta_games, solver="nash")
  if len(tables) > 2:
    raise common.MetaGameError(
      f"nash: exact Nash is implemented for two-player games only; this"
      f" meta-game has {len(tables)} players. Use 'prd' (projected"
      " replicator dynamics) or 'alpharank' instead."
    )
  tables = common.as_two_player(tables)
  if common.is_zero_sum(tables):
    sol = incremental.solve(tables[0]) if incremental is not None else solve_zero_sum(tables[0])
    return [sol.row, sol.col]
  x, y = lemke_howson(tables[0], tables[1])
  conv = common.meta_game_nash_conv(tables, [x, y])
  scale = max(1.0, max(float(np.abs(t).max()) for t in tables))
  if conv > general_sum_tol * scale:
    raise RuntimeError(
      f"nash: Lemke-Howson ended with NashConv {conv:.3g} (numerical"
      " trouble on this general-sum game); use 'prd' or 'alpharank'."
    )
  return [x, y]
