"""Deep RL oracles: near-exact best responses, exact evaluation, checkpoints."""

import dataclasses
import io
import pickle

import numpy as np
import pytest
import torch

from openspiel_psro_ext import oracles
from openspiel_psro_ext.game import exploitability, game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import rollouts, torch_policy
from openspiel_psro_ext.psro.variants import base as variant_base
from openspiel_psro_ext.simulated import simulation
from tests.helpers import best_response_gain as gain
from tests.helpers import check_member as _check_member
from tests.helpers import oracle_request as _request
from tests.helpers import random_matrix


def test_registry_is_lazy():
  assert {"ppo", "dqn", "sac"} <= set(oracles.names())
  assert oracles.get("ppo").name == "ppo"


# Episode budgets (not wall time) keep the tests deterministic on a busy machine.
# One torch thread: the suite runs beside other jobs on two cores.
KUHN_CONFIGS = {
  "ppo": dict(total_episodes=100_000, num_envs=256, num_threads=1),
  "dqn": dict(total_episodes=60_000, gradient_steps=4, batch_size=256, num_threads=1),
  # 256 games at once (SAC's default is 1024): an episode budget's updates
  # scale with steps, and 60k Kuhn episodes give 4x the updates this way.
  "sac": dict(total_episodes=60_000, gradient_steps=4, batch_size=256, num_threads=1, num_envs=256),
}


@pytest.mark.parametrize("name", sorted(KUHN_CONFIGS))
@pytest.mark.slow
def test_kuhn_best_response_vs_mixture(name, rng):
  tree = game_tree.get_tree("kuhn_poker")
  for player in (0, 1):
    opponents = [random_matrix(tree, 1 - player, rng, deterministic=True) for _ in range(3)]
    request = _request("kuhn_poker", player, opponents, seed=player)
    cls = oracles.get(name)
    config = cls.Config(time_budget_s=0, progress=False, **KUHN_CONFIGS[name])
    member = cls(config).best_response(request)
    _check_member(request, member)
    assert gain(request, member.matrix) >= 0.95


def _simulated(request, game):
  """The request in simulated form: no tree, opponents as batched policies."""
  tree = request.tree
  pops = [
    None if pop is None else [simulation.BatchedMatrixPolicy(tree, q, m) for m in pop]
    for q, pop in enumerate(request.opponents.populations)
  ]
  opponents = dataclasses.replace(request.opponents, populations=pops)
  return dataclasses.replace(request, tree=None, game=tree.game, opponents=opponents)


@pytest.mark.parametrize("name", ["ppo", "dqn"])
def test_simulated_request_trains_on_pyspiel_games(name, rng):
  """Without a tree the oracle trains on simulated games and returns its module
  (matrix None); evaluated exactly, it is as good a best response."""
  tree = game_tree.get_tree("kuhn_poker")
  opponents = [random_matrix(tree, 1, rng, deterministic=True) for _ in range(3)]
  request = _request("kuhn_poker", 0, opponents, seed=1)
  simulated = _simulated(request, tree.game)
  assert simulated.simulated and not request.simulated
  simulated = pickle.loads(pickle.dumps(simulated))  # a Ray task's argument
  cls = oracles.get(name)
  config = cls.Config(
    time_budget_s=0,
    progress=False,
    **{**KUHN_CONFIGS[name], "simulated_num_envs": 256, "total_episodes": 30_000},
  )
  member = cls(config).best_response(simulated)
  assert member.matrix is None
  assert member.stats["episodes"] >= config.total_episodes
  assert len(member.stats["curves"]["episodes"]) and (
    member.stats["steps"] % 256 == 0
  )  # simulated_num_envs games per step
  assert gain(request, member.module.matrix(tree)) >= 0.95
  pickle.loads(pickle.dumps(member))  # a Ray task's result
  restored = cls(config).restore_module(tree.game, 0, member.module.state_dict())
  np.testing.assert_array_equal(restored.matrix(tree), member.module.matrix(tree))


def test_exact_oracle_refuses_a_simulated_request(rng):
  tree = game_tree.get_tree("kuhn_poker")
  request = _simulated(_request("kuhn_poker", 0, [tree.uniform_policy()[1]]), tree.game)
  with pytest.raises(ValueError, match="simulated mode"):
    oracles.get("exact")().best_response(request)


