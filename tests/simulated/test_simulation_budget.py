"""Simulated payoff tables spend games where the meta-strategy needs them;
OpenSpiel policies acting on states play simulated games."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import expected_game_score

from openspiel_psro_ext.simulated import simulation


def _uniform_table(target, weights_after_first=None):
  """Kuhn poker, uniform members: the showdown returns have sd ~1.3."""
  game = pyspiel.load_game("kuhn_poker")
  config = simulation.SamplingConfig(
    target_stderr=target, min_games=32, max_games=100_000, batch_games=32, task_games=500
  )
  table = simulation.SimulatedPayoffTable(game, config)
  uniform = simulation.UniformRandomPolicy
  table.add([[uniform()], [uniform()]], seed=0)
  table.add([[uniform()], [uniform(), uniform()]], seed=1, weights=weights_after_first)
  return table


def test_default_target_is_relative_to_the_utility_range():
  config = simulation.SamplingConfig()
  assert config.target(pyspiel.load_game("leduc_poker")) == pytest.approx(0.004 * 26)
  assert config.target(pyspiel.load_game("kuhn_poker")) == pytest.approx(0.004 * 4)
  assert (
    simulation.SamplingConfig(target_stderr=0.3).target(pyspiel.load_game("leduc_poker")) == 0.3
  )


def test_games_follow_the_meta_strategy_weights():
  """`w(k) stderr_k^2 <= target^2` with `w` the largest of the entry's
  players' weights: new members weigh 1 / (support + 1) = 1/2 here."""
  target = 0.1
  table = _uniform_table(target, weights_after_first=[np.ones(1), np.ones(1)])
  games, stderr = table.games, np.max(table.stderr, axis=0)
  # The first entry has weight 1 (both old members carry all the mass).
  assert stderr[0, 0] <= target
  # Entries with a new member weigh max(1 (the old member), 1/2) = 1 too,
  # except (new, new): 1/2, so it needs about half the games.
  for entry in [(0, 1), (0, 2), (1, 0)]:
    assert stderr[entry] <= target
  assert 0.5 * stderr[1, 1] ** 2 <= target**2 + 1e-12
  assert games[1, 1] < 0.75 * games[1, 0]
  # Without weights every entry goes to the full target.
  full = _uniform_table(target)
  assert np.all(np.max(full.stderr, axis=0) <= target)


def test_entries_without_weight_get_the_minimum_and_are_topped_up_later():
  game = pyspiel.load_game("kuhn_poker")
  config = simulation.SamplingConfig(
    target_stderr=0.1, min_games=32, max_games=100_000, batch_games=32
  )
  table = simulation.SimulatedPayoffTable(game, config)
  uniform = simulation.UniformRandomPolicy
  table.add([[uniform(), uniform()], [uniform(), uniform()]], seed=0)
  # Member 1 of both players has weight 0: entry (1, 1) is nobody's concern.
  table.add([[uniform()], None], seed=1, weights=[np.array([1.0, 0.0]), np.array([1.0, 0.0])])
  assert table.games[1, 1] > config.min_games  # played to the target before
  # A fresh table whose first add already carried the weights.
  fresh = simulation.SimulatedPayoffTable(game, config)
  fresh.add([[uniform()], [uniform()]], seed=0)
  fresh.add([[uniform()], [uniform()]], seed=1, weights=[np.ones(1), np.zeros(1) + 1])
  fresh.add([[uniform()], None], seed=2, weights=[np.array([1.0, 0.0]), np.array([1.0, 0.0])])
  # Entry (2, 1): player 1's member 1 has weight 0 and the new member 2
  # weighs 1/2: played to stderr^2 <= target^2 / (1/2).
  assert 0.5 * np.max(fresh.stderr, axis=0)[2, 1] ** 2 <= 0.1**2 + 1e-12
  # Its weight rises to 1: the next add tops it up to the full target.
  fresh.add([None, [uniform()]], seed=3, weights=[np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0])])
  assert np.max(fresh.stderr, axis=0)[2, 1] <= 0.1


