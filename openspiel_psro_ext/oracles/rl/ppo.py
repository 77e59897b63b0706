"""PPO best-response oracle (clipped objective, GAE, entropy bonus, masking).

One iteration: every one of `num_envs` vectorised games takes `num_steps`
learner decisions against opponents drawn from the meta-strategy (see
`rollouts.TreeVecEnv`); advantages come from GAE(lambda) with the critic's
values; then `update_epochs` passes of Adam steps on

    L = -E[min(r A, clip(r, 1-eps, 1+eps) A)] + c_v E[(V - R)^2] - c_e H[pi],

with `r` the new/old probability ratio of the taken action and `A` normalised
over the batch. Illegal actions get -1e9 logits, so they are never sampled and
carry no gradient. The entropy coefficient decays linearly to
`ent_coef_final` over the budget, so the final policy is close to
deterministic where the learner found a clear best action.

Samples summed per observation: tens of thousands of games visit only a few
hundred distinct information states, and every sample at one state shares
the network's outputs there. So the learner acts with one forward pass per
distinct observation (`_ObservationTable.act`), and the loss over the batch is
computed from per-(observation, action) sums (`StateBatch`): for the clipped
term, `A min(r, clip(r))` summed over the samples with `A >= 0` and
`A max(r, clip(r))` over those with `A < 0`; for the value term, each state's
sample count and mean return. This is the same loss and gradient as
per-sample PPO on the same batch (`_SampleBatch`; tested), at the cost of a few
hundred rows instead of `num_envs * num_steps`, so each second of training sees
many more games. Minibatches (`num_minibatches`) split the distinct
observations, not the samples.

Per sample, in simulated games (a request without a compiled tree, on
`rollouts.PyspielVecEnv`): there observations rarely repeat, so the batch
keeps one row per sample (`_SampleBatch`, CleanRL-style) and minibatches
split the samples. A simulated rollout whose samples are at least half
repeats (a small game played through pyspiel) is summed per distinct
observation all the same, over a table built from the rollout.

The result is a `TorchPolicy` (actor plus critic) whose exact `[I_p, A]`
matrix comes from one forward pass over all the player's information states.
With `greedy_result` it plays the actor's most likely legal action
(`output="greedy"`), off by default because PSRO does much worse with it: the
argmax is arbitrary at the information states the learner rarely reaches,
where the softmax stays broad, and the population members are also the
opponents' strategies.

Tuned for the short best responses PSRO asks for: a small 64x64 network, one
torch thread, 16384 games x 4 decisions per update, 8 full-batch epochs, a
high annealed learning rate (2e-2) with a loose gradient clip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, rollouts, torch_policy
from openspiel_psro_ext.records import schema
from openspiel_psro_ext.simulated import simulation


@dataclasses.dataclass
class PPOConfig(torch_policy.TrainingOptions):
  """PPO hyperparameters (plus the shared `TrainingOptions`)."""

  hidden: tuple[int, ...] = schema.setting((64, 64), min=1, network=True)
  # tiny networks: a second thread only adds overhead
  num_threads: int = schema.setting(1, min=0, max=1024)
  num_envs: int = schema.setting(16384, min=1, bytes_each=64)
  # no tree: pyspiel games (TrainingOptions)
  simulated_num_envs: int = schema.setting(512, min=0, bytes_each=64)
  # learner decisions per game per iteration
  num_steps: int = schema.setting(4, min=1, max=1_000_000)
  learning_rate: float = schema.setting(2e-2, min=0)
  anneal_lr: bool = True
  gamma: float = schema.setting(1.0, min=0, max=1)
  gae_lambda: float = schema.setting(0.95, min=0, max=1)
  update_epochs: int = schema.setting(8, min=1, max=1_000_000)
  # of the distinct observations (see the module doc)
  num_minibatches: int = schema.setting(1, min=1)
  clip_coef: float = schema.setting(0.2, min=0)
  # Long stand-alone best responses need this exploration: with less, PPO can
  # settle on a local optimum against a mixture of deterministic policies.
  ent_coef: float = schema.setting(0.05, min=0)
  ent_coef_final: float = schema.setting(0.0, min=0)
  vf_coef: float = schema.setting(0.5, min=0)
  max_grad_norm: float = schema.setting(5.0, min=0)
  greedy_result: bool = False  # True: the result plays the actor's argmax action
  # Start the critic (not the actor) from the previous best response's: the
  # opponents' mixture changes little between PSRO iterations, so its values
  # are nearly right from the first update, while a fresh actor still explores.
  warm_start_critic: bool = False


class PPOOracle(torch_policy.TorchOracle):
  """Best response by PPO against the opponents' meta-strategy mixture."""

  name = "ppo"
  Config = PPOConfig
  # Short best responses (benchmarks/psro_rl.py), the critic carried over
  # between iterations, and the entropy the PSRO runs use. Longer ones find
  # more of each best response's gain but leave fewer iterations in a run's
  # budget, and ended higher (benchmarks/RESULTS.md).
  psro_defaults = dict(time_budget_s=1.0, warm_start_critic=True, ent_coef=0.02)
  psro_budget_final_s = 2.6

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    cfg = self.config
    run = torch_policy.setup(request, cfg, cfg.num_envs, "softmax", LOSS_KEYS, with_value=True)
    device, env, module, log = run.device, run.env, run.module, run.log
    previous = torch_policy.warm_start_source(request, module)
    whole = cfg.warm_start or request.plan.continues  # loaded by `setup`
    if cfg.warm_start_critic and not whole and previous is not None:
      _critic(module).load_state_dict(_critic(previous).state_dict())
    optimizer = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
    # Summed per observation over a compiled tree; per sample in simulated
    # games, whose observations rarely repeat.
    rollout: TableRollout | _SampleRollout
    if request.tree is not None:
      assert isinstance(env, rollouts.TreeVecEnv) and run.obs_table is not None
      rollout = TableRollout(module, env, run.obs_table, cfg.num_steps, device)
    else:
      assert isinstance(env, rollouts.PyspielVecEnv)
      rollout = _SampleRollout(module, env, cfg.num_steps, device)
    updates = train(
      rollout,
      module,
      optimizer,
      cfg,
      log,
      run.rng,
      device,
      lambda: torch_policy.exact_value_point(request, run, cfg.eval_every),
    )
    if cfg.greedy_result:
      module.arch["output"] = "greedy"
    return torch_policy.finish(request, run, "ppo", updates=updates)


