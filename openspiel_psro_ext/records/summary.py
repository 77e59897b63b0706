"""What a finished run leaves in `summary.json`: a typed summary.

The command writes one `RunSummary` when the run stops (`run.py`); the
iterations themselves stay in `metrics.jsonl` (`IterationRecord`), whose last
record also holds the variant's state. NashConv is in NashConv units
throughout: OpenSpiel's `exploitability()` is NashConv / 2 for two players.

Clocks (seconds, summed over the run's records, across resumes):
  psro_time_s        what PSRO itself needed;
  evaluation_time_s  the evaluation hooks (run metrics, approximate NashConv);
  write_time_s       the checkpoint writes;
  wall_time_s        all three (the last record's `wall_time_s`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from openspiel_psro_ext.records import read_typed, variants
from openspiel_psro_ext.records.metrics import ApproxNashConv, BotResults, RunMetrics, to_json
from openspiel_psro_ext.records.variants import VariantState

UNITS = "NashConv (OpenSpiel's exploitability() is NashConv / 2 for two players)"


@dataclasses.dataclass(frozen=True)
class StockComparison:
  """Stock psro_v2 run on the same settings (`--compare_stock`).

  Attributes:
    label: how the plots and the log name the stock run.
    oracle: the stock oracle used.
    oracle_kind: what kind of oracle that is (`StockOracleChoice.kind`).
    meta_solver: the stock meta-solver used.
    stock: one dict per stock iteration (`nash_conv`, `wall_time_s`, ...).
    stopped_by: the stopping rule that ended the stock run.
    summary: how much sooner this package reached stock's best NashConv.
  """

  label: str
  oracle: str
  oracle_kind: str
  meta_solver: str
  stock: list[dict[str, Any]]
  stopped_by: str
  summary: str

  def to_json(self) -> dict[str, Any]:
    """`comparison.json`'s object."""
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RunSummary:
  """How a run ended.

  Attributes:
    game: the game string, as pyspiel prints it.
    evaluation: the view the run used: "exact" or "simulated".
    stopped_by: the stopping rule that ended it ("iterations",
      "time_budget", "target_nash_conv", "interrupted", ...).
    iterations: records in `metrics.jsonl`.
    population_size: per population, its members at the last record.
    nash_conv: the last record's exact NashConv; None without a tree.
    exploitability_per_player: per player, what a best response gains (None
      with `nash_conv`).
    wall_time_s, psro_time_s, evaluation_time_s, write_time_s: see the
      module doc.
    nash_conv_openspiel: the last meta-strategy's NashConv recomputed by
      OpenSpiel's `exploitability.nash_conv` on its behaviour policy
      (`evaluation.verification`); None where there is no exact NashConv.
    run_metrics: the last record's run metrics (win rates, Elo, diversity).
    approx_nash_conv: the last record's estimate in the simulated view: a
      lower bound on the true NashConv, up to sampling error.
    variant: the last record's loop-variant state (`records.variants`), or
      None for plain PSRO.
    stock: the comparison with stock psro_v2, when asked for.
    bots: the last record's results against OpenSpiel's search bots, when played.
  """

  game: str
  evaluation: str
  stopped_by: str
  iterations: int
  population_size: list[int]
  nash_conv: float | None
  exploitability_per_player: list[float] | None
  wall_time_s: float
  psro_time_s: float
  evaluation_time_s: float
  write_time_s: float
  nash_conv_openspiel: float | None = None
  run_metrics: RunMetrics | None = None
  approx_nash_conv: ApproxNashConv | None = None
  variant: VariantState | None = None
  stock: StockComparison | None = None
  bots: BotResults | None = None

  @property
  def verified(self) -> bool:
    """Whether OpenSpiel's code confirmed the final NashConv."""
    return self.nash_conv_openspiel is not None

  def to_json(self) -> dict[str, Any]:
    """`summary.json`'s object: the fields (typed values nested), then
    `verified` and the NashConv units."""
    data: dict[str, Any] = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name == "variant" and value is not None:
        data[field.name] = variants.to_json(value)
      else:
        data[field.name] = to_json(value) if dataclasses.is_dataclass(value) else value
    return {**data, "verified": self.verified, "units": UNITS}

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> RunSummary:
    """Reads `to_json`'s object (`units` and `verified` are derived)."""
    names = {f.name for f in dataclasses.fields(cls)}
    fields = read_typed({k: v for k, v in data.items() if k in names})
    if fields.get("stock") is not None:
      fields["stock"] = StockComparison(**fields["stock"])
    return cls(**fields)
