"""TensorBoard event files of a PSRO run's per-iteration scalars.

`TensorboardLogger(log_dir).log(record)` writes every number in an
`IterationRecord` with `torch.utils.tensorboard.SummaryWriter`, at step
`record.iteration`. The typed evaluation values get flat tags
(`win_rate/cfr_plus`, `win_rate/cfr_plus/seat0`, `elo/newest`,
`diversity/behavioural`, `approx_nash_conv`, ...). Nested values are
flattened into tag paths: a list becomes one scalar per entry
(`exploitability_per_player/0`, `elo/newest/1`), a dict one per key
(`oracle/episodes`); lists of lists (`meta_strategy`, `elo/members`) are too
long-lived and too many to chart and are skipped, as are strings.

Needs the `tensorboard` package (`pip install tensorboard`, or the package's
`[tensorboard]` extra).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator
from typing import Any

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records import metrics as records_metrics


class TensorboardUnavailableError(ImportError, UsageError):
  """The tensorboard package is not installed (a `UsageError` too, so the
  command line reports it as one line)."""


def scalar_items(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
  """`(tag, value)` for every finite number in `record` (see module doc)."""
  for key, value in record.items():
    tag = f"{prefix}{key}"
    if isinstance(value, bool):
      yield tag, float(value)
    elif isinstance(value, numbers.Real):
      if math.isfinite(value):
        yield tag, float(value)
    elif isinstance(value, dict):
      yield from scalar_items(value, prefix=f"{tag}/")
    elif isinstance(value, (list, tuple)):
      if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        for i, v in enumerate(value):
          if math.isfinite(v):
            yield f"{tag}/{i}", float(v)


def _run_metric_tags(metrics: records_metrics.RunMetrics) -> dict[str, Any]:
  """The run metrics by tag; `scalar_items` flattens what is nested."""
  tags: dict[str, Any] = {}
  for name, versus in metrics.versus.items():
    seats = [(f"/seat{p}", outcome) for p, outcome in enumerate(versus.seats)]
    for suffix, outcome in [("", versus.mean)] + seats:
      for field, value in records_metrics.to_json(outcome).items():
        tags[f"{field}/{name}{suffix}"] = value
  if metrics.elo is not None:
    tags["elo"] = records_metrics.to_json(metrics.elo)
  tags["diversity"] = records_metrics.to_json(metrics.diversity)
  tags["baselines"] = {name: records_metrics.to_json(b) for name, b in metrics.baselines.items()}
  tags["metrics/seconds"] = metrics.seconds
  return tags


def record_scalars(record: IterationRecord) -> Iterator[tuple[str, float]]:
  """`(tag, value)` for every finite number of `record` but its iteration."""
  plain = dataclasses.replace(record, run_metrics=None, approx_nash_conv=None).to_json()
  del plain["iteration"]
  yield from scalar_items(plain)
  if record.run_metrics is not None:
    yield from scalar_items(_run_metric_tags(record.run_metrics))
  approx = record.approx_nash_conv
  if approx is not None:
    yield from scalar_items(
      {
        "approx_nash_conv": approx.value,
        "approx_nash_conv_ci95": approx.ci95,
        "approx_player_improvements": approx.player_improvements,
        "approx_player_improvements_ci95": approx.player_improvements_ci95,
      }
    )


class TensorboardLogger:
  """Writes iteration records as TensorBoard scalars."""

  def __init__(self, log_dir: str):
    """Opens an event-file writer in `log_dir`.

    Raises:
      TensorboardUnavailableError: the tensorboard package is missing.
    """
    try:
      from torch.utils.tensorboard import SummaryWriter  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise TensorboardUnavailableError(
        "--tensorboard needs the tensorboard package: run `pip install"
        " tensorboard` (or install this package with the [tensorboard]"
        f" extra). ({e})"
      ) from e
    self.log_dir = log_dir
    self._writer = SummaryWriter(log_dir=log_dir)

  def log(self, record: IterationRecord) -> int:
    """Writes the numbers of one iteration record; returns how many."""
    count = 0
    for tag, value in record_scalars(record):
      self._writer.add_scalar(tag, value, global_step=record.iteration)
      count += 1
    self._writer.flush()
    return count

  def close(self) -> None:
    self._writer.close()
