"""Simulated games and payoff tables, checked against exact values over the tree."""

import pickle

import numpy as np
import pyspiel
import pytest

from openspiel_psro_ext.game import game_tree, payoffs
from openspiel_psro_ext.simulated import simulation
from tests.helpers import random_matrix


def _members(tree, rng, count, deterministic=False):
  """Per player, `count` random matrices and their batched policies."""
  matrices = [
    [random_matrix(tree, p, rng, deterministic) for _ in range(count)]
    for p in range(tree.num_players)
  ]
  policies = [
    [simulation.BatchedMatrixPolicy(tree, p, m) for m in mats] for p, mats in enumerate(matrices)
  ]
  return matrices, policies


@pytest.mark.parametrize("game", ["kuhn_poker", "leduc_poker", "kuhn_poker(players=3)"])
def test_play_estimates_the_exact_mixture_value(game, rng):
  """Members drawn per game by weight, chance by its probabilities."""
  tree = game_tree.get_tree(game)
  matrices, policies = _members(tree, rng, 2)
  weights = [rng.dirichlet(np.ones(2)) for _ in range(tree.num_players)]
  seats = [simulation.Population(p, w) for p, w in zip(policies, weights)]
  returns = simulation.play(tree.game, seats, 20_000, np.random.default_rng(0), batch_size=5_000)
  exact_table = payoffs.payoff_tensors(tree, matrices)
  exact = [_mixture_value(t, weights) for t in exact_table]
  stderr = returns.std(axis=0) / np.sqrt(len(returns))
  np.testing.assert_array_less(np.abs(returns.mean(axis=0) - exact), 4 * stderr + 1e-9)
  # Zero-sum: every game's returns sum to zero.
  np.testing.assert_allclose(returns.sum(axis=1), 0.0, atol=1e-9)


def _mixture_value(table, weights):
  for w in weights:
    table = np.tensordot(w, table, axes=(0, 0))
  return float(table)


def test_play_with_fixed_members_and_uniform_policies(rng):
  tree = game_tree.get_tree("kuhn_poker")
  _, policies = _members(tree, rng, 2)
  uniform = simulation.UniformRandomPolicy()
  seats = [simulation.Population(policies[0] + [uniform], np.ones(3)), uniform]
  members = np.array([[2] * 4000, [0] * 4000])
  returns = simulation.play(tree.game, seats, 4000, np.random.default_rng(1), members)
  # Member 2 of seat 0 is uniform: uniform against uniform, exactly.
  exact = payoffs.payoff_tensors(tree, [[tree.uniform_policy()[0]], [tree.uniform_policy()[1]]])[0][
    0, 0
  ]
  assert returns[:, 0].mean() == pytest.approx(exact, abs=4 * 1.5 / np.sqrt(4000))


def test_simulated_table_matches_the_exact_table_and_computes_only_new_entries(rng):
  tree = game_tree.get_tree("kuhn_poker")
  matrices, policies = _members(tree, rng, 3)
  config = simulation.SamplingConfig(
    target_stderr=0.03, min_games=64, max_games=20_000, batch_games=64
  )
  table = simulation.SimulatedPayoffTable(tree.game, config)
  exact = payoffs.PayoffTable(tree)
  table.add([policies[0][:2], policies[1][:1]], seed=0)
  exact.add([np.stack(matrices[0][:2]), np.stack(matrices[1][:1])])
  before_games, before_means = table.games, table.meta_games
  played = table.games_played
  table.add([None, policies[1][1:]], seed=1)
  exact.add([None, np.stack(matrices[1][1:])])
  assert table.shape == exact.shape == (2, 3)
  # The old block is untouched; the new entries' games are all that was played.
  np.testing.assert_array_equal(table.games[:, :1], before_games)
  for new, old in zip(table.meta_games, before_means):
    np.testing.assert_array_equal(new[:, :1], old)
  assert table.games_played - played == table.games[:, 1:].sum()
  # Every entry met its target (or its cap), and is within 4 standard errors.
  stderr = np.stack(table.stderr)
  assert np.all((stderr.max(axis=0) <= config.target_stderr) | (table.games >= config.max_games))
  assert np.all(table.games >= config.min_games)
  assert np.all(table.games % config.batch_games == 0)
  error = np.abs(np.stack(table.meta_games) - np.stack(exact.meta_games))
  np.testing.assert_array_less(error, 4 * stderr + 1e-9)
  # Resume: a table restored from what was saved, then grown, plays only the
  # new entries and keeps the saved ones.
  resumed = simulation.SimulatedPayoffTable(tree.game, config)
  resumed.restore(table.members, table.meta_games, table.stderr, table.games)
  np.testing.assert_allclose(np.stack(resumed.stderr), stderr, rtol=1e-12)
  resumed.add([policies[0][2:], None], seed=2)
  np.testing.assert_array_equal(resumed.games[:2], table.games)
  np.testing.assert_array_equal(np.stack(resumed.meta_games)[:, :2], table.meta_games)
  assert resumed.games_played == resumed.games[2].sum()