def test_torch_policy_is_an_openspiel_policy_and_checkpoints(rng):
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 0, [tree.uniform_policy()[1]])
  cfg = oracles.get("ppo").Config(
    total_episodes=20_000, time_budget_s=0, num_envs=256, progress=False
  )
  member = oracles.get("ppo")(cfg).best_response(request)
  module = member.module
  table = tree.infostates[0]
  for i, state in enumerate(table.states):
    probs = module.action_probabilities(state, 0)
    for a, p in probs.items():
      assert p == pytest.approx(member.matrix[i, a], abs=1e-6)
  buffer = io.BytesIO()
  torch.save(module.state_dict(), buffer)
  buffer.seek(0)
  restored = torch_policy.member_from_state_dict(tree, 0, torch.load(buffer, weights_only=True))
  np.testing.assert_allclose(restored.matrix, member.matrix, atol=1e-12)
  # Warm start: one short update from the previous member stays close to it;
  # without warm start the same short run is near uniform.
  cfg.total_episodes = 1
  later = _request("kuhn_poker", 0, [tree.uniform_policy()[1]], previous=member)
  cfg.warm_start = True
  warm = oracles.get("ppo")(cfg).best_response(later)
  cfg.warm_start = False
  cold = oracles.get("ppo")(cfg).best_response(later)
  warm_gap = np.abs(warm.matrix - member.matrix).max()
  assert warm_gap < 0.5 * np.abs(cold.matrix - member.matrix).max()


def test_gru_network_on_observation_sequences(rng):
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [tree.uniform_policy()[0]])
  cfg = oracles.get("ppo").Config(
    time_budget_s=0,
    total_episodes=100_000,
    num_envs=1024,
    hidden=(64, 64),
    network="gru",
    obs_type="observation_sequence",
    progress=False,
  )
  member = oracles.get("ppo")(cfg).best_response(request)
  _check_member(request, member)
  assert gain(request, member.matrix) >= 0.9
  state = tree.infostates[1].states[-1]
  probs = member.module.action_probabilities(state, 1)
  row = member.matrix[len(tree.infostates[1].states) - 1]
  for a, p in probs.items():
    assert p == pytest.approx(row[a], abs=1e-6)


@pytest.mark.slow
def test_psro_with_ppo_on_kuhn_reaches_low_nash_conv():
  from openspiel_psro_ext import psro  # pylint: disable=g-import-not-at-top

  config = psro.PSROConfig(
    game="kuhn_poker",
    iterations=8,
    oracle="ppo",
    oracle_config=dict(
      time_budget_s=0, total_episodes=50_000, num_envs=1024, num_threads=1, progress=False
    ),
  )
  run = psro.PSRO(config)
  run.run()
  final = exploitability.mixture_nash_conv(
    run.tree, run.population_matrices(), variant_base.restricted_nash(run)
  )
  assert min(final.nash_conv, run.records[-1].nash_conv) <= 0.05


def test_oracle_restores_module_for_psro_checkpoints():
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 1, [tree.uniform_policy()[0]])
  oracle = oracles.get("sac")(
    oracles.get("sac").Config(
      time_budget_s=0, total_episodes=2_000, learning_starts=256, progress=False
    )
  )
  member = oracle.best_response(request)
  module = oracle.restore_module(tree, 1, member.module.state_dict())
  np.testing.assert_allclose(module.matrix(tree), member.matrix, atol=1e-12)
  with pytest.raises(ValueError):
    oracle.restore_module(tree, 0, member.module.state_dict())


