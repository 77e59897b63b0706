"""Meta-solver benchmark: ours vs stock OpenSpiel on the same inputs.

Run from the repo root: python -m benchmarks.meta_solvers [--quick]
(or `pip install -e .` and run the file directly).

Stock Nash needs cvxpy with ECOS (`pip install cvxpy ecos`); without it the
stock Nash column is skipped. Stock α-Rank's import needs matplotlib and
networkx.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from openspiel_psro_ext.meta_solvers import alpharank as ar
from openspiel_psro_ext.meta_solvers import common
from openspiel_psro_ext.meta_solvers import nash
from openspiel_psro_ext.meta_solvers import prd


def timed(fn, *args, repeat=1, **kwargs):
  best, out = np.inf, None
  for _ in range(repeat):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    best = min(best, time.perf_counter() - t)
  return best, out


def stock_nash_fn():
  try:
    import cvxpy  # pylint: disable=g-import-not-at-top,unused-import
    import pyspiel  # pylint: disable=g-import-not-at-top
    from open_spiel.python.algorithms import lp_solver  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("cvxpy missing: stock Nash skipped (pip install cvxpy ecos)")
    return None

  def solve(a):
    p0, p1, v0, _ = lp_solver.solve_zero_sum_matrix_game(
        pyspiel.create_matrix_game(a.tolist(), (-a).tolist()))
    return np.asarray(p0).ravel(), np.asarray(p1).ravel(), float(v0)
  return solve


def bench_nash(rng, sizes):
  stock = stock_nash_fn()
  print("\n== Nash, random zero-sum (normal entries) ==")
  for n in sizes:
    a = rng.normal(size=(n, n))
    t_ours, sol = timed(nash.solve_zero_sum, a, repeat=3)
    line = f"n={n:4d} ours {t_ours*1e3:8.1f} ms (gap {sol.gap:.1e})"
    if stock is not None:
      t_st, (_, _, v) = timed(stock, a, repeat=2)
      line += (f" | stock {t_st*1e3:8.1f} ms | ratio {t_st/t_ours:6.1f}x"
               f" | |value diff| {abs(v - sol.value):.1e}")
    print(line)


def psro_sequence(rng, n_max, pool=1000):
  """Indices a PSRO run on a random `pool x pool` zero-sum game adds.

  Each step adds the pool row that best responds to the column player's
  current Nash mixture and the pool column that best responds to the row
  player's (a random unused one once the best response is already in).
  """
  big = rng.normal(size=(pool, pool))
  rows, cols = [0], [0]
  while len(rows) < n_max:
    sol = nash.solve_zero_sum(big[np.ix_(rows, cols)])
    r = int(np.argmax(big[:, cols] @ sol.col))
    c = int(np.argmin(sol.row @ big[rows, :]))
    if r in rows:
      r = int(rng.choice(np.setdiff1d(np.arange(pool), rows)))
    if c in cols:
      c = int(rng.choice(np.setdiff1d(np.arange(pool), cols)))
    rows.append(r)
    cols.append(c)
  return big[np.ix_(rows, cols)]


def bench_growing(rng, n_max):
  print(f"\n== Growing sequence 1x1 .. {n_max}x{n_max}, cumulative ==")
  print("-- random table, leading k x k blocks (support churns every step)")
  run_growing(rng.normal(size=(n_max, n_max)), n_max)
  print("-- PSRO-like: new row/column are best responses to the current Nash")
  run_growing(psro_sequence(rng, n_max), n_max)


def run_growing(big, n_max):
  stock = stock_nash_fn()
  inc = nash.IncrementalZeroSumNash()
  t_inc = t_full = t_st = 0.0
  worst = 0.0
  for k in range(1, n_max + 1):
    a = big[:k, :k]
    t, s_inc = timed(inc.solve, a)
    t_inc += t
    t, s_full = timed(nash.solve_zero_sum, a)
    t_full += t
    worst = max(worst, abs(s_inc.value - s_full.value))
    if stock is not None:
      t, (_, _, v) = timed(stock, a)
      t_st += t
      worst = max(worst, abs(v - s_inc.value))
  print(f"ours incremental {t_inc:.3f} s | ours full LP each step {t_full:.3f}"
        f" s | max |value diff| {worst:.1e} | {inc.stats}")
  if stock is not None:
    print(f"stock {t_st:.3f} s | ratio stock/incremental {t_st/t_inc:.1f}x")


def bench_prd(rng, sizes):
  from open_spiel.python.algorithms import projected_replicator_dynamics as sp  # pylint: disable=g-import-not-at-top
  print("\n== PRD, random zero-sum (stock: 1e5 steps, dt 1e-3) ==")
  for n in sizes:
    a = rng.normal(size=(n, n))
    g = [a, -a]
    t_st, r_st = timed(sp.projected_replicator_dynamics, g)
    t_same, r_same = timed(prd.prd, g, iterations=100_000, dt=1e-3)
    t_def, r_def = timed(prd.prd, g)
    diff = max(np.abs(x - y).max() for x, y in zip(r_st, r_same))
    print(f"n={n:3d} stock {t_st:.2f} s NashConv"
          f" {common.meta_game_nash_conv(g, r_st):.3f} | ours same params"
          f" {t_same:.2f} s ({t_st/t_same:.1f}x, max diff {diff:.0e}) | ours"
          f" default (1e4 steps, dt 1e-2) {t_def:.2f} s ({t_st/t_def:.1f}x)"
          f" NashConv {common.meta_game_nash_conv(g, r_def):.3f}")


def bench_alpharank(rng, quick):
  try:
    from open_spiel.python.egt import alpharank as sar  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    print(f"stock alpharank unavailable ({e})")
    sar = None
  print("\n== alpha-Rank, random general-sum 2-player ==")
  a10 = [rng.normal(size=(10, 10)) for _ in range(2)]
  if sar is not None:
    t_st, (pi_st, alpha_st) = timed(sar.sweep_pi_vs_alpha, a10,
                                    return_alpha=True)
    t_same, ours = timed(ar.compute, a10, alpha=alpha_st)
    print(f"n=10 sweep: stock {t_st:.2f} s (alpha {alpha_st:.3g}); ours"
          f" one solve at stock's final alpha {t_same*1e3:.1f} ms, max |pi"
          f" diff| {np.abs(ours.joint - pi_st).max():.1e}")
  t_sw, res = timed(ar.compute, a10)
  print(f"n=10 ours full sweep {t_sw:.3f} s (to alpha {res.alpha:.3g})")
  fails = 0
  trials = 10 if quick else 40
  for t in range(trials):
    k = 2 + t % 2
    g = [rng.normal(size=(4,) * k) for _ in range(k)]
    if sar is not None:
      try:
        sar.compute(g, alpha=5.0)
      except ValueError:
        fails += 1
    ar.compute(g, alpha=5.0)
  print(f"alpha=5 on {trials} random 2/3-player games: stock failed {fails},"
        " ours 0")
  sizes = (50,) if quick else (50, 100)
  for n in sizes:
    g = [rng.normal(size=(n, n)) for _ in range(2)]
    line = ""
    if sar is not None and n <= 50:
      t_st, _ = timed(sar.compute, g, alpha=1.0)
      line = f" | stock {t_st:.1f} s"
    t_one, _ = timed(ar.compute, g, alpha=1.0)
    t_sw, res = timed(ar.compute, g)
    print(f"n={n}: ours one solve (alpha=1) {t_one:.2f} s{line}; ours sweep"
          f" {t_sw:.2f} s (alpha {res.alpha:.3g})")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  bench_nash(rng, (50, 200) if args.quick else (50, 200, 500))
  bench_growing(rng, 60 if args.quick else 200)
  bench_prd(rng, (10,) if args.quick else (10, 50))
  bench_alpharank(rng, args.quick)


if __name__ == "__main__":
  main()
