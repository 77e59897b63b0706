"""JPSRO: correlated meta-solvers, exact CCE/CE gaps and the loop variant."""

import itertools

import numpy as np
import pytest

from openspiel_psro_ext import meta_solvers, psro
from openspiel_psro_ext.compat import openspiel_compat
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import correlated_gaps, exploitability, game_tree, payoffs
from openspiel_psro_ext.meta_solvers import correlated
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.oracles.rl import rollouts
from openspiel_psro_ext.records.variants import JPSROState
from tests.helpers import make_run

# Chicken: (dare, chicken); the max-welfare CE is 1/4, 1/4, 1/2 off (dare,
# dare), welfare 10.5; the max-welfare CCE is the same here.
CHICKEN = np.array([[0.0, 7.0], [2.0, 6.0]])


@pytest.mark.parametrize("solver", ["cce", "ce"])
def test_max_welfare_chicken(solver):
  joint = meta_solvers.spec(solver).joint_solve([CHICKEN, CHICKEN.T])
  np.testing.assert_allclose(joint, [[0.0, 0.25], [0.25, 0.5]], atol=1e-7)
  assert meta_solvers.get(solver)([CHICKEN, CHICKEN.T])[0] == pytest.approx([0.25, 0.75])


@pytest.mark.parametrize("equilibrium", ["cce", "ce"])
def test_random_three_player_tables_are_equilibria(equilibrium):
  rng = np.random.default_rng(3)
  tables = [rng.normal(size=(4, 3, 5)) for _ in range(3)]
  joint = correlated.joint_distribution(tables, equilibrium)
  assert joint.shape == (4, 3, 5) and joint.sum() == pytest.approx(1.0)
  cce_gap, ce_gap = correlated.meta_gaps(tables, joint)
  assert (ce_gap if equilibrium == "ce" else cce_gap) < 1e-7
  assert ce_gap >= cce_gap - 1e-9
  # Its welfare is no lower than the uniform joint's, if that one is feasible,
  # and a CE is a CCE: the CCE LP's welfare is at least the CE's.
  welfare = sum((t * joint).sum() for t in tables)
  cce_welfare = sum((t * correlated.cce_joint(tables)).sum() for t in tables)
  assert cce_welfare >= welfare - 1e-7


def test_max_welfare_cce_matches_stock_jpsro():
  pytest.importorskip("cvxpy")
  from open_spiel.python.algorithms import jpsro as stock_jpsro  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(5)
  tables = np.stack([rng.integers(-3, 4, size=(3, 3, 2)).astype(float) for _ in range(3)])
  stock, _ = stock_jpsro._mwcce(tables, [[1] * n for n in tables.shape[1:]])  # pylint: disable=protected-access
  ours = correlated.cce_joint(list(tables))
  assert (tables.sum(0) * ours).sum() == pytest.approx((tables.sum(0) * stock).sum(), abs=1e-5)


def _brute_force_gains(tree, populations, joint, player):
  """Per recommendation, the best pure policy's gain: every pure policy of
  `player` is a population member, payoffs by `payoffs.payoff_tensors`."""
  table = tree.infostates[player]
  legal = [np.flatnonzero(row) for row in table.legal_mask]
  pure = np.stack([np.eye(tree.num_actions)[list(choice)] for choice in itertools.product(*legal)])
  pops = list(populations)
  pops[player] = np.concatenate([populations[player], pure])
  tensor = np.moveaxis(payoffs.payoff_tensors(tree, pops)[player], player, 0)
  recommended = np.moveaxis(joint, player, 0)  # [N_p, opponents...]
  own, deviations = tensor[: len(populations[player])], tensor[len(populations[player]) :]
  axes = tuple(range(1, joint.ndim))
  on_policy = (recommended * own).sum(axis=axes)  # [N_p]
  deviation = np.tensordot(recommended, deviations, axes=(axes, axes))  # [N_p, pure]
  ce_gains = deviation.max(axis=1) - on_policy
  cce_gain = deviation.sum(axis=0).max() - on_policy.sum()
  return cce_gain, ce_gains


