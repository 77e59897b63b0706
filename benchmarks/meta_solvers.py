"""Meta-solver benchmark: ours vs stock OpenSpiel on the same inputs.

Run from the repo root: python -m benchmarks.meta_solvers [--quick]
(or `pip install -e .` and run the file directly).

Every figure is measured in the run that prints it; each ratio times the
same work on both sides. Figures depend on the machine's load: CPU seconds
are printed beside wall seconds where it matters.

Stock Nash needs cvxpy with ECOS (`pip install cvxpy ecos`); without it the
stock Nash column is skipped. Stock α-Rank's import needs matplotlib and
networkx.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from openspiel_psro_ext.meta_solvers import alpharank as ar
from openspiel_psro_ext.meta_solvers import common, nash, prd

# Headline rows of benchmarks/RESULTS.md's table (solver, input | ours | stock | ratio),
# printed at the end.
RESULTS_ROWS: list[str] = []


def _span(values, spec: str) -> str:
  """`lo-hi` of the values as RESULTS.md writes a range (one number if equal)."""
  lo, hi = f"{min(values):{spec}}", f"{max(values):{spec}}"
  return lo if lo == hi else f"{lo}-{hi}"


def timed(fn, *args, repeat=1, **kwargs):
  best, out = np.inf, None
  for _ in range(repeat):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    best = min(best, time.perf_counter() - t)
  return best, out


def stock_nash_fn():
  try:
    import cvxpy  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
    import pyspiel  # pylint: disable=g-import-not-at-top
    from open_spiel.python.algorithms import lp_solver  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("cvxpy missing: stock Nash skipped (pip install cvxpy ecos)")
    return None

  def solve(a):
    p0, p1, v0, _ = lp_solver.solve_zero_sum_matrix_game(
      pyspiel.create_matrix_game(a.tolist(), (-a).tolist())
    )
    return np.asarray(p0).ravel(), np.asarray(p1).ravel(), float(v0)

  return solve


def bench_nash(rng, sizes):
  stock = stock_nash_fn()
  print("\n== Nash, random zero-sum (normal entries) ==")
  for n in sizes:
    a = rng.normal(size=(n, n))
    t_ours, sol = timed(nash.solve_zero_sum, a, repeat=3)
    line = f"n={n:4d} ours {t_ours * 1e3:8.1f} ms (gap {sol.gap:.1e})"
    if stock is not None:
      t_st, (_, _, v) = timed(stock, a, repeat=2)
      line += (
        f" | stock {t_st * 1e3:8.1f} ms | ratio {t_st / t_ours:6.1f}x"
        f" | |value diff| {abs(v - sol.value):.1e}"
      )
      RESULTS_ROWS.append(
        f"| Nash, {n}x{n} zero-sum | {t_ours * 1e3:.0f} ms | {t_st * 1e3:.0f} ms (cvxpy)"
        f" | {t_st / t_ours:.0f}x |"
      )
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
  times = [run_growing(rng.normal(size=(n_max, n_max)), n_max)]
  print("-- PSRO-like: new row/column are best responses to the current Nash")
  times.append(run_growing(psro_sequence(rng, n_max), n_max))
  if all(t_st is not None for _, t_st in times):
    ours, stock = [t for t, _ in times], [t for _, t in times]
    ratios = [t_st / t for t, t_st in times]
    RESULTS_ROWS.append(
      f"| Nash over a growing 1..{n_max} table | {_span(ours, '.2f')} s"
      f" | {_span(stock, '.1f')} s | {_span(ratios, '.0f')}x |"
    )


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
  print(
    f"ours incremental {t_inc:.3f} s | ours full LP each step {t_full:.3f}"
    f" s | max |value diff| {worst:.1e} | {inc.stats}"
  )
  if stock is not None:
    print(f"stock {t_st:.3f} s | ratio stock/incremental {t_st / t_inc:.1f}x")
  return t_inc, (t_st if stock is not None else None)


def _first_reaching(fn, meta_games, target, dt, grid):
  """Fewest steps from `grid` at which `fn` reaches NashConv `target`."""
  for steps in grid:
    t, out = timed(fn, meta_games, steps, dt)
    conv = common.meta_game_nash_conv(meta_games, out)
    if conv <= target:
      return steps, t, conv
  return None, t, conv


def bench_prd(rng, sizes):
  from open_spiel.python.algorithms import projected_replicator_dynamics as sp  # pylint: disable=g-import-not-at-top

  def stock(g, steps, dt):
    return sp.projected_replicator_dynamics(g, prd_iterations=steps, prd_dt=dt)

  def ours(g, steps, dt):
    return prd.prd(g, iterations=steps, dt=dt)

  print("\n== PRD, random zero-sum ==")
  grid = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
  equal_steps, equal_conv = [], []  # (stock s, ours s) per case
  for n in sizes:
    a = rng.normal(size=(n, n))
    g = [a, -a]
    # Equal steps: the same work on both sides (identical trajectories).
    for steps, dt in ((100_000, 1e-3), (10_000, 1e-2)):
      t_st, r_st = timed(stock, g, steps, dt)
      t_us, r_us = timed(ours, g, steps, dt)
      diff = max(np.abs(x - y).max() for x, y in zip(r_st, r_us))
      equal_steps.append((t_st, t_us))
      print(
        f"n={n:3d} equal steps ({steps} steps, dt {dt:g}): stock"
        f" {t_st:.2f} s, ours {t_us:.2f} s, ratio {t_st / t_us:.1f}x"
        f" (NashConv {common.meta_game_nash_conv(g, r_us):.4f}, max"
        f" diff {diff:.0e})"
      )
    # Equal NashConv: each side at its own default step size, fewest steps
    # (from the grid) reaching stock's default answer's NashConv.
    t_def, r_def = timed(stock, g, 100_000, 1e-3)
    target = common.meta_game_nash_conv(g, r_def)
    steps_st, t_st, _ = _first_reaching(stock, g, target, 1e-3, grid)
    steps_us, t_us, conv_us = _first_reaching(ours, g, target, 1e-2, grid)
    if steps_us is None:
      print(
        f"n={n:3d} equal NashConv {target:.4f}: ours (dt 1e-2) did not"
        f" reach it within {grid[-1]} steps (NashConv {conv_us:.4f})"
      )
    else:
      equal_conv.append((t_st, t_us))
      print(
        f"n={n:3d} equal NashConv {target:.4f} (stock's default answer):"
        f" stock dt 1e-3 {steps_st} steps {t_st:.2f} s, ours dt 1e-2"
        f" {steps_us} steps {t_us:.2f} s, ratio {t_st / t_us:.1f}x"
        " (step size and implementation together)"
      )
  ratios = [a / b for a, b in equal_steps]
  RESULTS_ROWS.append(
    f"| PRD, same steps and step size (1e4 or 1e5) | | | {_span(ratios, '.1f')}x |"
  )
  if equal_conv:
    sizes_text = ", ".join(str(n) for n in sizes)
    ratios = [a / b for a, b in equal_conv]
    RESULTS_ROWS.append(
      f"| PRD to stock's default answer's NashConv (n = {sizes_text})"
      f" | {_span([b for _, b in equal_conv], '.1f')} s (dt 1e-2)"
      f" | {_span([a for a, _ in equal_conv], '.1f')} s"
      f" (1e5 steps, dt 1e-3) | {_span(ratios, '.1f')}x |"
    )


def _stock_alpharank(sar, g, alpha):
  """(stock's pi or None, outcome): 'ok', 'raised' (no single stationary
  distribution found), or 'overflow' (an answer computed through inf/nan)."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      pi = sar.compute(g, alpha=alpha)[2]
    except ValueError:
      return None, "raised"
  if any(issubclass(w.category, RuntimeWarning) for w in caught):
    return pi, "overflow"
  return pi, "ok"


