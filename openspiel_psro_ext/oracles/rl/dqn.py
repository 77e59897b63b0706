"""DQN best-response oracle (target network, replay, legal-action masking).

Trained by the shared replay loop (`replay.train`). The learner acts
epsilon-greedily (epsilon decays linearly from `start_epsilon` to
`end_epsilon` over `exploration_fraction` of the budget; exploration picks a
uniformly random *legal* action), and each gradient step is an Adam step on
the squared error to the double-DQN target

    y = r + gamma (1 - done) Q_target(s', argmax_{a' legal} Q(s', a')),

the learning rate decaying linearly to a tenth, and the target network copied
from the online one every `target_update_every` gradient steps. The best
response is greedy in Q over legal actions: `TorchPolicy(output="greedy")`,
a deterministic matrix.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, replay, rollouts, torch_policy
from openspiel_psro_ext.records import schema


@dataclasses.dataclass
class DQNConfig(replay.ReplayOptions):
  """DQN hyperparameters (plus the shared `ReplayOptions`)."""

  learning_rate: float = schema.setting(1e-3, min=0)
  target_update_every: int = schema.setting(200, min=1)  # gradient steps
  start_epsilon: float = schema.setting(1.0, min=0, max=1)
  end_epsilon: float = schema.setting(0.02, min=0, max=1)
  exploration_fraction: float = schema.setting(0.5, above=0, max=1)


class DQNOracle(torch_policy.TorchOracle):
  """Best response by deep Q-learning against the meta-strategy mixture."""

  name = "dqn"
  Config = DQNConfig
  # Short best responses inside PSRO, long enough for the replay to make the
  # greedy policy useful.
  psro_defaults = dict(time_budget_s=2.0)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    return replay.train(request, self.config, _DQNLearner, "dqn")


class _DQNLearner(replay.ReplayLearner[DQNConfig]):
  """Epsilon-greedy acting and the double-DQN loss (see the module doc)."""

  output = "greedy"
  update_keys = ("loss", "q_mean")
  schedule_keys = ("epsilon",)

  def __init__(self, config: DQNConfig, run: torch_policy.TrainingSetup):
    super().__init__(config, run)
    self.q_net = run.module.net
    self.target = copy.deepcopy(self.q_net)
    self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=config.learning_rate)
    self.epsilon = config.start_epsilon
    self.grad_steps = 0

  def schedule(self, fraction: float) -> dict[str, float]:
    cfg = self.config
    self.optimizer.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - fraction, 0.1)
    self.epsilon = replay.linear_decay(
      cfg.start_epsilon, cfg.end_epsilon, fraction, cfg.exploration_fraction
    )
    return dict(epsilon=self.epsilon)

  def act(self, obs: torch.Tensor, legal: torch.Tensor) -> np.ndarray:
    greedy = networks.masked_logits(self.q_net(obs), legal).argmax(1).cpu().numpy()
    rng = self.run.rng
    explore = rng.random(len(greedy)) < self.epsilon
    return np.where(explore, rollouts.uniform_legal_actions(legal.cpu().numpy(), rng), greedy)

  def update(self, batch: replay.Transitions) -> torch.Tensor:
    cfg = self.config
    with torch.no_grad():
      best_next = networks.masked_logits(self.q_net(batch.next_obs), batch.next_legal).argmax(1)
      next_q = self.target(batch.next_obs).gather(1, best_next[:, None])[:, 0]
      y = batch.reward + cfg.gamma * (1.0 - batch.done) * next_q
    q_taken = self.q_net(batch.obs).gather(1, batch.action[:, None])[:, 0]
    loss = nn.functional.mse_loss(q_taken, y)
    self.optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(self.q_net.parameters(), cfg.max_grad_norm)
    self.optimizer.step()
    self.grad_steps += 1
    if self.grad_steps % cfg.target_update_every == 0:
      self.target.load_state_dict(self.q_net.state_dict())
    return torch.stack([loss.detach(), q_taken.detach().mean()])
