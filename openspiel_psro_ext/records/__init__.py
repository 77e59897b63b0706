"""What one PSRO iteration leaves behind: a typed record.

Iteration t's record describes the meta-strategy `sigma_t` over the
populations as they were when it was solved (so `population_size` and
`meta_strategy` always match), what the oracle spent on the best responses
added after it, and the iteration's cost. Every writer and reader of
`metrics.jsonl`, the log line, TensorBoard and the stock comparison goes
through `IterationRecord`; on disk it is one JSON object per line, the typed
evaluation values (`run_metrics`, `approx_nash_conv`; see `records.metrics`)
as nested objects.

Clocks (seconds, all measured with `time.perf_counter`):
  psro_time_s      meta-solve, NashConv, best responses and the payoff
                   table's new entries: what PSRO itself needs;
  evaluation_time_s   run metrics (win rates, Elo, diversity), when computed;
  write_time_s     the iteration's checkpoint writes (members, metrics line,
                   commit point);
  iteration_time_s all three: what the iteration cost the user;
  wall_time_s      the sum of `iteration_time_s` over the run so far
                   (across resumes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from openspiel_psro_ext.records import variants
from openspiel_psro_ext.records.metrics import ApproxNashConv, BotResults, RunMetrics, to_json
from openspiel_psro_ext.records.variants import VariantState

# What an evaluation hook returns; `IterationRecord.add` stores it.
EvaluationValue = RunMetrics | ApproxNashConv | BotResults


# The nested typed values a record or a summary holds, by field, and how each
# is read back from its JSON object.
_TYPED_READERS: dict[str, Any] = {
  "run_metrics": RunMetrics.from_json,
  "approx_nash_conv": lambda data: ApproxNashConv(**data),
  "variant": variants.from_json,
  "bots": BotResults.from_json,
}


def read_typed(fields: dict[str, Any]) -> dict[str, Any]:
  """`fields` with each nested typed value (`_TYPED_READERS`) read back."""
  return {
    k: (_TYPED_READERS[k](v) if k in _TYPED_READERS and v is not None else v)
    for k, v in fields.items()
  }


@dataclasses.dataclass
class IterationRecord:
  """One finished PSRO iteration.

  Attributes:
    iteration: 0-based index.
    population_size: per player, members `sigma` mixes.
    meta_strategy: per player, `[N_p]` probabilities: the run's output.
    training_meta_strategy: per player, the meta-solver's own `[N_p]`
      probabilities, which the best responses trained against, where the
      output is their average (`meta_strategy_average_decay`); else None.
    support_size: per player, members with positive probability.
    nash_conv: exact NashConv of the meta-strategy in the full game; None in
      the simulated mode without a tree (its estimate, a lower bound, is
      `approx_nash_conv`, never this field).
    exploitability_per_player: per player, what a best response gains (None
      with `nash_conv`).
    on_policy_values: per player, the meta-strategy profile's value (exact,
      or from the estimated payoff table in the simulated mode).
    oracle: per population, one dict of scalar statistics per best response
      added this iteration (e.g. episodes, seconds).
    psro_time_s, evaluation_time_s, write_time_s, iteration_time_s,
    wall_time_s: see the module doc.
    run_metrics: win rates, Elo and diversity; None on iterations without
      a metrics pass.
    approx_nash_conv: the simulated mode's NashConv estimate, when made.
    bots: win, draw and loss rates against OpenSpiel's search bots, when
      played (`evaluation.metrics.bots`).
    variant: the loop variant's own state (`records.variants`), or None
      (plain PSRO).
  """

  iteration: int
  population_size: list[int]
  meta_strategy: list[list[float]]
  support_size: list[int]
  nash_conv: float | None
  exploitability_per_player: list[float] | None
  on_policy_values: list[float]
  oracle: list[list[dict[str, Any]]] = dataclasses.field(default_factory=list)
  psro_time_s: float = 0.0
  evaluation_time_s: float = 0.0
  write_time_s: float = 0.0
  iteration_time_s: float = 0.0
  wall_time_s: float = 0.0
  training_meta_strategy: list[list[float]] | None = None
  run_metrics: RunMetrics | None = None
  approx_nash_conv: ApproxNashConv | None = None
  variant: VariantState | None = None
  bots: BotResults | None = None

  def add(self, value: EvaluationValue) -> None:
    """Stores an evaluation hook's value in its field."""
    if isinstance(value, RunMetrics):
      self.run_metrics = value
    elif isinstance(value, ApproxNashConv):
      self.approx_nash_conv = value
    elif isinstance(value, BotResults):
      self.bots = value
    else:
      raise TypeError(f"an evaluation hook returned a {type(value).__name__}, no evaluation value.")

  def to_json(self) -> dict[str, Any]:
    """The `metrics.jsonl` object: the fields, typed values nested, those
    that are None left out."""
    optional = ("training_meta_strategy", "run_metrics", "approx_nash_conv", "variant", "bots")
    data = {
      f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in optional
    }
    if self.training_meta_strategy is not None:  # the usual case: one meta-strategy
      data["training_meta_strategy"] = self.training_meta_strategy
    if self.run_metrics is not None:
      data["run_metrics"] = to_json(self.run_metrics)
    if self.approx_nash_conv is not None:
      data["approx_nash_conv"] = to_json(self.approx_nash_conv)
    if self.variant is not None:
      data["variant"] = variants.to_json(self.variant)
    if self.bots is not None:
      data["bots"] = to_json(self.bots)
    return data

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> IterationRecord:
    """Reads `to_json`'s object.

    Raises:
      ValueError: the object has keys no record field has (another writer's).
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
      raise ValueError(f"not an iteration record: unknown keys {unknown}.")
    return cls(**read_typed(data))

  @property
  def sigma(self) -> list[np.ndarray]:
    """The meta-strategy as per-player float64 arrays."""
    return [np.asarray(s, dtype=np.float64) for s in self.meta_strategy]


def scalar_stats(stats: dict[str, Any]) -> dict[str, Any]:
  """The JSON-sized part of an oracle's statistics (curves stay out)."""
  return {
    k: (v.item() if isinstance(v, np.generic) else v) for k, v in stats.items() if np.isscalar(v)
  }
