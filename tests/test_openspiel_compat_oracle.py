"""Our oracles and policies inside stock OpenSpiel's psro_v2."""

import numpy as np
import pyspiel
import pytest

pytest.importorskip("cvxpy", reason="stock psro_v2 imports cvxpy: pip install cvxpy ecos")
from open_spiel.python.algorithms import expected_game_score  # pylint: disable=g-import-not-at-top
from open_spiel.python.algorithms import exploitability as os_exploitability  # pylint: disable=g-import-not-at-top
from open_spiel.python.algorithms import policy_aggregator  # pylint: disable=g-import-not-at-top
from open_spiel.python.algorithms.psro_v2 import psro_v2  # pylint: disable=g-import-not-at-top

from openspiel_psro_ext import openspiel_compat  # pylint: disable=g-import-not-at-top


def _stock_solver(game, oracle):
  return psro_v2.PSROSolver(game, oracle, sims_per_entry=200,
                            meta_strategy_method="ext_nash",
                            training_strategy_selector="probabilistic",
                            sample_from_marginals=True)


def test_exact_oracle_in_stock_loop_returns_best_responses():
  game = pyspiel.load_game("kuhn_poker")
  np.random.seed(0)
  solver = _stock_solver(game, openspiel_compat.StockOracle(game, "exact"))
  for _ in range(3):
    policies = [list(p) for p in solver.get_policies()]
    sigma = solver.get_meta_strategies()
    opponents = policy_aggregator.PolicyAggregator(game).aggregate([0, 1], policies, sigma)
    solver.iteration()
    for player in range(2):
      new = solver.get_policies()[player][-1]
      assert isinstance(new, openspiel_compat.policy_lib.Policy)
      joint = [opponents, opponents]
      joint[player] = new
      got = expected_game_score.policy_value(game.new_initial_state(), joint)[player]
      best = os_exploitability.best_response(game, opponents, player)["best_response_value"]
      assert got == pytest.approx(best, abs=1e-9)
  # The exact oracle with stock's sampled tables still converges on Kuhn.
  assert len(solver.get_policies()[0]) == 4


def test_joint_strategies_are_marginalised():
  game = pyspiel.load_game("kuhn_poker")
  oracle = openspiel_compat.StockOracle(game, "exact")
  tree = oracle.tree
  uniform = openspiel_compat.policies_lib.MatrixPolicy(tree, tree.uniform_policy())
  params = [[{"policy": uniform, "total_policies": [[uniform], [uniform]],
              "current_player": p, "probabilities_of_playing_policies": np.ones((1, 1))}]
            for p in range(2)]
  answers = oracle(game, params, using_joint_strategies=True)
  for p in range(2):
    joint = [uniform, uniform]
    joint[p] = answers[p][0]
    value = os_exploitability.best_response(game, uniform, p)["best_response_value"]
    got = expected_game_score.policy_value(game.new_initial_state(), joint)[p]
    assert got == pytest.approx(value, abs=1e-12)
