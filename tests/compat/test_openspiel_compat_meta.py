"""Our meta-solvers inside stock OpenSpiel's psro_v2.PSROSolver."""

import random

import numpy as np
import pytest

pytest.importorskip(
  "cvxpy", reason="stock psro_v2 imports lp_solver, which needs cvxpy (pip install cvxpy ecos)"
)

import pyspiel  # pylint: disable=g-import-not-at-top
from open_spiel.python import policy as policy_lib  # pylint: disable=g-import-not-at-top
from open_spiel.python.algorithms.psro_v2 import (
  best_response_oracle,  # pylint: disable=g-import-not-at-top
  meta_strategies,  # pylint: disable=g-import-not-at-top
  psro_v2,  # pylint: disable=g-import-not-at-top
)

import openspiel_psro_ext  # pylint: disable=g-import-not-at-top
from openspiel_psro_ext import meta_solvers  # pylint: disable=g-import-not-at-top
from openspiel_psro_ext.compat import openspiel_compat  # pylint: disable=g-import-not-at-top

STOCK = {"uniform_biased", "uniform", "nash", "prd", "rm"}


def test_register_is_idempotent_and_keeps_stock_names():
  before = dict(meta_strategies.META_STRATEGY_METHODS)
  openspiel_psro_ext.register()
  openspiel_psro_ext.register()
  after = meta_strategies.META_STRATEGY_METHODS
  assert before == after
  for name in STOCK:
    assert after[name].__module__ == meta_strategies.__name__
  assert {f"ext_{n}" for n in meta_solvers.names()} <= set(after)


class _FakeSolver:
  def __init__(self, meta_games):
    self._meta_games = meta_games

  def get_meta_game(self):
    return self._meta_games

  def get_kwargs(self):
    return {}


def test_signature_matches_stock_return_joint():
  a = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
  fn = meta_strategies.META_STRATEGY_METHODS["ext_nash"]
  marg = fn(_FakeSolver([a, -a]))
  marg2, joint = fn(solver=_FakeSolver([a, -a]), return_joint=True)
  np.testing.assert_allclose(marg[0], [1 / 3] * 3)
  np.testing.assert_allclose(marg2[1], marg[1])
  np.testing.assert_allclose(joint, np.full(9, 1 / 9))
  # Bare matrix (stock's zero-sum shorthand) works too.
  np.testing.assert_allclose(fn(_FakeSolver(a))[1], [1 / 3] * 3)


@pytest.mark.parametrize("name", ["nash", "prd", "alpharank", "rectified_nash", "uniform"])
def test_stock_psro_runs_with_our_solver(name):
  # Stock's selectors draw from numpy, its episode sampler from `random`.
  np.random.seed(0)
  random.seed(0)
  game = pyspiel.load_game("kuhn_poker")
  oracle = best_response_oracle.BestResponseOracle(
    game=game, policy=policy_lib.UniformRandomPolicy(game)
  )
  solver = psro_v2.PSROSolver(
    game,
    oracle,
    sims_per_entry=4,
    initial_policies=[policy_lib.UniformRandomPolicy(game)] * 2,
    meta_strategy_method=openspiel_compat.META_STRATEGY_PREFIX + name,
    training_strategy_selector="probabilistic",
    sample_from_marginals=True,
    prd_iterations=500,
  )
  for _ in range(2):
    solver.iteration()
  probs = solver.get_meta_strategies()
  sizes = [len(p) for p in probs]
  if meta_solvers.spec(name).rectified:
    # Stock's rectified training: a best response per support member.
    assert min(sizes) >= 3
  else:
    assert sizes == [3, 3]
  for p in probs:
    assert abs(np.sum(p) - 1) < 1e-9 and np.min(p) >= 0
  meta_games = solver.get_meta_game()
  assert meta_games[0].shape == tuple(sizes)
