"""The replay-training loop shared by the off-policy oracles (DQN, SAC, MPO, CrossQ).

They all train the same way; only their losses and targets differ:

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
`act` and its losses in `update`. SAC, CrossQ and MPO are
`ActorCriticLearner`s: they choose what they hand back (the actor, or the
critics' greedy or Boltzmann policy) and can start their critics and actor
from the previous best response's. `train(request, config, learner_cls,
algorithm)` runs the loop and returns the `PopulationMember`.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

import numpy as np
import torch
from torch import nn

from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import torch_policy
from openspiel_psro_ext.records import schema
from openspiel_psro_ext.simulated import simulation


@dataclasses.dataclass
class ReplayOptions(torch_policy.TrainingOptions):
  """Options shared by the replay-based oracles (DQN, SAC, MPO, CrossQ)."""

  num_envs: int = schema.setting(256, min=1, bytes_each=64)
  buffer_size: int = schema.setting(200_000, min=1, bytes_each=16)
  batch_size: int = schema.setting(1024, min=1, bytes_each=16)
  gamma: float = schema.setting(1.0, min=0, max=1)
  learning_starts: int = schema.setting(10_000, min=0)  # transitions before the first update
  gradient_steps: int = schema.setting(2, min=1, max=1_000_000)  # per vectorised environment step
  max_grad_norm: float = schema.setting(10.0, min=0)
  log_every: int = schema.setting(50, min=1)  # environment steps between curve points


def linear_decay(start: float, end: float, fraction: float, over: float) -> float:
  """`start` moving linearly to `end` over the first `over` of the budget
  (`fraction` of it spent), then `end`: the learners' exploration schedules."""
  return max(end, start + (end - start) * fraction / over)


class ReplayBuffer:
  """A ring buffer of transitions `(obs, action, reward, next_obs, next_legal, done)`.

  Stored as numpy arrays of `capacity` rows; `add` takes a whole vectorised
  step (`[B, ...]` arrays) at once, `sample` returns `[batch, ...]` arrays.
  """

  def __init__(
    self, capacity: int, obs_shape: Sequence[int], num_actions: int, rng: np.random.Generator
  ):
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

  def add(
    self,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
    next_legal: np.ndarray,
    done: np.ndarray,
  ) -> None:
    rows = (self._pos + np.arange(len(action))) % self.capacity
    self.obs[rows], self.action[rows], self.reward[rows] = obs, action, reward
    self.next_obs[rows], self.next_legal[rows] = next_obs, next_legal
    self.done[rows] = done
    self._pos = int(rows[-1] + 1) % self.capacity
    self.size = min(self.size + len(action), self.capacity)

  def sample(self, batch_size: int) -> tuple[np.ndarray, ...]:
    rows = self._rng.integers(0, self.size, batch_size)
    return (
      self.obs[rows],
      self.action[rows],
      self.reward[rows],
      self.next_obs[rows],
      self.next_legal[rows],
      self.done[rows],
    )


@dataclasses.dataclass
class Transitions:
  """A sampled batch on the learner's device: `[batch, ...]` tensors."""

  obs: torch.Tensor
  action: torch.Tensor
  reward: torch.Tensor
  next_obs: torch.Tensor
  next_legal: torch.Tensor
  done: torch.Tensor


_OptionsT = TypeVar("_OptionsT", bound=ReplayOptions)


class ReplayLearner(abc.ABC, Generic[_OptionsT]):
  """One off-policy algorithm (with options of type `_OptionsT`): its
  exploration and its losses.

  Class attributes:
    output: the best response's `TorchPolicy` output ("greedy" or "softmax").
    update_keys: names of the statistics `update` returns, in order.
    schedule_keys: names of the values `schedule` returns (curves too).
  """

  output: ClassVar[str]
  update_keys: ClassVar[tuple[str, ...]]
  schedule_keys: ClassVar[tuple[str, ...]] = ()

  def __init__(self, config: _OptionsT, run: torch_policy.TrainingSetup):
    self.config = config
    self.run = run
    # Transitions before the first update; a warm-started learner may lower it.
    self.learning_starts = config.learning_starts

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


