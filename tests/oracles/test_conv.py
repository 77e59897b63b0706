"""The Conv2D torso: auto choice, exact matrices, every RL oracle, checkpoints, PSRO."""

import io

import numpy as np
import pytest
import torch

from openspiel_psro_ext import load_run, oracles, psro
from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles.rl import networks, torch_policy
from openspiel_psro_ext.runs import checkpoints
from tests.helpers import best_response_gain as gain
from tests.helpers import check_member as _check_member
from tests.helpers import oracle_request as _request

# hex on a 2x2 board: observations [9, 2, 2], a tree small enough for every oracle.
TINY = "hex(board_size=2)"
OBSERVATION = dict(obs_type=torch_policy.OBS_OBSERVATION, conv_channels=8, conv_layers=2)
# Episode budgets (not wall time) keep the tests deterministic on a busy machine.
SMALL = dict(time_budget_s=0, total_episodes=600, num_threads=1, progress=False, hidden=(16,))
REPLAY = dict(num_envs=32, learning_starts=128, batch_size=64)


def test_auto_is_conv_for_boards_and_mlp_for_flat_tensors():
  assert networks.resolve_kind("auto", (3, 6, 7)) == "conv"
  assert networks.resolve_kind("auto", (11,)) == "mlp"
  assert networks.resolve_kind("auto", (4, 11)) == "mlp"  # observation sequences
  assert networks.resolve_kind("gru", (4, 11)) == "gru"
  assert torch_policy.TrainingOptions().network == "auto"
  flat = torch_policy.TorchPolicy("kuhn_poker", 0, (11,), kind="auto")
  # The resolved kind is saved: a flat-tensor game's checkpoints are as before.
  assert flat.arch["kind"] == "mlp" and "conv_channels" not in flat.arch
  board = torch_policy.TorchPolicy("connect_four", 0, (3, 6, 7), kind="auto", conv_channels=4)
  assert board.arch["kind"] == "conv" and board.arch["conv_channels"] == 4
  assert board.net(torch.zeros(5, 3, 6, 7)).shape == (5, 7)
  # Flat rows (a simulator's tensors) are read as the board's planes.
  x = torch.randn(5, 3, 6, 7)
  torch.testing.assert_close(board.net(x.flatten(1)), board.net(x))
  with pytest.raises(ValueError, match="conv network takes"):
    networks.Network((11,), 3, kind="conv")


def test_conv_keeps_the_board_size():
  net = networks.Network((3, 5, 5), 25, hidden=(), kind="conv", conv_channels=6, conv_layers=3)
  assert net.conv(torch.zeros(2, 3, 5, 5)).shape == (2, 6 * 5 * 5)
  assert net.head.in_features == 6 * 5 * 5  # linear heads over every cell's features


def test_matrix_equals_step_by_step_probabilities(rng):
  """One batched pass over the compiled tree's observations gives the
  probabilities `action_probabilities` gives state by state."""
  tree = game_tree.get_tree("tic_tac_toe")
  for player in (0, 1):
    torch.manual_seed(player)
    module = torch_policy.TorchPolicy(
      "tic_tac_toe", player, (3, 3, 3), (32,), obs_type="observation", conv_channels=8
    )
    assert module.arch["kind"] == "conv"
    matrix = module.matrix(tree)
    table = tree.infostates[player]
    for row in rng.choice(table.num_infostates, size=200, replace=False):
      probs = module.action_probabilities(table.states[row], player)
      expected = {int(a): float(matrix[row, a]) for a in np.flatnonzero(table.legal_mask[row])}
      assert probs.keys() == expected.keys()
      np.testing.assert_allclose(list(probs.values()), list(expected.values()), atol=1e-6)


@pytest.mark.parametrize("name", ["ppo", "dqn", "sac", "mpo", "crossq"])
def test_every_oracle_trains_a_conv_network(name):
  """A conv best response from each oracle: a valid exact matrix, and a
  checkpoint that reloads with `weights_only=True` to the same policy."""
  tree = game_tree.get_tree(TINY)
  request = _request(TINY, 0, [tree.infostates[1].uniform_policy()], seed=3)
  cls = oracles.get(name)
  settings = dict(SMALL, **OBSERVATION)
  if name != "ppo":
    settings.update(REPLAY)
  else:
    settings.update(num_envs=64)
  oracle = cls(cls.Config(**settings))
  member = oracle.best_response(request)
  _check_member(request, member)
  module = member.module
  assert isinstance(module, torch_policy.TorchPolicy) and module.arch["kind"] == "conv"
  buffer = io.BytesIO()
  torch.save(module.state_dict(), buffer)
  buffer.seek(0)
  restored = oracle.restore_module(tree, 0, torch.load(buffer, weights_only=True))
  np.testing.assert_array_equal(restored.matrix(tree), member.matrix)


@pytest.mark.slow
def test_conv_ppo_best_response_to_random_tic_tac_toe():
  """Against a fixed uniform-random opponent, a conv PPO best response gains
  at least 95% of what the exact best response gains over uniform play."""
  tree = game_tree.get_tree("tic_tac_toe")
  request = _request("tic_tac_toe", 0, [tree.infostates[1].uniform_policy()], seed=0)
  config = oracles.get("ppo").Config(
    time_budget_s=0,
    total_episodes=200_000,
    num_envs=4096,
    learning_rate=5e-3,
    num_threads=1,
    progress=False,
    obs_type=torch_policy.OBS_OBSERVATION,
  )
  member = oracles.get("ppo")(config).best_response(request)
  assert member.module.arch["kind"] == "conv"
  assert gain(request, member.matrix) >= 0.95


def test_conv_psro_resumes_and_loads(tmp_path):
  """A conv PPO run resumes from its checkpoints with the uninterrupted
  run's NashConv trace, and `load_run` rebuilds its conv members."""
  settings = dict(SMALL, total_episodes=1_000, num_envs=64, **OBSERVATION)

  def config(iterations: int) -> psro.PSROConfig:
    return psro.PSROConfig(
      game=TINY,
      iterations=iterations,
      oracle="ppo",
      target_nash_conv=0.0,
      time_budget_s=0,
      oracle_config=settings,
    )

  full = psro.PSRO(config(3)).restore()
  full.run()
  out = str(tmp_path / "conv")
  psro.PSRO(config(2), output_dir=out).restore().run()
  resumed = psro.PSRO(config(3), output_dir=out, resume=True).restore()
  assert resumed.populations[0][-1].module.arch["kind"] == "conv"
  resumed.run()
  assert [r["nash_conv"] for r in checkpoints.read_metrics(out)] == [
    r.nash_conv for r in full.records
  ]
  loaded = load_run(out)
  # The first policy, then per iteration a member and its greedy form.
  assert len(loaded.population[0]) == 1 + 2 * 2
