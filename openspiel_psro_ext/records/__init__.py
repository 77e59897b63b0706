"""What one PSRO iteration leaves behind: a typed record.

Iteration t's record describes the meta-strategy `sigma_t` over the
populations as they were when it was solved (so `population_size` and
`meta_strategy` always match), what the oracle spent on the best responses
added after it, and the iteration's cost. Every writer and reader of
`metrics.jsonl`, the log line, TensorBoard and the stock comparison goes
through `IterationRecord`; on disk it is one flat JSON object per line, the
run metrics' keys (`win_rate/uniform`, `elo/meta_strategy`, ...) beside the
record's own fields.

Clocks (seconds, all measured with `time.perf_counter`):
  psro_time_s      meta-solve, NashConv, best responses and the payoff
                   table's new entries: what PSRO itself needs;
  metrics_time_s   run metrics (win rates, Elo, diversity), when computed;
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
      the simulated mode without a tree (its estimate, a lower bound, is the
      metric `approx_nash_conv`, never this field).
    exploitability_per_player: per player, what a best response gains (None
      with `nash_conv`).
    on_policy_values: per player, the meta-strategy profile's value (exact,
      or from the estimated payoff table in the simulated mode).
    oracle: per population, one dict of scalar statistics per best response
      added this iteration (e.g. episodes, seconds).
    psro_time_s, metrics_time_s, write_time_s, iteration_time_s,
    wall_time_s: see the module doc.
    metrics: run metrics by key (`win_rate/uniform`, ...); empty on
      iterations without a metrics pass.
    short_log: the metrics condensed for the one-line log.
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
  metrics_time_s: float = 0.0
  write_time_s: float = 0.0
  iteration_time_s: float = 0.0
  wall_time_s: float = 0.0
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
  short_log: str = ""
  training_meta_strategy: list[list[float]] | None = None

  def to_json(self) -> dict[str, Any]:
    """The flat `metrics.jsonl` object: the fields, then the metrics' keys."""
    data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "metrics"}
    if data["training_meta_strategy"] is None:  # the usual case: one meta-strategy
      del data["training_meta_strategy"]
    clash = sorted(set(data) & set(self.metrics))
    if clash:
      raise ValueError(f"run metrics may not reuse record fields {clash}.")
    data.update(self.metrics)
    return data

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> IterationRecord:
    """Reads `to_json`'s object; unknown keys are run metrics."""
    names = {f.name for f in dataclasses.fields(cls)} - {"metrics"}
    fields = {k: v for k, v in data.items() if k in names}
    fields["oracle"] = _oracle_stats(fields.get("oracle", []))
    return cls(**fields, metrics={k: v for k, v in data.items() if k not in names})

  @property
  def sigma(self) -> list[np.ndarray]:
    """The meta-strategy as per-player float64 arrays."""
    return [np.asarray(s, dtype=np.float64) for s in self.meta_strategy]


def _oracle_stats(value: Any) -> list[list[dict[str, Any]]]:
  # Runs written before per-member statistics kept one merged dict.
  if isinstance(value, dict):
    return [[value]] if value else []
  return value


def scalar_stats(stats: dict[str, Any]) -> dict[str, Any]:
  """The JSON-sized part of an oracle's statistics (curves stay out)."""
  return {
    k: (v.item() if isinstance(v, np.generic) else v) for k, v in stats.items() if np.isscalar(v)
  }
