"""NeuPL's learner: one conditional network learns best responses to K mixtures at once.

NeuPL (Liu et al., ICLR 2022) keeps a whole population in one policy
`pi_theta(a | o, c)`: member i is the network told `c_i`, the i-th row of
the interaction graph `Sigma` (the mixture over the opponents' members that
member i best-responds to, `psro.variants.neupl`). This module is the
learner. One request (`base.ConditionedMixtures`) carries K rows, each a
mixture over every opponent's population and the condition `c_k` the
network is told, and trains them all in one PPO learner (`ppo`), CleanRL
style, over the compiled tree:

  * every game of the batch draws a row `k ~ row_weights` at its episode
    start, then each opponent's member from row k's mixture
    (`ConditionedTreeEnv`);
  * the learner observes its information-state tensor followed by `c_k`, so
    the distinct observations are the (row, information state) pairs, a
    table of `K * I_p` rows (`conditioned_table`), and PPO's per-observation
    sums (`ppo.StateBatch`) apply unchanged;
  * one Adam and one loss over all rows: the members share every parameter,
    so what one learns against its mixture is there for the others;
  * rows marked `anchored` (a population's members, which the other rows'
    mixtures are made of) are held near the answers of the network the call
    continues: `anchor_coef` times the KL divergence from those answers, at
    a random `anchor_batch` of the anchored (row, information state) pairs
    per minibatch, joins PPO's loss. Without it every call moves the old
    members too (the rows share parameters), both populations at once, so
    each member answers opponents that have since changed and the members
    stop being best responses to their rows.

A member is a view of the network, `ConditionalMember(network, c_i)`: an
OpenSpiel policy whose `[I_p, A]` behaviour matrix is one batched forward
pass over the information-state table with `c_i` appended
(`member_matrices` gives K members' in one pass).

A plain `MemberMixture` request is one row whose condition is the opponents'
weights, so plain PSRO can ask this oracle too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pyspiel
import torch
from open_spiel.python import policy as policy_lib

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, ppo, rollouts, torch_policy
from openspiel_psro_ext.records import schema
from openspiel_psro_ext.simulated import simulation


@dataclasses.dataclass
class NeuPLConfig(ppo.PPOConfig):
  """The learner's hyperparameters: PPO's (`ppo.PPOConfig`), with a wider
  network for the whole population, fewer games per update (more updates
  per episode: every row needs its own), and no schedules: a constant,
  smaller learning rate and an entropy bonus that stays on.

  Why not PPO's schedules: a PPO best response starts from a fresh network,
  so annealing its entropy bonus to zero only sharpens an answer it has
  already explored its way to. NeuPL's network trains on from one call to
  the next, and a new row starts from what the network answers at nearby
  conditions. Trained without the bonus at the end of each call, with PPO's
  high learning rate, the softmax saturates: the actions a new row's best
  response needs keep vanishing probabilities, are never sampled, so give no
  gradient, and the new member stays as exploitable as the mixture it
  answers, iteration after iteration. A constant bonus keeps every legal
  action sampled (too large a one keeps the members so random that their own
  exploitability becomes the floor of the output's), and a constant, smaller
  learning rate is NeuPL's continuous training: no call restarts from a
  large step that sharpens the policy faster than the bonus holds it and
  shakes the rows already learnt.
  """

  # anchor_coef: the weight of the anchored rows' KL term (module doc; 0: off);
  # anchor_batch: the (row, information state) pairs it reads per minibatch.
  hidden: tuple[int, ...] = schema.new_default(ppo.PPOConfig, "hidden", (128, 128))
  num_envs: int = schema.new_default(ppo.PPOConfig, "num_envs", 512)
  learning_rate: float = schema.new_default(ppo.PPOConfig, "learning_rate", 3e-3)
  anneal_lr: bool = False
  ent_coef_final: float = schema.new_default(ppo.PPOConfig, "ent_coef_final", 0.05)
  anchor_coef: float = schema.setting(0.3, min=0)
  anchor_batch: int = schema.setting(1024, min=1)


def conditioned_table(obs_table: np.ndarray, conditions: np.ndarray) -> np.ndarray:
  """`[I, d]` observations and `[K, C]` conditions -> `[K * I, d + C]`: row
  `k * I + i` is observation i followed by condition k."""
  num_rows, num_infostates = len(conditions), len(obs_table)
  return np.concatenate(
    [
      np.tile(obs_table.reshape(num_infostates, -1), (num_rows, 1)),
      np.repeat(np.asarray(conditions, dtype=np.float32), num_infostates, axis=0),
    ],
    axis=1,
  ).astype(np.float32)


@torch.no_grad()
def member_matrices(
  network: torch_policy.TorchPolicy, tree: GameTree, conditions: np.ndarray
) -> np.ndarray:
  """`[K, I_p, A]` behaviour matrices of the members told `[K, C]` conditions:
  one forward pass over the conditioned table."""
  table = tree.infostates[network.player]
  obs = torch_policy.observation_table(tree, network.player, torch_policy.OBS_INFO_STATE)
  legal = np.tile(table.legal_mask, (len(conditions), 1))
  device = next(network.parameters()).device
  probs = network(
    torch.as_tensor(conditioned_table(obs, conditions), device=device),
    torch.as_tensor(legal, device=device),
  )
  matrix = probs.double().cpu().numpy() * legal
  matrix /= matrix.sum(axis=1, keepdims=True)
  return matrix.reshape(len(conditions), table.num_infostates, tree.num_actions)


class ConditionalMember(policy_lib.Policy):
  """Member `(network, condition)`: the shared network told one condition.

  An OpenSpiel `Policy` (`action_probabilities`), a batched policy
  (`probabilities`, `simulation.BatchedPolicy`) and a matrix policy
  (`matrix`). It holds no weights of its own (no `state_dict`): a run
  checkpoints the network once per population.
  """

  uses_observations = True  # simulation.BatchedPolicy

  def __init__(self, network: torch_policy.TorchPolicy, condition: np.ndarray):
    policy_lib.Policy.__init__(self, network.game, [network.player])
    self.network = network
    self.player = network.player
    self.condition = np.asarray(condition, dtype=np.float32)

  def matrix(self, tree: GameTree) -> np.ndarray:
    """`[I_p, A]` exact behaviour matrix."""
    return member_matrices(self.network, tree, self.condition[None])[0]

  def probabilities(self, obs: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """`[B, d]` information-state tensors, `[B, A]` bool -> `[B, A]`."""
    flat = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
    told = np.broadcast_to(self.condition, (len(obs), len(self.condition)))
    return self.network.probabilities(np.concatenate([flat, told], axis=1), legal)

  def action_probabilities(
    self, state: pyspiel.State, player_id: int | None = None
  ) -> dict[int, float]:
    player = state.current_player() if player_id is None else player_id
    legal_actions = state.legal_actions(player)
    legal = np.zeros((1, self.game.num_distinct_actions()), dtype=bool)
    legal[0, legal_actions] = True
    obs = np.asarray(state.information_state_tensor(player), dtype=np.float32)[None]
    probs = self.probabilities(obs, legal)[0][legal_actions]
    return {a: float(p) for a, p in zip(legal_actions, probs / probs.sum())}


class ConditionedTreeEnv(rollouts.TreeVecEnv):
  """`TreeVecEnv` whose games each play one row of `ConditionedMixtures`.

  At each episode start a game draws its row k, then its opponents' members
  from row k's mixtures. Observations are rows of the conditioned table
  (`conditioned_table`): `k * I_p + infostate`.
  """

  def __init__(
    self,
    tree: GameTree,
    player: int,
    opponents: base.ConditionedMixtures,
    num_envs: int,
    seed: int = 0,
  ):
    super().__init__(tree, player, opponents, num_envs, seed)
    conditions = np.asarray(opponents.conditions, dtype=np.float32)
    self.num_infostates = len(self.obs_table)
    self._row_cum = simulation.cumulative_rows(np.asarray(opponents.row_weights, np.float64))
    self._row_member_cums = [
      simulation.cumulative_rows(np.asarray(opponents.weights[q], dtype=np.float64))
      for q, _ in self._opponents
    ]
    self._game_rows = np.zeros(num_envs, dtype=np.int64)
    self.obs_table = conditioned_table(self.obs_table, conditions)
    self.obs_shape = self.obs_table.shape[1:]
    self.legal_mask = np.tile(self.legal_mask, (len(conditions), 1))

  def _draw_members(self, idx: np.ndarray) -> None:
    rows = simulation.sample_index(self._row_cum, len(idx), self._rng)
    self._game_rows[idx] = rows
    for j, cum in enumerate(self._row_member_cums):
      self._members[j, idx] = simulation.sample_rows(cum[rows], self._rng)

  @property
  def infostates(self) -> np.ndarray:
    """`[B]` the games' rows of the conditioned table."""
    return self._game_rows * self.num_infostates + self.tree.infostate[self._hist]


def one_row(opponents: base.MemberMixture, player: int) -> base.ConditionedMixtures:
  """A `MemberMixture` as one row told the opponents' weights."""
  told = [np.asarray(w, dtype=np.float64) for q, w in enumerate(opponents.weights) if q != player]
  return base.ConditionedMixtures(
    populations=opponents.populations,
    weights=[None if w is None else np.asarray(w)[None] for w in opponents.weights],
    conditions=np.concatenate(told)[None],
    row_weights=np.ones(1),
  )


class NeuPLOracle(base.Oracle):
  """Conditional best responses to K mixtures in one PPO learner (module doc).

  The result is `ConditionalMember(network, conditions[-1])` (the last row's
  member; its `network` is every row's); a request whose `previous` is such a
  member and whose plan `continues` trains that network on.
  """

  name = "neupl"
  Config = NeuPLConfig
  psro_defaults = dict(time_budget_s=3.0)
  trains = True

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    opponents = request.opponents
    if isinstance(opponents, base.MemberMixture):
      opponents = one_row(opponents, request.player)
    if not isinstance(opponents, base.ConditionedMixtures) or request.tree is None:
      raise ValueError(
        "the neupl oracle trains over a compiled tree against member mixtures"
        f" (conditioned or not); got {type(opponents).__name__}"
        f"{' without a tree' if request.tree is None else ''}."
      )
    return train(request, request.tree, opponents, self.config)


def _network(
  request: base.BestResponseRequest, obs_dim: int, cfg: NeuPLConfig
) -> tuple[torch_policy.TorchPolicy, bool]:
  """A fresh actor-critic over `[d + C]` inputs, or the previous one's to
  train on; and whether it continues the previous one."""
  assert request.game is not None
  network = torch_policy.TorchPolicy(
    request.game, request.player, (obs_dim,), cfg.hidden, "mlp", "softmax", with_value=True
  )
  previous = request.previous.module if request.previous is not None else None
  continues = request.plan.continues and isinstance(previous, ConditionalMember)
  if continues:
    assert isinstance(previous, ConditionalMember)
    network.load_state_dict(previous.network.state_dict())
  return network, continues


def _anchor(
  module: torch_policy.TorchPolicy,
  env: ConditionedTreeEnv,
  anchored: np.ndarray,
  cfg: NeuPLConfig,
  device: torch.device,
) -> Callable[[], torch.Tensor]:
  """`anchor_coef` times the mean KL(start || module) over a random
  `anchor_batch` of the anchored rows' (row, information state) pairs (a
  fresh draw per call: one per minibatch); `start` is `module`'s answers
  now, before training: those of the network it continues."""
  num_infostates = env.num_infostates
  rows = (np.flatnonzero(anchored)[:, None] * num_infostates + np.arange(num_infostates)).ravel()
  obs = torch.as_tensor(env.obs_table[rows], device=device)
  legal = torch.as_tensor(env.legal_mask[rows], device=device)
  with torch.no_grad():
    target = module(obs, legal)
    target_logp = torch.log(target.clamp_min(1e-30))
  batch = min(cfg.anchor_batch, len(rows))

  def regularizer() -> torch.Tensor:
    idx = torch.randint(len(rows), (batch,), device=device)
    logp = torch.log_softmax(networks.masked_logits(module.net(obs[idx]), legal[idx]), dim=1)
    kl = (target[idx] * (target_logp[idx] - logp)).sum(1).mean()
    return cfg.anchor_coef * kl

  return regularizer


def train(
  request: base.BestResponseRequest,
  tree: GameTree,
  opponents: base.ConditionedMixtures,
  cfg: NeuPLConfig,
) -> base.PopulationMember:
  """PPO on all rows at once (PPO's loop, `ppo.train`, over the
  conditioned environment); returns the last row's member."""
  networks.seed_torch(request.seed, cfg.num_threads)
  device = networks.resolve_device(cfg.device)
  player = request.player
  env = ConditionedTreeEnv(tree, player, opponents, cfg.num_envs, request.seed)
  module, continues = _network(request, env.obs_table.shape[1], cfg)
  module = module.to(device)
  budget = rollouts.Budget(
    cfg.total_episodes,
    cfg.total_steps,
    cfg.time_budget_s if request.time_budget_s is None else request.time_budget_s,
  )
  log = rollouts.TrainingLog(
    f"neupl p{player}",
    budget,
    cfg.num_envs,
    cfg.progress,
    ppo.LOSS_KEYS,
    request.plan.schedule_span,
  )
  optimizer = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
  rollout = ppo.TableRollout(module, env, env.obs_table, cfg.num_steps, device)
  rng = np.random.default_rng([request.seed, 1])
  anchored = opponents.anchored
  regularizer = None
  if cfg.anchor_coef > 0 and continues and anchored is not None and anchored.any():
    regularizer = _anchor(module, env, anchored, cfg, device)
  updates = ppo.train(rollout, module, optimizer, cfg, log, rng, device, regularizer=regularizer)
  log.close()
  module = module.cpu().eval()
  member = ConditionalMember(module, opponents.conditions[-1])
  stats: dict[str, Any] = dict(
    algorithm="neupl",
    device=str(device),
    episodes=log.episodes,
    steps=log.steps,
    seconds=log.budget.elapsed,
    curves=log.curves,
    updates=updates,
    rows=len(opponents.conditions),
  )
  return base.PopulationMember(matrix=member.matrix(tree), module=member, stats=stats)


# -- a population's networks on disk ----------------------------------------
#
# A NeuPL run directory keeps, after each iteration, `neupl/step<NNNNN>/`
# (named by the records the commit completes) with `network{p}.pt`,
# population p's `TorchPolicy` state_dict, and `sigma{p}.npy`, its `Sigma`
# (`runs.neupl.write` writes them atomically).

GRAPH_DIRECTORY = "neupl"


@dataclasses.dataclass
class PopulationGraph:
  """Per population: its network (None before its first training) and
  `Sigma` (`[M, M - 1]`, row k over the opponent's members)."""

  networks: list[torch_policy.TorchPolicy | None]
  sigma: list[np.ndarray]

  def conditions(
    self,
    population: int,
    width: int,
    rows: np.ndarray | None = None,
    members: np.ndarray | None = None,
  ) -> np.ndarray:
    """`[M, 2 * width]` what the network is told: a row of `Sigma` (or of
    `rows`) padded to `width`, then the one-hot index of the member the row
    is (`members`: `[M]` indices, -1 for a row that is no member; default:
    row i of `Sigma` is member i).

    Why the index: PSRO-Nash's rows of neighbouring members are often
    nearly equal (a new member the restricted Nash leaves out changes no
    later row), so a network told rows alone answers them alike and the
    population collapses onto a few distinct members (benchmarks/RESULTS.md).
    """
    if rows is None:
      rows = self.sigma[population]
      members = np.arange(len(rows))
    told = np.zeros((len(rows), 2 * width), dtype=np.float32)
    told[:, : rows.shape[1]] = rows
    if members is not None:
      named = np.flatnonzero(members >= 0)
      told[named, width + members[named]] = 1.0
    return told


def graph_dir(run_path: str, records_done: int) -> str:
  return os.path.join(run_path, GRAPH_DIRECTORY, f"step{records_done:05d}")


def read_graph(path: str, num_populations: int = 2) -> PopulationGraph:
  """A step directory's networks (weights-only torch loads) and `Sigma`.

  Raises:
    UsageError: the directory or one of its files is missing or unreadable.
  """
  if not os.path.isdir(path):
    raise UsageError(f"{path} is missing: no NeuPL networks for that step.")
  networks: list[torch_policy.TorchPolicy | None] = []
  sigma = []
  for p in range(num_populations):
    for name in (f"network{p}.pt", f"sigma{p}.npy"):
      try:
        if name.endswith(".pt"):
          state_dict = torch.load(os.path.join(path, name), map_location="cpu", weights_only=True)
          networks.append(torch_policy.TorchPolicy.from_state_dict(state_dict))
        else:
          sigma.append(np.load(os.path.join(path, name), allow_pickle=False))
      except Exception as e:  # torch raises many types for a bad file
        raise UsageError(f"checkpoint {os.path.join(path, name)} is unreadable ({e}).") from e
  return PopulationGraph(networks, sigma)


def condition_width(network: torch_policy.TorchPolicy) -> int:
  """The width of the `Sigma` rows a network is told (its input is the
  observation, a row, then a member's one-hot index)."""
  return (network.arch["obs_shape"][0] - network.game.information_state_tensor_size()) // 2


def load_members(
  run_path: str, records_done: int, sizes: list[int]
) -> list[list[ConditionalMember]]:
  """Per population, members `1..sizes[p]-1` as the last of `records_done`
  records describes them (the previous commit's networks): OpenSpiel
  policies, for `load_run`."""
  graph = read_graph(graph_dir(run_path, records_done - 1), len(sizes))
  out = []
  for p, network in enumerate(graph.networks):
    assert network is not None
    told = graph.conditions(p, condition_width(network))
    out.append([ConditionalMember(network, told[k]) for k in range(1, sizes[p])])
  return out
