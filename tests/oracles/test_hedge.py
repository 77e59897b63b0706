"""The opponents' multiplicative-weights learner (`oracles.hedge`) and
neural Anytime PSRO built on it."""

import dataclasses

import numpy as np
import pytest

from openspiel_psro_ext import errors, psro
from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import hedge, rollouts
from openspiel_psro_ext.psro import variants as algorithms
from openspiel_psro_ext.records.variants import AnytimeState
from openspiel_psro_ext.runs import checkpoints
from tests.helpers import make_run


def test_hedge_update_is_multiplicative_weights_on_the_window_means():
  learner = hedge.OpponentHedge(np.array([0.5, 0.25, 0.25]), hedge.HedgeOptions(0.1, 4))
  # Window 1: member 0 twice (payoffs 1 and 3), member 1 once (-2), member 2 once (0).
  assert not learner.observe(np.array([0, 0, 1]), np.array([1.0, 3.0, -2.0]))
  assert learner.observe(np.array([2, 1, 1]), np.array([0.0, 9.0, 9.0]))  # 2 spill over
  expected = np.array([0.5, 0.25, 0.25]) * np.exp(0.1 * np.array([2.0, -2.0, 0.0]))
  np.testing.assert_allclose(learner.weights, expected / expected.sum(), rtol=1e-12)
  assert learner.updates == 1
  # The average: the first iterate played 4 episodes, the current one the 2 pending.
  average = (4 * np.array([0.5, 0.25, 0.25]) + 2 * learner.weights) / 6
  np.testing.assert_allclose(learner.average(), average, rtol=1e-12)


def test_a_member_not_drawn_keeps_its_weight_relative_to_the_window_mean():
  learner = hedge.OpponentHedge(np.full(3, 1 / 3), hedge.HedgeOptions(0.5, 2))
  learner.observe(np.array([0, 1]), np.array([2.0, 0.0]))
  # Member 2 gets the drawn members' weighted mean payoff, 1.
  expected = np.exp(0.5 * np.array([2.0, 0.0, 1.0]))
  np.testing.assert_allclose(learner.weights, expected / expected.sum(), rtol=1e-12)


def test_hedge_refuses_bad_settings_and_zero_weights():
  options = algorithms.get("anytime_psro").Options
  with pytest.raises(errors.UsageError, match="option hedge_step must be"):
    algorithms.make("anytime_psro", options(hedge_step=0.0))
  with pytest.raises(errors.UsageError, match="option hedge_window must be"):
    algorithms.make("anytime_psro", options(hedge_window=0))
  with pytest.raises(ValueError, match="weight 0"):
    hedge.OpponentHedge(np.array([1.0, 0.0]), hedge.HedgeOptions())


def test_environment_moves_the_mixture_to_the_member_the_learner_does_worst_against(rng):
  """Leduc, a uniform learner against two opponents (fold where it can, or
  raise where it can; exact payoffs -0.75 and 2.58 against it): the mixture
  moves to the raiser, and a best response's statistics carry the average."""
  tree = game_tree.get_tree("leduc_poker")
  uniform, legal = tree.uniform_policy(), tree.infostates[1].legal_mask
  members = np.zeros((2,) + legal.shape)
  for k, action in enumerate((0, 2)):  # fold / raise where legal, else call
    members[k, legal[:, action], action] = 1.0
    members[k, ~legal[:, action], 1] = 1.0
  payoff = tree.terminal_chance_reach * tree.terminal_reach(0, uniform[0])
  values = tree.terminal_reach(1, members) @ (payoff * tree.terminal_returns[:, 1])
  np.testing.assert_allclose(values, [-0.75, 2.5763888888888884], rtol=1e-12)
  request = base.BestResponseRequest(
    tree=tree,
    player=0,
    opponents=base.LearningMixture(
      [None, members], [None, np.full(2, 0.5)], hedge.HedgeOptions(0.1, 1000)
    ),
  )
  env = rollouts.make_env(request, num_envs=4096, seed=0)
  _, legal = env.reset()
  episodes = 0
  while episodes < 100_000:
    _, legal, _, done = env.step(rollouts.uniform_legal_actions(legal, rng))
    episodes += int(done.sum())
  learner = env.hedges[0]
  assert learner.updates >= 99
  assert learner.weights[1] > 0.999 and learner.average()[1] > 0.9

  pytest.importorskip("torch")
  from openspiel_psro_ext.oracles.rl import ppo  # pylint: disable=g-import-not-at-top

  oracle = ppo.PPOOracle.for_psro(
    dict(time_budget_s=0.0, total_episodes=20_000, num_envs=2048, progress=False, num_threads=1)
  )
  member = oracle.best_response(request)
  learned = member.learned_weights
  assert learned[0] is None and learned[1].shape == (2,)
  assert learned[1].sum() == pytest.approx(1.0) and np.all(learned[1] > 0)