# The losses `update` reports, in its order: a training log's curve keys.
LOSS_KEYS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl")


def train(
  rollout: TableRollout | _SampleRollout,
  module: torch_policy.TorchPolicy,
  optimizer: torch.optim.Optimizer,
  cfg: PPOConfig,
  log: rollouts.TrainingLog,
  rng: np.random.Generator,
  device: torch.device,
  extra: Callable[[], dict[str, float]] = dict,
  regularizer: Callable[[], torch.Tensor] | None = None,
) -> int:
  """PPO's loop until `log`'s budget is spent; returns the number of updates.

  Each update: the schedules at the budget's spent fraction (`anneal`),
  `cfg.num_steps` learner decisions in each of the rollout's games (actions
  drawn from `rng`), GAE advantages and `update`'s epochs, which stop early
  once the wall-time budget is spent. `log` gets a curve point per update:
  the mean losses (`LOSS_KEYS`) and `extra()`'s values. PPO's best responses
  and NeuPL's conditional learner (`neupl.train`) both run this loop.
  """
  T, B = cfg.num_steps, rollout.env.num_envs
  act_buf = np.zeros((T, B), dtype=np.int64)
  rew_buf = np.zeros((T, B), dtype=np.float32)
  done_buf = np.zeros((T, B), dtype=bool)
  val_buf = np.zeros((T, B), dtype=np.float32)
  rollout.reset()
  updates = 0
  while not log.done:
    ent_coef = anneal(optimizer, cfg, log.fraction)
    for t in range(T):  # T learner decisions in each of the B games
      cumulative, val_buf[t] = rollout.act()
      act_buf[t] = simulation.sample_rows(cumulative, rng)
      rew_buf[t], done_buf[t] = rollout.step(t, act_buf[t])
      log.track(rew_buf[t], done_buf[t])
    adv = advantages(rew_buf, val_buf, done_buf, rollout.act()[1], cfg)
    batch = rollout.batch(act_buf, adv, adv + val_buf)
    stats = update(
      batch, module, optimizer, cfg, ent_coef, device, log.budget.out_of_time, regularizer
    )
    updates += 1
    means = torch.stack(stats).mean(0).tolist()
    log.record(**dict(zip(LOSS_KEYS, means)), **extra())
  return updates