@dataclasses.dataclass
class ActorCriticOptions(ReplayOptions):
  """Options of the learners with an actor and action-value critics (SAC,
  CrossQ, MPO): what they hand back and what they carry between best
  responses (`ActorCriticLearner`)."""

  critic_greedy_result: bool = True  # the result: greedy in the critics
  # > 0: with `critic_greedy_result`, the result plays softmax(min_i Q_i / T)
  # instead of the argmax, at T = result_temperature x the game's payoff range
  # (max_utility - min_utility), so one setting suits games of any scale.
  result_temperature: float = schema.setting(0.0, min=0)
  # Start the critics from the previous best response's result (class doc),
  # and update after `warm_learning_starts` transitions, not `learning_starts`.
  warm_start_critics: bool = False
  warm_learning_starts: int = schema.setting(2048, min=0)
  # Start the actor from the previous best response's too (a critics' result
  # carries it: `TorchPolicy(actor=True)`). The critics' targets follow the
  # actor, so a fresh actor drags warm critics back towards a near-uniform
  # policy's values for much of a short best response.
  warm_start_actor: bool = False


# PSRO's preset for the actor-critic learners (MPO, CrossQ): a short best
# response makes few gradient steps, so the critics carry over from the
# previous one, and smaller batches give more steps; the result is the
# critics' Boltzmann policy, which PSRO mixes better than their argmax.
PSRO_ACTOR_CRITIC = dict(
  critic_greedy_result=True, warm_start_critics=True, result_temperature=0.01, batch_size=256
)


_ActorCriticOptionsT = TypeVar("_ActorCriticOptionsT", bound=ActorCriticOptions)


class ActorCriticLearner(ReplayLearner[_ActorCriticOptionsT]):
  """A learner whose `critics` give `Q(s, a)` for every action.

  Its result (`critic_greedy_result`) plays the best legal action of the
  smallest critic, `argmax_a min_i Q_i(s, a)`: `TorchPolicy(output="greedy",
  q_networks=len(critics))`. A best response to fixed opponents can be
  deterministic, and an actor fitted to the critics lags them. With
  `result_temperature` it plays `softmax(min_i Q_i / T)` instead
  (`output="boltzmann"`): inside PSRO the members are also the opponents'
  strategies, and the argmax is arbitrary where the critics barely differ
  (information states the learner rarely reaches), as PPO's greedy result is
  (`ppo.py`). Off, the result is the actor, carrying the critics
  (`TorchPolicy(critics=k)`).

  Inside PSRO (`warm_start_critics`) the critics start from the previous best
  response's result: its opponents' mixture was the last meta-strategy, so
  its action values are a close start, and a best response of a few seconds
  (a few hundred gradient steps) continues learning where the last one
  stopped instead of starting from zero. With `warm_start_actor` the actor
  starts from the previous one's as well (a critics' result carries it,
  `TorchPolicy(actor=True)`); a result whose shape differs (an older
  member's) starts nothing warm.
  """

  critics: nn.ModuleList  # built by the subclass, before `warm_start`
  batch_renorm_critics: ClassVar[bool] = False  # CrossQ's renormalise batches

  def _result_shape(self) -> torch_policy.TorchPolicy:
    """An untrained module shaped as `result_module`'s: the critics' greedy
    policy, or the actor carrying the critics."""
    actor = self.run.module
    arch, greedy = actor.arch, self.config.critic_greedy_result
    carries_actor = greedy and self.config.warm_start_actor
    return torch_policy.TorchPolicy(
      actor.game,
      arch["player"],
      arch["obs_shape"],
      arch["hidden"],
      arch["kind"],
      output=(
        arch["output"]
        if not greedy
        else "boltzmann"
        if self.config.result_temperature
        else "greedy"
      ),
      obs_type=arch["obs_type"],
      q_networks=len(self.critics) if greedy else 1,
      batch_renorm=self.batch_renorm_critics,
      critics=0 if greedy else len(self.critics),
      temperature=self.config.result_temperature
      * simulation.utility_range(actor.game, "set result_temperature=0 (the critics' argmax)")
      if greedy and self.config.result_temperature
      else 0.0,
      actor=carries_actor,
      conv_channels=actor.conv_channels,
      conv_layers=actor.conv_layers,
    )

  def _critics_of(self, module: torch_policy.TorchPolicy) -> list[nn.Module]:
    """The critics inside a module shaped by `_result_shape`."""
    if self.config.critic_greedy_result:
      nets: list[nn.Module] = [module.net] if module.twin is None else [module.net, module.twin]
      return nets[: len(self.critics)]
    return list(module.critics)

  def warm_start(self) -> bool:
    """Loads the critics (`warm_start_critics`) and the actor
    (`warm_start_actor`) from the previous best response's result when it is
    shaped as ours, both when the request continues it (`TrainingPlan.continues`;
    a critics' result carries its actor only with `warm_start_actor`);
    returns whether it loaded anything."""
    cfg, previous, continues = self.config, self.run.previous, self.run.continues
    critics, actor = cfg.warm_start_critics or continues, cfg.warm_start_actor or continues
    if not (critics or actor) or previous is None or previous.arch != self._result_shape().arch:
      return False
    if critics:
      for critic, source in zip(self.critics, self._critics_of(previous)):
        critic.load_state_dict(source.state_dict())
      self.learning_starts = cfg.warm_learning_starts
    if actor and (not cfg.critic_greedy_result or previous.actor is not None):
      source = previous.actor if cfg.critic_greedy_result else previous.net
      self.run.module.net.load_state_dict(source.state_dict())
    return True

  def result_module(self) -> torch_policy.TorchPolicy:
    """The critics' greedy policy, or the actor with the critics (class doc)."""
    result = self._result_shape()
    actor = result.actor if self.config.critic_greedy_result else result.net
    if actor is not None:
      actor.load_state_dict(self.run.module.net.state_dict())
    for critic, target in zip(self.critics, self._critics_of(result)):
      target.load_state_dict(critic.state_dict())
    return result.to(self.run.device)


