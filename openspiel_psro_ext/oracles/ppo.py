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
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles import networks
from openspiel_psro_ext.oracles import rollouts
from openspiel_psro_ext.oracles import torch_policy


@dataclasses.dataclass
class PPOConfig:
  """PPO hyperparameters. Budgets: 0 = unlimited; at least one must be set."""

  total_episodes: int = 0
  total_steps: int = 0
  time_budget_s: float = 45.0
  num_envs: int = 2048
  num_steps: int = 4
  learning_rate: float = 2.5e-3
  anneal_lr: bool = True
  gamma: float = 1.0
  gae_lambda: float = 0.95
  update_epochs: int = 4
  num_minibatches: int = 4
  clip_coef: float = 0.2
  ent_coef: float = 0.02
  ent_coef_final: float = 0.0
  vf_coef: float = 0.5
  max_grad_norm: float = 0.5
  hidden: tuple[int, ...] = (128, 128)
  network: str = "mlp"
  obs_type: str = torch_policy.OBS_INFO_STATE
  warm_start: bool = True
  device: str = "cpu"
  num_threads: int = 0
  progress: bool = True
  eval_every: int = 0  # exact evaluation every N updates (curves only)


class PPOOracle(base.Oracle):
  """Best response by PPO against the opponents' meta-strategy mixture."""

  name = "ppo"
  Config = PPOConfig

  def __init__(self, config: PPOConfig | None = None):
    self.config = config or PPOConfig()

  def _module(self, request: base.BestResponseRequest, obs_shape) -> torch_policy.TorchPolicy:
    cfg = self.config
    module = torch_policy.TorchPolicy(
        request.tree.game, request.player, obs_shape, cfg.hidden, cfg.network,
        "softmax", cfg.obs_type, with_value=True)
    prev = request.previous
    if (cfg.warm_start and prev is not None
        and isinstance(prev.module, torch_policy.TorchPolicy)
        and prev.module.arch == module.arch):
      module.load_state_dict(prev.module.state_dict())
      logging.debug("PPO warm start from the previous best response.")
    return module

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    cfg = self.config
    networks.seed_torch(request.seed, cfg.num_threads)
    device = networks.resolve_device(cfg.device)
    tree, player = request.tree, request.player
    obs_table = torch_policy.observation_table(tree, player, cfg.obs_type)
    env = rollouts.make_env(request, cfg.num_envs, request.seed, obs_table)
    module = self._module(request, env.obs_shape).to(device)
    actor, critic = module.net, module.value
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate, eps=1e-5)
    budget = rollouts.Budget(cfg.total_episodes, cfg.total_steps, cfg.time_budget_s)
    progress = rollouts.Progress(f"ppo p{player}", cfg.progress)

    T, B = cfg.num_steps, cfg.num_envs
    obs_buf = torch.zeros((T, B) + tuple(env.obs_shape), device=device)
    legal_buf = torch.zeros((T, B, env.num_actions), dtype=torch.bool, device=device)
    act_buf = torch.zeros((T, B), dtype=torch.long, device=device)
    logp_buf = torch.zeros((T, B), device=device)
    rew_buf = torch.zeros((T, B), device=device)
    done_buf = torch.zeros((T, B), device=device)
    val_buf = torch.zeros((T, B), device=device)
    curves: dict[str, list[float]] = {k: [] for k in (
        "episodes", "steps", "seconds", "return", "loss", "policy_loss",
        "value_loss", "entropy", "approx_kl")}
    if cfg.eval_every:
      curves["exact_value"] = []

    obs_np, legal_np = env.reset()
    episode_return = np.zeros(B)
    episodes = steps = updates = 0
    while not budget.done(episodes, steps):
      frac = budget.fraction(episodes, steps)
      if cfg.anneal_lr:
        optimizer.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - frac, 0.05)
      ent_coef = cfg.ent_coef + frac * (cfg.ent_coef_final - cfg.ent_coef)

      # Rollout: T learner decisions in each of the B games.
      finished_returns = []
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
        episode_return += reward
        finished_returns.append(episode_return[done])
        episode_return[done] = 0.0
        episodes += int(done.sum())
      steps += T * B

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
      done_returns = np.concatenate(finished_returns)
      mean_return = float(done_returns.mean()) if len(done_returns) else float("nan")
      for key, value in (("episodes", episodes), ("steps", steps),
                         ("seconds", budget.elapsed), ("return", mean_return),
                         ("loss", loss_m), ("policy_loss", pg_m),
                         ("value_loss", v_m), ("entropy", ent_m),
                         ("approx_kl", kl_m)):
        curves[key].append(float(value))
      if cfg.eval_every and updates % cfg.eval_every == 0:
        curves["exact_value"].append(
            rollouts.policy_value(request, module.matrix(tree, obs_table)))
      progress.update(budget.fraction(episodes, steps), ret=mean_return,
                      ent=ent_m, eps=episodes)
    progress.close()

    module = module.cpu().eval()
    matrix = module.matrix(tree, obs_table)
    stats: dict[str, Any] = dict(
        algorithm="ppo", episodes=episodes, steps=steps, updates=updates,
        seconds=budget.elapsed, curves=curves)
    logging.info("ppo player %d: %d episodes, %d updates in %.1fs, final"
                 " return %.3f, entropy %.3f", player, episodes, updates,
                 budget.elapsed, curves["return"][-1] if updates else float("nan"),
                 curves["entropy"][-1] if updates else float("nan"))
    return base.PopulationMember(matrix=matrix, module=module, stats=stats)