def anneal(optimizer: torch.optim.Optimizer, cfg: PPOConfig, frac: float) -> float:
  """Sets the learning rate for training progress `frac` in [0, 1] (where
  annealed) and returns the entropy coefficient at that point."""
  if cfg.anneal_lr:
    optimizer.param_groups[0]["lr"] = cfg.learning_rate * max(1.0 - frac, 0.05)
  return cfg.ent_coef + frac * (cfg.ent_coef_final - cfg.ent_coef)


def advantages(
  rewards: np.ndarray,
  values: np.ndarray,
  done: np.ndarray,
  next_value: np.ndarray,
  cfg: PPOConfig,
) -> np.ndarray:
  """GAE(lambda) advantages of `[T, B]` rollouts; `done[t]` means the episode
  ended right after step t, and `next_value` `[B]` bootstraps the last step."""
  T = len(rewards)
  adv = np.zeros_like(rewards)
  last = np.zeros(rewards.shape[1], dtype=np.float32)
  for t in reversed(range(T)):
    nonterminal = 1.0 - done[t]
    following = next_value if t == T - 1 else values[t + 1]
    delta = rewards[t] + cfg.gamma * following * nonterminal - values[t]
    last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
    adv[t] = last
  return adv


def update(
  batch: StateBatch | _SampleBatch,
  module: nn.Module,
  optimizer: torch.optim.Optimizer,
  cfg: PPOConfig,
  ent_coef: float,
  device: torch.device,
  out_of_time: Callable[[], bool] | None = None,
  regularizer: Callable[[], torch.Tensor] | None = None,
) -> list[torch.Tensor]:
  """PPO's clipped-objective epochs over `batch` in minibatches; per
  minibatch `[loss, policy loss, value loss, entropy, approximate KL]`.

  `out_of_time` ends the update after an epoch: with a large network (a
  conv torso on a 19x19 board) one update takes many times a short best
  response's budget, which it would otherwise overrun by that much."""
  stats = []
  for epoch in range(cfg.update_epochs):
    if epoch and out_of_time is not None and out_of_time():
      break
    perm = torch.randperm(batch.size, device=device)
    for mb in perm.tensor_split(min(cfg.num_minibatches, batch.size)):
      pg_loss, v_loss, entropy, approx_kl = batch.losses(mb, cfg.clip_coef)
      loss = pg_loss + cfg.vf_coef * v_loss - ent_coef * entropy
      if regularizer is not None:
        loss = loss + regularizer()
      optimizer.zero_grad()
      loss.backward()
      nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
      optimizer.step()
      stats.append(torch.stack([loss, pg_loss, v_loss, entropy, approx_kl]).detach())
  return stats


def _critic(module: torch_policy.TorchPolicy) -> networks.Network:
  """PPO's critic: the state-value network of a module built `with_value`."""
  if module.value is None:
    raise ValueError("PPO's module has no value network; build it with with_value=True.")
  return module.value