@pytest.mark.parametrize("game", ["kuhn_poker", "kuhn_poker(players=3)"])
def test_exact_gaps_match_brute_force(game):
  tree = game_tree.get_tree(game)
  rng = np.random.default_rng(1)
  populations = [
    rng.dirichlet(np.ones(tree.num_actions), size=(2, t.num_infostates)) * t.legal_mask
    for t in tree.infostates
  ]
  populations = [m / m.sum(axis=2, keepdims=True) for m in populations]
  joint = rng.dirichlet(np.ones(2**tree.num_players)).reshape((2,) * tree.num_players)
  joint[(0,) * tree.num_players] = 0.0  # a zero entry, skipped by the sparse sum
  joint /= joint.sum()
  reaches = [tree.terminal_reach(p, m) for p, m in enumerate(populations)]
  gaps = correlated_gaps.joint_gaps(tree, reaches, joint)
  for p in range(tree.num_players):
    cce_gain, ce_gains = _brute_force_gains(tree, populations, joint, p)
    assert gaps.cce_gains[p] == pytest.approx(cce_gain, abs=1e-10)
    np.testing.assert_allclose(gaps.ce_gains[p], ce_gains, atol=1e-10)
  assert gaps.ce_gap >= gaps.cce_gap > 0


def test_product_joint_cce_gap_is_nash_conv():
  tree = game_tree.get_tree("kuhn_poker(players=3)")
  rng = np.random.default_rng(2)
  populations = [
    np.stack(
      [
        tree.infostates[p].uniform_policy(),
        exploitability.one_hot_policy(tree, np.zeros(tree.infostates[p].num_infostates, int)),
      ]
    )
    for p in range(3)
  ]
  marginals = [rng.dirichlet(np.ones(2)) for _ in range(3)]
  joint = np.einsum("i,j,k->ijk", *marginals)
  reaches = [tree.terminal_reach(p, m) for p, m in enumerate(populations)]
  gaps = correlated_gaps.joint_gaps(tree, reaches, joint)
  nash_conv = exploitability.nash_conv_from_reach(tree, [s @ r for s, r in zip(marginals, reaches)])
  assert gaps.cce_gap == pytest.approx(nash_conv.nash_conv, abs=1e-10)
  np.testing.assert_allclose(gaps.cce_gains, nash_conv.player_improvements, atol=1e-10)


def _joint_request(tree, player=0):
  rng = np.random.default_rng(4)
  populations = [
    None
    if q == player
    else np.stack(
      [
        tree.infostates[q].uniform_policy(),
        exploitability.one_hot_policy(tree, rng.integers(0, 2, tree.infostates[q].num_infostates)),
      ]
    )
    for q in range(3)
  ]
  opponent_joint = np.array([[0.5, 0.0], [0.0, 0.5]])  # perfectly correlated
  return (
    oracle_base.BestResponseRequest(
      tree=tree, player=player, opponents=oracle_base.JointMixture(populations, opponent_joint)
    ),
    populations,
    opponent_joint,
  )


def test_exact_and_rl_oracles_answer_a_correlated_joint():
  tree = game_tree.get_tree("kuhn_poker(players=3)")
  request, populations, opponent_joint = _joint_request(tree)
  reaches = [np.zeros((1, tree.num_terminals))] + [
    tree.terminal_reach(q, populations[q]) for q in (1, 2)
  ]
  # The request's reach is the sigma-weighted sum of the members' products.
  expected = (
    tree.terminal_chance_reach
    * 0.5
    * (reaches[1][0] * reaches[2][0] + reaches[1][1] * reaches[2][1])
  )
  np.testing.assert_allclose(request.opponent_terminal_reach(), expected, atol=1e-15)
  marginals = oracle_base.MemberMixture(populations, [None, np.full(2, 0.5), np.full(2, 0.5)])
  independent = oracle_base.BestResponseRequest(tree=tree, player=0, opponents=marginals)
  assert not np.allclose(independent.opponent_terminal_reach(), expected)
  member = oracles_get("exact").best_response(request)
  value = member.stats["best_response_value"]
  gaps = correlated_gaps.joint_gaps(
    tree, [tree.terminal_reach(0, member.matrix[None])] + reaches[1:], opponent_joint[None]
  )
  assert gaps.values[0] == pytest.approx(value, abs=1e-12)
  assert gaps.cce_gains[0] == pytest.approx(0.0, abs=1e-12)
  # RL oracles' environments draw one joint profile per game.
  env = rollouts.make_env(request, num_envs=4000, seed=0)
  env.reset()
  members = env._members  # pylint: disable=protected-access
  assert np.array_equal(members[0], members[1])  # perfectly correlated
  assert abs(members[0].mean() - 0.5) < 0.05
  simulated = oracle_base.BestResponseRequest(
    tree=None, player=0, game=tree.game, opponents=request.opponents
  )
  with pytest.raises(ValueError, match="correlated opponents"):
    rollouts.make_env(simulated, num_envs=2, seed=0)


def oracles_get(name):
  from openspiel_psro_ext import oracles  # pylint: disable=g-import-not-at-top

  return oracles.get(name)()


def _jpsro(game, solver, iterations, **kwargs):
  config = psro.PSROConfig(
    game=game,
    meta_solver=solver,
    oracle="exact",
    algorithm="jpsro",
    iterations=iterations,
    target_nash_conv=1e-6,
    **kwargs,
  )
  run = make_run(config)
  return run, run.run()