def test_simulated_requests_refuse_the_opponent_learner():
  tree = game_tree.get_tree("kuhn_poker")
  request = base.BestResponseRequest(
    tree=None,
    player=0,
    game=tree.game,
    opponents=base.LearningMixture([None, []], [None, np.ones(1)], hedge.HedgeOptions()),
  )
  with pytest.raises(ValueError, match="compiled tree"):
    rollouts.make_env(request, num_envs=8, seed=0)


def _neural(iterations, **options):
  config = psro.PSROConfig(
    game="kuhn_poker",
    iterations=iterations,
    meta_solver="nash",
    oracle="ppo",
    seed=0,
    algorithm="anytime_psro",
    oracle_config=dict(
      time_budget_s=0.0,
      total_episodes=50_000,
      num_envs=2048,
      hidden=(32,),
      progress=False,
      num_threads=1,
    ),
  )
  return config, algorithms.options(
    "anytime_psro", {"learner": "multiplicative_weights", "hedge_window": 100, **options}
  )


@pytest.mark.slow
def test_neural_anytime_psro_on_kuhn_learns_mixtures_and_never_rises(tmp_path):
  pytest.importorskip("torch")
  config, options = _neural(10)
  out = str(tmp_path / "run")
  run = make_run(config, options, output_dir=out)
  run.run()
  ours = [r.nash_conv for r in run.records]
  assert all(b <= a + 1e-12 for a, b in zip(ours, ours[1:]))  # the exact keep test
  assert ours[-1] < 0.3 * ours[0]
  # Each record's learned averages: per player, over the population it had.
  for r in run.records:
    assert isinstance(r.variant, AnytimeState)
    learned = r.variant.learned_weights
    assert [len(w) for w in learned] == r.population_size
    assert all(abs(sum(w) - 1) < 1e-9 for w in learned)
  # The next output is the learned average (new member at 0) unless kept.
  for before, after in zip(run.records, run.records[1:]):
    for p in range(2):
      if not after.variant.kept_previous[p]:
        np.testing.assert_allclose(after.sigma[p][:-1], before.variant.learned_weights[p])
        assert after.sigma[p][-1] == 0.0
  assert run.verify(tolerance=1e-9) == pytest.approx(ours[-1], abs=1e-9)
  # Resume from iteration 6 equals the uninterrupted run (episode budgets).
  cut = str(tmp_path / "cut")
  make_run(_neural(6)[0], options, output_dir=cut).run()
  resumed = make_run(config, options, output_dir=cut, resume=True)
  resumed.run()
  assert [r["nash_conv"] for r in checkpoints.read_metrics(cut)] == ours


def test_neural_anytime_psro_refuses_an_oracle_that_plays_no_episodes():
  config, options = _neural(2)
  with pytest.raises(errors.UsageError, match="RL oracle"):
    make_run(dataclasses.replace(config, oracle="exact", oracle_config={}), options)
  with pytest.raises(errors.UsageError, match="learner must be one of .*multiplicative_weights"):
    algorithms.options("anytime_psro", {"learner": "hedge"})
