"""Meta-solvers on games with known answers."""

import fractions
import warnings

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext.meta_solvers import alpharank as ar
from openspiel_psro_ext.meta_solvers import common

RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
# Biased RPS: paper beating rock pays 2. Equilibrium (1/4, 1/4, 1/2).
BIASED_RPS = np.array([[0.0, -2.0, 1.0], [2.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])


def zs(a):
  return [a, -a]


def value_by_dual_lp(a):
  """Game value from the column player's LP (min u s.t. A y <= u)."""
  n, m = a.shape
  c = np.r_[np.zeros(m), 1.0]
  res = optimize.linprog(
    c,
    A_ub=np.c_[a, -np.ones(n)],
    b_ub=np.zeros(n),
    A_eq=np.r_[np.ones(m), 0.0][None],
    b_eq=[1.0],
    bounds=[(0, None)] * m + [(None, None)],
    method="highs-ipm",
  )
  return res.x[-1]


def test_registry():
  assert meta_solvers.names() == [
    "alpharank",
    "cce",
    "ce",
    "nash",
    "prd",
    "rectified_nash",
    "uniform",
  ]
  assert meta_solvers.get("nash") is meta_solvers.nash.nash
  with pytest.raises(KeyError, match="unknown meta-solver"):
    meta_solvers.get("nope")
  with pytest.raises(KeyError, match="already registered"):
    meta_solvers.register_solver("nash", meta_solvers.uniform.uniform)
  with pytest.raises(KeyError, match="unknown meta-solver 'nope'.*alpharank"):
    meta_solvers.spec("nope")


def test_specs_declare_capabilities():
  spec = meta_solvers.spec
  assert meta_solvers.names_supporting(2) == meta_solvers.names()
  assert meta_solvers.names_supporting(3) == ["alpharank", "cce", "ce", "prd", "uniform"]
  assert [n for n in meta_solvers.names() if spec(n).incremental] == ["nash", "rectified_nash"]
  assert [n for n in meta_solvers.names() if spec(n).rectified] == ["rectified_nash"]
  assert isinstance(spec("nash").new_incremental(), meta_solvers.IncrementalZeroSumNash)
  with pytest.raises(ValueError, match="no incremental mode"):
    spec("prd").new_incremental()
  # Warm start goes through `incremental=`, never a listed parameter.
  assert "incremental" not in spec("nash").parameters()
  x, _ = spec("nash").solve(zs(RPS), incremental=spec("nash").new_incremental())
  np.testing.assert_allclose(x, [1 / 3] * 3, atol=1e-9)


def test_unknown_keywords_are_refused():
  with pytest.raises(
    meta_solvers.MetaSolverConfigError,
    match=r"'alpharank' has no parameter 'alphaa'; its"
    r" parameters are \['alpha', 'm'",
  ):
    meta_solvers.spec("alpharank").check_kwargs({"alphaa": 3})
  assert meta_solvers.spec("prd").check_kwargs({"dt": 0.1}) == {"dt": 0.1}
  for name in meta_solvers.names():  # no solver swallows unknown keywords
    with pytest.raises(TypeError, match="unexpected keyword"):
      meta_solvers.get(name)(zs(RPS), prd_iterations=10)


@pytest.mark.parametrize(
  "key, value", [("iterations", -1), ("dt", 0.0), ("gamma", 1.0), ("average_over_last_n", 0)]
)
def test_prd_settings_out_of_range_are_refused_by_one_declaration(key, value):
  """PRDConfig and the registry's keyword check read the same bounds."""
  with pytest.raises(ValueError, match=rf"PRDConfig\.{key} must be"):
    meta_solvers.PRDConfig(**{key: value})
  with pytest.raises(meta_solvers.MetaSolverConfigError, match=rf"'prd': {key} must be"):
    meta_solvers.spec("prd").check_kwargs({key: value})


def test_from_stock_kwargs_renames_ours_and_drops_the_rest():
  stock = {
    "prd_iterations": 50,
    "prd_dt": None,
    "sims_per_entry": 4,
    "average_over_last_n_strategies": 5,
  }
  assert meta_solvers.spec("prd").from_stock_kwargs(stock) == {
    "iterations": 50,
    "dt": 1e-3,
    "average_over_last_n": 5,
  }
  assert meta_solvers.spec("nash").from_stock_kwargs(stock) == {}
  assert meta_solvers.spec("alpharank").from_stock_kwargs(None) == {"alpha": 100.0}


def test_plain_callable_registration_still_works():
  def mine(meta_games, **kwargs):
    del kwargs
    return meta_solvers.get("uniform")(meta_games)

  spec = meta_solvers.register_solver("test_plain", mine)
  try:
    assert spec.supports_players(5) and not spec.incremental
    assert spec.check_kwargs({"anything": 1}) == {"anything": 1}
    assert meta_solvers.get("test_plain") is mine
  finally:
    meta_solvers._REGISTRY.pop("test_plain")  # pylint: disable=protected-access


@pytest.mark.parametrize(
  "a, row, col",
  [
    (RPS, [1 / 3] * 3, [1 / 3] * 3),
    (BIASED_RPS, [1 / 4, 1 / 4, 1 / 2], [1 / 4, 1 / 4, 1 / 2]),
    (PENNIES, [0.5, 0.5], [0.5, 0.5]),
  ],
)
def test_nash_known_mixed(a, row, col):
  x, y = meta_solvers.get("nash")(zs(a))
  np.testing.assert_allclose(x, row, atol=1e-9)
  np.testing.assert_allclose(y, col, atol=1e-9)
  assert meta_solvers.meta_game_nash_conv(zs(a), [x, y]) < 1e-9


def test_nash_pure_and_dominated():
  # Saddle point at (1, 0): value 2.
  a = np.array([[1.0, 0.5, 3.0], [2.0, 4.0, 2.5], [0.0, 1.0, 1.0]])
  x, y = meta_solvers.get("nash")(zs(a))
  np.testing.assert_allclose(x, [0, 1, 0], atol=1e-9)
  np.testing.assert_allclose(y, [1, 0, 0], atol=1e-9)
  # Row 2 strictly dominated by row 0 in an RPS-like game: gets no mass.
  b = np.vstack([RPS, RPS[0] - 1.0])
  x, _ = meta_solvers.get("nash")(zs(b))
  assert x[3] < 1e-9
  np.testing.assert_allclose(x[:3], [1 / 3] * 3, atol=1e-9)


def test_nash_random_zero_sum_value_matches_independent_lp():
  rng = np.random.default_rng(0)
  for _ in range(20):
    n, m = rng.integers(1, 30, size=2)
    a = rng.normal(size=(n, m))
    sol = meta_solvers.solve_zero_sum(a)
    assert abs(sol.value - value_by_dual_lp(a)) < 1e-7
    assert sol.gap < 1e-8


def test_nash_degenerate():
  x, y = meta_solvers.get("nash")(zs(np.zeros((3, 4))))
  assert meta_solvers.meta_game_nash_conv(zs(np.zeros((3, 4))), [x, y]) == 0
  x, y = meta_solvers.get("nash")(zs(np.array([[2.5]])))
  assert x.tolist() == [1.0] and y.tolist() == [1.0]
  ties = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  x, y = meta_solvers.get("nash")(zs(ties))
  assert x[2] < 1e-9 and abs(x.sum() - 1) < 1e-12
  # Bare matrix shorthand and constant-sum tables.
  np.testing.assert_allclose(meta_solvers.get("nash")(RPS)[0], [1 / 3] * 3)
  np.testing.assert_allclose(meta_solvers.get("nash")([RPS + 1, 1 - RPS])[1], [1 / 3] * 3)


def test_incremental_nash_matches_full_lp_on_growing_table():
  rng = np.random.default_rng(1)
  big = rng.normal(size=(60, 60))
  inc = meta_solvers.IncrementalZeroSumNash()
  for k in range(1, 61):
    a = big[:k, :k]
    sol = inc.solve(a)
    assert sol.gap < 1e-8
    assert abs(sol.value - value_by_dual_lp(a)) < 1e-7
  assert inc.stats["warm_solves"] == 59 and inc.stats["cold_solves"] == 1
  # A table that is not an extension of the last one rebuilds the model.
  sol = inc.solve(-big[:5, :5])
  assert abs(sol.value - value_by_dual_lp(-big[:5, :5])) < 1e-7
  assert inc.stats["cold_solves"] == 2


def test_general_sum_lemke_howson():
  # Battle of the sexes: every LH answer is one of its three equilibria.
  a = np.array([[3.0, 0.0], [0.0, 2.0]])
  b = np.array([[2.0, 0.0], [0.0, 3.0]])
  x, y = meta_solvers.get("nash")([a, b])
  assert meta_solvers.meta_game_nash_conv([a, b], [x, y]) < 1e-9
  # Prisoner's dilemma: unique (defect, defect).
  pd = np.array([[3.0, 0.0], [5.0, 1.0]])
  x, y = meta_solvers.get("nash")([pd, pd.T])
  np.testing.assert_allclose(x, [0, 1])
  np.testing.assert_allclose(y, [0, 1])
  rng = np.random.default_rng(2)
  for label in range(8):
    g = [rng.normal(size=(5, 3)), rng.normal(size=(5, 3))]
    x, y = meta_solvers.lemke_howson(*g, initial_label=label)
    assert meta_solvers.meta_game_nash_conv(g, [x, y]) < 1e-9
  # Degenerate integer game.
  g = [rng.integers(0, 2, (6, 6)).astype(float) for _ in range(2)]
  x, y = meta_solvers.get("nash")(g)
  assert meta_solvers.meta_game_nash_conv(g, [x, y]) < 1e-9


def test_bad_inputs():
  with pytest.raises(meta_solvers.MetaGameError, match="non-finite"):
    meta_solvers.get("nash")([np.array([[np.nan, 1.0]]), np.zeros((1, 2))])
  with pytest.raises(meta_solvers.MetaGameError, match="non-finite"):
    meta_solvers.get("prd")([np.array([[np.inf]]), np.zeros((1, 1))])
  with pytest.raises(meta_solvers.MetaGameError, match="shape"):
    meta_solvers.get("alpharank")([np.zeros((2, 2)), np.zeros((2, 3))])
  with pytest.raises(meta_solvers.MetaGameError, match="rank"):
    meta_solvers.get("uniform")([np.zeros((2, 2, 2)), np.zeros((2, 2, 2))])
  three = [np.zeros((2, 2, 2))] * 3
  with pytest.raises(meta_solvers.MetaGameError, match="'prd'"):
    meta_solvers.get("nash")(three)
  with pytest.raises(meta_solvers.MetaGameError, match="two-player"):
    meta_solvers.get("rectified_nash")(three)
  with pytest.raises(meta_solvers.MetaGameError, match="non-empty list"):
    meta_solvers.get("nash")([])
  with pytest.raises(meta_solvers.MetaGameError, match="probability"):
    meta_solvers.meta_game_nash_conv(zs(RPS), [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_nash_conv_values():
  # Pure rock vs pure rock in RPS: each player gains 1 by deviating.
  assert meta_solvers.meta_game_nash_conv(zs(RPS), [np.eye(3)[0], np.eye(3)[0]]) == pytest.approx(
    2.0
  )


def test_uniform():
  out = meta_solvers.get("uniform")([np.zeros((2, 3, 4))] * 3)
  assert [o.tolist() for o in out] == [[0.5] * 2, [1 / 3] * 3, [0.25] * 4]


def test_prd_matches_stock_and_approaches_equilibrium():
  stock = pytest.importorskip("open_spiel.python.algorithms.projected_replicator_dynamics")
  rng = np.random.default_rng(3)
  a = rng.normal(size=(6, 6))
  g = zs(a)
  theirs = stock.projected_replicator_dynamics(g, prd_iterations=3000)
  ours = meta_solvers.get("prd")(
    g, **meta_solvers.spec("prd").from_stock_kwargs({"prd_iterations": 3000})
  )
  for t, o in zip(theirs, ours):
    np.testing.assert_allclose(o, t, atol=1e-10)
  assert (
    meta_solvers.meta_game_nash_conv(zs(BIASED_RPS), meta_solvers.get("prd")(zs(BIASED_RPS))) < 0.05
  )
  # Three players: pure dominant-strategy equilibrium is found.
  g3 = [np.zeros((2, 2, 2)) for _ in range(3)]
  g3[0][1], g3[1][:, 1], g3[2][:, :, 1] = 1.0, 1.0, 1.0
  out = meta_solvers.get("prd")(g3, iterations=2000, average_over_last_n=10)
  for x in out:
    assert x[1] > 0.99
  with pytest.raises(meta_solvers.MetaGameError, match="gamma"):
    meta_solvers.get("prd")(zs(RPS), gamma=0.5)


EPS = np.finfo(np.float64).eps


def random_games(seed, count, integer=False):
  """`count` random 2- and 3-player games, 2-4 policies a player."""
  rng = np.random.default_rng(seed)
  games = []
  for t in range(count):
    shape = tuple(rng.integers(2, 5, size=2 + t % 2))
    draw = (
      (lambda shape=shape: rng.integers(-2, 3, size=shape).astype(float))
      if integer
      else (lambda shape=shape: rng.normal(size=shape))
    )
    games.append([draw() for _ in shape])
  return games


def log_balance_error(meta_games, alpha, log_pi, local=True):
  """Worst `|log inflow_i - log outflow_i|` over profiles, and its scale.

  Stationarity `pi Q = 0` in logs: `logsumexp_s(log pi_s + L[s, i]) =
  log pi_i + logsumexp_j L[i, j]` for the log-rates `L`. Rounding in logs is
  absolute, `eps` times the magnitude of the logs involved.
  """
  rates = ar.log_rate_matrix(meta_games, alpha, use_local_selection_model=local)
  inflow = logsumexp(log_pi[:, None] + rates, axis=0)
  outflow = log_pi + logsumexp(rates, axis=1)
  scale = max(1.0, np.abs(rates[np.isfinite(rates)]).max(), np.abs(log_pi).max())
  return float(np.max(np.abs(inflow - outflow))), scale


def exact_stationary(rates):
  """`pi` with `pi Q = 0`, `sum pi = 1`, in exact rational arithmetic, for the
  float rate matrix `rates` ([N, N], zero diagonal) taken as exact."""
  n = rates.shape[0]
  q = [[fractions.Fraction(float(rates[i, j])) for j in range(n)] for i in range(n)]
  for i in range(n):
    q[i][i] = -sum(q[i][j] for j in range(n) if j != i)
  # Rows of the system: Q^T pi = 0 with the last equation replaced by sum = 1.
  a = [[q[j][i] for j in range(n)] for i in range(n - 1)]
  a.append([fractions.Fraction(1)] * n)
  rhs = [fractions.Fraction(0)] * (n - 1) + [fractions.Fraction(1)]
  for col in range(n):
    piv = next(r for r in range(col, n) if a[r][col] != 0)
    a[col], a[piv] = a[piv], a[col]
    rhs[col], rhs[piv] = rhs[piv], rhs[col]
    for r in range(n):
      if r != col and a[r][col] != 0:
        f = a[r][col] / a[col][col]
        a[r] = [x - f * y for x, y in zip(a[r], a[col])]
        rhs[r] -= f * rhs[col]
  return np.array([float(rhs[i] / a[i][i]) for i in range(n)])


def test_alpharank_known_answers():
  # Pure dominant profile: all mass on it as alpha grows.
  pd = np.array([[3.0, 0.0], [5.0, 1.0]])
  res = ar.compute([pd, pd.T], alpha=50.0)
  assert res.joint[3] > 1 - 1e-12
  # RPS (cyclic, symmetric): uniform stationary distribution.
  res = ar.compute([RPS], alpha=10.0)
  np.testing.assert_allclose(res.joint, [1 / 3] * 3, atol=1e-12)
  # All-zero payoffs: every move is neutral, uniform over profiles.
  res = ar.compute([np.zeros((2, 3))] * 2, alpha=5.0)
  np.testing.assert_allclose(res.joint, np.full(6, 1 / 6))
  np.testing.assert_allclose(res.marginals[1], [1 / 3] * 3)
  assert ar.compute([np.ones((1, 1))] * 2).joint.tolist() == [1.0]


def test_alpharank_matches_exact_rational_solve_on_small_chains():
  for g in random_games(10, 12):
    if np.prod(g[0].shape) > 12:
      continue
    for alpha in (0.3, 3.0):
      rates = np.exp(ar.log_rate_matrix(g, alpha))
      exact = exact_stationary(rates)
      np.testing.assert_allclose(ar.compute(g, alpha=alpha).joint, exact, rtol=1e-12, atol=0)


def test_alpharank_rates_match_stocks_transition_matrix():
  stock = pytest.importorskip("open_spiel.python.egt.alpharank")
  for g in random_games(11, 10):
    for alpha in (0.1, 2.0):
      c, _ = stock._get_multipop_transition_matrix(  # pylint: disable=protected-access
        g, False, 50, alpha
      )
      ours = np.exp(ar.log_rate_matrix(g, alpha))
      off = ~np.eye(c.shape[0], dtype=bool)
      np.testing.assert_allclose(ours[off], c[off], rtol=1e-10, atol=1e-300)
  a = np.random.default_rng(12).normal(size=(5, 5))
  for local in (True, False):
    c, _ = stock._get_singlepop_transition_matrix(  # pylint: disable=protected-access
      a, False, 20, 0.7, False, local, None
    )
    ours = np.exp(ar.log_rate_matrix([a], 0.7, m=20, use_local_selection_model=local))
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(ours[off], c[off], rtol=1e-10)


def test_alpharank_single_population_models_reproduce_stock():
  # Stock's alpharank_test.py: Han et al. (2013) payoffs, global model.
  r, t, p, s, delta, eps = 1.0, 2.0, 0.0, -1.0, 4.0, 0.25
  a = np.array(
    [
      [r - eps / 2.0, r - eps, 0, s + delta - eps, r - eps],
      [r, r, s, s, s],
      [0, t, p, p, p],
      [t - delta, t, p, p, p],
      [r, t, p, p, p],
    ]
  )
  pi = ar.compute([a], m=20, alpha=0.1, use_local_selection_model=False).joint
  np.testing.assert_allclose(
    pi, [0.40966787, 0.07959841, 0.20506998, 0.08505983, 0.2206039], atol=1e-8
  )
  # Constant-sum tables: stock's closed form equals the general model.
  rps = ar.compute([RPS + 1.0], m=20, alpha=0.1, use_local_selection_model=False)
  np.testing.assert_allclose(rps.joint, [1 / 3] * 3, atol=1e-14)
  out = meta_solvers.get("alpharank")([a], alpha=0.1, m=20, use_local_selection_model=False)
  np.testing.assert_allclose(out[0], pi)


def test_alpharank_agrees_with_stock_where_stock_is_well_conditioned():
  """Stock's dense eigen-solver is only as good as the chain's spectral gap
  `1 - |lambda_2|`: its error is about `N eps / gap`, and it overflows or
  finds several unit eigenvalues on nearly decomposable chains. Ours is
  checked against the balance equations everywhere, and against stock where
  stock's answer is determined to 1e-9."""
  stock = pytest.importorskip("open_spiel.python.egt.alpharank")
  compared = skipped = 0
  for g in random_games(4, 40):
    for alpha in (0.1, 0.5, 2.0, 5.0):
      ours = ar.compute(g, alpha=alpha)
      err, scale = log_balance_error(g, alpha, ours.log_joint)
      assert err <= 64 * ours.joint.size * EPS * scale
      with warnings.catch_warnings():
        warnings.simplefilter("error")  # stock's overflow in exp: skip
        try:
          c, _ = stock._get_multipop_transition_matrix(  # pylint: disable=protected-access
            g, False, 50, alpha
          )
          pi = stock.compute(g, alpha=alpha)[2]
        except (ValueError, RuntimeWarning):
          skipped += 1
          continue
      gap = 1.0 - np.sort(np.abs(np.linalg.eigvals(c)))[-2]
      if gap < 1e-6:
        skipped += 1
        continue
      compared += 1
      np.testing.assert_allclose(ours.joint, pi, atol=64 * pi.size * EPS / gap)
  assert compared >= 80 and skipped >= 5, (compared, skipped)


@pytest.mark.parametrize("integer", [False, True])
def test_alpharank_any_alpha_balances_and_approaches_the_limit(integer):
  games = random_games(7 if not integer else 8, 60 if not integer else 30, integer)
  worst = {}
  for g in games:
    limit = ar.compute(g, alpha=float("inf")).joint
    assert limit.min() >= 0 and abs(limit.sum() - 1) < 1e-12
    for alpha in (1e2, 1e3, 1e4):
      res = ar.compute(g, alpha=alpha)
      assert np.all(np.isfinite(res.log_joint))
      assert res.joint.min() >= 0 and abs(res.joint.sum() - 1) < 1e-12
      err, scale = log_balance_error(g, alpha, res.log_joint)
      assert err <= 64 * res.joint.size * EPS * scale, (alpha, err, scale)
      gap = np.abs(res.joint - limit).sum()
      worst[alpha] = max(worst.get(alpha, 0.0), gap)
      if alpha == 1e4:
        # Rounding in logs of size alpha (m - 1) |payoff| is all that is left.
        assert gap <= 8 * EPS * scale * res.joint.size, (gap, scale)
  if integer:  # payoff gaps >= 1: e^{-100} corrections, rounding is all
    assert max(worst.values()) <= 1e-9, worst
  else:
    assert worst[1e4] <= worst[1e3] <= worst[1e2], worst


def test_alpharank_limit_known_answers():
  inf = float("inf")
  np.testing.assert_allclose(ar.compute([RPS], alpha=inf).joint, [1 / 3] * 3)
  pd = np.array([[3.0, 0.0], [5.0, 1.0]])
  assert ar.compute([pd, pd.T], alpha=inf).joint.tolist() == [0, 0, 0, 1]
  # Two strict equilibria: leaving (0, 0) costs 2 (m - 1), leaving (1, 1)
  # only 1 (m - 1), so the limit sits on (0, 0).
  a = np.array([[2.0, 0.0], [0.0, 1.0]])
  assert ar.compute([a, a], alpha=inf).joint.tolist() == [1, 0, 0, 0]
  # Every move neutral: uniform.
  np.testing.assert_allclose(ar.compute([np.zeros((2, 3))] * 2, alpha=inf).joint, np.full(6, 1 / 6))
  # Matching pennies: one cycle of four profiles, uniform.
  np.testing.assert_allclose(ar.compute(zs(PENNIES), alpha=inf).joint, [0.25] * 4)


def test_alpharank_large_alpha_and_sweep_on_two_equilibria():
  # At alpha = 1e4 the cross rates are e^{-49e4}: once an error, now exact.
  a = np.array([[2.0, 0.0], [0.0, 1.0]])
  res = ar.compute([a, a], alpha=1e4)
  assert res.joint[0] == 1.0 and res.log_joint[3] < -1e5
  swept = ar.compute([a, a])
  assert swept.joint[0] > 1 - 1e-5


def test_alpharank_sweep_ends_at_the_limit_beyond_float_resolution():
  # Equilibria 1e-3 apart beside payoffs of -1e4: pi still moves at the alpha
  # where log-rates (~1e6 alpha) lose float64 resolution; the sweep then
  # answers with the exact alpha -> inf limit.
  a = np.array([[1.0, 0.0, -1e4], [0.0, 1 + 1e-3, -1e4], [-1e4, -1e4, -1e4]])
  res = ar.compute([a, a])
  assert res.alpha == float("inf")
  assert res.joint[4] == 1.0
  np.testing.assert_allclose(res.marginals[0], [0, 1, 0])


def test_alpharank_sparse_solver_agrees_with_gth_or_declines():
  rng = np.random.default_rng(13)
  agreed = declined = 0
  for t in range(16):
    shape = (6, 7) if t % 2 else (3, 3, 4)
    g = [rng.normal(size=shape) for _ in shape]
    for alpha in (0.1, 1.0, 10.0, 100.0, 1000.0):
      cfg = ar.AlphaRankConfig(alpha=alpha)
      exact, _ = ar._solve(g, alpha, cfg)  # pylint: disable=protected-access
      pshape, blocks = ar._blocks(g, alpha, 50, True)  # pylint: disable=protected-access
      log_pi = ar._sparse_log_pi(pshape, blocks, cfg, None)  # pylint: disable=protected-access
      if log_pi is None:
        declined += 1
        continue
      agreed += 1
      np.testing.assert_allclose(np.exp(log_pi), exact, atol=1e-10)
  print(f"sparse solver: {agreed} agreed with GTH, {declined} declined")
  assert agreed >= 40 and declined >= 1, (agreed, declined)


def test_alpharank_large_chain_uses_the_certified_sparse_solver():
  rng = np.random.default_rng(14)
  g = [rng.normal(size=(16, 20)) for _ in range(2)]
  res = ar.compute(g, alpha=1.0, gth_max_states=100)
  gth = ar.compute(g, alpha=1.0, gth_max_states=10**4)
  np.testing.assert_allclose(res.joint, gth.joint, atol=1e-10)
  # Single population, both models.
  a = rng.normal(size=(40, 40))
  for local in (True, False):
    fast = ar.compute([a], alpha=2.0, gth_max_states=10, use_local_selection_model=local)
    exact = ar.compute([a], alpha=2.0, use_local_selection_model=local)
    np.testing.assert_allclose(fast.joint, exact.joint, atol=1e-10)
  with pytest.raises(ar.AlphaRankDegenerateError, match="dense_max_states"):
    ar.compute(g, alpha=float("inf"), dense_max_states=100)


def test_alpharank_config_errors():
  with pytest.raises(ValueError, match="alpha must be >= 0"):
    ar.compute(zs(RPS), alpha=-1.0)
  with pytest.raises(ValueError, match="at least 2"):
    ar.compute(zs(RPS), alpha=1.0, m=1)


def test_rectified_targets_rps():
  targets = meta_solvers.rectified_targets([RPS])
  for p in range(2):
    assert [t.policy for t in targets[p]] == [0, 1, 2]
    for t in targets[p]:
      # Each beats one and ties one (itself), each Nash-weighted 1/3.
      expected = np.zeros(3)
      expected[t.policy] = 0.5
      expected[(t.policy + 2) % 3] = 0.5
      np.testing.assert_allclose(t.opponent_mixture, expected, atol=1e-9)
      assert t.weight == pytest.approx(1 / 3)
  np.testing.assert_allclose(meta_solvers.get("rectified_nash")(zs(RPS))[0], [1 / 3] * 3)


def test_common_is_zero_sum():
  assert common.is_zero_sum(zs(RPS))
  assert not common.is_zero_sum([RPS, RPS])


def test_prd_stays_on_the_simplex_on_a_table_that_once_overflowed():
  # A 3x3 Leduc PSRO table on which the unnormalised Euler step drifted off
  # the simplex and overflowed (sum(w) < 0 makes the sum's error grow).
  a = np.array(
    [[-0.078125, -2.6597222, -2.2152778], [2.0875, 0.1, -3.7333333], [1.3638889, 3.1, 1.5666667]]
  )
  profile = meta_solvers.get("prd")([a, -a])
  for x in profile:
    assert np.all(np.isfinite(x)) and abs(x.sum() - 1) < 1e-12 and x.min() >= 0
  assert meta_solvers.meta_game_nash_conv([a, -a], profile) < 0.1


def test_highs_solvers_share_one_process():
  # Every highspy instance of a process shares its thread scheduler: a solver
  # asking for another thread count than the first one failed ("Not Set").
  rng = np.random.default_rng(0)
  a = rng.random((4, 4))
  incremental = meta_solvers.spec("nash").new_incremental()
  meta_solvers.spec("nash").solve([a, -a], incremental=incremental)
  for name in ("cce", "ce"):
    marginals = meta_solvers.spec(name).solve([a, a.T])
    assert all(m.sum() == pytest.approx(1.0) for m in marginals)