def test_wrong_weights_are_refused():
  table = _uniform_table(0.5)
  with pytest.raises(ValueError, match="weights of player 1 have 1 entries"):
    table.add([[simulation.UniformRandomPolicy()], None], seed=2, weights=[np.ones(2), np.ones(1)])


def test_tasks_split_deterministically():
  tasks = simulation.split_tasks(10, (7, 1), 4, np.arange(20).reshape(2, 10))
  assert [t.num_games for t in tasks] == [4, 4, 2]
  assert [t.seed for t in tasks] == [(7, 1, 0), (7, 1, 1), (7, 1, 2)]
  np.testing.assert_array_equal(tasks[2].members, [[8, 9], [18, 19]])


def test_state_policies_play_like_openspiel_values():
  """A random tabular OpenSpiel policy, handed states: its simulated value
  matches OpenSpiel's exact `policy_value`; a uniform one plays exactly the
  games of our uniform batched policy (same probabilities, same stream)."""
  game = pyspiel.load_game("kuhn_poker")
  rng = np.random.default_rng(0)
  tabular = policy_lib.TabularPolicy(game)
  tabular.action_probability_array[:] = rng.dirichlet(
    np.ones(game.num_distinct_actions()), len(tabular.action_probability_array)
  )
  seats = [simulation.StatePolicy(tabular, 0), simulation.UniformRandomPolicy()]
  returns = simulation.play(game, seats, 20_000, np.random.default_rng(1))
  exact = expected_game_score.policy_value(
    game.new_initial_state(), [tabular, policy_lib.UniformRandomPolicy(game)]
  )
  stderr = returns.std(axis=0) / np.sqrt(len(returns))
  np.testing.assert_array_less(np.abs(returns.mean(axis=0) - exact), 4 * stderr)
  ours = simulation.play(
    game, [simulation.UniformRandomPolicy()] * 2, 500, np.random.default_rng(2)
  )
  theirs = simulation.play(
    game,
    [simulation.StatePolicy(policy_lib.UniformRandomPolicy(game), p) for p in range(2)],
    500,
    np.random.default_rng(2),
  )
  np.testing.assert_array_equal(ours, theirs)


def test_minimum_games_follow_each_entrys_importance():
  """Three players, two members each: an entry of importance `w` first plays
  `max(floor_games, w * min_games)`, so each member's value against the
  others' mixture keeps the variance bound of `min_games` full-weight games."""
  game = pyspiel.load_game("kuhn_poker(players=3)")
  config = simulation.SamplingConfig(
    target_stderr=10.0, min_games=64, floor_games=8, batch_games=8, task_games=500
  )
  table = simulation.SimulatedPayoffTable(game, config)
  uniform = simulation.UniformRandomPolicy
  table.add([[uniform()]] * 3, seed=0)
  assert table.games[0, 0, 0] == 64  # no weights: every entry has full importance
  weights = [np.ones(1)] * 3
  table.add([[uniform()]] * 3, seed=1, weights=weights)
  # A new member weighs 1/2: an entry's importance is the largest product of
  # two players' weights, 1 (two old members), 1/2 (one new) or 1/4.
  games = table.games
  for profile in np.ndindex(2, 2, 2):
    new = sum(profile)
    expected = {0: 64, 1: 64, 2: 32, 3: 16}[new]
    assert games[profile] == expected, (profile, games[profile])
  # Weight 0 for the old members: entries of old members only fall to the floor.
  table.add([[uniform()]] * 3, seed=2, weights=[np.array([0.0, 1.0])] * 3)
  games = table.games
  assert games[2, 0, 0] == 8  # importance max(0 * 0, 1/2 * 0, ...) = 0
  assert games[2, 2, 2] == 16  # importance 1/2 * 1/2
  assert games[1, 1, 2] == 64 and games[2, 1, 1] == 64  # members 1 carry all the weight
