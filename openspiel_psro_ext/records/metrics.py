"""Typed values of the run metrics and of the approximate NashConv.

`evaluation.metrics.IterationMetrics` computes a `RunMetrics` and
`evaluation.approx_exploitability` an `ApproxNashConv`; an `IterationRecord`
holds them, and every reader (log line, plots, report, TensorBoard) reads
their fields. On disk each is one nested JSON object (`to_json`, `from_json`):
a dataclass is an object of its fields (fields that are None left out), a
mapping by baseline name an object keyed by that name.

What the numbers mean (how they are computed) is in
`evaluation.metrics.iteration`'s module doc.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

# Short names of the baselines the one-line log shows.
_SHORT_NAMES = {"cfr_plus": "cfr", "uniform": "unif"}


def to_json(value: Any) -> dict[str, Any]:
  """A dataclass as nested JSON objects, fields that are None left out."""
  return dataclasses.asdict(
    value, dict_factory=lambda items: {k: v for k, v in items if v is not None}
  )


@dataclasses.dataclass(frozen=True)
class Outcome:
  """One seat's result distribution, or its mean over seats.

  Attributes:
    win_rate: P(return > 0).
    draw_rate: P(return = 0).
    loss_rate: P(return < 0).
    expected_return: E[return].
  """

  win_rate: float
  draw_rate: float
  loss_rate: float
  expected_return: float

  @classmethod
  def mean_of(cls, outcomes: Sequence[Outcome]) -> Outcome:
    """The field-wise mean of several seats' outcomes."""
    return cls(
      win_rate=float(np.mean([o.win_rate for o in outcomes])),
      draw_rate=float(np.mean([o.draw_rate for o in outcomes])),
      loss_rate=float(np.mean([o.loss_rate for o in outcomes])),
      expected_return=float(np.mean([o.expected_return for o in outcomes])),
    )


@dataclasses.dataclass(frozen=True)
class VersusBaseline:
  """The meta-strategy mixture in each seat, every other seat the baseline.

  Attributes:
    mean: the mean over seats.
    seats: `[P]` per seat.
  """

  mean: Outcome
  seats: list[Outcome]

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> VersusBaseline:
    return cls(Outcome(**data["mean"]), [Outcome(**s) for s in data["seats"]])


@dataclasses.dataclass(frozen=True)
class EloRatings:
  """Elo of a two-player pool, uniform random 0 in each seat.

  Attributes:
    rated_members: per player, the sorted indices of the rated members.
    members: per player, their Elo (same order).
    newest: per player, the newest member's Elo.
    meta_strategy: per player, the meta-strategy mixture's Elo.
    seat_advantage: seat 0's fitted advantage (Elo points).
    baselines: per baseline name, `[2]` its Elo in each seat.
  """

  rated_members: list[list[int]]
  members: list[list[float]]
  newest: list[float]
  meta_strategy: list[float]
  seat_advantage: float
  baselines: dict[str, list[float]]


@dataclasses.dataclass(frozen=True)
class Diversity:
  """Behavioural and payoff diversity of the populations.

  Attributes:
    behavioural: mean over players of `behavioural_per_player`.
    behavioural_per_player: `[P]` mean reach-weighted TV distance over the
      evaluated member pairs.
    pairs: `[P]` member pairs evaluated.
    expected_cardinality: mean over players of
      `expected_cardinality_per_player`.
    expected_cardinality_per_player: `[P]` DPP expected cardinality of the
      rated members' payoff vectors.
    cardinality_members: `[P]` members in that kernel.
  """

  behavioural: float
  behavioural_per_player: list[float]
  pairs: list[int]
  expected_cardinality: float
  expected_cardinality_per_player: list[float]
  cardinality_members: list[int]


