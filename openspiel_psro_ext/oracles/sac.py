"""Soft actor-critic best-response oracle for discrete actions.

Discrete SAC (Christodoulou, 2019) with legal-action masking: a softmax actor
`pi`, twin critics `Q1, Q2` with Polyak-averaged targets, and a learned
temperature `alpha`. With `pi` masked to legal actions, expectations over
actions are exact sums, so per sampled transition

    V'(s')  = sum_a pi(a|s') [min_i Q_i^targ(s', a) - alpha log pi(a|s')]
    L_Q     = sum_i (Q_i(s, a) - r - gamma (1 - done) V'(s'))^2
    L_pi    = sum_a pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]
    L_alpha = log alpha * (H[pi(.|s)] - H_target(s)),

with `H_target(s) = target_entropy * log(#legal actions at s)`, the fraction
`target_entropy` decaying linearly from `target_entropy_start` (0.9: explore
near-uniformly first) to `target_entropy_end` over the budget, so the best
response ends nearly deterministic. The result is the actor:
`TorchPolicy(output="softmax")`.
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
class SACConfig(torch_policy.ReplayOptions):
  """SAC hyperparameters (plus the shared `ReplayOptions`)."""

  num_threads: int = 1  # 95.8% vs 94.6% of the mixture BR gain with torch's 2
  actor_lr: float = 1e-3
  critic_lr: float = 1e-3
  alpha_lr: float = 3e-3
  initial_alpha: float = 0.5
  tau: float = 0.01
  # Fractions of log(#legal actions). Starting near-uniform matters: from 0.3
  # the actor stopped exploring early and best responses to a mixture of 5
  # deterministic policies plateaued at 87-92% of the exact gain (98% now).
  target_entropy_start: float = 0.9
  target_entropy_end: float = 0.01


class SACOracle(torch_policy.TorchOracle):
  """Best response by discrete soft actor-critic against the meta-strategy mixture."""

  name = "sac"
  Config = SACConfig
  # Short best responses inside PSRO; SAC learns slowly at first (at 2 s its
  # best responses still miss most of the gain).
  psro_defaults = dict(time_budget_s=3.0)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    cfg = self.config
    run = torch_policy.setup(request, cfg, cfg.num_envs, "softmax",
                             ("loss", "actor_loss", "entropy", "alpha"))
    device, env, module, log = run.device, run.env, run.module, run.log
    actor = module.net
    critics = nn.ModuleList(
        networks.Network(env.obs_shape, env.num_actions, cfg.hidden, cfg.network)
        for _ in range(2)).to(device)
    targets = copy.deepcopy(critics)
    log_alpha = torch.tensor(float(np.log(cfg.initial_alpha)), device=device,
                             requires_grad=True)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr)
    critic_opt = torch.optim.Adam(critics.parameters(), lr=cfg.critic_lr)
    alpha_opt = torch.optim.Adam([log_alpha], lr=cfg.alpha_lr)
    buffer = rollouts.ReplayBuffer(cfg.buffer_size, env.obs_shape,
                                   env.num_actions, run.rng)

    def policy(obs: torch.Tensor, legal: torch.Tensor):
      logp = torch.log_softmax(networks.masked_logits(actor(obs), legal), dim=1)
      return logp.exp(), logp

    obs, legal = env.reset()
    stats = []
    grad_steps = env_steps = 0
    while not log.done:
      frac = log.fraction
      entropy_fraction = cfg.target_entropy_start + frac * (
          cfg.target_entropy_end - cfg.target_entropy_start)
      with torch.no_grad():
        probs, _ = policy(torch.as_tensor(obs, device=device),
                          torch.as_tensor(legal, device=device))
        action = torch.multinomial(probs, 1)[:, 0].cpu().numpy()
      next_obs, next_legal, reward, done = env.step(action)
      buffer.add(obs, action, reward, next_obs, next_legal, done)
      log.track(reward, done)
      obs, legal = next_obs, next_legal
      env_steps += 1

      if buffer.size >= cfg.learning_starts:
        for _ in range(cfg.gradient_steps):
          b_obs, b_act, b_rew, b_next, b_next_legal, b_done = (
              torch.as_tensor(x, device=device) for x in buffer.sample(cfg.batch_size))
          alpha = log_alpha.exp().detach()
          with torch.no_grad():
            next_probs, next_logp = policy(b_next, b_next_legal)
            next_q = torch.min(targets[0](b_next), targets[1](b_next))
            next_v = (next_probs * (next_q - alpha * next_logp)).sum(1)
            y = b_rew + cfg.gamma * (1.0 - b_done) * next_v
          critic_loss = sum(
              nn.functional.mse_loss(c(b_obs).gather(1, b_act[:, None])[:, 0], y)
              for c in critics)
          critic_opt.zero_grad()
          critic_loss.backward()
          nn.utils.clip_grad_norm_(critics.parameters(), cfg.max_grad_norm)
          critic_opt.step()

          # The replay buffer stores next-state masks; a state's own legal
          # actions are the next-state mask of the transition that led to it,
          # so the actor is trained on `b_next` states (all are learner states).
          probs, logp = policy(b_next, b_next_legal)
          with torch.no_grad():
            q = torch.min(critics[0](b_next), critics[1](b_next))
          actor_loss = (probs * (alpha * logp - q)).sum(1).mean()
          actor_opt.zero_grad()
          actor_loss.backward()
          nn.utils.clip_grad_norm_(actor.parameters(), cfg.max_grad_norm)
          actor_opt.step()

          entropy = -(probs * logp).sum(1).detach()
          target_entropy = entropy_fraction * torch.log(
              b_next_legal.sum(1).clamp(min=1).float())
          alpha_loss = (log_alpha * (entropy - target_entropy)).mean()
          alpha_opt.zero_grad()
          alpha_loss.backward()
          alpha_opt.step()

          with torch.no_grad():
            for net, targ in zip(critics, targets):
              for p, tp in zip(net.parameters(), targ.parameters()):
                tp.lerp_(p, cfg.tau)
          grad_steps += 1
          stats.append(torch.stack([critic_loss.detach(), actor_loss.detach(),
                                    entropy.mean(), alpha]))

      if env_steps % cfg.log_every == 0 or log.done:
        means = (torch.stack(stats).mean(0).tolist() if stats
                 else [float("nan")] * 4)
        log.record(loss=means[0], actor_loss=means[1], entropy=means[2],
                   alpha=means[3], **torch_policy.exact_value_point(
                       request, run, cfg.eval_every))
        stats = []
    return torch_policy.finish(request, run, "sac", gradient_steps=grad_steps)