def test_cuda_device_trains_there_or_falls_back_to_cpu_with_a_warning(caplog):
  """`device="cuda"` trains on the GPU when there is one; without one it warns
  and trains on cpu, giving exactly the cpu result of the same seed."""
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 0, [tree.uniform_policy()[1]])
  cls = oracles.get("dqn")
  config = cls.Config(
    time_budget_s=0, total_episodes=1_000, learning_starts=256, num_threads=1, progress=False
  )
  cpu = cls(config).best_response(request)
  with caplog.at_level("WARNING"):
    cuda = cls(dataclasses.replace(config, device="cuda")).best_response(request)
  _check_member(request, cuda)
  assert cpu.stats["device"] == "cpu"
  if torch.cuda.is_available():
    assert cuda.stats["device"].startswith("cuda")
    assert not any("CUDA is unavailable" in r.getMessage() for r in caplog.records)
  else:
    assert cuda.stats["device"] == "cpu"
    assert any("CUDA is unavailable" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(cuda.matrix, cpu.matrix)
  # Either way the member comes back on cpu, ready to pickle and checkpoint.
  assert next(cuda.module.parameters()).device.type == "cpu"


def test_ppo_greedy_result_is_deterministic_and_restores():
  tree = game_tree.get_tree("kuhn_poker")
  request = _request("kuhn_poker", 0, [tree.uniform_policy()[1]])
  oracle = oracles.get("ppo")(
    oracles.get("ppo").Config(
      time_budget_s=0, total_episodes=2_000, num_envs=256, greedy_result=True, progress=False
    )
  )
  member = oracle.best_response(request)
  _check_member(request, member)
  assert set(np.unique(member.matrix)) <= {0.0, 1.0}
  module = oracle.restore_module(tree, 0, member.module.state_dict())
  np.testing.assert_allclose(module.matrix(tree), member.matrix, atol=1e-12)


def test_ppo_warm_start_critic_keeps_the_critic_not_the_actor():
  tree = game_tree.get_tree("kuhn_poker")
  cfg = oracles.get("ppo").Config(
    total_episodes=20_000,
    time_budget_s=0,
    num_envs=256,
    num_threads=1,
    progress=False,
    hidden=(16,),
  )
  first = oracles.get("ppo")(cfg).best_response(
    _request("kuhn_poker", 0, [tree.uniform_policy()[1]])
  )
  # With learning switched off, the new member holds its starting weights;
  # the actor is the fresh one either way (same seed).
  frozen = oracles.get("ppo").Config(
    **{**vars(cfg), "learning_rate": 0.0, "total_episodes": 1, "warm_start_critic": True}
  )
  later = _request("kuhn_poker", 0, [tree.uniform_policy()[1]], seed=5, previous=first)
  second = oracles.get("ppo")(frozen).best_response(later)
  for name, value in first.module.value.state_dict().items():
    torch.testing.assert_close(second.module.value.state_dict()[name], value)
  fresh = oracles.get("ppo")(dataclasses.replace(frozen, warm_start_critic=False)).best_response(
    later
  )
  torch.testing.assert_close(second.module.net.state_dict(), fresh.module.net.state_dict())
  # ... and without the option the critic starts fresh too.
  assert not torch.equal(
    next(fresh.module.value.parameters()), next(first.module.value.parameters())
  )


def test_psro_applies_the_oracles_psro_defaults_under_user_overrides():
  ppo = oracles.get("ppo")
  oracle = oracles.get("ppo").for_psro({"time_budget_s": 7.0})
  assert oracle.config.time_budget_s == 7.0  # the user's setting wins
  for name, value in ppo.psro_defaults.items():
    if name != "time_budget_s":
      assert getattr(oracle.config, name) == value
  assert ppo.psro_defaults["time_budget_s"] < ppo.Config().time_budget_s
  with pytest.raises(ValueError, match="has no settings"):
    oracles.get("ppo").for_psro({"num_env": 64})


def test_ppo_losses_summed_per_observation_equal_per_sample_losses(rng):
  """PPO's batch summed per distinct observation (compiled tree) gives the same
  losses and gradients as its per-sample batch (simulated games)."""
  from openspiel_psro_ext.oracles.rl import ppo  # pylint: disable=g-import-not-at-top

  tree = game_tree.get_tree("leduc_poker")
  torch.manual_seed(0)
  table = tree.infostates[0]
  module = torch_policy.TorchPolicy(tree.game, 0, table.tensors.shape[1:], (16,), with_value=True)
  env = rollouts.make_env(
    _request("leduc_poker", 0, [tree.uniform_policy()[1]]), num_envs=200, seed=0
  )
  legal = table.legal_mask
  summed_rollout = ppo.TableRollout(
    module,
    env,
    table.tensors,
    3,  # pylint: disable=protected-access
    torch.device("cpu"),
  )
  # Samples concentrated on a few rows, as in rollouts.
  rows = rng.choice(40, size=(3, 200))
  actions = simulation.sample_actions(legal[rows].reshape(-1, legal.shape[1]) * 1.0, rng)
  actions = actions.reshape(rows.shape)
  adv = rng.normal(size=rows.shape).astype(np.float32)
  ret = rng.normal(size=rows.shape).astype(np.float32)
  summed_rollout.rows[:] = rows
  summed = summed_rollout.batch(actions, adv, ret)
  per_sample = ppo._SampleBatch.create(  # pylint: disable=protected-access
    module, table.tensors[rows], legal[rows], actions, adv, ret, torch.device("cpu")
  )
  assert (summed.size, per_sample.size) == (len(np.unique(rows)), rows.size)
  # A simulated rollout whose observations repeat this much is summed too.
  sim_env = rollouts.PyspielVecEnv(
    tree.game,
    0,
    base.MemberMixture([None, [simulation.UniformRandomPolicy()]], [None, np.ones(1)]),
    num_envs=200,
  )
  # pylint: disable=protected-access
  sim_rollout = ppo._SampleRollout(module, sim_env, 3, torch.device("cpu"))
  sim_rollout.obs[:], sim_rollout.legal[:] = table.tensors[rows], legal[rows]
  resummed = sim_rollout.batch(actions, adv, ret)
  assert isinstance(resummed, ppo.StateBatch) and resummed.size == summed.size
  # pylint: enable=protected-access
  with torch.no_grad():  # an update moved the policy: ratios differ from 1, some clip
    for param in module.parameters():
      param.add_(0.3 * torch.randn_like(param))
  clip = 0.2
  ratio = (per_sample.log_probs(torch.arange(rows.size)) - per_sample.old_logp).exp()
  assert ((ratio < 1 - clip) | (ratio > 1 + clip)).any()

  def losses_and_grads(batch):
    module.zero_grad()
    losses = batch.losses(torch.arange(batch.size), clip)
    (losses[0] + losses[1] - 0.1 * losses[2]).backward()
    return losses, [p.grad.clone() for p in module.parameters()]

  want, want_grads = losses_and_grads(per_sample)
  for batch in (summed, resummed):
    got, got_grads = losses_and_grads(batch)
    for g, w in zip(got, want):
      torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
      torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("samples", [10, 5000])
def test_ppo_distinct_rows_are_numpys_unique(samples, rng):
  """By marks (a batch not much smaller than the table) or by sorting."""
  from openspiel_psro_ext.oracles.rl import ppo  # pylint: disable=g-import-not-at-top

  tree = game_tree.get_tree("leduc_poker")
  table = tree.infostates[0]
  module = torch_policy.TorchPolicy(tree.game, 0, table.tensors.shape[1:], (8,), with_value=True)
  observations = ppo._ObservationTable(  # pylint: disable=protected-access
    module, table.tensors, table.legal_mask, torch.device("cpu")
  )
  rows = rng.choice(len(table.tensors), size=samples)
  unique, inverse = observations.distinct(rows)
  expected_unique, expected_inverse = np.unique(rows, return_inverse=True)
  np.testing.assert_array_equal(unique, expected_unique)
  np.testing.assert_array_equal(inverse, expected_inverse)


def test_a_simulated_episode_budget_plays_at_most_that_many_games(rng):
  # Every simulated game runs to its end: 512 games for a 20-episode budget
  # would play 492 for nothing (a 19x19 go game is hundreds of moves).
  tree = game_tree.get_tree("kuhn_poker")
  opponents = [random_matrix(tree, 1, rng, deterministic=True)]
  request = _simulated(_request("kuhn_poker", 0, opponents, seed=1), tree.game)
  cls = oracles.get("ppo")
  config = cls.Config(time_budget_s=0, progress=False, simulated_num_envs=512, total_episodes=20)
  member = cls(config).best_response(request)
  assert member.stats["episodes"] >= 20
  assert member.stats["steps"] % 20 == 0 and member.stats["steps"] % 512 != 0


def test_ppo_update_stops_between_epochs_once_out_of_time():
  from openspiel_psro_ext.oracles.rl import ppo

  weight = torch.nn.Parameter(torch.ones(1))

  class Batch:
    size = 8

    def losses(self, minibatch, clip):
      del clip
      loss = (weight * minibatch.float()).mean()
      return loss, loss, loss, loss

  config = ppo.PPOConfig(update_epochs=5, num_minibatches=2)
  optimizer = torch.optim.Adam([weight])
  device = torch.device("cpu")
  full = ppo.update(Batch(), torch.nn.Linear(1, 1), optimizer, config, 0.0, device)
  assert len(full) == 10  # 5 epochs of 2 minibatches
  # Out of time: the first epoch still runs (an update is never empty).
  cut = ppo.update(Batch(), torch.nn.Linear(1, 1), optimizer, config, 0.0, device, lambda: True)
  assert len(cut) == 2


def test_ppo_keeps_states_apart_that_observe_alike_but_differ_in_legal_actions():
  # repeated_leduc_poker's between-hands state (one legal action) gives the
  # same information-state tensor as a betting state: merged under one legal
  # mask, the taken action was illegal there and the update diverged to NaN.
  from openspiel_psro_ext import psro

  config = psro.PSROConfig(
    game="repeated_leduc_poker",
    evaluation="simulated",
    oracle="ppo",
    iterations=2,
    meta_solver="nash",
    payoff_target_stderr=5.0,
    oracle_config={"time_budget_s": 0, "total_steps": 20_000, "progress": False},
  )
  run = psro.PSRO(config)
  run.run()
  module = run.populations[0][-1].module
  assert all(torch.isfinite(p).all() for p in module.parameters())


def test_a_compiled_game_without_tensors_observes_its_encoded_strings():
  # coordinated_mp compiles (15 histories) but gives no tensor: the learner's
  # observation table encodes each information state's string.
  tree = game_tree.get_tree("coordinated_mp")
  kind = torch_policy.observed(tree.game, tree, 0, torch_policy.OBS_INFO_STATE)
  assert kind == simulation.INFORMATION_STATE_STRING
  table = torch_policy.observation_table(tree, 0, kind)
  states = tree.infostates[0].states
  assert table.shape == (len(states), simulation.STRING_FEATURES)
  for row, state in zip(table, states):
    np.testing.assert_array_equal(row, simulation.encode_string(state.information_state_string(0)))
