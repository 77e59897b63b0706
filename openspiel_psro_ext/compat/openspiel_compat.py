"""Adapters that make our components usable from stock OpenSpiel.

Importing this module calls `register()`.

Sections:
  1. Meta-strategy solvers -> `psro_v2.meta_strategies.META_STRATEGY_METHODS`
     as `ext_<name>`; a rectified solver turns on stock's rectified training.
  2. Oracles -> `psro_v2.optimization_oracle.AbstractOracle`: any of our
     oracles (exact, ppo, dqn, sac) inside stock `psro_v2.PSROSolver`, under
     every selector, rectifier and `sample_from_marginals` setting stock runs.
  (Our policies are OpenSpiel policies already: `policies.MatrixPolicy`; the
  drop-ins for OpenSpiel's exploitability and best-response functions are in
  `exploitability`.)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms.psro_v2 import (
  meta_strategies,
  optimization_oracle,
  strategy_selectors,
)

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.game import policies as policies_lib

# ---------------------------------------------------------------------------
# 1. Meta-strategy solvers.
# ---------------------------------------------------------------------------

#: Prefix of our names in `META_STRATEGY_METHODS`; stock names stay untouched.
META_STRATEGY_PREFIX = "ext_"


def _enable_stock_rectification(solver: Any, name: str) -> None:
  """Turns on stock psro_v2's own rectified training (PSRO_rN) for `solver`.

  Stock splits PSRO_rN in two settings: `training_strategy_selector=
  "rectified"` trains from every policy in the meta-strategy's support, and
  `rectifier="rectified"` restricts each one's opponents to those it beats or
  ties (`strategy_selectors.rectified_selector`), handing the oracle the
  restricted joint. A rectified solver left without a rectifier sets both,
  so that inside stock's loop it trains what its name says, through stock's
  own machinery, for any oracle. A rectifier the user set is left as it is.
  """
  if not hasattr(solver, "_rectify_training") or solver._rectify_training:  # pylint: disable=protected-access
    return
  logging.info(
    "%s%s: enabling stock's rectifier='rectified' and"
    " training_strategy_selector='rectified' (PSRO_rN).",
    META_STRATEGY_PREFIX,
    name,
  )
  solver._rectifier = strategy_selectors.rectified_selector  # pylint: disable=protected-access
  solver._rectify_training = solver._rectifier  # pylint: disable=protected-access
  solver._training_strategy_selector = strategy_selectors.rectified  # pylint: disable=protected-access


def make_meta_strategy_method(name: str) -> Callable:
  """Wraps solver `name` in stock's `fn(solver, return_joint=False)` form.

  The wrapper reads `solver.get_meta_game()` (a list of per-player tensors,
  or one matrix for a zero-sum game), maps stock's kwargs
  (`solver.get_kwargs()`) to the solver's own with
  `meta_solvers.spec(name).from_stock_kwargs` (so stock's `prd_*` kwargs
  reach `prd`; the rest are dropped, as stock hands every kwarg to every
  method), and returns the per-player marginals, plus, with
  `return_joint=True`, the flat joint `[prod_p n_p]` from
  `meta_strategies.get_joint_strategy_from_marginals`, as stock's methods do.
  (Our α-Rank's joint is not a product; the marginals' product is returned
  for stock's samplers, like stock's Nash/PRD. A correlated solver,
  `spec.joint`, returns its own joint.) A rectified solver
  (`spec.rectified`) also switches on stock's rectified training
  (`_enable_stock_rectification`).
  """
  spec = meta_solvers.spec(name)

  def method(solver, return_joint: bool = False):
    if spec.rectified:
      _enable_stock_rectification(solver, name)
    meta_games = solver.get_meta_game()
    if not isinstance(meta_games, list):
      meta_games = [meta_games, -meta_games]
    stock_kwargs = solver.get_kwargs() if hasattr(solver, "get_kwargs") else {}
    tables = [np.asarray(t) for t in meta_games]
    if spec.joint_solve is not None:  # a correlated solver: its own joint, flat as stock's
      joint = spec.joint_solve(tables, **spec.from_stock_kwargs(stock_kwargs))
      marginals = meta_solvers.correlated.marginals(joint)
      return (marginals, joint.reshape(-1)) if return_joint else marginals
    marginals = spec.solve(tables, **spec.from_stock_kwargs(stock_kwargs))
    if not return_joint:
      return marginals
    return marginals, meta_strategies.get_joint_strategy_from_marginals(marginals)

  method.__name__ = f"{META_STRATEGY_PREFIX}{name}_strategy"
  method.__doc__ = f"openspiel_psro_ext meta-solver {name!r} for psro_v2."
  method._openspiel_psro_ext_solver = name  # type: ignore[attr-defined]  # pylint: disable=protected-access
  return method


def register_meta_strategies() -> list[str]:
  """Adds `ext_<name>` for every registered solver; returns the names."""
  added = []
  for name in meta_solvers.names():
    key = META_STRATEGY_PREFIX + name
    current = meta_strategies.META_STRATEGY_METHODS.get(key)
    if getattr(current, "_openspiel_psro_ext_solver", None) == name:
      added.append(key)
      continue
    if current is not None:
      raise KeyError(f"{key!r} is already in META_STRATEGY_METHODS.")
    meta_strategies.META_STRATEGY_METHODS[key] = make_meta_strategy_method(name)
    added.append(key)
  return added


# ---------------------------------------------------------------------------
# 2. Oracles.
# ---------------------------------------------------------------------------


class StockOracle(optimization_oracle.AbstractOracle):
  """One of our oracles in stock psro_v2's `AbstractOracle` interface.

  Example:
    oracle = StockOracle(game, "exact")
    solver = psro_v2.PSROSolver(game, oracle, sims_per_entry=100,
                                meta_strategy_method="ext_nash")

  Stock passes its populations as OpenSpiel policies and the meta-strategy as
  per-player marginals or, with `using_joint_strategies`, a joint (flat or
  shaped). Opponents are drawn independently from the joint's marginals,
  which is exact unless three or more players face a joint that is not a
  product (a rectifier's masks make one); then the request carries the
  joint (a `JointMixture`) and the oracle answers the
  correlated opponents (stock's own `BestResponseOracle` answers the
  marginals: its `JointPolicyAggregator` lets the players act
  independently). Each stock policy is converted to an `[I, A]` matrix once
  (cached by identity); each answer is returned as a `policies.MatrixPolicy`,
  the oracle's exact behaviour policy.
  """

  def __init__(
    self,
    game: pyspiel.Game,
    oracle: oracles_lib.Oracle | str,
    oracle_config: dict[str, Any] | None = None,
    seed: int = 0,
    **kwargs,
  ):
    super().__init__(**kwargs)
    self.tree = game_tree_lib.get_tree(game)
    if isinstance(oracle, str):
      # With the oracle's PSRO settings, as in our loop.
      oracle = oracles_lib.get(oracle).for_psro(oracle_config)
    self.oracle = oracle
    self.seed = seed
    # Seconds per best response for oracles that train; None: the oracle's
    # config. Set before each stock iteration to follow a budget schedule.
    self.time_budget_s: float | None = None
    self._calls = 0
    self._matrices: dict[tuple[int, int], tuple[policy_lib.Policy, np.ndarray]] = {}
    self._previous: dict[int, oracles_lib.PopulationMember] = {}

  def _matrix(self, policy: policy_lib.Policy, player: int) -> np.ndarray:
    key = (id(policy), player)
    cached = self._matrices.get(key)
    if cached is None or cached[0] is not policy:
      cached = (policy, policies_lib.player_matrix(self.tree, policy, player))
      self._matrices[key] = cached
    return cached[1]

  def _meta_strategy(
    self, probabilities, using_joint: bool, total_policies: Sequence[Sequence[Any]]
  ) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Per-player `[n_p]` marginals, and the joint when it is not a product.

    Stock passes per-player marginals, or (`using_joint_strategies`: with
    `sample_from_marginals=False` or a rectifier) a joint over the
    populations, flat `[prod_p n_p]` or shaped `[n_0, ..., n_{P-1}]`. A
    rectifier masks the joint by the opponents' profile, so with three or
    more players it need not be a product: the opponents are then
    correlated, and the joint is returned too (None otherwise; with two
    players the one opponent's marginal is the whole distribution it faces).
    """
    shape = tuple(len(pols) for pols in total_policies)
    if not using_joint:
      marginals = [np.asarray(p, dtype=np.float64).reshape(-1) for p in probabilities]
      if tuple(len(m) for m in marginals) != shape:
        raise ValueError(
          f"per-player meta-strategies of sizes {[len(m) for m in marginals]}"
          f" for populations of sizes {list(shape)}; with a joint"
          " meta-strategy pass using_joint_strategies=True."
        )
      return marginals, None
    joint = np.asarray(probabilities, dtype=np.float64)
    if joint.size != int(np.prod(shape)):
      raise ValueError(
        f"joint meta-strategy of {joint.size} entries for populations of"
        f" sizes {list(shape)} (expected {int(np.prod(shape))})."
      )
    joint = joint.reshape(shape)
    axes = range(joint.ndim)
    marginals = [joint.sum(axis=tuple(a for a in axes if a != p)) for p in axes]
    total = joint.sum()
    product = joint.ndim <= 2 or np.allclose(
      joint / total, functools.reduce(np.multiply.outer, [m / total for m in marginals]), atol=1e-12
    )
    return marginals, None if product else joint

  def __call__(
    self,
    game,
    training_parameters,
    strategy_sampler=None,
    using_joint_strategies: bool = False,
    **oracle_specific_execution_kwargs,
  ):
    """Stock's oracle call: best responses for each requested player.

    `strategy_sampler` and stock's `oracle_specific_execution_kwargs` serve
    sampling oracles; ours reads the meta-strategy itself.
    """
    del game, strategy_sampler, oracle_specific_execution_kwargs
    new_policies = []
    for player_parameters in training_parameters:
      answers = []
      for params in player_parameters:
        player = params["current_player"]
        total = params["total_policies"]
        weights, correlated = self._meta_strategy(
          params["probabilities_of_playing_policies"], using_joint_strategies, total
        )
        populations = [
          None if q == player else np.stack([self._matrix(pol, q) for pol in total[q]])
          for q in range(self.tree.num_players)
        ]
        if any(weights[q].sum() <= 0 for q in range(len(weights)) if q != player):
          raise ValueError(
            f"player {player}'s opponents have a meta-strategy"
            " with no mass; pass probabilities that sum to 1."
          )
        opponents: oracles_lib.Opponents = (
          oracles_lib.MemberMixture(
            populations,
            [
              None if q == player else weights[q] / weights[q].sum()
              for q in range(self.tree.num_players)
            ],
          )
          if correlated is None
          else oracles_lib.JointMixture(populations, correlated.sum(axis=player) / correlated.sum())
        )
        request = oracles_lib.BestResponseRequest(
          tree=self.tree,
          player=player,
          opponents=opponents,
          previous=self._previous.get(player),
          time_budget_s=self.time_budget_s,
          seed=int(np.random.SeedSequence([self.seed, self._calls, player]).generate_state(1)[0]),
        )
        self._calls += 1
        member = self.oracle.best_response(request)
        self._previous[player] = member
        answers.append(self._answer(player, member))
      new_policies.append(answers)
    return new_policies

  def _answer(self, player: int, member: oracles_lib.PopulationMember) -> policies_lib.MatrixPolicy:
    """The member as an OpenSpiel policy (other players' rows uniform)."""
    matrices = self.tree.uniform_policy()
    if member.matrix is None:
      raise ValueError(f"oracle {self.oracle.name!r} answered without a behaviour matrix.")
    matrices[player] = member.matrix
    return policies_lib.MatrixPolicy(self.tree, matrices)


# ---------------------------------------------------------------------------
# Registration entry point.
# ---------------------------------------------------------------------------


def register() -> None:
  """Registers everything with stock OpenSpiel; safe to call repeatedly."""
  register_meta_strategies()


register()
