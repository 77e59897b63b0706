r"""Re-renders a run's plots and prints its summary, without rerunning PSRO.

    python -m openspiel_psro_ext.report --run_dir=runs/kuhn_poker-20250101-120000

Reads only the run directory (`metrics.jsonl`, `payoffs.npy`, and
`summary.json` / `comparison.json` / `config.json` when present), so it works
on finished, interrupted and resumed runs alike. Prints: iterations, final
NashConv and per-player exploitability, population size, wall time, the final
iteration's evaluation metrics (win rates, Elo, diversity, the approximate
NashConv; or those of the last record that has them, saying which), the
contents of `summary.json`, and NashConv beside stock psro_v2's when the run
was compared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from absl import app, flags

from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records import metrics as records_metrics
from openspiel_psro_ext.records.summary import RunSummary
from openspiel_psro_ext.runs import checkpoints, plots

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "The PSRO run directory to report on.")
flags.DEFINE_bool("render_plots", True, "Re-render the PNG figures.")

# Lists longer than this are summarised rather than printed.
_MAX_LIST = 6


def _format(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.6g}"
  if isinstance(value, list):
    if value and all(isinstance(v, list) for v in value):
      return "; ".join(_format(v) for v in value)
    if len(value) > _MAX_LIST:
      numbers = [v for v in value if isinstance(v, (int, float))]
      tail = f", last {_format(numbers[-1])}, max {_format(max(numbers))}" if numbers else ""
      return f"[{len(value)} values{tail}]"
    return "[" + ", ".join(_format(v) for v in value) + "]"
  if isinstance(value, dict):
    text = json.dumps(value, default=str)
    return text if len(text) <= 100 else text[:97] + "..."
  return str(value)


def _read_optional_json(run_dir: str, name: str) -> Any:
  path = os.path.join(run_dir, name)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    return {"error": f"unreadable {name}: {e}"}


def _comparison_lines(records: list[IterationRecord], comparison: dict[str, Any]) -> list[str]:
  stock = {s.get("iteration"): s for s in comparison.get("stock", [])}
  lines = [
    f"Stock comparison: {comparison.get('label', 'stock psro_v2')}",
    f"  {'iter':>4} | {'ours NashConv':>13} {'ours s':>8} | {'stock NashConv':>14} {'stock s':>8}",
  ]
  iterations = sorted(set(stock) | {r.iteration for r in records})
  ours = {r.iteration: r for r in records}
  for it in iterations:
    mine, theirs = ours.get(it), stock.get(it)
    left = (
      f"{mine.nash_conv:>13.6f} {mine.wall_time_s:>8.2f}"
      if mine and mine.nash_conv is not None
      else f"{'-':>13} {'-':>8}"
    )
    right = (
      f"{theirs['nash_conv']:>14.6f} {theirs.get('wall_time_s', 0):>8.2f}"
      if theirs and "nash_conv" in theirs
      else f"{'-':>14} {'-':>8}"
    )
    lines.append(f"  {it:>4} | {left} | {right}")
  if comparison.get("summary"):
    lines.append(f"  {_format(comparison['summary'])}")
  return lines


def _run_metric_rows(metrics: records_metrics.RunMetrics) -> list[tuple[str, str]]:
  """(label, value) per metric; outcomes as their mean, the seats beside it."""
  rows = []
  for name, versus in metrics.versus.items():
    seats = [dataclasses.astuple(outcome) for outcome in versus.seats]
    for k, (field, mean) in enumerate(records_metrics.to_json(versus.mean).items()):
      per_seat = ", ".join(f"seat{p} {_format(seat[k])}" for p, seat in enumerate(seats))
      rows.append((f"{field}/{name}", f"{_format(mean)} ({per_seat})"))
  if metrics.elo is not None:
    for field, value in records_metrics.to_json(metrics.elo).items():
      if field != "baselines":
        rows.append((f"elo/{field}", _format(value)))
    rows += [
      (f"elo/baselines/{name}", _format(value)) for name, value in metrics.elo.baselines.items()
    ]
  rows += [
    (f"diversity/{field}", _format(value))
    for field, value in records_metrics.to_json(metrics.diversity).items()
  ]
  for name, facts in metrics.baselines.items():
    rows += [
      (f"baselines/{name}/{field}", _format(value))
      for field, value in records_metrics.to_json(facts).items()
    ]
  rows.append(("metrics/seconds", _format(metrics.seconds)))
  if metrics.notes:
    rows.append(("metrics/notes", _format(metrics.notes)))
  return rows


def _metric_lines(record: IterationRecord) -> list[str]:
  """`label  value` per run metric and approximate NashConv of `record`."""
  rows = []
  if record.run_metrics is not None:
    rows += _run_metric_rows(record.run_metrics)
  if record.approx_nash_conv is not None:
    approx = record.approx_nash_conv
    rows += [
      (
        "approx_nash_conv",
        f"{_format(approx.value)} +- {_format(approx.ci95)} (95%; a lower bound)",
      ),
      (
        "approx_nash_conv/player_improvements",
        f"{_format(approx.player_improvements)} +- {_format(approx.player_improvements_ci95)}",
      ),
    ]
  if not rows:
    return []
  width = max(len(label) for label, _ in rows)
  return [f"  {label:<{width}}  {value}" for label, value in rows]


def summarize(run_dir: str) -> str:
  """The summary table of a run directory, as text.

  Raises:
    plots.RunDirError: the directory or its metrics.jsonl is missing, empty
      or corrupt.
  """
  records = plots.load_records(run_dir)
  final = records[-1]
  config = _read_optional_json(run_dir, checkpoints.CONFIG_FILE) or {}
  saved = _read_optional_json(run_dir, checkpoints.SUMMARY_FILE)
  summary = RunSummary.from_json(saved) if saved else None
  comparison = plots.load_comparison(run_dir)
  game = summary.game if summary is not None else config.get("game", "?")
  rows = [
    ("run directory", run_dir),
    ("game", game),
    ("iterations", f"{len(records)} (last index {final.iteration})"),
    ("population size", _format(final.population_size)),
    ("final NashConv", _format(final.nash_conv)),
    ("exploitability per player", _format(final.exploitability_per_player)),
    ("wall time (s)", _format(final.wall_time_s)),
    (
      "status",
      "finished" if summary else "no summary.json (running or interrupted; resume with --resume)",
    ),
  ]
  width = max(len(name) for name, _ in rows)
  lines = ["PSRO run report"] + [f"  {name:<{width}}  {value}" for name, value in rows]
  # The final record carries the metrics; a run with --metrics_every=0, or
  # one stopped before its final pass, shows its last record that has them.
  measured = next((r for r in reversed(records) if _metric_lines(r)), None)
  if measured is not None:
    note = (
      ""
      if measured is final
      else f" (the last record with metrics; the run ends at iteration {final.iteration})"
    )
    lines.append(f"Metrics at iteration {measured.iteration}{note}:")
    lines += _metric_lines(measured)
  if summary is not None:
    # Typed values (the metrics printed above, the stock comparison below)
    # are left out.
    values = {f.name: getattr(summary, f.name) for f in dataclasses.fields(summary)}
    shown = {k: v for k, v in values.items() if not dataclasses.is_dataclass(v)}
    lines.append("summary.json:")
    width = max((len(k) for k in shown), default=0)
    lines += [f"  {k:<{width}}  {_format(v)}" for k, v in shown.items()]
  if comparison:
    lines += _comparison_lines(records, comparison)
  return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    return 2
  if not FLAGS.run_dir:
    print("error: pass --run_dir=DIR, a PSRO run directory.", file=sys.stderr)
    return 2
  try:
    text = summarize(FLAGS.run_dir)
    written = plots.render_run_plots(FLAGS.run_dir) if FLAGS.render_plots else []
  except checkpoints.CheckpointError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(text)
  if written:
    print("Plots:")
    for path in written:
      print(f"  {path}")
  return 0


if __name__ == "__main__":
  app.run(main)
