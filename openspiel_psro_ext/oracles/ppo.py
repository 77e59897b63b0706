"""PPO best-response oracle (clipped objective, GAE, entropy bonus, masking).

One iteration: every one of `num_envs` vectorised games takes `num_steps`
learner decisions against opponents drawn from the meta-strategy (see
`rollouts.TreeVecEnv`); advantages come from GAE(lambda) with the critic's
values; then `update_epochs` passes of minibatch Adam steps on

    L = -E[min(r A, clip(r, 1-eps, 1+eps) A)] + c_v E[(V - R)^2] - c_e H[pi],

with `r` the new/old probability ratio of the taken action. Illegal actions
get -1e9 logits, so they are never sampled and carry no gradient. The entropy
coefficient decays linearly to `ent_coef_final` over the budget, so the final
policy is close to deterministic where the learner found a clear best action.

The result is a `TorchPolicy` (actor plus critic) whose exact `[I_p, A]`
matrix comes from one forward pass over all the player's information states.
With `greedy_result` it plays the actor's most likely legal action
(`output="greedy"`): ~2 points more of the exact best-response gain at 1.5-2 s
per best response, but off by default because PSRO does much worse with it
(leduc NashConv 0.63 vs 0.32 after 190 s): the argmax is arbitrary at the
information states the learner rarely reaches, where the softmax stays broad,
and the population members are also the opponents' strategies.

Tuned for fast best responses (PSRO gives each ~1.5 s on 2 cores): a small
64x64 network, one torch thread, 1024 games x 4 decisions per update, a high
annealed learning rate (2e-2) with a loose gradient clip.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles import networks
from openspiel_psro_ext.oracles import torch_policy


@dataclasses.dataclass
class PPOConfig(torch_policy.TrainingOptions):
  """PPO hyperparameters (plus the shared `TrainingOptions`)."""

  hidden: tuple[int, ...] = (64, 64)
  num_threads: int = 1  # tiny networks: a second thread only adds overhead
  num_envs: int = 1024
  num_steps: int = 4  # learner decisions per game per iteration
  learning_rate: float = 2e-2
  anneal_lr: bool = True
  gamma: float = 1.0
  gae_lambda: float = 0.95
  update_epochs: int = 4
  num_minibatches: int = 4
  clip_coef: float = 0.2
  ent_coef: float = 0.02
  ent_coef_final: float = 0.0
  vf_coef: float = 0.5
  max_grad_norm: float = 5.0
  greedy_result: bool = False  # True: the result plays the actor's argmax action
  # Start the critic (not the actor) from the previous best response's: the
  # opponents' mixture changes little between PSRO iterations, so its values
  # are nearly right from the first update, while a fresh actor still explores.
  warm_start_critic: bool = False


class PPOOracle(torch_policy.TorchOracle):
  """Best response by PPO against the opponents' meta-strategy mixture."""

  name = "ppo"
  Config = PPOConfig
  # PSRO's best responses get ~1.5-4 s each (benchmarks/psro_rl.py): fewer
  # passes over larger batches see twice the games in that time, and the
  # critic carries over between iterations.
  psro_defaults = dict(time_budget_s=1.5, num_envs=2048, update_epochs=2,
                       warm_start_critic=True)

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    cfg = self.config
    run = torch_policy.setup(request, cfg, cfg.num_envs, "softmax", (
        "loss", "policy_loss", "value_loss", "entropy", "approx_kl"), with_value=True)
    device, env, module, log = run.device, run.env, run.module, run.log
    actor, critic = module.net, module.value
    previous = torch_policy.warm_start_source(request, module)
    if cfg.warm_start_critic and not cfg.warm_start and previous is not None:
      critic.load_state_dict(previous.value.state_dict())
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate, eps=1e-5)
    T, B = cfg.num_steps, cfg.num_envs
    obs_buf = torch.zeros((T, B) + tuple(env.obs_shape), device=device)
    legal_buf = torch.zeros((T, B, env.num_actions), dtype=torch.bool, device=device)
    act_buf = torch.zeros((T, B), dtype=torch.long, device=device)
    logp_buf = torch.zeros((T, B), device=device)
    rew_buf = torch.zeros((T, B), device=device)
    done_buf = torch.zeros((T, B), device=device)
    val_buf = torch.zeros((T, B), device=device)
    obs_np, legal_np = env.reset()
    updates = 0
    while not log.done:
      frac = log.fraction
      if cfg.anneal_lr:
        optimizer.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - frac, 0.05)
      ent_coef = cfg.ent_coef + frac * (cfg.ent_coef_final - cfg.ent_coef)

      # Rollout: T learner decisions in each of the B games.
      for t in range(T):
        obs = torch.as_tensor(obs_np, device=device)
        legal = torch.as_tensor(legal_np, device=device)
        with torch.no_grad():
          logits = networks.masked_logits(actor(obs), legal)
          dist = torch.distributions.Categorical(logits=logits)
          action = dist.sample()
          val_buf[t] = critic(obs)[:, 0]
        obs_buf[t], legal_buf[t], act_buf[t] = obs, legal, action
        logp_buf[t] = dist.log_prob(action)
        obs_np, legal_np, reward, done = env.step(action.cpu().numpy())
        rew_buf[t] = torch.as_tensor(reward, device=device)
        done_buf[t] = torch.as_tensor(done, device=device, dtype=torch.float32)
        log.track(reward, done)

      # GAE(lambda); done[t] means the episode ended right after step t.
      with torch.no_grad():
        next_value = critic(torch.as_tensor(obs_np, device=device))[:, 0]
        adv = torch.zeros_like(rew_buf)
        last = torch.zeros(B, device=device)
        for t in reversed(range(T)):
          nonterminal = 1.0 - done_buf[t]
          following = next_value if t == T - 1 else val_buf[t + 1]
          delta = rew_buf[t] + cfg.gamma * following * nonterminal - val_buf[t]
          last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
          adv[t] = last
        ret = adv + val_buf

      b_obs = obs_buf.reshape((T * B,) + tuple(env.obs_shape))
      b_legal, b_act = legal_buf.reshape(T * B, -1), act_buf.reshape(-1)
      b_logp, b_adv = logp_buf.reshape(-1), adv.reshape(-1)
      b_ret, b_val = ret.reshape(-1), val_buf.reshape(-1)
      mb_size = (T * B) // cfg.num_minibatches
      stats = []
      for _ in range(cfg.update_epochs):
        perm = torch.randperm(T * B, device=device)
        for start in range(0, T * B, mb_size):
          mb = perm[start:start + mb_size]
          logits = networks.masked_logits(actor(b_obs[mb]), b_legal[mb])
          logp_all = torch.log_softmax(logits, dim=1)
          new_logp = logp_all.gather(1, b_act[mb, None])[:, 0]
          probs = logp_all.exp()
          entropy = -(probs * logp_all).sum(1).mean()
          log_ratio = new_logp - b_logp[mb]
          ratio = log_ratio.exp()
          mb_adv = b_adv[mb]
          mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
          pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(
              ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
          v_loss = 0.5 * ((critic(b_obs[mb])[:, 0] - b_ret[mb]) ** 2).mean()
          loss = pg_loss + cfg.vf_coef * v_loss - ent_coef * entropy
          optimizer.zero_grad()
          loss.backward()
          nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
          optimizer.step()
          with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
          stats.append(torch.stack([loss, pg_loss, v_loss, entropy, approx_kl]))
      updates += 1

      loss_m, pg_m, v_m, ent_m, kl_m = torch.stack(stats).mean(0).tolist()
      log.record(loss=loss_m, policy_loss=pg_m, value_loss=v_m, entropy=ent_m,
                 approx_kl=kl_m, **torch_policy.exact_value_point(
                     request, run, cfg.eval_every))
    if cfg.greedy_result:
      module.arch["output"] = "greedy"
    return torch_policy.finish(request, run, "ppo", updates=updates)
