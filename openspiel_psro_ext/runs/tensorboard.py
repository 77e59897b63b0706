"""TensorBoard event files of a PSRO run's per-iteration scalars.

`TensorboardLogger(log_dir).log(iteration, record)` writes every number in an
iteration record with `torch.utils.tensorboard.SummaryWriter`, at step
`iteration`. Nested values are flattened into tag paths: a list becomes one
scalar per entry (`exploitability_per_player/0`, `elo/newest/1`), a dict one
per key (`oracle/episodes`); lists of lists (`meta_strategy`, `elo/members`)
are too long-lived and too many to chart and are skipped, as are strings.

Needs the `tensorboard` package (`pip install tensorboard`, or the package's
`[tensorboard]` extra).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterator

from openspiel_psro_ext.errors import UsageError


class TensorboardUnavailableError(ImportError, UsageError):
  """The tensorboard package is not installed (a `UsageError` too, so the
  command line reports it as one line)."""


def scalar_items(record: dict[str, Any],
                 prefix: str = "") -> Iterator[tuple[str, float]]:
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
      if all(isinstance(v, numbers.Real) and not isinstance(v, bool)
             for v in value):
        for i, v in enumerate(value):
          if math.isfinite(v):
            yield f"{tag}/{i}", float(v)


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
          f" extra). ({e})") from e
    self.log_dir = log_dir
    self._writer = SummaryWriter(log_dir=log_dir)

  def log(self, iteration: int, metrics: dict[str, Any]) -> int:
    """Writes the numbers of one iteration record; returns how many."""
    count = 0
    for tag, value in scalar_items(metrics):
      if tag == "iteration":
        continue
      self._writer.add_scalar(tag, value, global_step=int(iteration))
      count += 1
    self._writer.flush()
    return count

  def close(self) -> None:
    self._writer.close()