class _ObservationTable:
  """The learner's network over a table of distinct observations."""

  def __init__(
    self,
    module: torch_policy.TorchPolicy,
    obs_table: np.ndarray,
    legal_mask: np.ndarray,
    device: torch.device,
  ):
    self.module = module
    self.obs = torch.as_tensor(obs_table, device=device)
    self.legal = torch.as_tensor(legal_mask, device=device)
    self.device = device

  @torch.no_grad()
  def act(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`[B]` rows -> `[B, A]` cumulative action probabilities
    (`simulation.cumulative_rows`) and `[B]` values.

    One forward pass, and one cumulative sum, per distinct row: thousands of
    games share a few hundred information states.
    """
    unique, inverse = self.distinct(rows)
    u = torch.as_tensor(unique, device=self.device)
    cumulative = simulation.cumulative_rows(self.module(self.obs[u], self.legal[u]).cpu().numpy())
    values = _critic(self.module)(self.obs[u])[:, 0]
    return cumulative[inverse], values.cpu().numpy()[inverse]

  def distinct(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(rows, return_inverse=True)` for `[n]` rows of the table.

    By marking the rows present, O(n + table size), instead of sorting the
    tens of thousands of rows of every step (a large share of a short best
    response: benchmarks/RESULTS.md); a table much larger than the batch is
    sorted instead.
    """
    size = len(self.obs)
    if size > 4 * rows.size:
      return np.unique(rows, return_inverse=True)
    present = np.zeros(size, dtype=bool)
    present[rows] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[rows]

  def log_probs(self, u: torch.Tensor) -> torch.Tensor:
    """`[U, A]` log-probabilities at rows `u` (illegal actions ~ -1e9)."""
    logits = networks.masked_logits(self.module.net(self.obs[u]), self.legal[u])
    return torch.log_softmax(logits, dim=1)


class TableRollout:
  """Observations as rows of the learner's observation table (compiled tree)."""

  def __init__(
    self,
    module: torch_policy.TorchPolicy,
    env: rollouts.TreeVecEnv,
    obs_table: np.ndarray,
    num_steps: int,
    device: torch.device,
  ):
    self.env = env
    self.table = _ObservationTable(module, obs_table, env.legal_mask, device)
    self.rows = np.zeros((num_steps, env.num_envs), dtype=np.int64)
    self.current = np.zeros(env.num_envs, dtype=np.int64)

  def reset(self) -> None:
    self.current = self.env.reset_rows()

  def act(self) -> tuple[np.ndarray, np.ndarray]:
    """`[B, A]` cumulative action probabilities and `[B]` values at the current rows."""
    return self.table.act(self.current)

  def step(self, t: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plays `[B]` actions as the rollout's step `t`; `[B]` rewards and dones."""
    self.rows[t] = self.current
    self.current, reward, done = self.env.step_rows(actions)
    return reward, done

  def batch(self, actions: np.ndarray, adv: np.ndarray, ret: np.ndarray) -> StateBatch:
    return StateBatch.aggregate(self.rows, actions, adv, ret, self.table)


class _SampleRollout:
  """Observations as `[B, ...]` arrays (simulated games: one row per sample)."""

  def __init__(
    self,
    module: torch_policy.TorchPolicy,
    env: rollouts.PyspielVecEnv,
    num_steps: int,
    device: torch.device,
  ):
    self.module = module
    self.env = env
    self.device = device
    shape = (num_steps, env.num_envs)
    self.obs = np.zeros(shape + tuple(env.obs_shape), dtype=np.float32)
    self.legal = np.zeros(shape + (env.num_actions,), dtype=bool)
    self.current: tuple[np.ndarray, np.ndarray] = (self.obs[0], self.legal[0])

  def reset(self) -> None:
    self.current = self.env.reset()

  @torch.no_grad()
  def act(self) -> tuple[np.ndarray, np.ndarray]:
    """`[B, A]` cumulative action probabilities and `[B]` values at the
    current observations."""
    obs = torch.as_tensor(self.current[0], device=self.device)
    probs = self.module(obs, torch.as_tensor(self.current[1], device=self.device))
    return (
      simulation.cumulative_rows(probs.cpu().numpy()),
      _critic(self.module)(obs)[:, 0].cpu().numpy(),
    )

  def step(self, t: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plays `[B]` actions as the rollout's step `t`; `[B]` rewards and dones."""
    self.obs[t], self.legal[t] = self.current
    obs, legal, reward, done = self.env.step(actions)
    self.current = (obs, legal)
    return reward, done

  def batch(
    self, actions: np.ndarray, adv: np.ndarray, ret: np.ndarray
  ) -> StateBatch | _SampleBatch:
    """The rollout's batch: summed per distinct observation when at most half
    the samples are distinct (small games), else one row per sample. Both
    give the same loss and gradient; the summed one costs less."""
    n = actions.size
    # A state is its observation and its legal actions: some games' tensors
    # leave out what decides the legal set (repeated_leduc_poker's between-hands
    # state observes like a betting one), and one mask for both would make
    # the taken action illegal (log-probability -1e9, the update diverges).
    flat = np.ascontiguousarray(
      np.concatenate(
        [self.obs.reshape(n, -1), self.legal.reshape(n, -1).astype(self.obs.dtype)], axis=1
      )
    )
    # Rows compared as raw bytes: a 1-D sort, much cheaper than
    # `unique(axis=0)`'s lexicographic one.
    rows_as_bytes = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1])))
    unique, first, inverse = np.unique(
      rows_as_bytes.ravel(), return_index=True, return_inverse=True
    )
    if 2 * len(unique) <= n:
      obs = self.obs.reshape((n,) + self.obs.shape[2:])[first]
      table = _ObservationTable(self.module, obs, self.legal.reshape(n, -1)[first], self.device)
      return StateBatch.aggregate(inverse.reshape(actions.shape), actions, adv, ret, table)
    return _SampleBatch.create(self.module, self.obs, self.legal, actions, adv, ret, self.device)


