"""Meta-solvers on games with known answers."""

import numpy as np
import pytest
from scipy import optimize

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext.meta_solvers import alpharank as ar
from openspiel_psro_ext.meta_solvers import common

RPS = np.array([[0., -1., 1.], [1., 0., -1.], [-1., 1., 0.]])
# Biased RPS: paper beating rock pays 2. Equilibrium (1/4, 1/4, 1/2).
BIASED_RPS = np.array([[0., -2., 1.], [2., 0., -1.], [-1., 1., 0.]])
PENNIES = np.array([[1., -1.], [-1., 1.]])


def zs(a):
  return [a, -a]


def value_by_dual_lp(a):
  """Game value from the column player's LP (min u s.t. A y <= u)."""
  n, m = a.shape
  c = np.r_[np.zeros(m), 1.0]
  res = optimize.linprog(c, A_ub=np.c_[a, -np.ones(n)], b_ub=np.zeros(n),
                         A_eq=np.r_[np.ones(m), 0.0][None], b_eq=[1.0],
                         bounds=[(0, None)] * m + [(None, None)],
                         method="highs-ipm")
  return res.x[-1]


def test_registry():
  assert meta_solvers.names() == ["alpharank", "nash", "prd",
                                  "rectified_nash", "uniform"]
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
  assert meta_solvers.names_supporting(3) == ["alpharank", "prd", "uniform"]
  assert [n for n in meta_solvers.names() if spec(n).incremental] == [
      "nash", "rectified_nash"]
  assert [n for n in meta_solvers.names() if spec(n).rectified] == [
      "rectified_nash"]
  assert isinstance(spec("nash").new_incremental(),
                    meta_solvers.IncrementalZeroSumNash)
  with pytest.raises(ValueError, match="no incremental mode"):
    spec("prd").new_incremental()
  # Warm start goes through `incremental=`, never a listed parameter.
  assert "incremental" not in spec("nash").parameters()
  x, _ = spec("nash").solve(zs(RPS), incremental=spec("nash").new_incremental())
  np.testing.assert_allclose(x, [1 / 3] * 3, atol=1e-9)


def test_unknown_keywords_are_refused():
  with pytest.raises(meta_solvers.MetaSolverConfigError,
                     match=r"'alpharank' has no parameter 'alphaa'; its"
                     r" parameters are \['alpha', 'm'"):
    meta_solvers.spec("alpharank").check_kwargs({"alphaa": 3})
  assert meta_solvers.spec("prd").check_kwargs({"dt": 0.1}) == {"dt": 0.1}
  for name in meta_solvers.names():  # no solver swallows unknown keywords
    with pytest.raises(TypeError, match="unexpected keyword"):
      meta_solvers.get(name)(zs(RPS), prd_iterations=10)


def test_from_stock_kwargs_renames_ours_and_drops_the_rest():
  stock = {"prd_iterations": 50, "prd_dt": None, "sims_per_entry": 4,
           "average_over_last_n_strategies": 5}
  assert meta_solvers.spec("prd").from_stock_kwargs(stock) == {
      "iterations": 50, "dt": 1e-3, "average_over_last_n": 5}
  assert meta_solvers.spec("nash").from_stock_kwargs(stock) == {}
  assert meta_solvers.spec("alpharank").from_stock_kwargs(None) == {
      "alpha": 100.0}


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


@pytest.mark.parametrize("a, row, col", [
    (RPS, [1 / 3] * 3, [1 / 3] * 3),
    (BIASED_RPS, [1 / 4, 1 / 4, 1 / 2], [1 / 4, 1 / 4, 1 / 2]),
    (PENNIES, [.5, .5], [.5, .5]),
])
def test_nash_known_mixed(a, row, col):
  x, y = meta_solvers.get("nash")(zs(a))
  np.testing.assert_allclose(x, row, atol=1e-9)
  np.testing.assert_allclose(y, col, atol=1e-9)
  assert meta_solvers.meta_game_nash_conv(zs(a), [x, y]) < 1e-9


def test_nash_pure_and_dominated():
  # Saddle point at (1, 0): value 2.
  a = np.array([[1., 0.5, 3.], [2., 4., 2.5], [0., 1., 1.]])
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
  ties = np.array([[1., 1.], [1., 1.], [0., 0.]])
  x, y = meta_solvers.get("nash")(zs(ties))
  assert x[2] < 1e-9 and abs(x.sum() - 1) < 1e-12
  # Bare matrix shorthand and constant-sum tables.
  np.testing.assert_allclose(meta_solvers.get("nash")(RPS)[0], [1 / 3] * 3)
  np.testing.assert_allclose(meta_solvers.get("nash")([RPS + 1, 1 - RPS])[1],
                             [1 / 3] * 3)


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
  a = np.array([[3., 0.], [0., 2.]])
  b = np.array([[2., 0.], [0., 3.]])
  x, y = meta_solvers.get("nash")([a, b])
  assert meta_solvers.meta_game_nash_conv([a, b], [x, y]) < 1e-9
  # Prisoner's dilemma: unique (defect, defect).
  pd = np.array([[3., 0.], [5., 1.]])
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
    meta_solvers.get("nash")([np.array([[np.nan, 1.]]), np.zeros((1, 2))])
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
    meta_solvers.meta_game_nash_conv(zs(RPS), [[1., 1., 0.], [1., 0., 0.]])


def test_nash_conv_values():
  # Pure rock vs pure rock in RPS: each player gains 1 by deviating.
  assert meta_solvers.meta_game_nash_conv(
      zs(RPS), [np.eye(3)[0], np.eye(3)[0]]) == pytest.approx(2.0)


