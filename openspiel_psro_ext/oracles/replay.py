"""The replay-training loop shared by the off-policy oracles (DQN, SAC).

Both algorithms train the same way; only their losses and targets differ:

    repeat until the budget is spent:
      act in `num_envs` games at once (the learner's `act`),
      add the `num_envs` transitions to a replay buffer,
      once the buffer holds `learning_starts` transitions: `gradient_steps`
        updates, each on a batch of `batch_size` transitions drawn uniformly
        from the buffer (the learner's `update`),
      every `log_every` environment steps: one curve point with the mean of
        the updates' statistics since the previous point.

A transition is `(obs, action, reward, next_obs, next_legal, done)`; the
environment restarts finished games at once, so `next_obs` after a `done`
belongs to a new episode and `done` masks it out of every target.

An algorithm is a `ReplayLearner`: its networks and optimisers, built on the
`TrainingSetup` (whose module is the best response), its exploration in
`act` and its losses in `update`. `train(request, config, learner_cls,
algorithm)` runs the loop and returns the `PopulationMember`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, Sequence

import numpy as np
import torch

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles import torch_policy


@dataclasses.dataclass
class ReplayOptions(torch_policy.TrainingOptions):
  """Options shared by the replay-based oracles (DQN, SAC)."""

  num_envs: int = 256
  buffer_size: int = 200_000
  batch_size: int = 1024
  gamma: float = 1.0
  learning_starts: int = 10_000  # transitions before the first update
  gradient_steps: int = 2  # per vectorised environment step
  max_grad_norm: float = 10.0
  log_every: int = 50  # environment steps between curve points


def linear_decay(start: float, end: float, fraction: float, over: float) -> float:
  """`start` moving linearly to `end` over the first `over` of the budget
  (`fraction` of it spent), then `end`: the learners' exploration schedules."""
  return max(end, start + (end - start) * fraction / over)


class ReplayBuffer:
  """A ring buffer of transitions `(obs, action, reward, next_obs, next_legal, done)`.

  Stored as numpy arrays of `capacity` rows; `add` takes a whole vectorised
  step (`[B, ...]` arrays) at once, `sample` returns `[batch, ...]` arrays.
  """

  def __init__(self, capacity: int, obs_shape: Sequence[int], num_actions: int,
               rng: np.random.Generator):
    self.capacity = capacity
    self.obs = np.zeros((capacity,) + tuple(obs_shape), dtype=np.float32)
    self.next_obs = np.zeros_like(self.obs)
    self.action = np.zeros(capacity, dtype=np.int64)
    self.reward = np.zeros(capacity, dtype=np.float32)
    self.next_legal = np.zeros((capacity, num_actions), dtype=bool)
    self.done = np.zeros(capacity, dtype=np.float32)
    self.size = 0
    self._pos = 0
    self._rng = rng

  def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
          next_obs: np.ndarray, next_legal: np.ndarray, done: np.ndarray) -> None:
    rows = (self._pos + np.arange(len(action))) % self.capacity
    self.obs[rows], self.action[rows], self.reward[rows] = obs, action, reward
    self.next_obs[rows], self.next_legal[rows] = next_obs, next_legal
    self.done[rows] = done
    self._pos = int(rows[-1] + 1) % self.capacity
    self.size = min(self.size + len(action), self.capacity)

  def sample(self, batch_size: int) -> tuple[np.ndarray, ...]:
    rows = self._rng.integers(0, self.size, batch_size)
    return (self.obs[rows], self.action[rows], self.reward[rows],
            self.next_obs[rows], self.next_legal[rows], self.done[rows])


@dataclasses.dataclass
class Transitions:
  """A sampled batch on the learner's device: `[batch, ...]` tensors."""

  obs: torch.Tensor
  action: torch.Tensor
  reward: torch.Tensor
  next_obs: torch.Tensor
  next_legal: torch.Tensor
  done: torch.Tensor


class ReplayLearner(abc.ABC):
  """One off-policy algorithm: its exploration and its losses.

  Class attributes:
    output: the best response's `TorchPolicy` output ("greedy" or "softmax").
    update_keys: names of the statistics `update` returns, in order.
    schedule_keys: names of the values `schedule` returns (curves too).
  """

  output: ClassVar[str]
  update_keys: ClassVar[tuple[str, ...]]
  schedule_keys: ClassVar[tuple[str, ...]] = ()

  def __init__(self, config: ReplayOptions, run: torch_policy.TrainingSetup):
    self.config = config
    self.run = run

  def schedule(self, fraction: float) -> dict[str, float]:
    """Sets learning rates etc. for `fraction` of the budget used; returns the
    values to log (`schedule_keys`)."""
    del fraction
    return {}

  @abc.abstractmethod
  def act(self, obs: torch.Tensor, legal: torch.Tensor) -> np.ndarray:
    """`[B]` actions to play from `[B, ...]` observations and `[B, A]` masks."""

  @abc.abstractmethod
  def update(self, batch: Transitions) -> torch.Tensor:
    """One gradient step; returns its `[len(update_keys)]` statistics."""

  def result_module(self) -> torch_policy.TorchPolicy:
    """The best response handed back: by default the module that acted."""
    return self.run.module


def train(request: base.BestResponseRequest, cfg: ReplayOptions,
          learner_cls: type[ReplayLearner], algorithm: str) -> base.PopulationMember:
  """Trains `learner_cls` by replay on the request's environment (module doc)."""
  run = torch_policy.setup(request, cfg, cfg.num_envs, learner_cls.output,
                           learner_cls.update_keys + learner_cls.schedule_keys)
  learner = learner_cls(cfg, run)
  device, env, log = run.device, run.env, run.log
  buffer = ReplayBuffer(cfg.buffer_size, env.obs_shape, env.num_actions, run.rng)
  obs, legal = env.reset()
  stats: list[torch.Tensor] = []
  grad_steps = env_steps = 0
  while not log.done:
    scheduled = learner.schedule(log.fraction)
    with torch.no_grad():
      action = learner.act(torch.as_tensor(obs, device=device),
                           torch.as_tensor(legal, device=device))
    next_obs, next_legal, reward, done = env.step(action)
    buffer.add(obs, action, reward, next_obs, next_legal, done)
    log.track(reward, done)
    obs, legal = next_obs, next_legal
    env_steps += 1

    if buffer.size >= cfg.learning_starts:
      for _ in range(cfg.gradient_steps):
        batch = Transitions(*(torch.as_tensor(x, device=device)
                              for x in buffer.sample(cfg.batch_size)))
        stats.append(learner.update(batch))
        grad_steps += 1

    if env_steps % cfg.log_every == 0 or log.done:
      means = (torch.stack(stats).mean(0).tolist() if stats
               else [float("nan")] * len(learner.update_keys))
      log.record(**dict(zip(learner.update_keys, means)), **scheduled,
                 **torch_policy.exact_value_point(request, run, cfg.eval_every))
      stats = []
  run.module = learner.result_module()
  return torch_policy.finish(request, run, algorithm, gradient_steps=grad_steps)
