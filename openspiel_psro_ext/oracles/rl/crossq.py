"""CrossQ (Bhatt et al., 2024) adapted to discrete actions.

CrossQ is SAC without target networks: batch renormalisation in the critics
keeps bootstrapping stable, provided the critic sees the states `s` and the
next states `s'` in one batch, so both are normalised by the same statistics.
No public discrete CrossQ exists; this one is our discrete SAC (`sac.py`)
changed as follows, each choice with its reason:

* Critics: twin `Q_1, Q_2` over all actions (discrete SAC's form, so the soft
  value is an exact sum), with a `networks.BatchRenorm` on the input and after
  each hidden layer (`Network(batch_renorm=True)`), as in the paper's
  critics. No target networks: the target is computed from the online
  critics on the same pass.
* One joint forward pass in training mode over `[s; s']` (`2B` rows), split
  afterwards into `Q_i(s, .)` and `Q_i(s', .)`: the paper's central trick,
  so the batch statistics mix both distributions; separate passes would
  normalise `s'` by statistics it did not contribute to, and the bootstrap
  would drift.
* Target (the discrete soft value, as in our SAC), detached:
      y = r + gamma (1 - done) sum_a' pi(a'|s') [min_i Q_i(s', a') - alpha log pi(a'|s')],
      L_Q = sum_i (Q_i(s, a) - y)^2.
* Actor and temperature: our SAC's losses on the batch's `s'` states (their
  legal masks are the stored next-state masks), reading the critics in
  evaluation mode, i.e. through the running statistics (the paper's
  implementation does the same); every `policy_delay` (3) critic steps, the
  paper's setting, so the actor follows a critic that has caught up.
* Adam with beta1 = 0.5 for every optimiser, as the paper: with no target
  network, less momentum keeps the critic from overshooting its own moving
  target.
* Batch renormalisation's warm-up (plain batch norm while the running
  statistics settle) is `renorm_warmup_steps` = 1000 critic steps rather
  than the paper's 100k: our best responses are a few thousand steps long.
* The temperature target: the fraction of log(#legal actions) decaying from
  0.9 to 0.01 over the budget, as our SAC, so the best response ends nearly
  deterministic.

Trained by the shared replay loop (`replay.train`); inside PSRO with
`replay.PSRO_ACTOR_CRITIC` (warm-started critics, the critics' Boltzmann
policy as the result) and a warm-started actor. Stand-alone the result, as SAC's,
is greedy in `min_i Q_i` (the critics read through their running
statistics) unless `critic_greedy_result` is off, then the actor.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import replay, sac, torch_policy
from openspiel_psro_ext.records import schema


@dataclasses.dataclass
class CrossQConfig(sac.SoftActorOptions):
  """CrossQ hyperparameters (plus SAC's actor and the shared `ReplayOptions`)."""

  adam_beta1: float = schema.setting(0.5, min=0, below=1)
  policy_delay: int = schema.setting(3, min=1)  # critic steps per actor (and temperature) step
  renorm_warmup_steps: int = schema.setting(1000, min=0)  # critic steps of plain batch norm


class CrossQOracle(torch_policy.TorchOracle):
  """Best response by discrete CrossQ against the meta-strategy mixture."""

  name = "crossq"
  Config = CrossQConfig
  # The actor carries over too: CrossQ's targets follow the actor, which a
  # short best response trains only every `policy_delay` critic steps; fresh,
  # it drags the warm critics back towards a near-uniform policy's values.
  psro_defaults = dict(time_budget_s=3.0, warm_start_actor=True, **replay.PSRO_ACTOR_CRITIC)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    return replay.train(request, self.config, _CrossQLearner, "crossq")


class _CrossQLearner(sac.SoftActorLearner[CrossQConfig]):
  """CrossQ's batch-renormalised critics and their joint pass (module doc)."""

  batch_renorm_critics = True

  def __init__(self, config: CrossQConfig, run: torch_policy.TrainingSetup):
    betas = (config.adam_beta1, 0.999)
    super().__init__(config, run, betas)
    env = run.env
    self.critics = nn.ModuleList(
      run.module.network(
        env.num_actions, batch_renorm=True, renorm_warmup_steps=config.renorm_warmup_steps
      )
      for _ in range(2)
    ).to(run.device)
    self.warm_start()
    self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr, betas=betas)
    self.critic_steps = 0
    # The last actor statistics, repeated between delayed actor steps.
    self.actor_stats = torch.full((3,), float("nan"), device=run.device)

  def update(self, batch: replay.Transitions) -> torch.Tensor:
    cfg, critics = self.config, self.critics
    alpha = self.log_alpha.exp().detach()
    critics.train()
    size = len(batch.action)
    joint = torch.cat([batch.obs, batch.next_obs])
    q_now, q_next = zip(*(c(joint).split(size) for c in critics))
    with torch.no_grad():
      next_probs, next_logp = self._policy(batch.next_obs, batch.next_legal)
      next_q = torch.min(q_next[0], q_next[1])
      next_v = (next_probs * (next_q - alpha * next_logp)).sum(1)
      y = batch.reward + cfg.gamma * (1.0 - batch.done) * next_v
    losses = [nn.functional.mse_loss(q.gather(1, batch.action[:, None])[:, 0], y) for q in q_now]
    critic_loss = sum(losses[1:], losses[0])
    self.critic_opt.zero_grad()
    critic_loss.backward()
    nn.utils.clip_grad_norm_(critics.parameters(), cfg.max_grad_norm)
    self.critic_opt.step()
    self.critic_steps += 1
    if self.critic_steps % cfg.policy_delay == 0:
      # The actor reads the critics through their running statistics.
      critics.eval()
      with torch.no_grad():
        q = torch.min(critics[0](batch.next_obs), critics[1](batch.next_obs))
      self.actor_stats = self.actor_step(batch.next_obs, batch.next_legal, q, alpha)
    return torch.cat([critic_loss.detach()[None], self.actor_stats])