def test_uniform():
  out = meta_solvers.get("uniform")([np.zeros((2, 3, 4))] * 3)
  assert [o.tolist() for o in out] == [[.5] * 2, [1 / 3] * 3, [.25] * 4]


def test_prd_matches_stock_and_approaches_equilibrium():
  stock = pytest.importorskip(
      "open_spiel.python.algorithms.projected_replicator_dynamics")
  rng = np.random.default_rng(3)
  a = rng.normal(size=(6, 6))
  g = zs(a)
  theirs = stock.projected_replicator_dynamics(g, prd_iterations=3000)
  ours = meta_solvers.get("prd")(g, **meta_solvers.spec("prd").from_stock_kwargs(
      {"prd_iterations": 3000}))
  for t, o in zip(theirs, ours):
    np.testing.assert_allclose(o, t, atol=1e-10)
  assert meta_solvers.meta_game_nash_conv(zs(BIASED_RPS),
                                          meta_solvers.get("prd")(zs(BIASED_RPS))) < .05
  # Three players: pure dominant-strategy equilibrium is found.
  g3 = [np.zeros((2, 2, 2)) for _ in range(3)]
  g3[0][1], g3[1][:, 1], g3[2][:, :, 1] = 1.0, 1.0, 1.0
  out = meta_solvers.get("prd")(g3, iterations=2000, average_over_last_n=10)
  for x in out:
    assert x[1] > 0.99
  with pytest.raises(meta_solvers.MetaGameError, match="gamma"):
    meta_solvers.get("prd")(zs(RPS), gamma=0.5)


def test_alpharank_known_answers():
  # Pure dominant profile: all mass on it as alpha grows.
  pd = np.array([[3., 0.], [5., 1.]])
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


def test_alpharank_agrees_with_stock_and_survives_its_failures():
  stock = pytest.importorskip("open_spiel.python.egt.alpharank")
  rng = np.random.default_rng(4)
  stock_failures = 0
  for t in range(20):
    k = 2 + t % 2
    g = [rng.normal(size=(3,) * k) for _ in range(k)]
    for alpha in (0.5, 5.0):
      ours = ar.compute(g, alpha=alpha)
      np.testing.assert_allclose(ours.joint.sum(), 1.0)
      assert ours.joint.min() >= 0
      try:
        _, _, pi, _, _ = stock.compute(g, alpha=alpha)
      except ValueError:  # 'Expected 1 stationary distribution'
        stock_failures += 1
        continue
      np.testing.assert_allclose(ours.joint, pi, atol=1e-6)
  assert stock_failures > 0  # these inputs do exercise stock's failure.
  a = rng.normal(size=(4, 4))
  np.testing.assert_allclose(ar.compute([a - a.T], alpha=2.0).joint,
                             stock.compute([a - a.T], alpha=2.0)[2],
                             atol=1e-9)


def test_alpharank_gth_is_accurate_where_eigen_fails():
  # Two absorbing-looking profiles joined by rates ~ e^{-49 * 0.6 * 5}: the
  # exact answer is checked by the balance equations of the chain.
  a = np.array([[1., 0.], [0., 1.]])
  g = [a, a]
  rates = ar.transition_rates(g, 5.0, 50)
  pi = ar.stationary_distribution(rates)
  flow_in = rates.T @ pi
  flow_out = pi * np.asarray(rates.sum(axis=1)).ravel()
  np.testing.assert_allclose(flow_in, flow_out, rtol=1e-10)
  np.testing.assert_allclose(pi[[0, 3]], [.5, .5], atol=1e-12)


def test_alpharank_power_iteration_path_agrees_with_gth():
  rng = np.random.default_rng(5)
  g = [rng.normal(size=(12, 12)) for _ in range(2)]
  exact = ar.compute(g, alpha=1.0).joint
  iterative = ar.compute(g, alpha=1.0, gth_max_states=10).joint
  np.testing.assert_allclose(iterative, exact, atol=1e-10)


def test_alpharank_degenerate_alpha_raises_and_sweep_stops():
  # Two strict pure equilibria: at huge alpha the cross rates underflow.
  a = np.array([[2., 0.], [0., 1.]])
  with pytest.raises(ar.AlphaRankDegenerateError, match="closed classes"):
    ar.compute([a, a], alpha=1e4)
  res = ar.compute([a, a])  # sweep
  assert res.alpha < 1e4
  assert res.joint[0] > 0.99  # the payoff-dominant equilibrium


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
  np.testing.assert_allclose(meta_solvers.get("rectified_nash")(zs(RPS))[0],
                             [1 / 3] * 3)


def test_common_is_zero_sum():
  assert common.is_zero_sum(zs(RPS))
  assert not common.is_zero_sum([RPS, RPS])


def test_prd_stays_on_the_simplex_on_a_table_that_once_overflowed():
  # A 3x3 Leduc PSRO table on which the unnormalised Euler step drifted off
  # the simplex and overflowed (sum(w) < 0 makes the sum's error grow).
  a = np.array([[-0.078125, -2.6597222, -2.2152778],
                [2.0875, 0.1, -3.7333333],
                [1.3638889, 3.1, 1.5666667]])
  profile = meta_solvers.get("prd")([a, -a])
  for x in profile:
    assert np.all(np.isfinite(x)) and abs(x.sum() - 1) < 1e-12 and x.min() >= 0
  assert meta_solvers.meta_game_nash_conv([a, -a], profile) < 0.1
