"""MPO, CrossQ and the LSTM network: best responses, exact matrices, PSRO, resume."""

import io
import subprocess
import sys

import numpy as np
import pyspiel
import pytest
import torch

from openspiel_psro_ext import oracles, psro
from openspiel_psro_ext.game import exploitability, game_tree
from openspiel_psro_ext.oracles.rl import networks, torch_policy
from openspiel_psro_ext.psro.variants import base as variant_base
from openspiel_psro_ext.runs import checkpoints
from tests.helpers import best_response_gain as gain
from tests.helpers import check_member as _check_member
from tests.helpers import oracle_request as _request
from tests.helpers import random_matrix

# Episode budgets (not wall time) keep the tests deterministic on a busy machine.
SMALL = dict(
  time_budget_s=0, num_envs=64, learning_starts=512, batch_size=128, num_threads=1, progress=False
)
RECURRENT = dict(obs_type=torch_policy.OBS_SEQUENCE, hidden=(32, 32))


def test_new_oracles_and_lstm_are_registered():
  assert {"mpo", "crossq"} <= set(oracles.names())
  assert oracles.get("mpo").name == "mpo" and oracles.get("crossq").name == "crossq"
  assert "lstm" in networks.KINDS
  with pytest.raises(ValueError, match="observation_sequence"):
    networks.Network((10,), 3, kind="lstm")


# Short budgets: CrossQ's actor steps every critic step (its default, every
# third, left the actor 470 steps here, too few to become deterministic).
SHORT_BUDGET = {"mpo": {}, "crossq": dict(policy_delay=1)}


@pytest.mark.parametrize("name", sorted(SHORT_BUDGET))
@pytest.mark.slow
def test_kuhn_best_response_vs_mixture(name, rng):
  tree = game_tree.get_tree("kuhn_poker")
  opponents = [random_matrix(tree, 0, rng, deterministic=True) for _ in range(3)]
  request = _request("kuhn_poker", 1, opponents, seed=1)
  cls = oracles.get(name)
  member = cls(
    cls.Config(
      time_budget_s=0,
      total_episodes=60_000,
      gradient_steps=4,
      batch_size=256,
      progress=False,
      **SHORT_BUDGET[name],
    )
  ).best_response(request)
  _check_member(request, member)
  assert gain(request, member.matrix) >= 0.95


@pytest.mark.parametrize("name", ["sac", "crossq"])
def test_soft_actor_result_is_greedy_in_the_smaller_critic_and_reloads(name, rng):
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [random_matrix(tree, 0, rng)], seed=3)
  cls = oracles.get(name)
  member = cls(cls.Config(**SMALL, total_episodes=3_000)).best_response(request)
  module = member.module
  assert module.arch["output"] == "greedy" and module.arch["q_networks"] == 2
  assert module.arch.get("batch_renorm", False) == (name == "crossq")
  assert not module.training  # batch renormalisation reads its running statistics
  obs = torch.as_tensor(tree.infostates[1].tensors)
  legal = tree.infostates[1].legal_mask
  with torch.no_grad():
    q = torch.min(module.net(obs), module.twin(obs)).numpy()
  np.testing.assert_array_equal(member.matrix, np.eye(2)[np.where(legal, q, -np.inf).argmax(1)])
  buffer = io.BytesIO()
  torch.save(module.state_dict(), buffer)
  buffer.seek(0)
  restored = torch_policy.TorchPolicy.from_state_dict(torch.load(buffer, weights_only=True))
  np.testing.assert_array_equal(restored.matrix(tree), member.matrix)
  # Off: the actor, as before.
  actor = (
    cls(cls.Config(**SMALL, total_episodes=3_000, critic_greedy_result=False))
    .best_response(request)
    .module
  )
  assert actor.arch["output"] == "softmax" and "q_networks" not in actor.arch


def _critic_states(module):
  """The critics' parameters and statistics inside a member's module."""
  nets = list(module.critics) if module.arch.get("critics") else [module.net, module.twin]
  return [{k: v.clone() for k, v in net.state_dict().items()} for net in nets if net is not None]