def train(
  request: base.BestResponseRequest,
  cfg: _OptionsT,
  learner_cls: type[ReplayLearner[_OptionsT]],
  algorithm: str,
) -> base.PopulationMember:
  """Trains `learner_cls` by replay on the request's environment (module doc)."""
  run = torch_policy.setup(
    request,
    cfg,
    cfg.num_envs,
    learner_cls.output,
    learner_cls.update_keys + learner_cls.schedule_keys,
  )
  learner = learner_cls(cfg, run)
  device, env, log = run.device, run.env, run.log
  buffer = ReplayBuffer(cfg.buffer_size, env.obs_shape, env.num_actions, run.rng)
  obs, legal = env.reset()
  stats: list[torch.Tensor] = []
  grad_steps = env_steps = 0
  while not log.done:
    scheduled = learner.schedule(log.fraction)
    with torch.no_grad():
      action = learner.act(
        torch.as_tensor(obs, device=device), torch.as_tensor(legal, device=device)
      )
    next_obs, next_legal, reward, done = env.step(action)
    buffer.add(obs, action, reward, next_obs, next_legal, done)
    log.track(reward, done)
    obs, legal = next_obs, next_legal
    env_steps += 1

    if buffer.size >= learner.learning_starts:
      for _ in range(cfg.gradient_steps):
        batch = Transitions(
          *(torch.as_tensor(x, device=device) for x in buffer.sample(cfg.batch_size))
        )
        stats.append(learner.update(batch))
        grad_steps += 1

    if env_steps % cfg.log_every == 0 or log.done:
      means = (
        torch.stack(stats).mean(0).tolist() if stats else [float("nan")] * len(learner.update_keys)
      )
      log.record(
        **dict(zip(learner.update_keys, means)),
        **scheduled,
        **torch_policy.exact_value_point(request, run, cfg.eval_every),
      )
      stats = []
  run.module = learner.result_module()
  return torch_policy.finish(request, run, algorithm, gradient_steps=grad_steps)