def _normalised(adv: np.ndarray) -> np.ndarray:
  """Advantages normalised over the whole batch (float64 statistics)."""
  adv = adv.ravel().astype(np.float64)
  return (adv - adv.mean()) / (adv.std() + 1e-8)


@dataclasses.dataclass
class StateBatch:
  """A rollout's samples summed per distinct observation (see the module doc).

  `rows [U]` distinct observation rows; `count [U]` samples at each;
  `taken [U, A]` samples per action; `adv_pos`/`adv_neg [U, A]` the sums of
  the positive / negative normalised advantages of each action's samples;
  `ret_mean [U]` mean return; `ret_sq_dev [U]` the returns' summed squared
  deviation from it (the value loss's constant part); `old_logp [U, A]` the
  rollout policy's log-probabilities; `observations` the table they index.
  """

  rows: torch.Tensor
  count: torch.Tensor
  taken: torch.Tensor
  adv_pos: torch.Tensor
  adv_neg: torch.Tensor
  ret_mean: torch.Tensor
  ret_sq_dev: torch.Tensor
  old_logp: torch.Tensor
  observations: _ObservationTable

  @property
  def size(self) -> int:
    return len(self.rows)

  @classmethod
  def aggregate(
    cls,
    rows: np.ndarray,
    actions: np.ndarray,
    adv: np.ndarray,
    ret: np.ndarray,
    observations: _ObservationTable,
  ) -> StateBatch:
    """Sums `[T, B]` samples per row; advantages normalised over the batch."""
    unique, inverse = observations.distinct(rows.ravel())
    size, num_actions = len(unique), observations.legal.shape[1]
    adv = _normalised(adv)
    ret = ret.ravel().astype(np.float64)
    key = inverse * num_actions + actions.ravel()

    def per_action(weights: np.ndarray | None = None) -> np.ndarray:
      return np.bincount(key, weights, minlength=size * num_actions).reshape(size, num_actions)

    count = np.bincount(inverse, minlength=size)
    ret_mean = np.bincount(inverse, ret, minlength=size) / count
    ret_sq_dev = np.bincount(inverse, (ret - ret_mean[inverse]) ** 2, minlength=size)
    device = observations.device
    count_t, taken_t, adv_pos_t, adv_neg_t, ret_mean_t, ret_sq_dev_t = (
      torch.as_tensor(x, dtype=torch.float32, device=device)
      for x in (
        count,
        per_action(),
        per_action(np.maximum(adv, 0.0)),
        per_action(np.minimum(adv, 0.0)),
        ret_mean,
        ret_sq_dev,
      )
    )
    rows_t = torch.as_tensor(unique, device=device)
    with torch.no_grad():  # no update yet: the rollout's policy
      old_logp = observations.log_probs(rows_t)
    return cls(
      rows_t,
      count_t,
      taken_t,
      adv_pos_t,
      adv_neg_t,
      ret_mean_t,
      ret_sq_dev_t,
      old_logp,
      observations,
    )

  def losses(self, mb: torch.Tensor, clip_coef: float) -> tuple[torch.Tensor, ...]:
    """`(policy, value, entropy, approx_kl)` losses, means over the samples at `mb`.

    Per sample the clipped objective is `min(r A, clip(r) A)`, which is
    `A min(r, clip(r))` for `A >= 0` and `A max(r, clip(r))` for `A < 0`; `r`
    is shared by all samples of an (observation, action), so the sum over
    them needs only the two advantage sums.
    """
    observations = self.observations
    u = self.rows[mb]
    n = self.count[mb].sum()
    logp = observations.log_probs(u)
    taken = self.taken[mb] > 0
    log_ratio = torch.where(taken, logp - self.old_logp[mb], torch.zeros_like(logp))
    ratio = log_ratio.exp()
    clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    pg_loss = (
      -(
        self.adv_pos[mb] * torch.minimum(ratio, clipped)
        + self.adv_neg[mb] * torch.maximum(ratio, clipped)
      ).sum()
      / n
    )
    values = _critic(observations.module)(observations.obs[u])[:, 0]
    v_loss = (
      0.5 * (self.count[mb] * (values - self.ret_mean[mb]) ** 2 + self.ret_sq_dev[mb]).sum() / n
    )
    entropy = -(self.count[mb] * (logp.exp() * logp).sum(1)).sum() / n
    with torch.no_grad():
      approx_kl = (self.taken[mb] * ((ratio - 1) - log_ratio)).sum() / n
    return pg_loss, v_loss, entropy, approx_kl