def _always(tree, player, action):
  matrix = np.zeros_like(tree.uniform_policy()[player])
  matrix[:, action] = 1.0
  return simulation.BatchedMatrixPolicy(tree, player, matrix)


def test_games_per_entry_adapt_to_the_variance():
  """Kuhn poker, player 0 always passes. Against a player 1 who always passes
  the game is a showdown for 1 chip (returns +-1, sd 1): it needs about
  (sd / target)^2 = 400 games. Against one who always bets, player 0 folds
  every game (always -1): the entry stops at `min_games`."""
  tree = game_tree.get_tree("kuhn_poker")
  config = simulation.SamplingConfig(
    target_stderr=0.05, min_games=32, max_games=8192, batch_games=32
  )
  table = simulation.SimulatedPayoffTable(tree.game, config)
  table.add([[_always(tree, 0, 0)], [_always(tree, 1, 0), _always(tree, 1, 1)]], seed=3)
  showdown, fold = table.games[0]
  assert 400 <= showdown <= 400 + 2 * config.batch_games
  assert table.stderr[0][0, 0] <= config.target_stderr
  assert fold == config.min_games
  assert table.meta_games[0][0, 1] == -1.0 and table.stderr[0][0, 1] == 0.0


def test_bad_games_and_configs_are_refused():
  with pytest.raises(ValueError, match="turn-based form"):
    simulation.SimulatedPayoffTable(pyspiel.load_game("matrix_rps"))
  with pytest.raises(ValueError, match="min_games"):
    simulation.SamplingConfig(min_games=10, max_games=5)
  with pytest.raises(ValueError, match="one weight per member"):
    simulation.Population([simulation.UniformRandomPolicy()], np.ones(2))


@pytest.mark.parametrize(
  "name, kind, shape, recall",
  [
    ("kuhn_poker", simulation.INFORMATION_STATE, (11,), True),
    ("chess", simulation.OBSERVATION, (20, 8, 8), True),  # the state; a board keeps [C, H, W]
    ("go_fish", simulation.OBSERVATION, (141,), False),  # may forget the past
    # No tensor: the encoded string (lossy, so never perfect recall).
    ("tarok", simulation.INFORMATION_STATE_STRING, (simulation.STRING_FEATURES,), False),
    ("coin_game", simulation.OBSERVATION_STRING, (simulation.STRING_FEATURES,), False),
  ],
)
def test_policies_observe_the_information_state_else_the_observation(name, kind, shape, recall):
  observation = simulation.observation_of(pyspiel.load_game(name))
  assert (observation.kind, observation.shape, observation.perfect_recall) == (kind, shape, recall)


def test_sampled_chance_and_turn_based_games_play(rng):
  negotiation = pyspiel.load_game("negotiation")  # sampled chance, observation tensor only
  uniform = simulation.UniformRandomPolicy()
  assert simulation.play(negotiation, [uniform, uniform], 8, rng).shape == (8, 2)
  # A Python game's turn-based wrapper gives its tensors through its states only.
  ipd = game_tree.turn_based(
    pyspiel.load_game("python_iterated_prisoners_dilemma(max_game_length=3)")
  )
  assert not simulation.observation_of(ipd).fast
  batch = simulation.GameBatch(ipd, [None, simulation.Population.of(uniform)], 4, rng)
  batch.restart(np.arange(4))
  batch.advance(np.arange(4))
  obs, legal = batch.observe(range(4), 0)
  assert obs is not None and obs.shape == (4, 4) and legal.any(axis=1).all()


