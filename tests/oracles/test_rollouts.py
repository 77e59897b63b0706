"""Vectorised rollouts: exact episode distribution, learner-only observations."""

import numpy as np
import pytest

from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import rollouts
from openspiel_psro_ext.simulated import simulation
from tests.helpers import random_matrix


def _uniform_play(env, legal, rng, num_episodes):
  """Mean return of a uniform learner over at least `num_episodes` episodes."""
  total = episodes = 0
  while episodes < num_episodes:
    _, legal, reward, done = env.step(rollouts.uniform_legal_actions(legal, rng))
    total += reward.sum()
    episodes += int(done.sum())
  return total / episodes, legal


def _assert_refuses_a_fold_after_reset(env, rng):
  """Leduc's first decision has no bet to fold against: after a reset every
  game waits there, so every row has an illegal action (fold, 0). One game
  playing it must be refused, whatever the others play."""
  _, legal = env.reset()
  assert not legal[:, 0].any()
  actions = rollouts.uniform_legal_actions(legal, rng)
  actions[7] = 0
  with pytest.raises(ValueError, match="illegal"):
    env.step(actions)


def _request(tree, player, rng, members=3):
  pops, weights = [None] * tree.num_players, [None] * tree.num_players
  for q in range(tree.num_players):
    if q != player:
      pops[q] = np.stack([random_matrix(tree, q, rng) for _ in range(members)])
      weights[q] = rng.dirichlet(np.ones(members))
  return base.BestResponseRequest(
    tree=tree, player=player, opponents=base.MemberMixture(pops, weights)
  )


@pytest.mark.parametrize(
  "game,player", [("kuhn_poker", 1), ("kuhn_poker(players=3)", 2), ("leduc_poker", 0)]
)
def test_terminal_distribution_matches_exact_reach(game, player, rng):
  """Chance, per-episode opponent draws and a uniform learner: exact frequencies."""
  tree = game_tree.get_tree(game)
  request = _request(tree, player, rng)
  env = rollouts.make_env(request, num_envs=8192, seed=3)
  _, legal = env.reset()
  counts = np.zeros(tree.num_histories)
  episodes = 0
  while episodes < 300_000:
    _, legal, _, done = env.step(rollouts.uniform_legal_actions(legal, rng))
    counts += np.bincount(env.terminal_histories[done], minlength=tree.num_histories)
    episodes += int(done.sum())
  empirical = counts[tree.terminals] / episodes
  uniform = tree.uniform_policy()[player]
  exact = request.opponent_terminal_reach() * tree.terminal_reach(player, uniform)
  # Every game lets the learner act, so nothing is redrawn: compare directly.
  assert exact.sum() == pytest.approx(1.0)
  stderr = np.sqrt(exact * (1 - exact) / episodes)
  assert np.all(np.abs(empirical - exact) <= 5 * stderr + 1e-4)
  assert np.all(empirical[exact == 0] == 0)


def test_learner_sees_only_its_own_information_state(rng):
  tree = game_tree.get_tree("leduc_poker")
  player = 1
  env = rollouts.make_env(_request(tree, player, rng), num_envs=512, seed=0)
  obs, legal = env.reset()
  table = tree.infostates[player]
  for _ in range(6):
    hist = env._hist  # pylint: disable=protected-access
    assert np.all(tree.player[hist] == player)
    states = tree.infostate[hist]
    np.testing.assert_array_equal(obs, table.tensors[states])
    np.testing.assert_array_equal(legal, table.legal_mask[states])
    # The observation is the learner's own information-state tensor: the same
    # for every history of an information state, whatever the opponent holds.
    for i in rng.choice(len(hist), 5, replace=False):
      state = table.states[states[i]]
      np.testing.assert_array_equal(obs[i], state.information_state_tensor(player))
    obs, legal, reward, done = env.step(rollouts.uniform_legal_actions(legal, rng))
    assert np.all(reward[~done] == 0)


def test_mean_return_and_illegal_actions(rng):
  tree = game_tree.get_tree("leduc_poker")
  request = _request(tree, 0, rng)
  env = rollouts.make_env(request, num_envs=16384, seed=1)
  _, legal = env.reset()
  mean, legal = _uniform_play(env, legal, rng, 200_000)
  exact = rollouts.policy_value(request, tree.uniform_policy()[0])
  assert mean == pytest.approx(exact, abs=0.04)
  _assert_refuses_a_fold_after_reset(env, rng)


@pytest.mark.parametrize("game", ["kuhn_poker", "leduc_poker"])
def test_pyspiel_env_matches_exact_value_and_refuses_illegal_actions(game, rng):
  """Simulated games, opponents drawn per episode: the exact mean return."""
  tree = game_tree.get_tree(game)
  request = _request(tree, 0, rng, members=2)
  members = [simulation.BatchedMatrixPolicy(tree, 1, m) for m in request.opponents.populations[1]]
  opponents = base.MemberMixture([None, members], request.opponents.weights)
  env = rollouts.PyspielVecEnv(game, 0, opponents, num_envs=256, seed=2)
  obs, legal = env.reset()
  np.testing.assert_array_equal(obs.shape, (256, tree.infostates[0].tensors.shape[1]))
  mean, legal = _uniform_play(env, legal, rng, 20_000)
  exact = rollouts.policy_value(request, tree.uniform_policy()[0])
  returns = np.abs(tree.terminal_returns[:, 0]).max()
  assert mean == pytest.approx(exact, abs=4 * returns / np.sqrt(20_000))
  if game == "leduc_poker":
    _assert_refuses_a_fold_after_reset(env, rng)


def test_budget_and_progress(caplog, monkeypatch):
  with pytest.raises(ValueError):
    rollouts.Budget()
  budget = rollouts.Budget(episodes=100, steps=1000)
  assert budget.fraction(50, 100) == pytest.approx(0.5)
  assert not budget.done(99, 999) and budget.done(100, 0)
  # Off a terminal the bar is a log line, at most one per `log_every_s`.
  monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
  with caplog.at_level("INFO"):
    progress = rollouts.Progress("test", log_every_s=0.0)
    progress.update(0.5, ret=1.0)
    rollouts.Progress("quiet", log_every_s=3600.0).update(0.5, ret=1.0)
    rollouts.Progress("off", enabled=False, log_every_s=0.0).update(0.5, ret=1.0)
    progress.close()
  lines = [r.getMessage() for r in caplog.records]
  assert lines == ["test [" + "#" * 15 + "." * 15 + "]  50% ret=1"]