def _ours_alpharank(g, alpha):
  try:
    return ar.compute(g, alpha=alpha).joint
  except (ar.AlphaRankDegenerateError, ValueError):
    return None


def timed_cpu(fn, *args, **kwargs):
  """(wall s, CPU s, out) of one call: CPU time shows the work on a loaded
  machine, where wall time includes waiting for a core."""
  wall, cpu = time.perf_counter(), time.process_time()
  out = fn(*args, **kwargs)
  return time.perf_counter() - wall, time.process_time() - cpu, out


def bench_alpharank(rng, quick):
  try:
    from open_spiel.python.egt import alpharank as sar  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    print(f"stock alpharank unavailable ({e})")
    sar = None
  print("\n== alpha-Rank, random general-sum ==")
  a10 = [rng.normal(size=(10, 10)) for _ in range(2)]
  if sar is not None:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      t_st, (pi_st, alpha_st) = timed(sar.sweep_pi_vs_alpha, a10, return_alpha=True)
    t_same, ours = timed(ar.compute, a10, alpha=alpha_st)
    print(
      f"n=10 sweep: stock {t_st:.2f} s (alpha {alpha_st:.3g}); ours"
      f" one solve at stock's final alpha {t_same * 1e3:.1f} ms, max |pi"
      f" diff| {np.abs(ours.joint - pi_st).max():.1e}"
    )
  t_sw, res = timed(ar.compute, a10)
  print(f"n=10 ours full sweep {t_sw:.3f} s (to alpha {res.alpha:.3g})")
  trials = 20 if quick else 60
  failures = []  # (alpha, ours failed, stock raised, stock overflowed)
  for alpha in (5.0, 100.0, 1e4):
    outcomes = {"ok": 0, "raised": 0, "overflow": 0}
    fails_us = 0
    for t in range(trials):
      k = 2 + t % 2
      g = [rng.normal(size=(4,) * k) for _ in range(k)]
      if sar is not None:
        outcomes[_stock_alpharank(sar, g, alpha)[1]] += 1
      if _ours_alpharank(g, alpha) is None:
        fails_us += 1
    stock_part = (
      f"stock raised {outcomes['raised']}, overflowed (warning, answer kept) {outcomes['overflow']}"
      if sar is not None
      else "stock not run"
    )
    print(
      f"alpha={alpha:g} on {trials} random 2/3-player games (4 policies"
      f" each): {stock_part}, ours failed {fails_us}"
    )
    failures.append((alpha, fails_us, outcomes["raised"], outcomes["overflow"]))
  if sar is not None:
    RESULTS_ROWS.append(
      f"| α-Rank, {trials} random 2-/3-player games, α = "
      + " / ".join(f"{a:g}" for a, *_ in failures)
      + f" | {sum(f for _, f, _, _ in failures)} failures | raised "
      + " / ".join(str(r) for *_, r, _ in failures)
      + ", overflowed "
      + " / ".join(str(o) for *_, o in failures)
      + " | |"
    )
  stock_n = 20 if quick else 40
  stock_text = "not run"
  for n in sorted({stock_n, 200}):
    g = [rng.normal(size=(n, n)) for _ in range(2)]
    line = f"n={n} ({n * n} profiles), alpha=1:"
    if sar is not None and n == stock_n:
      wall, cpu, (pi, outcome) = timed_cpu(_stock_alpharank, sar, g, 1.0)
      line += f" stock {wall:.2f} s wall / {cpu:.2f} s CPU ({outcome});"
      stock_text = f"dense eigen-solve: {cpu:.1f} s CPU at {n}x{n}; 200x200 not run"
    wall, cpu, res = timed_cpu(ar.compute, g, alpha=1.0)
    line += f" ours {wall:.2f} s wall / {cpu:.2f} s CPU"
    if n == 200:
      RESULTS_ROWS.append(
        f"| α-Rank, {n}x{n} general-sum ({n * n:,} profiles), α=1 | {cpu:.2f} s CPU"
        f" ({wall:.2f} s wall) | {stock_text} | |"
      )
    if sar is not None and n == stock_n and pi is not None:
      line += f" (max |pi diff| {np.abs(res.joint - pi).max():.1e})"
    print(line)
    for alpha in (100.0,) + ((float("inf"),) if n * n <= 1500 else ()):
      try:
        wall, cpu, _ = timed_cpu(ar.compute, g, alpha=alpha)
        print(f"n={n} alpha={alpha:g}: ours {wall:.2f} s wall / {cpu:.2f} s CPU")
      except ar.AlphaRankDegenerateError as e:
        print(f"n={n} alpha={alpha:g}: ours refused: {e}")
  print(
    "(stock's dense eigen-solve needs the whole N x N matrix: not run"
    f" beyond n={stock_n}; alpha=inf is exact up to 1500 profiles)"
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  bench_nash(rng, (50, 200) if args.quick else (50, 200, 500))
  bench_growing(rng, 60 if args.quick else 200)
  bench_prd(rng, (10,) if args.quick else (10, 50))
  bench_alpharank(rng, args.quick)
  print("\nbenchmarks/RESULTS.md rows:")
  print("\n".join(RESULTS_ROWS))


if __name__ == "__main__":
  main()
