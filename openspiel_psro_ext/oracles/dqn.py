"""DQN best-response oracle (target network, replay, legal-action masking).

`num_envs` vectorised games act epsilon-greedily (epsilon decays linearly from
`start_epsilon` to `end_epsilon` over `exploration_fraction` of the budget;
exploration picks a uniformly random *legal* action). Every environment step
adds `num_envs` transitions to a replay buffer and takes `gradient_steps` Adam
steps on the squared error to the double-DQN target

    y = r + gamma (1 - done) Q_target(s', argmax_{a' legal} Q(s', a')),

the learning rate decaying linearly to a tenth, and the target network copied from the online one every
`target_update_every` gradient steps. The best response is greedy in Q over
legal actions: `TorchPolicy(output="greedy")`, a deterministic matrix.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles import networks
from openspiel_psro_ext.oracles import rollouts
from openspiel_psro_ext.oracles import torch_policy


@dataclasses.dataclass
class DQNConfig(torch_policy.ReplayOptions):
  """DQN hyperparameters (plus the shared `ReplayOptions`)."""

  learning_rate: float = 1e-3
  target_update_every: int = 200  # gradient steps
  start_epsilon: float = 1.0
  end_epsilon: float = 0.02
  exploration_fraction: float = 0.5


class DQNOracle(torch_policy.TorchOracle):
  """Best response by deep Q-learning against the meta-strategy mixture."""

  name = "dqn"
  Config = DQNConfig
  # Short best responses inside PSRO; DQN needs ~2 s of replay before its
  # greedy policy is useful.
  psro_defaults = dict(time_budget_s=2.0)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    cfg = self.config
    run = torch_policy.setup(request, cfg, cfg.num_envs, "greedy",
                             ("loss", "q_mean", "epsilon"))
    device, env, module, log = run.device, run.env, run.module, run.log
    q_net = module.net
    target = copy.deepcopy(q_net)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg.learning_rate)
    buffer = rollouts.ReplayBuffer(cfg.buffer_size, env.obs_shape,
                                   env.num_actions, run.rng)
    obs, legal = env.reset()
    losses, q_means = [], []
    grad_steps = env_steps = 0
    while not log.done:
      frac = log.fraction
      optimizer.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - frac, 0.1)
      epsilon = max(cfg.end_epsilon, cfg.start_epsilon + (
          cfg.end_epsilon - cfg.start_epsilon) * frac / cfg.exploration_fraction)
      with torch.no_grad():
        q = q_net(torch.as_tensor(obs, device=device))
        greedy = networks.masked_logits(
            q, torch.as_tensor(legal, device=device)).argmax(1).cpu().numpy()
      explore = run.rng.random(cfg.num_envs) < epsilon
      action = np.where(explore, rollouts.uniform_legal_actions(legal, run.rng), greedy)
      next_obs, next_legal, reward, done = env.step(action)
      # After a done the env has restarted: next_obs then belongs to a new
      # episode, but done masks it out of the target.
      buffer.add(obs, action, reward, next_obs, next_legal, done)
      log.track(reward, done)
      obs, legal = next_obs, next_legal
      env_steps += 1

      if buffer.size >= cfg.learning_starts:
        for _ in range(cfg.gradient_steps):
          b_obs, b_act, b_rew, b_next, b_next_legal, b_done = (
              torch.as_tensor(x, device=device) for x in buffer.sample(cfg.batch_size))
          with torch.no_grad():
            best_next = networks.masked_logits(q_net(b_next), b_next_legal).argmax(1)
            next_q = target(b_next).gather(1, best_next[:, None])[:, 0]
            y = b_rew + cfg.gamma * (1.0 - b_done) * next_q
          q_taken = q_net(b_obs).gather(1, b_act[:, None])[:, 0]
          loss = nn.functional.mse_loss(q_taken, y)
          optimizer.zero_grad()
          loss.backward()
          nn.utils.clip_grad_norm_(q_net.parameters(), cfg.max_grad_norm)
          optimizer.step()
          grad_steps += 1
          if grad_steps % cfg.target_update_every == 0:
            target.load_state_dict(q_net.state_dict())
          losses.append(loss.detach())
          q_means.append(q_taken.detach().mean())

      if env_steps % cfg.log_every == 0 or log.done:
        mean = lambda xs: float(torch.stack(xs).mean()) if xs else float("nan")
        log.record(loss=mean(losses), q_mean=mean(q_means), epsilon=epsilon,
                   **torch_policy.exact_value_point(request, run, cfg.eval_every))
        losses, q_means = [], []
    return torch_policy.finish(request, run, "dqn", gradient_steps=grad_steps)
