"""Shared fixtures: small OpenSpiel games and seeded random policies."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib

from openspiel_psro_ext import game_tree

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


def random_tabular_policy(game: pyspiel.Game, rng: np.random.Generator,
                          deterministic: bool = False) -> policy_lib.TabularPolicy:
  tabular = policy_lib.TabularPolicy(game)
  noise = rng.random(tabular.action_probability_array.shape)
  noise *= tabular.legal_actions_mask
  if deterministic:
    noise = np.eye(noise.shape[1])[noise.argmax(axis=1)]
  tabular.action_probability_array = noise / noise.sum(axis=1, keepdims=True)
  return tabular


def random_matrix(tree: game_tree.GameTree, player: int,
                  rng: np.random.Generator, deterministic: bool = False) -> np.ndarray:
  mask = tree.infostates[player].legal_mask
  noise = rng.random(mask.shape) * mask
  if deterministic:
    noise = np.eye(mask.shape[1])[noise.argmax(axis=1)]
  return noise / noise.sum(axis=1, keepdims=True)


@pytest.fixture
def rng():
  return np.random.default_rng(1234)
