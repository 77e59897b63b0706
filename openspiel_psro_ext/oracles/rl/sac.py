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
response ends nearly deterministic. Trained by the shared replay loop
(`replay.train`).

The result (`critic_greedy_result`, on by default) plays the best legal
action of `min_i Q_i` (`TorchPolicy(output="greedy", q_networks=2)` holding
the two critics): a best response to fixed opponents can be deterministic,
and the actor, fitted to the critics, lags them. Off, the result is the
actor: `TorchPolicy(output="softmax")`, carrying the critics. These choices, a
Boltzmann result and the critics' warm start between best responses are
`replay.ActorCriticLearner`'s, shared with CrossQ and MPO.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, replay, torch_policy
from openspiel_psro_ext.records import schema


@dataclasses.dataclass
class SoftActorOptions(replay.ActorCriticOptions):
  """The actor's and temperature's settings, shared with CrossQ."""

  # small networks: a second thread does not pay
  num_threads: int = schema.setting(1, min=0, max=1024)
  # 4x the shared default: a gradient step costs the same whatever the games
  # in flight, so more games give fresher, broader replay for the same steps.
  num_envs: int = schema.setting(1024, min=1, bytes_each=64)
  actor_lr: float = schema.setting(1e-3, min=0)
  critic_lr: float = schema.setting(1e-3, min=0)
  alpha_lr: float = schema.setting(3e-3, min=0)
  initial_alpha: float = schema.setting(0.5, above=0)
  # Fractions of log(#legal actions). Starting near-uniform matters: from a
  # lower start the actor stops exploring early and best responses to a
  # mixture of deterministic policies plateau short of the exact gain.
  target_entropy_start: float = schema.setting(0.9, min=0, max=1)
  target_entropy_end: float = schema.setting(0.01, min=0, max=1)


@dataclasses.dataclass
class SACConfig(SoftActorOptions):
  """SAC hyperparameters (plus the shared `ReplayOptions`)."""

  tau: float = schema.setting(0.01, min=0, max=1)


class SACOracle(torch_policy.TorchOracle):
  """Best response by discrete soft actor-critic against the meta-strategy mixture."""

  name = "sac"
  Config = SACConfig
  # Short best responses inside PSRO, a little longer than DQN's: SAC learns
  # slowly at first.
  psro_defaults = dict(time_budget_s=3.0)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    return replay.train(request, self.config, _SACLearner, "sac")


_SoftActorOptionsT = TypeVar("_SoftActorOptionsT", bound=SoftActorOptions)


class SoftActorLearner(replay.ActorCriticLearner[_SoftActorOptionsT]):
  """The softmax actor, its exploration, the actor loss `L_pi` and the
  temperature loss `L_alpha` (module doc); SAC and CrossQ add their critics."""

  output = "softmax"
  update_keys = ("loss", "actor_loss", "entropy", "alpha")

  def __init__(
    self,
    config: _SoftActorOptionsT,
    run: torch_policy.TrainingSetup,
    betas: tuple[float, float] = (0.9, 0.999),
  ):
    super().__init__(config, run)
    self.actor = run.module.net
    self.log_alpha = torch.tensor(
      float(np.log(config.initial_alpha)), device=run.device, requires_grad=True
    )
    self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, betas=betas)
    self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr, betas=betas)
    self.entropy_fraction = config.target_entropy_start

  def _policy(self, obs: torch.Tensor, legal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(networks.masked_logits(self.actor(obs), legal), dim=1)
    return logp.exp(), logp

  def schedule(self, fraction: float) -> dict[str, float]:
    cfg = self.config
    self.entropy_fraction = cfg.target_entropy_start + fraction * (
      cfg.target_entropy_end - cfg.target_entropy_start
    )
    return {}

  def act(self, obs: torch.Tensor, legal: torch.Tensor) -> np.ndarray:
    probs, _ = self._policy(obs, legal)
    return torch.multinomial(probs, 1)[:, 0].cpu().numpy()

  def actor_step(
    self, obs: torch.Tensor, legal: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor
  ) -> torch.Tensor:
    """One actor and temperature step at states `obs` (masks `legal`) given
    their detached `[B, A]` action values `q`; returns `[actor_loss, entropy,
    alpha]`."""
    probs, logp = self._policy(obs, legal)
    actor_loss = (probs * (alpha * logp - q)).sum(1).mean()
    self.actor_opt.zero_grad()
    actor_loss.backward()
    nn.utils.clip_grad_norm_(self.actor.parameters(), self.config.max_grad_norm)
    self.actor_opt.step()

    entropy = -(probs * logp).sum(1).detach()
    target_entropy = self.entropy_fraction * torch.log(legal.sum(1).clamp(min=1).float())
    alpha_loss = (self.log_alpha * (entropy - target_entropy)).mean()
    self.alpha_opt.zero_grad()
    alpha_loss.backward()
    self.alpha_opt.step()
    return torch.stack([actor_loss.detach(), entropy.mean(), alpha])


class _SACLearner(SoftActorLearner[SACConfig]):
  """Discrete SAC's critics and their targets (see the module doc)."""

  def __init__(self, config: SACConfig, run: torch_policy.TrainingSetup):
    super().__init__(config, run)
    env = run.env
    critics = (run.module.network(env.num_actions) for _ in range(2))
    self.critics = nn.ModuleList(critics).to(run.device)
    self.warm_start()
    self.targets = copy.deepcopy(self.critics)
    self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr)

  def update(self, batch: replay.Transitions) -> torch.Tensor:
    cfg, critics, targets = self.config, self.critics, self.targets
    alpha = self.log_alpha.exp().detach()
    with torch.no_grad():
      next_probs, next_logp = self._policy(batch.next_obs, batch.next_legal)
      next_q = torch.min(targets[0](batch.next_obs), targets[1](batch.next_obs))
      next_v = (next_probs * (next_q - alpha * next_logp)).sum(1)
      y = batch.reward + cfg.gamma * (1.0 - batch.done) * next_v
    losses = [
      nn.functional.mse_loss(c(batch.obs).gather(1, batch.action[:, None])[:, 0], y)
      for c in critics
    ]
    critic_loss = sum(losses[1:], losses[0])
    self.critic_opt.zero_grad()
    critic_loss.backward()
    nn.utils.clip_grad_norm_(critics.parameters(), cfg.max_grad_norm)
    self.critic_opt.step()

    # The replay buffer stores next-state masks; a state's own legal actions
    # are the next-state mask of the transition that led to it, so the actor
    # is trained on `next_obs` states (all are learner states).
    with torch.no_grad():
      q = torch.min(critics[0](batch.next_obs), critics[1](batch.next_obs))
    actor_stats = self.actor_step(batch.next_obs, batch.next_legal, q, alpha)

    with torch.no_grad():
      for net, targ in zip(critics, targets):
        for p, tp in zip(net.parameters(), targ.parameters()):
          tp.lerp_(p, cfg.tau)
    return torch.cat([critic_loss.detach()[None], actor_stats])