@pytest.mark.parametrize(
  "name,greedy", [("sac", True), ("crossq", True), ("mpo", True), ("crossq", False)]
)
def test_warm_started_critics_continue_from_the_previous_best_response(name, greedy, rng):
  """`warm_start_critics`: the critics start as the previous result's (its
  critic-greedy policy, or the actor carrying them); with no update in between
  the new result holds exactly the previous critics, and without the warm
  start it does not."""
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [random_matrix(tree, 0, rng)], seed=3)
  cls = oracles.get(name)
  first = cls(cls.Config(**SMALL, total_episodes=2_000, critic_greedy_result=greedy)).best_response(
    request
  )
  if not greedy:  # the actor carries the critics
    assert first.module.arch["output"] == "softmax" and first.module.arch["critics"] == 2
  frozen = dict(SMALL, total_steps=128, critic_greedy_result=greedy, warm_learning_starts=10**6)
  request.previous, request.seed = first, 4
  warm = cls(cls.Config(**frozen, warm_start_critics=True)).best_response(request)
  for before, after in zip(_critic_states(first.module), _critic_states(warm.module)):
    assert before.keys() == after.keys()
    for key in before:
      torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)
  cold = cls(cls.Config(**dict(frozen, learning_starts=10**6))).best_response(request)
  cold_critic, first_critic = _critic_states(cold.module)[0], _critic_states(first.module)[0]
  assert any(not torch.equal(cold_critic[k], first_critic[k]) for k in first_critic)


@pytest.mark.parametrize("name,greedy", [("crossq", True), ("mpo", True), ("sac", False)])
def test_warm_started_actor_continues_from_the_previous_best_response(name, greedy, rng):
  """`warm_start_actor`: a critics' result carries the actor
  (`TorchPolicy(actor=True)`, reloadable with `weights_only=True`), and the
  next best response starts its actor from it; with no update in between its
  actor is exactly the previous one, and without the warm start it is not."""
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [random_matrix(tree, 0, rng)], seed=3)
  cls = oracles.get(name)
  options = dict(critic_greedy_result=greedy, warm_start_actor=True)
  first = cls(cls.Config(**SMALL, total_episodes=2_000, **options)).best_response(request)
  carried = first.module.actor if greedy else first.module.net
  assert first.module.arch.get("actor", False) == greedy
  buffer = io.BytesIO()
  torch.save(first.module.state_dict(), buffer)
  buffer.seek(0)
  restored = torch_policy.TorchPolicy.from_state_dict(torch.load(buffer, weights_only=True))
  np.testing.assert_array_equal(restored.matrix(tree), first.matrix)
  frozen = dict(
    SMALL,
    total_steps=128,
    critic_greedy_result=greedy,
    learning_starts=10**6,
    warm_learning_starts=10**6,
  )
  request.previous, request.seed = first, 4
  warm = cls(cls.Config(**frozen, warm_start_actor=True)).best_response(request)
  warm_actor = warm.module.actor if greedy else warm.module.net
  for key, value in carried.state_dict().items():
    torch.testing.assert_close(warm_actor.state_dict()[key], value, rtol=0, atol=0)
  cold = cls(cls.Config(**frozen)).best_response(request)
  cold_actor = cold.module.actor if greedy else cold.module.net
  if greedy:
    assert cold_actor is None  # nothing to carry without the warm start
  else:
    assert any(
      not torch.equal(cold_actor.state_dict()[k], v) for k, v in carried.state_dict().items()
    )


