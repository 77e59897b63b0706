"""Shared test helpers: small OpenSpiel games, seeded random policies, stock psro_v2."""

import random

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib

from openspiel_psro_ext.game import exploitability, game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import rollouts

# Games of different structure: 2p/3p poker, dice bidding, a converted
# simultaneous-move game and a cooperative general-sum game.
GAMES = [
  "kuhn_poker",
  "leduc_poker",
  "kuhn_poker(players=3)",
  "liars_dice(dice_sides=3)",
  "turn_based_simultaneous_game(game=goofspiel(num_cards=3))",
  "tiny_hanabi",
]


def random_tabular_policy(
  game: pyspiel.Game, rng: np.random.Generator, deterministic: bool = False
) -> policy_lib.TabularPolicy:
  tabular = policy_lib.TabularPolicy(game)
  noise = rng.random(tabular.action_probability_array.shape)
  noise *= tabular.legal_actions_mask
  if deterministic:
    noise = np.eye(noise.shape[1])[noise.argmax(axis=1)]
  tabular.action_probability_array = noise / noise.sum(axis=1, keepdims=True)
  return tabular


def random_matrix(
  tree: game_tree.GameTree, player: int, rng: np.random.Generator, deterministic: bool = False
) -> np.ndarray:
  mask = tree.infostates[player].legal_mask
  noise = rng.random(mask.shape) * mask
  if deterministic:
    noise = np.eye(mask.shape[1])[noise.argmax(axis=1)]
  return noise / noise.sum(axis=1, keepdims=True)


def seed_stock(seed: int) -> None:
  """Stock's selectors draw from numpy, its episode sampler from `random`."""
  np.random.seed(seed)
  random.seed(seed)


def stock_solver(game, oracle, **kwargs):
  """Stock psro_v2's `PSROSolver` with our Nash meta-solver (needs cvxpy)."""
  from open_spiel.python.algorithms.psro_v2 import psro_v2  # pylint: disable=g-import-not-at-top

  settings = dict(
    sims_per_entry=200,
    meta_strategy_method="ext_nash",
    training_strategy_selector="probabilistic",
    sample_from_marginals=True,
  )
  settings.update(kwargs)
  return psro_v2.PSROSolver(game, oracle, **settings)


def oracle_request(game, player, opponents, seed=0, previous=None):
  """A two-player request against `opponents` (matrices) mixed uniformly."""
  tree = game_tree.get_tree(game)
  pops, weights = [None] * tree.num_players, [None] * tree.num_players
  q = 1 - player
  pops[q] = np.stack(opponents)
  weights[q] = np.full(len(opponents), 1.0 / len(opponents))
  return base.BestResponseRequest(
    tree=tree,
    player=player,
    opponents=base.MemberMixture(pops, weights),
    previous=previous,
    seed=seed,
  )


def best_response_gain(request, matrix):
  """Fraction of the exact best response's gain over uniform play achieved."""
  tree, p = request.tree, request.player
  weights = request.opponent_terminal_reach() * tree.terminal_returns[:, p]
  best, _ = exploitability.best_response_from_weights(tree, p, weights)
  uniform = rollouts.policy_value(request, tree.uniform_policy()[p])
  return (rollouts.policy_value(request, matrix) - uniform) / (best - uniform)


def check_member(request, member):
  """Asserts that an RL member is a well-formed policy with training curves."""
  table = request.tree.infostates[request.player]
  assert member.matrix.shape == table.legal_mask.shape
  np.testing.assert_allclose(member.matrix.sum(axis=1), 1.0, atol=1e-9)
  assert np.all(member.matrix[~table.legal_mask] == 0)
  curves = member.stats["curves"]
  assert len(curves["return"]) == len(curves["loss"]) == len(curves["episodes"]) > 0


def make_run(config, options=None, **kwargs):
  """A `psro.PSRO` of `config`'s variant with `options` (None: its defaults),
  restored when `kwargs` ask to resume."""
  from openspiel_psro_ext import psro  # pylint: disable=g-import-not-at-top
  from openspiel_psro_ext.psro import variants  # pylint: disable=g-import-not-at-top

  return psro.PSRO(config, variant=variants.make(config.algorithm, options), **kwargs).restore()
