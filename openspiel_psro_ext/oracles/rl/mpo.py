"""Maximum a posteriori policy optimisation (MPO) for discrete actions.

MPO (Abdolmaleki et al., 2018) in the categorical form DeepMind's acme uses
for discrete actions: the critic gives `Q(s, a)` for every action, so the
E-step needs no action samples. With an online policy `pi`, a target policy
`pi'` and a target critic `Q'` (both Polyak-averaged), per sampled state `s`
(legal actions only):

  Critic (expected SARSA under the target policy):
      y = r + gamma (1 - done) sum_a' pi'(a'|s') Q'(s', a'),
      L_Q = (Q(s, a) - y)^2.
  E-step: the improved non-parametric policy
      q(a|s) = pi'(a|s) exp(Q'(s, a) / eta) / Z(s),
  the temperature `eta` minimising its dual
      g(eta) = eta epsilon + eta E_s log sum_a pi'(a|s) exp(Q'(s, a) / eta),
  whose minimiser makes KL(q || pi') = epsilon on average.
  M-step: fit `pi` to `q` by cross-entropy, trusting it only within
      KL(pi'(.|s) || pi(.|s)) <= epsilon_pi,
  through a Lagrange multiplier `alpha`:
      L_pi    = -E_s sum_a q(a|s) log pi(a|s) + sg(alpha) E_s KL(pi' || pi),
      L_alpha = alpha (epsilon_pi - sg(E_s KL(pi' || pi))).
  Both multipliers are `softplus` of a free parameter (initial value 3, as
  in acme), trained by Adam.

Trained by the shared replay loop (`replay.train`); the learner acts by
sampling from `pi` mixed with uniform play (see below). The result
is `pi`: `TorchPolicy(output="softmax")`, carrying the critic. Inside PSRO
(`MPOOracle.psro_defaults`, `replay.PSRO_ACTOR_CRITIC`) it is instead the
critic's Boltzmann policy, and each best response starts from the previous
one's critic (`replay.ActorCriticLearner`).
As in our SAC, a state's legal actions are the next-state mask of the
transition that led to it, so the policy and the duals are trained on the
batch's `next_obs` states.

Settings changed from acme's reference values (epsilon = 0.1,
epsilon_pi = 0.0025, log-multipliers 3, dual learning rate 1e-2), each with
its reason:

* `tau = 0.05` (acme copies its targets periodically; Polyak keeps one code
  path with our SAC): the target policy is where the trust region is
  measured from, and at 0.01 it trailed so far behind that the policy moved
  slowly.
* `epsilon_pi = 0.01`, for the same reason: with 0.0025 short best responses
  fell well short of the gain.
* Exploration: the policy converges to nearly deterministic early in the
  budget, and a critic over all actions learns the actions it never plays
  only from exploration. Acting is therefore pi mixed with uniform over the
  legal actions, the mixing rate decaying from 1 to 0.02 over the first half
  of the budget, as our DQN's epsilon. The learned policy itself carries no
  exploration.
* The rest as our SAC: the shared `ReplayOptions`, Adam 1e-3, one torch
  thread; learning rates stay constant.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, replay, torch_policy
from openspiel_psro_ext.records import schema


@dataclasses.dataclass
class MPOConfig(replay.ActorCriticOptions):
  """MPO hyperparameters (plus the shared `ReplayOptions`)."""

  # small networks: a second thread does not pay
  num_threads: int = schema.setting(1, min=0, max=1024)
  policy_lr: float = schema.setting(1e-3, min=0)
  critic_lr: float = schema.setting(1e-3, min=0)
  dual_lr: float = schema.setting(1e-2, min=0)
  epsilon: float = schema.setting(0.1, above=0)  # E-step KL(q || pi_target) bound
  # M-step KL(pi_target || pi) bound (acme: 0.0025)
  epsilon_policy: float = schema.setting(0.01, above=0)
  initial_log_temperature: float = 3.0  # eta = softplus(this)
  initial_log_alpha: float = 3.0  # alpha = softplus(this)
  tau: float = schema.setting(0.05, min=0, max=1)  # Polyak rate of the target policy and critic
  # Acting: pi mixed with uniform over legal actions at a rate decaying
  # linearly from `explore_start` to `explore_end` over `explore_fraction`
  # of the budget (see the module doc).
  explore_start: float = schema.setting(1.0, min=0, max=1)
  explore_end: float = schema.setting(0.02, min=0, max=1)
  explore_fraction: float = schema.setting(0.5, above=0, max=1)
  # Stand-alone the result is `pi` (module doc); PSRO's preset hands
  # back the critic's Boltzmann policy instead (`MPOOracle.psro_defaults`).
  critic_greedy_result: bool = False


class MPOOracle(torch_policy.TorchOracle):
  """Best response by discrete MPO against the meta-strategy mixture."""

  name = "mpo"
  Config = MPOConfig
  psro_defaults = dict(time_budget_s=3.0, **replay.PSRO_ACTOR_CRITIC)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    return replay.train(request, self.config, _MPOLearner, "mpo")


def _log_policy(net: nn.Module, obs: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
  """`[B, A]` log-probabilities of the softmax policy over legal actions."""
  return torch.log_softmax(networks.masked_logits(net(obs), legal), dim=1)


class _MPOLearner(replay.ActorCriticLearner[MPOConfig]):
  """Sampling from the policy and the MPO losses (see the module doc)."""

  output = "softmax"
  update_keys = ("loss", "policy_loss", "kl", "temperature", "alpha")
  schedule_keys = ("explore",)

  def __init__(self, config: MPOConfig, run: torch_policy.TrainingSetup):
    super().__init__(config, run)
    device, env = run.device, run.env
    self.policy = run.module.net
    self.critic = run.module.network(env.num_actions).to(device)
    self.critics = nn.ModuleList([self.critic])
    self.warm_start()
    self.target_policy = copy.deepcopy(self.policy)
    self.target_critic = copy.deepcopy(self.critic)
    self.log_temperature = torch.tensor(
      config.initial_log_temperature, device=device, requires_grad=True
    )
    self.log_alpha = torch.tensor(config.initial_log_alpha, device=device, requires_grad=True)
    self.policy_opt = torch.optim.Adam(self.policy.parameters(), lr=config.policy_lr)
    self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
    self.dual_opt = torch.optim.Adam([self.log_temperature, self.log_alpha], lr=config.dual_lr)

    self.explore = config.explore_start

  def schedule(self, fraction: float) -> dict[str, float]:
    cfg = self.config
    self.explore = replay.linear_decay(
      cfg.explore_start, cfg.explore_end, fraction, cfg.explore_fraction
    )
    return dict(explore=self.explore)

  def act(self, obs: torch.Tensor, legal: torch.Tensor) -> np.ndarray:
    uniform = legal / legal.sum(1, keepdim=True)
    probs = (1 - self.explore) * _log_policy(self.policy, obs, legal).exp() + self.explore * uniform
    return torch.multinomial(probs, 1)[:, 0].cpu().numpy()

  def update(self, batch: replay.Transitions) -> torch.Tensor:
    cfg = self.config
    with torch.no_grad():
      next_logp = _log_policy(self.target_policy, batch.next_obs, batch.next_legal)
      next_q = self.target_critic(batch.next_obs)
      next_v = (next_logp.exp() * next_q).sum(1)
      y = batch.reward + cfg.gamma * (1.0 - batch.done) * next_v
    q_taken = self.critic(batch.obs).gather(1, batch.action[:, None])[:, 0]
    critic_loss = nn.functional.mse_loss(q_taken, y)
    self.critic_opt.zero_grad()
    critic_loss.backward()
    nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
    self.critic_opt.step()

    # E-step on the batch's states (`next_obs`, with their own legal masks);
    # the target policy's and critic's values there are `next_logp`, `next_q`.
    legal = batch.next_legal
    temperature = nn.functional.softplus(self.log_temperature) + 1e-8
    alpha = nn.functional.softplus(self.log_alpha) + 1e-8
    scaled = torch.where(
      legal, next_logp + next_q / temperature, torch.full_like(next_q, networks.NEG_INF)
    )
    temperature_loss = temperature * (cfg.epsilon + torch.logsumexp(scaled, 1).mean())
    q_weights = torch.softmax(scaled, dim=1).detach()

    # M-step: weighted cross-entropy inside the KL trust region.
    logp = _log_policy(self.policy, batch.next_obs, legal)
    target_p = next_logp.exp()
    kl = (target_p * (next_logp - logp)).where(legal, torch.zeros_like(logp)).sum(1).mean()
    cross_entropy = -(q_weights * logp).where(legal, torch.zeros_like(logp)).sum(1).mean()
    policy_loss = cross_entropy + alpha.detach() * kl
    alpha_loss = alpha * (cfg.epsilon_policy - kl.detach())
    self.policy_opt.zero_grad()
    self.dual_opt.zero_grad()
    (policy_loss + alpha_loss + temperature_loss).backward()
    nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
    self.policy_opt.step()
    self.dual_opt.step()

    with torch.no_grad():
      for net, target in ((self.policy, self.target_policy), (self.critic, self.target_critic)):
        for p, tp in zip(net.parameters(), target.parameters()):
          tp.lerp_(p, cfg.tau)
    return torch.stack(
      [
        critic_loss.detach(),
        cross_entropy.detach(),
        kl.detach(),
        temperature.detach(),
        alpha.detach(),
      ]
    )