def test_policies_and_tables_pickle(rng):
  tree = game_tree.get_tree("kuhn_poker")
  _, policies = _members(tree, rng, 1)
  table = simulation.SimulatedPayoffTable(
    tree.game, simulation.SamplingConfig(min_games=32, max_games=32)
  )
  table.add(policies, seed=0)
  copy = pickle.loads(pickle.dumps(table))
  np.testing.assert_array_equal(copy.meta_games, table.meta_games)
  obs = np.asarray(tree.infostates[0].tensors[:3], dtype=np.float32)
  legal = tree.infostates[0].legal_mask[:3]
  np.testing.assert_array_equal(
    copy.members[0][0].probabilities(obs, legal), policies[0][0].probabilities(obs, legal)
  )


def test_utility_range_and_its_refusal():
  """Settings given as a fraction of the utility range (payoff standard
  errors, a Boltzmann result's temperature) read it here; a game without a
  finite range is refused with the caller's fix."""
  assert simulation.utility_range(pyspiel.load_game("kuhn_poker"), "unused") == 4.0

  class Unbounded:
    def max_utility(self):
      return float("inf")

    def min_utility(self):
      return 0.0

  with pytest.raises(ValueError, match="no finite utility range; set it by hand"):
    simulation.utility_range(Unbounded(), "set it by hand")


def test_a_string_game_plays_and_its_encoding_is_one_function(rng):
  # tarok gives strings only: the batch's rows and a single state's
  # observation (what `TorchPolicy` as an OpenSpiel policy reads) are the same
  # encoding, and it depends on the string alone.
  tarok = pyspiel.load_game("tarok")
  uniform = simulation.UniformRandomPolicy()
  assert simulation.play(tarok, [uniform] * 3, 4, rng).shape == (4, 3)
  batch = simulation.GameBatch(tarok, [None] + [simulation.Population.of(uniform)] * 2, 2, rng)
  batch.restart(np.arange(2))
  batch.advance(np.arange(2))
  obs, _ = batch.observe(range(2), 0)
  kind = simulation.INFORMATION_STATE_STRING
  for b in range(2):
    state = batch.states[b]
    np.testing.assert_array_equal(obs[b], simulation.state_observation(state, 0, kind))
    text = state.information_state_string(0)
    np.testing.assert_array_equal(obs[b], simulation.encode_string(text))
  features = simulation.encode_string("abcabc")
  assert features.shape == (simulation.STRING_FEATURES,) and features.sum() > 0
  np.testing.assert_array_equal(features, simulation.encode_string("abcabc"))


@pytest.mark.parametrize("num_actions", [1, 3, 17, 40])
def test_sampling_by_columns_bisection_and_sum_draw_alike(num_actions, rng):
  """`sample_rows`' column loop (few actions) and sum (many), and
  `sample_index`'s bisection, are the same draws from the same uniforms;
  zero-probability entries are never drawn."""
  probs = rng.random((5000, num_actions)) * (rng.random((5000, num_actions)) < 0.6)
  probs[:, 0] += probs.sum(axis=1) == 0  # every row has some mass
  cum = simulation.cumulative_rows(probs)
  u = 1.0 - np.random.default_rng(7).random(len(cum))
  expected = (cum < u[:, None]).sum(axis=1)
  np.testing.assert_array_equal(simulation.sample_rows(cum, np.random.default_rng(7)), expected)
  assert np.all(probs[np.arange(len(probs)), expected] > 0)
  row = cum[0]
  np.testing.assert_array_equal(
    simulation.sample_index(row, 5000, np.random.default_rng(7)), (row < u[:, None]).sum(axis=1)
  )