@dataclasses.dataclass
class _SampleBatch:
  """A rollout's samples, one row each (CleanRL-style PPO).

  `obs [N, ...]`, `legal [N, A]`, `action [N]`, `adv [N]` advantages
  normalised over the batch, `ret [N]` returns, `old_logp [N]` the rollout
  policy's log-probability of each taken action.
  """

  module: torch_policy.TorchPolicy
  obs: torch.Tensor
  legal: torch.Tensor
  action: torch.Tensor
  adv: torch.Tensor
  ret: torch.Tensor
  old_logp: torch.Tensor

  @property
  def size(self) -> int:
    return len(self.action)

  @classmethod
  def create(
    cls,
    module: torch_policy.TorchPolicy,
    obs: np.ndarray,
    legal: np.ndarray,
    actions: np.ndarray,
    adv: np.ndarray,
    ret: np.ndarray,
    device: torch.device,
  ) -> _SampleBatch:
    """Flattens `[T, B, ...]` samples; advantages normalised over the batch."""
    n = actions.size
    obs_t = torch.as_tensor(obs.reshape((n,) + obs.shape[2:]), device=device)
    legal_t = torch.as_tensor(legal.reshape(n, -1), device=device)
    action_t = torch.as_tensor(actions.ravel(), device=device)
    batch = cls(
      module,
      obs_t,
      legal_t,
      action_t,
      torch.as_tensor(_normalised(adv), dtype=torch.float32, device=device),
      torch.as_tensor(ret.ravel(), dtype=torch.float32, device=device),
      action_t,
    )
    with torch.no_grad():  # no update yet: the rollout's policy
      batch.old_logp = batch.log_probs(torch.arange(n, device=device))
    return batch

  def log_probs(self, mb: torch.Tensor) -> torch.Tensor:
    """`[M]` log-probabilities of the taken actions of samples `mb`."""
    logits = networks.masked_logits(self.module.net(self.obs[mb]), self.legal[mb])
    return torch.log_softmax(logits, dim=1).gather(1, self.action[mb, None])[:, 0]

  def losses(self, mb: torch.Tensor, clip_coef: float) -> tuple[torch.Tensor, ...]:
    """`(policy, value, entropy, approx_kl)` losses, means over the samples `mb`."""
    logits = networks.masked_logits(self.module.net(self.obs[mb]), self.legal[mb])
    logp_all = torch.log_softmax(logits, dim=1)
    log_ratio = logp_all.gather(1, self.action[mb, None])[:, 0] - self.old_logp[mb]
    ratio = log_ratio.exp()
    adv = self.adv[mb]
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()
    v_loss = 0.5 * ((_critic(self.module)(self.obs[mb])[:, 0] - self.ret[mb]) ** 2).mean()
    entropy = -(logp_all.exp() * logp_all).sum(1).mean()
    with torch.no_grad():
      approx_kl = ((ratio - 1) - log_ratio).mean()
    return pg_loss, v_loss, entropy, approx_kl
