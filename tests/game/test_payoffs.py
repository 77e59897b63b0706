"""Exact payoff tables against OpenSpiel's expected-returns walk."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python.algorithms import expected_game_score

from openspiel_psro_ext.game import game_tree, payoffs, policies
from tests.helpers import random_matrix, random_tabular_policy


@pytest.mark.parametrize("name", ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)"])
def test_payoff_tensor_matches_policy_value(name, rng):
  game = pyspiel.load_game(name)
  num_players = game.num_players()
  populations = [
    [random_tabular_policy(game, rng, deterministic=k == 1) for k in range(2)]
    for _ in range(num_players)
  ]
  meta_games = payoffs.payoff_tensors(game, populations)
  assert len(meta_games) == num_players
  assert meta_games[0].shape == (2,) * num_players
  for profile in np.ndindex(*meta_games[0].shape):
    joint = [populations[p][k] for p, k in enumerate(profile)]
    expected = expected_game_score.policy_value(game.new_initial_state(), joint)
    np.testing.assert_allclose([m[profile] for m in meta_games], expected, atol=1e-12)


@pytest.mark.parametrize("name", ["leduc_poker", "kuhn_poker(players=3)"])
def test_incremental_table_matches_full(name, rng):
  tree = game_tree.get_tree(name)
  members = [
    [random_matrix(tree, p, rng, deterministic=k % 2 == 0) for k in range(4)]
    for p in range(tree.num_players)
  ]
  table = payoffs.PayoffTable(tree)
  table.add([np.stack(m[:1]) for m in members])
  table.add([np.stack(m[1:3]) if p == 0 else None for p, m in enumerate(members)])
  table.add([np.stack(m[3:]) if p == 0 else np.stack(m[1:]) for p, m in enumerate(members)])
  expected = payoffs.payoff_tensors(tree, members)
  assert table.shape == (4,) * tree.num_players
  for ours, full in zip(table.meta_games, expected):
    np.testing.assert_allclose(ours, full, atol=1e-12)


def test_zero_sum_tables_cancel(rng):
  tree = game_tree.get_tree("leduc_poker")
  pops = [[random_matrix(tree, p, rng) for _ in range(5)] for p in range(2)]
  m0, m1 = payoffs.payoff_tensors(tree, pops)
  np.testing.assert_allclose(m0 + m1, 0.0, atol=1e-12)
  # Accepts OpenSpiel policies as well as matrices.
  as_policies = [
    [policies.MatrixPolicy(tree, [m, m2]) for m, m2 in zip(pops[0], pops[1])],
    [policies.MatrixPolicy(tree, [m2, m]) for m, m2 in zip(pops[1], pops[0])],
  ]
  np.testing.assert_allclose(payoffs.payoff_tensors(tree, as_policies)[0], m0, atol=1e-12)