@pytest.mark.parametrize("name", ["mpo", "crossq"])
def test_boltzmann_result_and_psro_preset(name, rng):
  """`result_temperature`: the result plays softmax(min_i Q_i / T) over the
  legal actions, T a fraction of the game's payoff range; it reloads from a
  `weights_only=True` checkpoint. PSRO's preset turns it on with warm starts."""
  cls = oracles.get(name)
  preset = cls.for_psro().config
  assert preset.critic_greedy_result and preset.warm_start_critics
  assert preset.warm_start_actor == (name == "crossq")
  assert preset.result_temperature > 0
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 0, [random_matrix(tree, 1, rng)], seed=5)
  member = cls(
    cls.Config(**SMALL, total_episodes=2_000, critic_greedy_result=True, result_temperature=0.05)
  ).best_response(request)
  module = member.module
  temperature = 0.05 * (tree.game.max_utility() - tree.game.min_utility())
  assert module.arch["output"] == "boltzmann"
  assert module.arch["temperature"] == pytest.approx(temperature)
  obs = torch.as_tensor(tree.infostates[0].tensors)
  legal = tree.infostates[0].legal_mask
  with torch.no_grad():
    q = module.net(obs) if module.twin is None else torch.min(module.net(obs), module.twin(obs))
  logits = np.where(legal, q.double().numpy() / temperature, -np.inf)
  expected = np.exp(logits - logits.max(1, keepdims=True))
  np.testing.assert_allclose(
    member.matrix, expected / expected.sum(1, keepdims=True), rtol=1e-5, atol=1e-6
  )
  assert not np.array_equal(member.matrix, np.eye(2)[logits.argmax(1)])  # not the argmax
  buffer = io.BytesIO()
  torch.save(module.state_dict(), buffer)
  buffer.seek(0)
  restored = torch_policy.TorchPolicy.from_state_dict(torch.load(buffer, weights_only=True))
  np.testing.assert_array_equal(restored.matrix(tree), member.matrix)


def test_torch_policy_rejects_a_temperature_without_boltzmann_output():
  with pytest.raises(ValueError, match="boltzmann"):
    torch_policy.TorchPolicy("kuhn_poker", 0, (11,), output="boltzmann")
  with pytest.raises(ValueError, match="boltzmann"):
    torch_policy.TorchPolicy("kuhn_poker", 0, (11,), output="greedy", temperature=0.1)


def _step_by_step(module, tree, player):
  """`[I_p, A]` from the policy's own `action_probabilities` at each state."""
  table = tree.infostates[player]
  out = np.zeros(table.legal_mask.shape)
  for i, state in enumerate(table.states):
    for action, p in module.action_probabilities(state, player).items():
      out[i, action] = p
  return out


def test_lstm_matrix_equals_step_by_step_probabilities_on_leduc():
  """One batched pass over the observation sequences gives exactly what the
  policy plays at each of its decisions, rebuilt from the history."""
  tree = game_tree.get_tree("leduc_poker")
  torch.manual_seed(0)
  for player in (0, 1):
    seqs = torch_policy.observation_table(tree, player, torch_policy.OBS_SEQUENCE)
    module = torch_policy.TorchPolicy(
      tree.game, player, seqs.shape[1:], (32, 32), kind="lstm", obs_type=torch_policy.OBS_SEQUENCE
    )
    with torch.no_grad():  # far from uniform, so every row differs
      for param in module.parameters():
        param.mul_(30.0)
    matrix = module.matrix(tree)
    assert np.abs(matrix - tree.uniform_policy()[player]).max() > 0.3
    np.testing.assert_allclose(_step_by_step(module, tree, player), matrix, atol=1e-6)


@pytest.mark.parametrize("name", ["ppo", "dqn", "sac", "mpo", "crossq"])
def test_every_oracle_trains_an_lstm(name):
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 0, [tree.uniform_policy()[1]])
  cls = oracles.get(name)
  settings = dict(SMALL, total_episodes=3_000, network="lstm", **RECURRENT)
  if name == "ppo":
    settings = dict(
      total_episodes=3_000,
      num_envs=64,
      network="lstm",
      time_budget_s=0,
      progress=False,
      **RECURRENT,
    )
  member = cls(cls.Config(**settings)).best_response(request)
  _check_member(request, member)
  assert member.module.arch["kind"] == "lstm"
  np.testing.assert_allclose(_step_by_step(member.module, tree, 0), member.matrix, atol=1e-6)


def test_ppo_with_lstm_learns_a_best_response():
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [tree.uniform_policy()[0]])
  cfg = oracles.get("ppo").Config(
    time_budget_s=0,
    total_episodes=100_000,
    num_envs=1024,
    hidden=(64, 64),
    network="lstm",
    obs_type=torch_policy.OBS_SEQUENCE,
    num_threads=1,
    progress=False,
  )
  member = oracles.get("ppo")(cfg).best_response(request)
  assert gain(request, member.matrix) >= 0.9
  buffer = io.BytesIO()
  torch.save(member.module.state_dict(), buffer)
  buffer.seek(0)
  restored = torch_policy.member_from_state_dict(tree, 1, torch.load(buffer, weights_only=True))
  np.testing.assert_array_equal(restored.matrix, member.matrix)


