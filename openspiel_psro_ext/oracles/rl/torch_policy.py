"""A trained network that is both a `torch.nn.Module` and an OpenSpiel `Policy`.

`TorchPolicy` wraps the acting network of an RL oracle (policy logits for PPO
and SAC, action values for DQN) for one player. It answers
`action_probabilities(state, player_id)` like any OpenSpiel policy,
`probabilities(obs, legal)` on batches like any `simulation.BatchedPolicy`
(simulated games), and `matrix(tree)` evaluates every information state of the
compiled tree in one batched forward pass, giving the exact `[I_p, A]`
behaviour matrix PSRO uses.

Without a compiled tree (`request.tree is None`), `setup` trains on a
`rollouts.PyspielVecEnv` and `finish` returns the member with `matrix=None`.

Checkpoints: the architecture (and the game and player) travels inside
`state_dict()` as the module's extra state, so

    module = TorchPolicy.from_state_dict(torch.load(path))

rebuilds it with no other information; `member_from_state_dict(tree, player,
state_dict)` rebuilds the whole `PopulationMember`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyspiel
import torch
from open_spiel.python import policy as policy_lib
from torch import nn

from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import networks, rollouts
from openspiel_psro_ext.records import schema
from openspiel_psro_ext.simulated import simulation

OBS_INFO_STATE = "info_state"
OBS_SEQUENCE = "observation_sequence"
OBS_OBSERVATION = "observation"


def observation_table(tree: GameTree, player: int, obs_type: str) -> np.ndarray:
  """`[I_p, ...]` what the learner observes at each of its information states."""
  if obs_type == OBS_INFO_STATE:
    tensors = tree.infostates[player].tensors
    if tensors is None:
      raise ValueError(
        f"{tree.game} has no information-state tensor; use"
        f" obs_type={OBS_SEQUENCE!r} with a GRU network."
      )
    return tensors
  if obs_type == OBS_SEQUENCE:
    return networks.observation_sequences(tree, player)
  if obs_type == OBS_OBSERVATION:
    # `[I_p, C, H, W]` where the game's observation is spatial (conv networks).
    shape = tuple(tree.game.observation_tensor_shape())
    states = tree.infostates[player].states
    table = np.asarray([s.observation_tensor(player) for s in states], dtype=np.float32)
    return table.reshape((len(states),) + shape)
  if obs_type in simulation.STRING_KINDS:  # a game without tensors
    states = tree.infostates[player].states
    return np.stack([simulation.state_observation(s, player, obs_type) for s in states])
  raise ValueError(f"unknown obs_type {obs_type!r}.")


def observed(game: pyspiel.Game, tree: GameTree | None, player: int, obs_type: str) -> str:
  """What the learner observes: `obs_type`, except that the default
  information-state tensor gives way to the observation tensor where the
  game has none (`simulation.observation_of`: in a perfect-information game
  the observation is the state).

  Raises:
    UsageError: the game has neither tensor.
  """
  if obs_type != OBS_INFO_STATE:
    return obs_type
  if tree is not None and tree.infostates[player].tensors is not None:
    return OBS_INFO_STATE
  kind = simulation.observation_of(game).kind
  if kind in simulation.STRING_KINDS:
    return kind  # a game without tensors: its encoded string
  return OBS_OBSERVATION if kind == simulation.OBSERVATION else OBS_INFO_STATE


class TorchPolicy(nn.Module, policy_lib.Policy):
  """One player's policy given by a network over its observations.

  Attributes:
    net: `networks.Network` producing `[B, A]` logits (`output="softmax"`) or
      action values (`output="greedy"`: play the best legal action;
      `output="boltzmann"`: play `softmax(values / temperature)` over the
      legal actions).
    twin: with `q_networks=2`, a second action-value network; the policy is
      greedy in the smaller of the two values (SAC's and CrossQ's critics).
    value: `[B, 1]` state-value network (PPO's critic), or None.
    critics: with `critics=k`, k action-value networks that travel with a
      softmax actor (SAC's, CrossQ's, MPO's critics) for warm starts; acting
      never reads them.
    actor: with `actor=True`, a softmax actor network that travels with an
      action-value policy (`output="greedy"` or `"boltzmann"`: the critics'
      result of SAC, CrossQ, MPO) for warm starts; acting never reads it.
    arch: the architecture arguments (saved in `state_dict`); `kind` as
      resolved (`networks.resolve_kind`: "auto" is saved as "conv" or "mlp").
  """

  uses_observations = True  # simulation.BatchedPolicy
  game: pyspiel.Game  # `policy_lib.Policy`'s, not a submodule

  def __init__(
    self,
    game: pyspiel.Game | str,
    player: int,
    obs_shape: Sequence[int],
    hidden: Sequence[int] = (128, 128),
    kind: str = networks.AUTO,
    output: str = "softmax",
    obs_type: str = OBS_INFO_STATE,
    with_value: bool = False,
    q_networks: int = 1,
    batch_renorm: bool = False,
    critics: int = 0,
    temperature: float = 0.0,
    actor: bool = False,
    conv_channels: int = 32,
    conv_layers: int = 2,
  ):
    nn.Module.__init__(self)
    if isinstance(game, str):
      game = pyspiel.load_game(game)
    policy_lib.Policy.__init__(self, game, [player])
    if output not in ("softmax", "greedy", "boltzmann"):
      raise ValueError(f"unknown output {output!r}; use 'softmax', 'greedy' or 'boltzmann'.")
    values = output in ("greedy", "boltzmann")
    if q_networks not in (1, 2) or (q_networks == 2 and not values):
      raise ValueError(
        f"q_networks={q_networks}: one network, or two action-value"
        " networks with output='greedy' or 'boltzmann'."
      )
    if actor and not values:
      raise ValueError(
        "actor=True carries an actor beside action values; with"
        f" output={output!r} the module is the actor."
      )
    if (output == "boltzmann") != (temperature > 0):
      raise ValueError(
        f"temperature={temperature}: output='boltzmann' needs a"
        " positive temperature, and only it takes one."
      )
    self.player = player
    kind = networks.resolve_kind(kind, obs_shape)
    self.conv_channels, self.conv_layers = int(conv_channels), int(conv_layers)
    self.arch: dict[str, Any] = dict(
      game=str(game),
      player=int(player),
      obs_shape=[int(d) for d in obs_shape],
      hidden=[int(h) for h in hidden],
      kind=kind,
      output=output,
      obs_type=obs_type,
      with_value=bool(with_value),
    )
    # Only where they differ from the defaults: older checkpoints' `arch` stays valid.
    if q_networks != 1:
      self.arch["q_networks"] = int(q_networks)
    if batch_renorm:
      self.arch["batch_renorm"] = True
    if critics:
      self.arch["critics"] = int(critics)
    if temperature:
      self.arch["temperature"] = float(temperature)
    if actor:
      self.arch["actor"] = True
    if kind == "conv":
      self.arch.update(conv_channels=self.conv_channels, conv_layers=self.conv_layers)
    # `batch_renorm` is the action-value networks' (CrossQ's critics), never an actor's.
    num_actions = game.num_distinct_actions()
    self.net = self.network(num_actions, out_scale=0.01, batch_renorm=batch_renorm and values)
    self.twin = self.network(num_actions, batch_renorm=batch_renorm) if q_networks == 2 else None
    # PPO's critic travels with the actor so warm starts keep both.
    self.value = self.network(1, out_scale=1.0) if with_value else None
    self.critics = nn.ModuleList(
      self.network(num_actions, batch_renorm=batch_renorm) for _ in range(critics)
    )
    self.actor = self.network(num_actions, out_scale=0.01) if actor else None

  def network(self, out_dim: int, **kwargs: Any) -> networks.Network:
    """A fresh network over this module's observations with its torso (kind,
    hidden widths, convolutions): `[B, *obs_shape] -> [B, out_dim]`.
    `kwargs` go to `networks.Network` (`out_scale`, `batch_renorm`, ...)."""
    arch = self.arch
    return networks.Network(
      arch["obs_shape"],
      out_dim,
      arch["hidden"],
      arch["kind"],
      conv_channels=self.conv_channels,
      conv_layers=self.conv_layers,
      **kwargs,
    )

  def greedy_form(self) -> TorchPolicy:
    """A copy that plays, everywhere, the legal action this policy ranks
    first (its most likely one; with action values, the best)."""
    form = copy.deepcopy(self)
    form.arch["output"] = "greedy"
    form.arch.pop("temperature", None)
    return form.eval()

  # -- checkpoints ----------------------------------------------------------

  def get_extra_state(self) -> dict[str, Any]:
    return dict(self.arch)

  def set_extra_state(self, state: dict[str, Any]) -> None:
    if state != self.arch:
      raise ValueError(f"checkpoint architecture {state} != module's {self.arch}.")

  @classmethod
  def from_state_dict(cls, state_dict: dict[str, Any]) -> TorchPolicy:
    """Rebuilds a saved `TorchPolicy` from its `state_dict()` alone."""
    arch = dict(state_dict["_extra_state"])
    game = arch.pop("game")
    player = arch.pop("player")
    module = cls(game, player, **arch)
    module.load_state_dict(state_dict)
    return module.eval()  # a member acts; batch renormalisation reads its statistics

  # -- acting ---------------------------------------------------------------

  def _output_probabilities(self, out: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """`[B, A]` action probabilities from network outputs and legal masks."""
    if self.arch["output"] == "greedy":
      best = networks.masked_logits(out, legal).argmax(dim=1)
      return nn.functional.one_hot(best, out.shape[1]).to(out.dtype)
    if self.arch["output"] == "boltzmann":
      out = out / self.arch["temperature"]
    return torch.softmax(networks.masked_logits(out, legal), dim=1) * legal

  def forward(self, obs: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """`[B, ...]` observations, `[B, A]` bool masks -> `[B, A]` probabilities."""
    out = self.net(obs)
    if self.twin is not None:
      out = torch.min(out, self.twin(obs))
    return self._output_probabilities(out, legal)

  @torch.no_grad()
  def probabilities(self, obs: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """`[B, ...]` observations (`simulation.observation_of`), `[B, A]` bool
    -> `[B, A]` numpy probabilities (`simulation.BatchedPolicy`)."""
    if self.arch["obs_type"] not in (OBS_INFO_STATE, OBS_OBSERVATION, *simulation.STRING_KINDS):
      raise ValueError(
        f"simulated games give one tensor per decision; this"
        f" policy observes {self.arch['obs_type']!r}."
      )
    device = next(self.parameters()).device
    probs = self(torch.as_tensor(obs, device=device), torch.as_tensor(legal, device=device))
    return probs.double().cpu().numpy()

  @torch.no_grad()
  def matrix(self, tree: GameTree | None = None, obs_table: np.ndarray | None = None) -> np.ndarray:
    """`[I_p, A]` exact behaviour matrix: one forward pass over all infostates."""
    tree = game_tree_lib.get_tree(tree if tree is not None else self.game)
    if obs_table is None:
      obs_table = observation_table(tree, self.player, self.arch["obs_type"])
    device = next(self.parameters()).device
    legal = tree.infostates[self.player].legal_mask
    probs = self(torch.as_tensor(obs_table, device=device), torch.as_tensor(legal, device=device))
    matrix = probs.double().cpu().numpy() * legal
    return matrix / matrix.sum(axis=1, keepdims=True)

  def _observation(self, state: pyspiel.State, player: int) -> np.ndarray:
    if self.arch["obs_type"] in simulation.STRING_KINDS:
      return simulation.state_observation(state, player, self.arch["obs_type"])
    if self.arch["obs_type"] == OBS_INFO_STATE:
      return np.asarray(state.information_state_tensor(player), dtype=np.float32)
    if self.arch["obs_type"] == OBS_OBSERVATION:
      tensor = np.asarray(state.observation_tensor(player), dtype=np.float32)
      return tensor.reshape(self.arch["obs_shape"])
    # Replay the history, collecting the player's observations at its turns.
    replay = self.game.new_initial_state()
    seq = []
    for action in state.history():
      if replay.current_player() == player:
        seq.append(replay.observation_tensor(player))
      replay.apply_action(action)
    seq.append(state.observation_tensor(player))
    length = self.arch["obs_shape"][0]
    out = np.zeros(self.arch["obs_shape"], dtype=np.float32)
    out[length - len(seq) :] = np.asarray(seq[-length:], dtype=np.float32)
    return out

  @torch.no_grad()
  def action_probabilities(
    self, state: pyspiel.State, player_id: int | None = None
  ) -> dict[int, float]:
    player = state.current_player() if player_id is None else player_id
    legal_actions = state.legal_actions(player)
    device = next(self.parameters()).device
    obs = torch.as_tensor(self._observation(state, player), device=device)[None]
    legal = torch.zeros(1, self.game.num_distinct_actions(), dtype=torch.bool, device=device)
    legal[0, legal_actions] = True
    probs = self(obs, legal)[0].double().cpu().numpy()
    probs = probs[legal_actions] / probs[legal_actions].sum()
    return {a: float(p) for a, p in zip(legal_actions, probs)}


def member_from_state_dict(
  tree: GameTree | None, player: int | None, state_dict: dict[str, Any], config: Any = None
) -> base.PopulationMember:
  """Rebuilds a `PopulationMember` (matrix and module) from a saved `state_dict`.

  `player` and `config` are checked against / ignored in favour of the
  architecture stored in the state dict; `tree` defaults to the saved game's.
  """
  del config  # The architecture is in the state dict.
  module = TorchPolicy.from_state_dict(state_dict)
  if player is not None and player != module.player:
    raise ValueError(f"state dict is player {module.player}'s, not {player}'s.")
  return base.PopulationMember(matrix=module.matrix(tree), module=module)


class TorchOracle(base.Oracle):
  """Base of the RL oracles: their members' modules are `TorchPolicy`s."""

  trains = True
  restores_modules = True

  def restore_module(
    self, tree: GameTree | pyspiel.Game, player: int, state_dict: dict[str, Any]
  ) -> TorchPolicy:
    """The module saved by `torch.save(member.module.state_dict())`.

    `tree` is the compiled game, or the pyspiel game in the simulated mode.
    """
    game = tree.game if isinstance(tree, GameTree) else tree
    module = TorchPolicy.from_state_dict(state_dict)
    if module.player != player or module.arch["game"] != str(game):
      raise ValueError(
        f"checkpoint is player {module.player}'s of"
        f" {module.arch['game']}, not player {player}'s of {game}."
      )
    return module


@dataclasses.dataclass
class TrainingOptions:
  """Options every RL oracle takes (each oracle's `Config` extends these).

  Budgets: 0 = unlimited; training stops at the first limit reached.
  """

  total_episodes: int = schema.setting(0, min=0)
  total_steps: int = schema.setting(0, min=0)
  time_budget_s: float = schema.setting(45.0, min=0)
  hidden: tuple[int, ...] = schema.setting((128, 128), min=1, network=True)
  # "auto": conv for [C, H, W] observations (obs_type="observation" on a board
  # game), else mlp; "gru", "lstm": with obs_type="observation_sequence".
  network: str = schema.setting(networks.AUTO, choices=(networks.AUTO, *networks.KINDS))
  # network="conv": channels of each 3x3 convolution
  conv_channels: int = schema.setting(32, min=1, max=4096)
  # network="conv": convolutions before the heads
  conv_layers: int = schema.setting(2, min=0, max=64)
  obs_type: str = schema.setting(
    OBS_INFO_STATE, choices=(OBS_INFO_STATE, OBS_SEQUENCE, OBS_OBSERVATION)
  )
  warm_start: bool = False  # from the player's previous best response (off:
  # in PSRO a fresh network explores the new best response better)
  device: str = schema.setting("cpu", pattern=r"cpu|cuda(:\d+)?|mps")  # "cuda" where available
  # Games in flight for a request without a tree (pyspiel games, far slower
  # to step than the tree: fewer games give more updates per second); 0
  # keeps the oracle's `num_envs`.
  simulated_num_envs: int = schema.setting(0, min=0, bytes_each=64)
  # torch CPU threads; 0 leaves torch's default
  num_threads: int = schema.setting(0, min=0, max=1024)
  progress: bool = True
  eval_every: int = schema.setting(0, min=0)  # exact evaluation every N curve points (curves only)


@dataclasses.dataclass
class TrainingSetup:
  """What every RL oracle builds first (see `setup`).

  `rng` is the learner's own random stream (actions, exploration, replay
  sampling): the environment's is seeded with `request.seed` itself, and two
  generators with one seed would draw the same numbers, tying the learner's
  choices to chance and the opponents' draws.
  """

  device: torch.device
  obs_table: np.ndarray | None  # None in the simulated form
  env: rollouts.TreeVecEnv | rollouts.PyspielVecEnv
  module: TorchPolicy
  log: rollouts.TrainingLog
  rng: np.random.Generator
  # The previous best response's module (`request.previous`), for learners
  # that warm-start parts other than `module` (the actor-critic learners'
  # critics, and their actor when the result is the critics' policy).
  previous: Any = None
  # `request.plan.continues`: every part starts from `previous`.
  continues: bool = False


# The most `games x actions` entries one simulated step's arrays hold
# (16 MB of float32; 512 games of go's 362 actions fit).
SIMULATED_ACTION_ROWS = 1 << 22


def setup(
  request: base.BestResponseRequest,
  cfg: TrainingOptions,
  num_envs: int,
  output: str,
  curve_keys: Sequence[str],
  with_value: bool = False,
) -> TrainingSetup:
  """Seeds torch, builds the environment, the (warm-started) module and the log.

  The environment is the request's tree (`TreeVecEnv`), or simulated pyspiel
  games (`PyspielVecEnv`) when it has none.
  """
  networks.seed_torch(request.seed, cfg.num_threads)
  device = networks.resolve_device(cfg.device)
  tree, player = request.tree, request.player
  game = tree.game if tree is not None else request.game
  assert game is not None  # a request without a tree has its game
  obs_type = observed(game, tree, player, cfg.obs_type)
  if tree is None and obs_type == OBS_SEQUENCE:
    raise ValueError(
      "simulated games give one tensor per decision (simulation.observation_of);"
      f" set obs_type={OBS_INFO_STATE!r} (got {cfg.obs_type!r})."
    )
  obs_table = None if tree is None else observation_table(tree, player, obs_type)
  if tree is None:
    num_envs = cfg.simulated_num_envs or num_envs
    if cfg.total_episodes:
      # Every simulated game runs to its end: games beyond the budget's
      # episodes are played and thrown away.
      num_envs = min(num_envs, cfg.total_episodes)
    # Each step holds `[games, A]` probabilities and legal masks and samples
    # over A, whose cost grows with A (colored_trails has 93,123 actions).
    num_envs = max(1, min(num_envs, SIMULATED_ACTION_ROWS // game.num_distinct_actions()))
  env = rollouts.make_env(request, num_envs, request.seed, obs_table)
  module = TorchPolicy(
    request.game,
    player,
    env.obs_shape,
    cfg.hidden,
    cfg.network,
    output,
    obs_type,
    with_value=with_value,
    conv_channels=cfg.conv_channels,
    conv_layers=cfg.conv_layers,
  )
  previous = warm_start_source(request, module)
  if (cfg.warm_start or request.plan.continues) and previous is not None:
    module.load_state_dict(previous.state_dict())
  budget = rollouts.Budget(
    cfg.total_episodes,
    cfg.total_steps,
    cfg.time_budget_s if request.time_budget_s is None else request.time_budget_s,
  )
  name = f"{type(cfg).__name__.replace('Config', '').lower()} p{player}"
  log = rollouts.TrainingLog(
    name, budget, num_envs, cfg.progress, curve_keys, request.plan.schedule_span
  )
  return TrainingSetup(
    device,
    obs_table,
    env,
    module.to(device),
    log,
    np.random.default_rng([request.seed, 1]),
    None if request.previous is None else request.previous.module,
    request.plan.continues,
  )


def warm_start_source(request: base.BestResponseRequest, module: TorchPolicy) -> TorchPolicy | None:
  """The previous best response's module, if `module` can start from it.

  Warm starts ignore `output`: PPO may hand back its actor as greedy.
  """
  prev = request.previous
  if prev is None or not isinstance(prev.module, TorchPolicy):
    return None
  same = dict(prev.module.arch, output=module.arch["output"]) == module.arch
  return prev.module if same else None


def finish(
  request: base.BestResponseRequest, setup_: TrainingSetup, algorithm: str, **stats: Any
) -> base.PopulationMember:
  """The trained module on cpu, its exact matrix, and the run's statistics.

  The matrix is None without a compiled tree (simulated requests).
  `stats["device"]` is the device the module trained on (before the move).
  """
  module = setup_.module.cpu().eval()
  log = setup_.log
  log.close()
  logging.info(
    "%s player %d: %d episodes in %.1fs",
    algorithm,
    request.player,
    log.episodes,
    log.budget.elapsed,
  )
  return base.PopulationMember(
    matrix=(None if request.tree is None else module.matrix(request.tree, setup_.obs_table)),
    module=module,
    stats=dict(
      algorithm=algorithm,
      device=str(setup_.device),
      episodes=log.episodes,
      steps=log.steps,
      seconds=log.budget.elapsed,
      curves=log.curves,
      **stats,
    ),
    learned_weights=setup_.env.learned_weights(),
  )


def exact_value_point(
  request: base.BestResponseRequest, setup_: TrainingSetup, every: int
) -> dict[str, float]:
  """`{"exact_value": v}` every `every` curve points (for curves only), else {}."""
  if not every or request.tree is None or len(setup_.log.curves["episodes"]) % every:
    return {}
  matrix = setup_.module.matrix(request.tree, setup_.obs_table)
  return {"exact_value": rollouts.policy_value(request, matrix)}
