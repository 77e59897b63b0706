"""The best-response oracle interface shared by the PSRO loop and stock OpenSpiel.

An oracle answers one question: given the other players' populations and the
meta-strategy over them, return a (near-)best response for one player,

    pi*_p = argmax_pi E_{k ~ sigma_{-p}} [ u_p(pi, pi_k) ].

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
from typing import Any, ClassVar

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
  """

  matrix: np.ndarray | None
  module: Any = None
  stats: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BestResponseRequest:
  """What an oracle needs to answer for one player.

  Attributes:
    tree: the compiled game, or None in the simulated form.
    player: the best responder.
    opponent_populations: per player, `[N_q, I_q, A]` matrices, or in the
      simulated form a list of `N_q` batched policies (None at `player`).
    opponent_weights: per player, `[N_q]` probabilities over that population
      (None at `player`); opponents are drawn independently per player.
    previous: the player's previous best response, for warm starts.
    seed: seeds the oracle's randomness.
    time_budget_s: for oracles that train (`Oracle.trains`), this request's
      wall-time budget in place of the config's `time_budget_s` (PSRO's
      budget schedule sets it); None keeps the config's.
    game: the pyspiel game (defaults to the tree's; required without one).
    opponent_joint: `[N_q for q != player]` a joint distribution over the
      opponents' joint profiles (JPSRO's correlated opponents), or None:
      opponents drawn independently from `opponent_weights` (which then
      hold the joint's marginals).
    continues_previous: `previous` is this best response's own earlier
      training (P2SRO's chunks): an oracle that trains continues it, the
      whole module, whatever its warm-start settings.
    schedule_span: the part `(start, end)` of the oracle's schedules
      (learning-rate and entropy annealing, exploration decay) this request's
      budget covers: a best response trained in slices (P2SRO's chunk c of m:
      `(c/m, (c+1)/m)`) anneals once over all of them, not once per slice.
    opponent_hedge: None, or the opponents' mixtures learn while the best
      response trains (`hedge`; neural Anytime PSRO): each starts at
      `opponent_weights` (all positive), and the member's
      `stats["opponent_weights"]` holds, per player, its iterates' average.
  """

  tree: GameTree | None
  player: int
  opponent_populations: list[Any]
  opponent_weights: list[np.ndarray | None]
  previous: PopulationMember | None = None
  seed: int = 0
  time_budget_s: float | None = None
  game: pyspiel.Game | None = None
  opponent_joint: np.ndarray | None = None
  # After the others: callers pass the fields above by position.
  continues_previous: bool = False
  schedule_span: tuple[float, float] = (0.0, 1.0)
  opponent_hedge: hedge.HedgeOptions | None = None

  def __post_init__(self):
    if self.game is None and self.tree is not None:
      self.game = self.tree.game

  @property
  def simulated(self) -> bool:
    """True when the request has no compiled tree (see the module doc)."""
    return self.tree is None

  def opponent_terminal_reach(self) -> np.ndarray:
    """`[Z]` chance and opponents' mixture contribution to each terminal."""
    if self.tree is None:
      raise ValueError("a simulated request has no tree to compute reaches on.")
    if self.opponent_joint is not None:  # sigma-weighted sum of reach products
      return correlated_gaps.opponent_joint_reach(
        self.tree,
        self.player,
        [
          None if q == self.player else self.tree.terminal_reach(q, self.opponent_populations[q])
          for q in range(self.tree.num_players)
        ],
        self.opponent_joint,
      )
    reach = self.tree.terminal_chance_reach.copy()
    for q in range(self.tree.num_players):
      if q != self.player:
        reach *= exploitability.mixture_terminal_reach(
          self.tree, q, self.opponent_populations[q], self.opponent_weights[q]
        )
    return reach


class Oracle(abc.ABC):
  """A best-response oracle.

  Subclasses set `name` and `Config` (a dataclass of hyperparameters with
  defaults); `Oracle(config)` keeps the config, `Oracle()` uses the defaults.
  `psro_defaults` is the oracle's PSRO preset: `Config` fields overridden
  inside a PSRO loop (`for_psro`), where a best response is one of hundreds
  and gets seconds, not the minute a stand-alone best response gets.

  Capabilities the loop asks for instead of testing names:
    trains: the oracle trains for a budget (`Config.time_budget_s`, which a
      request's `time_budget_s` overrides) rather than computing exactly.
    restores_modules: members carry a module saved as a torch `state_dict`,
      which `restore_module` rebuilds (checkpoints, resume).
  """

  name: ClassVar[str]
  Config: ClassVar[type]
  psro_defaults: ClassVar[dict[str, Any]] = {}
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