def test_jpsro_cce_three_player_kuhn_converges():
  run, reason = _jpsro("kuhn_poker(players=3)", "cce", 40)
  last = run.records[-1]
  assert reason in ("target_gap", "converged")
  assert isinstance(last.variant, JPSROState)
  assert last.variant.cce_gap <= 1e-6
  assert last.variant.ce_gap >= last.variant.cce_gap
  assert run.records[0].variant.cce_gap == pytest.approx(run.records[0].nash_conv)
  # The recorded joint is the meta-solver's, its marginals the meta-strategy.
  joint = np.zeros(last.population_size)
  for *profile, prob in last.variant.joint:
    joint[tuple(profile)] = prob
  np.testing.assert_allclose(correlated.marginals(joint)[1], last.sigma[1], atol=1e-12)


def test_jpsro_ce_requests_one_best_response_per_recommendation():
  run, _ = _jpsro("kuhn_poker(players=3)", "ce", 5)
  requests = run.variant.requests(run.meta_strategies)
  support = [int((m > 0).sum()) for m in correlated.marginals(run.variant.joint)]
  assert [sum(1 for p, _ in requests if p == q) for q in range(3)] == support
  assert all(
    isinstance(r.opponents, oracle_base.JointMixture) and r.opponents.joint.ndim == 2
    for _, r in requests
  )


def test_correlated_solvers_on_two_player_zero_sum_and_nash_on_three_players():
  run, _ = _jpsro("kuhn_poker", "ce", 30)
  assert run.records[-1].variant.ce_gap <= 1e-6
  # Two players: requests carry the opponent's mixture, no joint.
  requests = run.variant.requests(run.meta_strategies)
  assert all(isinstance(r.opponents, oracle_base.MemberMixture) for _, r in requests)
  plain = psro.PSRO(
    psro.PSROConfig(game="kuhn_poker", meta_solver="cce", oracle="exact", iterations=3)
  )
  plain.run()
  assert plain.records[-1].nash_conv is not None
  with pytest.raises(UsageError, match=r"does not support 3-player.*'cce'"):
    psro.PSRO(psro.PSROConfig(game="kuhn_poker(players=3)", meta_solver="nash", oracle="exact"))
  with pytest.raises(UsageError, match="correlated meta-solver"):
    _jpsro("kuhn_poker(players=3)", "prd", 1)


def test_stock_ext_cce_returns_its_joint():
  openspiel_compat.register_meta_strategies()
  from open_spiel.python.algorithms.psro_v2 import meta_strategies  # pylint: disable=g-import-not-at-top

  method = meta_strategies.META_STRATEGY_METHODS["ext_ce"]

  class _Solver:
    def get_meta_game(self):
      return [CHICKEN, CHICKEN.T]

  marginals, joint = method(_Solver(), return_joint=True)
  np.testing.assert_allclose(joint, [0.0, 0.25, 0.25, 0.5], atol=1e-7)
  assert marginals[0] == pytest.approx([0.25, 0.75])


def test_gini_criterion_matches_cvxpy():
  cp = pytest.importorskip("cvxpy")
  tables = [CHICKEN, CHICKEN.T]
  for equilibrium in ("cce", "ce"):
    ours = correlated.joint_distribution(tables, equilibrium, "gini").reshape(-1)
    gains = correlated.deviation_gains(tables, equilibrium).toarray()
    x = cp.Variable(4)
    cp.Problem(cp.Minimize(cp.sum_squares(x)), [x >= 0, cp.sum(x) == 1, gains @ x <= 0]).solve()
    np.testing.assert_allclose(ours, x.value, atol=1e-5)
  with pytest.raises(meta_solvers.MetaGameError, match="criterion must be one of"):
    correlated.cce(tables, criterion="entropy")


def test_jpsro_resume_matches_an_uninterrupted_run(tmp_path):
  full, _ = _jpsro("kuhn_poker(players=3)", "ce", 6)
  out = str(tmp_path / "run")
  config = psro.PSROConfig(
    game="kuhn_poker(players=3)",
    meta_solver="ce",
    oracle="exact",
    algorithm="jpsro",
    target_nash_conv=1e-6,
    iterations=3,
  )
  make_run(config, output_dir=out).run()
  config.iterations = 6
  resumed = make_run(config, output_dir=out, resume=True)
  resumed.run()
  assert [r.population_size for r in resumed.records] == [r.population_size for r in full.records]
  assert [r.variant.ce_gap for r in resumed.records] == pytest.approx(
    [r.variant.ce_gap for r in full.records], abs=1e-12
  )