@pytest.mark.parametrize("name", ["crossq", "mpo"])
@pytest.mark.slow
def test_psro_on_kuhn_reaches_low_nash_conv(name):
  # ~300 updates of 128 transitions per best response: enough for Kuhn's
  # handful of information states, short enough for the suite's budget.
  config = psro.PSROConfig(
    game="kuhn_poker",
    iterations=8,
    oracle=name,
    time_budget_s=0,
    oracle_config=dict(
      time_budget_s=0,
      total_episodes=8_000,
      num_envs=128,
      learning_starts=500,
      batch_size=128,
      gradient_steps=4,
      num_threads=1,
      progress=False,
      **SHORT_BUDGET[name],
    ),
  )
  run = psro.PSRO(config)
  run.run()
  final = exploitability.mixture_nash_conv(
    run.tree, run.population_matrices(), variant_base.restricted_nash(run)
  )
  assert min(final.nash_conv, run.records[-1].nash_conv) <= 0.05


@pytest.mark.parametrize("name,network", [("mpo", "mlp"), ("crossq", "mlp"), ("ppo", "lstm")])
def test_resume_matches_uninterrupted_run(tmp_path, name, network):
  """Members reload from `weights_only=True` checkpoints; the resumed run's
  NashConv trace is the uninterrupted run's, number for number."""
  settings = dict(SMALL, total_episodes=2_000, network=network)
  if name == "ppo":
    settings = dict(
      time_budget_s=0, total_episodes=4_000, num_threads=1, progress=False, network=network
    )
  if network != "mlp":
    settings.update(RECURRENT)
  config = lambda iterations: psro.PSROConfig(  # pylint: disable=unnecessary-lambda-assignment
    game="kuhn_poker",
    iterations=iterations,
    meta_solver="nash",
    oracle=name,
    target_nash_conv=0.0,
    time_budget_s=0,
    oracle_config=settings,
  )
  full = psro.PSRO(config(3))
  full.run()
  out = str(tmp_path / name)
  psro.PSRO(config(2), output_dir=out).run()
  resumed = psro.PSRO(config(3), output_dir=out, resume=True).restore()
  module = resumed.populations[0][-1].module
  assert isinstance(module, torch_policy.TorchPolicy)
  assert module.arch["kind"] == network
  resumed.run()
  assert [r["nash_conv"] for r in checkpoints.read_metrics(out)] == [
    r.nash_conv for r in full.records
  ]


@pytest.mark.slow
def test_mpo_from_the_command_line(tmp_path):
  out = str(tmp_path / "mpo")
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "openspiel_psro_ext.run",
      "--game=kuhn_poker",
      "--oracle=mpo",
      "--iterations=2",
      "--metrics_every=0",
      "--backend=embedded",
      '--oracle_config={"total_episodes": 2000, "time_budget_s": 0,'
      ' "learning_starts": 512, "num_envs": 64}',
      f"--output_dir={out}",
    ],
    capture_output=True,
    text=True,
    timeout=240,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = checkpoints.read_metrics(out)
  # Anytime PSRO (the default) puts each member's greedy form before it.
  form, member = records[0]["oracle"][0]
  assert form == {"greedy_form_of": 2} and member["algorithm"] == "mpo"


@pytest.mark.parametrize("name", ["mpo", "crossq"])
def test_inside_stock_psro_v2(name):
  pytest.importorskip("cvxpy", reason="stock psro_v2 imports cvxpy")
  from openspiel_psro_ext.compat import openspiel_compat  # pylint: disable=g-import-not-at-top
  from tests import helpers  # pylint: disable=g-import-not-at-top

  game = pyspiel.load_game("kuhn_poker")
  helpers.seed_stock(0)
  oracle = openspiel_compat.StockOracle(game, name, oracle_config=dict(SMALL, total_episodes=2_000))
  solver = helpers.stock_solver(game, oracle, sims_per_entry=20)
  solver.iteration()
  populations = solver.get_policies()
  assert [len(p) for p in populations] == [2, 2]
  tree = game_tree.get_tree(game)
  for player, population in enumerate(populations):
    probs = population[-1].action_probabilities(tree.infostates[player].states[0])
    assert sum(probs.values()) == pytest.approx(1.0)
