"""A loop variant's own state at one iteration: a typed part of the record.

Plain PSRO has none. Each variant that keeps state (`psro.variants`) gives
its record one of the dataclasses below, `IterationRecord.variant`, and a
resumed run reads it back typed (Anytime PSRO's learned mixtures restore
from it). On disk it is one nested object tagged by its kind,

    "variant": {"xdo": {"threshold": 0.25, "restricted_nash_conv": ...}}

A field whose default is None is left out while it is None.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeAlias


@dataclasses.dataclass
class _RestrictedGameState:
  """What XDO and NXDO record of their restricted game.

  Attributes:
    threshold: `eps_t`, the restricted-game NashConv CFR+ solved to.
    restricted_nash_conv: the restricted-game NashConv CFR+ reached (None:
      nothing to solve yet, iteration 0).
    cfr_iterations: CFR+ iterations this iteration.
  """

  threshold: float
  restricted_nash_conv: float | None
  cfr_iterations: int


@dataclasses.dataclass
class XDOState(_RestrictedGameState):
  """XDO's restricted game (`variants.xdo`).

  Attributes:
    restricted_actions: per player, the allowed actions summed over its
      information states.
  """

  kind: ClassVar[str] = "xdo"
  restricted_actions: list[int]


@dataclasses.dataclass
class NXDOState(_RestrictedGameState):
  """NXDO's restricted game (`variants.xdo.NXDO`): XDO's, over members.

  Attributes:
    members: per player, the members the restricted game chooses among.
  """

  kind: ClassVar[str] = "nxdo"
  members: list[int]


@dataclasses.dataclass
class AnytimeState:
  """Anytime PSRO's least exploitable mixtures (`variants.anytime_psro`).

  Attributes:
    exploitability: per player, the opponent's best-response value against
      the output mixture (the player's NashConv term).
    kept_previous: per player, whether the previous output was kept.
    exploiters: per player, the best responses in the double oracle's LP
      (0 with the other learners).
    learned_weights: with the multiplicative-weights learner, per player the
      learner's average over that player's population (None: no learner
      ran for it); None with the tabular learners.
    greedy_forms: per player, the population indices of this iteration's
      new members that are greedy forms of RL members (output candidates
      the populations do not grow against); None without them.
  """

  kind: ClassVar[str] = "anytime_psro"
  exploitability: list[float]
  kept_previous: list[bool]
  exploiters: list[int]
  learned_weights: list[list[float] | None] | None = None
  greedy_forms: list[list[int]] | None = None


@dataclasses.dataclass
class PipelineState:
  """P2SRO's pipeline after one step (`variants.p2sro`); per level, lowest
  first.

  Attributes:
    gain: per level, per player, the active policy's exact best-response
      gain against its target after the step's chunk (None: untrained).
    improvement: per level, per player, how much the chunk lowered the gain
      (None where not defined).
    chunks: per level, chunks its policies have trained.
    fixed: whether the lowest level joined the population.
    chunk_seconds: per level, per player, the chunk's whole oracle call.
    chunk_episodes: per level, per player, the chunk's episodes (None: the
      oracle plays none).
    level_seconds: per level, its target's meta-solve and its gains.
  """

  kind: ClassVar[str] = "p2sro"
  gain: list[list[float | None]]
  improvement: list[list[float | None]]
  chunks: list[int]
  fixed: bool
  chunk_seconds: list[list[float | None]]
  chunk_episodes: list[list[int | None]]
  level_seconds: list[float]


@dataclasses.dataclass
class JPSROState:
  """JPSRO's correlated meta-strategy `sigma_t` and its exact full-game
  gaps (`variants.jpsro`, `correlated_gaps.joint_gaps`).

  Attributes:
    cce_gap: the coarse correlated equilibrium gap of `sigma_t`.
    ce_gap: its correlated equilibrium gap.
    cce_gains: per player, the best deviation's gain.
    joint_values: per player, the expected return under `sigma_t`.
    joint: the support of `sigma_t`, rows `[k_0, ..., k_{P-1}, prob]`.
  """

  kind: ClassVar[str] = "jpsro"
  cce_gap: float
  ce_gap: float
  cce_gains: list[float]
  joint_values: list[float]
  joint: list[list[float]]


@dataclasses.dataclass
class NeuPLState:
  """NeuPL's interaction graph and learner after one iteration
  (`variants.neupl`).

  Attributes:
    new_row: per population, the new member's row of `Sigma` (its mixture
      over the opponent's members).
    rows_trained: the rows the learner trained (members and sampled ones).
    episodes: per population, the learner's episodes this iteration.
    new_member_gain: per population, the new member's exact best-response
      gain against its row after training (`max_beta u(beta, sigma) -
      u(member, sigma)`, >= 0).
    held_out_gain_ratio: Simplex-NeuPL, per population, the median over the
      held-out mixtures of `(u(net told sigma) - u(uniform)) / (u(BR) -
      u(uniform))` against each (1: an exact best response); None when off.
  """

  kind: ClassVar[str] = "neupl"
  new_row: list[list[float]]
  rows_trained: int
  episodes: list[int]
  new_member_gain: list[float]
  held_out_gain_ratio: list[float] | None = None


VariantState: TypeAlias = (
  XDOState | NXDOState | AnytimeState | PipelineState | JPSROState | NeuPLState
)

KINDS: dict[str, type[VariantState]] = {
  cls.kind: cls
  for cls in (XDOState, NXDOState, AnytimeState, PipelineState, JPSROState, NeuPLState)
}


def to_json(state: VariantState) -> dict[str, Any]:
  """`{kind: fields}` (module doc)."""
  fields = {
    f.name: getattr(state, f.name)
    for f in dataclasses.fields(state)
    if not (f.default is None and getattr(state, f.name) is None)
  }
  return {state.kind: fields}


def from_json(data: dict[str, Any]) -> VariantState:
  """Reads `to_json`'s object.

  Raises:
    ValueError: not one state tagged by a known kind.
  """
  if len(data) != 1 or next(iter(data)) not in KINDS:
    raise ValueError(f"a variant state is one object tagged by {sorted(KINDS)}; got {data}.")
  ((kind, fields),) = data.items()
  return KINDS[kind](**fields)