@dataclasses.dataclass(frozen=True)
class BaselineFacts:
  """How good a fixed baseline is, and how it was built.

  Attributes:
    nash_conv: its exact NashConv.
    iterations: CFR+ iterations (CFR+ only; a float, as its cache keeps it).
    seconds: time CFR+ took (0 when read from the disk cache; CFR+ only).
  """

  nash_conv: float
  iterations: float | None = None
  seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class RunMetrics:
  """One pass of the run metrics over a PSRO iteration's populations.

  Attributes:
    versus: per baseline name, the meta-strategy's outcomes against it.
    elo: Elo ratings; None where they are skipped (see `notes`).
    diversity: diversity of the populations.
    baselines: per baseline name, its NashConv and how it was built.
    seconds: time the pass took.
    notes: the baselines or metrics skipped, and why.
  """

  versus: dict[str, VersusBaseline]
  elo: EloRatings | None
  diversity: Diversity
  baselines: dict[str, BaselineFacts]
  seconds: float = 0.0
  notes: list[str] = dataclasses.field(default_factory=list)

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> RunMetrics:
    elo = data.get("elo")
    return cls(
      versus={name: VersusBaseline.from_json(v) for name, v in data["versus"].items()},
      elo=None if elo is None else EloRatings(**elo),
      diversity=Diversity(**data["diversity"]),
      baselines={name: BaselineFacts(**b) for name, b in data["baselines"].items()},
      seconds=data.get("seconds", 0.0),
      notes=list(data.get("notes", [])),
    )

  def short_log(self) -> str:
    """One line, e.g. `elo_new=+85/-12 elo_meta=+40/+3 div=0.410 card=1.90 win_vs_cfr=0.380`.

    Elo of the newest members and of the meta-strategy (per player), mean
    behavioural diversity and expected cardinality, and the mean win rate
    against CFR+ and uniform random (the others are in `metrics.jsonl`).
    """
    parts = []
    if self.elo is not None:
      parts.append("elo_new=" + "/".join(f"{v:+.0f}" for v in self.elo.newest))
      parts.append("elo_meta=" + "/".join(f"{v:+.0f}" for v in self.elo.meta_strategy))
    parts.append(f"div={self.diversity.behavioural:.3f}")
    parts.append(f"card={self.diversity.expected_cardinality:.2f}")
    for name, short in _SHORT_NAMES.items():
      if name in self.versus:
        parts.append(f"win_vs_{short}={self.versus[name].mean.win_rate:.3f}")
    return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class VersusBot:
  """The meta-strategy against one of OpenSpiel's search bots
  (`evaluation.metrics.bots`): the mixture in each seat, the bot in every other.

  Attributes:
    bot: "mcts" (perfect information) or "ismcts".
    simulations: the bot's simulations per move.
    games: games played, split evenly over the seats.
    mean: the mean over seats.
    seats: `[P]` per seat, rates over that seat's games.
  """

  bot: str
  simulations: int
  games: int
  mean: Outcome
  seats: list[Outcome]

  @property
  def name(self) -> str:
    """E.g. `mcts100`."""
    return f"{self.bot}{self.simulations}"

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> VersusBot:
    return cls(
      bot=data["bot"],
      simulations=data["simulations"],
      games=data["games"],
      mean=Outcome(**data["mean"]),
      seats=[Outcome(**s) for s in data["seats"]],
    )


@dataclasses.dataclass(frozen=True)
class BotResults:
  """One pass of games against the search bots.

  Attributes:
    versus: one entry per bot, by increasing simulations as configured.
    seconds: time the games took.
  """

  versus: list[VersusBot]
  seconds: float = 0.0

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> BotResults:
    return cls([VersusBot.from_json(v) for v in data["versus"]], data.get("seconds", 0.0))

  def short_log(self) -> str:
    """One line, e.g. `win_vs_mcts10=0.950 win_vs_mcts100=0.420`."""
    return " ".join(f"win_vs_{v.name}={v.mean.win_rate:.3f}" for v in self.versus)


@dataclasses.dataclass(frozen=True)
class ApproxNashConv:
  """An approximate NashConv by RL best responses: a lower bound on the true
  NashConv up to sampling error (see `evaluation.approx_exploitability`).

  Attributes:
    value: the estimate.
    ci95: half-width of its 95% interval.
    player_improvements: `[P]` per player, best-response value minus the
      meta-strategy's value.
    player_improvements_ci95: `[P]` half-widths of their 95% intervals.
  """

  value: float
  ci95: float
  player_improvements: list[float]
  player_improvements_ci95: list[float]
