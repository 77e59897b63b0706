"""The best-response oracle interface shared by the PSRO loop and stock OpenSpiel.

An oracle answers one question: given the other players' populations and a
distribution over them, return a (near-)best response for one player,

    pi*_p = argmax_pi E_{k ~ sigma_{-p}} [ u_p(pi, pi_k) ].

The distribution is one typed value, `BestResponseRequest.opponents`: a
`MemberMixture` (each opponent draws its member independently: PSRO's
meta-strategy), a `JointMixture` (one joint profile drawn for all opponents:
a correlated distribution) or a `LearningMixture` (mixtures that learn by
multiplicative weights while the best response trains), or
`ConditionedMixtures` (K mixtures at once, for one conditional policy). A
best response trained in slices gets a `TrainingPlan`.

Populations travel as `[N_q, I_q, A]` behaviour matrices over the compiled tree
(see `game_tree`), so an exact oracle can compute the answer in closed form and
an RL oracle can simulate the opponents fast. Whatever an oracle learns is
returned as a `PopulationMember`: its exact `[I_p, A]` behaviour matrix, plus the
trained object (a torch module, say) for checkpoints and warm starts.

Simulated form, for games that do not compile: the request has no tree but a
pyspiel `game`, the populations are lists of batched policies
(`simulation.BatchedPolicy`, e.g. the RL oracles' `TorchPolicy` members), and
the member comes back with `matrix=None` and its module. Only oracles that
train (`Oracle.trains`) answer such requests. Requests of either form hold no
pyspiel states, so they pickle (Ray tasks).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, TypeAlias

import numpy as np
import pyspiel

from openspiel_psro_ext.game import correlated_gaps, exploitability
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles.rl import hedge


@dataclasses.dataclass
class PopulationMember:
  """One policy in a player's population.

  Attributes:
    matrix: `[I_p, A]` action probabilities at every information state, or
      None in the simulated form (no compiled tree).
    module: the trained model behind `matrix` (e.g. a `torch.nn.Module`), or
      None for tabular policies.
    stats: training statistics (episodes, seconds, curves) for the metrics.
    learned_weights: against a `LearningMixture`, per player the average of
      that opponent's mixtures while this member trained (`[N_q]`; None at
      the member's own player); None against fixed opponents.
  """

  matrix: np.ndarray | None
  module: Any = None
  stats: dict[str, Any] = dataclasses.field(default_factory=dict)
  learned_weights: list[np.ndarray | None] | None = None


@dataclasses.dataclass
class MemberMixture:
  """Opponents drawn independently: each opponent q plays one member of its
  population for a whole episode, member k with probability `weights[q][k]`.

  Attributes:
    populations: per player, `[N_q, I_q, A]` matrices, or in the simulated
      form a list of `N_q` batched policies (None at the learner).
    weights: per player, `[N_q]` probabilities (None at the learner).
  """

  populations: list[Any]
  weights: list[np.ndarray | None]


@dataclasses.dataclass
class JointMixture:
  """Correlated opponents: each episode draws one joint profile of members,
  one per opponent, from `joint` (e.g. the opponents' part of a correlated
  equilibrium over the populations).

  Attributes:
    populations: as `MemberMixture.populations`.
    joint: `[N_q for q != learner]` probabilities over the opponents' joint
      profiles, in player order.
  """

  populations: list[Any]
  joint: np.ndarray


@dataclasses.dataclass
class LearningMixture:
  """Opponents whose mixtures learn while the best response trains: each is
  a multiplicative-weights learner over its population (`hedge`), starting
  at `weights` (all positive), updated from the training episodes' payoffs.
  The member comes back with each learner's average (`learned_weights`).
  An oracle that does not train answers the starting `weights`.

  Attributes:
    populations, weights: as `MemberMixture`'s, the starting mixtures.
    learner: the learners' step and window.
  """

  populations: list[Any]
  weights: list[np.ndarray | None]
  learner: hedge.HedgeOptions


@dataclasses.dataclass
class ConditionedMixtures:
  """K mixtures for one conditional policy `pi(a | o, c_k)` that learns a
  best response to each at once: every episode draws a row k (with
  probability `row_weights[k]`), each opponent q then draws its member from
  `weights[q][k]`, and the learner sees `conditions[k]` beside its
  observation (e.g. the rows of an interaction graph over a population).

  Attributes:
    populations: as `MemberMixture.populations` (compiled form only).
    weights: per player, `[K, N_q]` probabilities (None at the learner).
    conditions: `[K, C]` what the learner is told of each row.
    row_weights: `[K]` probabilities of the rows.
    anchored: `[K]` bool, rows whose answers the learner holds near those of
      the network it continues (None: none); e.g. a population's members,
      which other rows' mixtures are made of.
  """

  populations: list[Any]
  weights: list[np.ndarray | None]
  conditions: np.ndarray
  row_weights: np.ndarray
  anchored: np.ndarray | None = None


# What a best response plays against (`BestResponseRequest.opponents`).
Opponents: TypeAlias = MemberMixture | JointMixture | LearningMixture | ConditionedMixtures


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
  """How an oracle that trains spends one request's budget.

  The default is one whole, fresh training. A best response trained in
  slices (one request per slice) continues its own previous slice and
  anneals once over all of them.

  Attributes:
    continues: the request's `previous` is this best response's own earlier
      training: the oracle continues it, the whole module, whatever its
      warm-start settings.
    schedule_span: the part `(start, end)` of the oracle's schedules
      (learning-rate and entropy annealing, exploration decay) this
      request's budget covers: slice c of m covers `(c/m, (c+1)/m)`.
  """

  continues: bool = False
  schedule_span: tuple[float, float] = (0.0, 1.0)


@dataclasses.dataclass(kw_only=True)
class BestResponseRequest:
  """What an oracle needs to answer for one player.

  Attributes:
    tree: the compiled game, or None in the simulated form.
    player: the best responder.
    opponents: whom `player` plays against (`Opponents`).
    previous: the player's previous best response, for warm starts.
    seed: seeds the oracle's randomness.
    time_budget_s: for oracles that train (`Oracle.trains`), this request's
      wall-time budget in place of the config's `time_budget_s` (PSRO's
      budget schedule sets it); None keeps the config's.
    game: the pyspiel game (defaults to the tree's; required without one).
    plan: how the budget is spent (`TrainingPlan`; oracles that train).
  """

  tree: GameTree | None
  player: int
  opponents: Opponents
  previous: PopulationMember | None = None
  seed: int = 0
  time_budget_s: float | None = None
  game: pyspiel.Game | None = None
  plan: TrainingPlan = TrainingPlan()

  def __post_init__(self):
    if self.game is None:
      if self.tree is None:
        raise ValueError("a request without a tree needs its pyspiel game.")
      self.game = self.tree.game

  @property
  def simulated(self) -> bool:
    """True when the request has no compiled tree (see the module doc)."""
    return self.tree is None

  def opponent_terminal_reach(self) -> np.ndarray:
    """`[Z]` chance and opponents' mixture contribution to each terminal
    (a `LearningMixture` at its starting weights)."""
    tree, player = self.tree, self.player
    if tree is None:
      raise ValueError("a simulated request has no tree to compute reaches on.")
    others = [q for q in range(tree.num_players) if q != player]
    populations = self.opponents.populations
    match self.opponents:
      case JointMixture(joint=joint):  # sigma-weighted sum of reach products
        reaches = [
          None if q == player else tree.terminal_reach(q, populations[q])
          for q in range(tree.num_players)
        ]
        return correlated_gaps.opponent_joint_reach(tree, player, reaches, joint)
      case MemberMixture(weights=weights) | LearningMixture(weights=weights):
        reach = tree.terminal_chance_reach.copy()
        for q in others:
          reach *= exploitability.mixture_terminal_reach(
            tree, q, populations[q], np.asarray(weights[q])
          )
        return reach
      case ConditionedMixtures():
        raise ValueError("conditioned mixtures have one opponent reach per row, not one.")
    raise TypeError(f"unknown opponents {type(self.opponents).__name__}")


class Oracle(abc.ABC):
  """A best-response oracle.

  Subclasses set `name` and `Config` (a dataclass of hyperparameters with
  defaults); `Oracle(config)` keeps the config, `Oracle()` uses the defaults.
  `psro_defaults` is the oracle's PSRO preset: `Config` fields overridden
  inside a PSRO loop (`for_psro`), where a best response is one of hundreds
  and gets seconds, not the minute a stand-alone best response gets; its
  `time_budget_s` is where PSRO's budget ramp starts, and
  `psro_budget_final_s` where the ramp ends (None: PSRO's default,
  `psro.config.RL_BUDGET_FINAL_S`).

  Capabilities the loop asks for instead of testing names:
    trains: the oracle trains for a budget (`Config.time_budget_s`, which a
      request's `time_budget_s` overrides) rather than computing exactly.
    restores_modules: members carry a module saved as a torch `state_dict`,
      which `restore_module` rebuilds (checkpoints, resume).
  """

  name: ClassVar[str]
  Config: ClassVar[type]
  psro_defaults: ClassVar[dict[str, Any]] = {}
  psro_budget_final_s: ClassVar[float | None] = None
  trains: ClassVar[bool] = False
  restores_modules: ClassVar[bool] = False

  def __init__(self, config: Any = None):
    self.config = config if config is not None else self.Config()

  @classmethod
  def settings(cls) -> list[str]:
    """The names of the `Config` fields."""
    return sorted(f.name for f in dataclasses.fields(cls.Config))

  @classmethod
  def for_psro(cls, overrides: dict[str, Any] | None = None) -> Oracle:
    """The oracle with its PSRO preset, then `overrides`, over `Config`.

    Raises:
      ValueError: an override names no `Config` field (listing the fields).
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(cls.settings()))
    if unknown:
      raise ValueError(
        f"oracle {cls.name!r} has no settings {unknown}; its settings are {cls.settings()}."
      )
    return cls(dataclasses.replace(cls.Config(), **{**cls.psro_defaults, **overrides}))

  def restore_module(self, tree: GameTree, player: int, state_dict: dict[str, Any]) -> Any:
    """The member module saved as `state_dict` (see `restores_modules`)."""
    raise NotImplementedError(f"oracle {self.name!r} keeps no modules to restore.")

  @abc.abstractmethod
  def best_response(self, request: BestResponseRequest) -> PopulationMember:
    """Returns a best response for `request.player`."""
