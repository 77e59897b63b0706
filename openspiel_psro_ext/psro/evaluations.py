"""Evaluation hooks: what a run computes beside PSRO itself (run metrics, the
simulated mode's approximate NashConv), and what they see of a record.

The loop calls each `Evaluation` on the iterations it is due and on the
run's last one, with a `Snapshot` of what the record describes, and stores
its value in the record (`IterationRecord.add`); the hooks' seconds are the
record's `evaluation_time_s`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pyspiel

from openspiel_psro_ext import backends
from openspiel_psro_ext import records as records_lib
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.simulated import simulation


class Members(Protocol):
  """The populations a snapshot shows: the run's view (`views.View`), or a
  variant's output as populations of one (XDO)."""

  @property
  def game(self) -> pyspiel.Game: ...

  @property
  def tree(self) -> GameTree | None: ...

  @property
  def policies(self) -> list[list[simulation.BatchedPolicy]] | None: ...

  def population_matrices(self) -> list[np.ndarray] | None: ...


@dataclasses.dataclass
class Snapshot:
  """What one record describes, handed to evaluation hooks.

  Attributes:
    view: the populations (members beyond `sizes` are newer).
    sizes: per player, the members the meta-strategy mixes.
    sigma: per player, `[sizes[p]]` probabilities.
    meta_games: per player, the `sizes`-shaped payoff tensor.
    backend: where the run's best responses train (for hooks that train).
  """

  view: Members
  sizes: list[int]
  sigma: list[np.ndarray]
  meta_games: list[np.ndarray]
  backend: backends.Backend

  def matrices(self) -> list[np.ndarray] | None:
    """Per player `[sizes[p], I_p, A]`, or None without a compiled tree."""
    matrices = self.view.population_matrices()
    return None if matrices is None else [m[:n] for m, n in zip(matrices, self.sizes)]

  def policies(self) -> list[list[simulation.BatchedPolicy]] | None:
    """Per player the first `sizes[p]` batched policies (simulated view)."""
    pols = self.view.policies
    return None if pols is None else [list(p[:n]) for p, n in zip(pols, self.sizes)]


@dataclasses.dataclass
class Evaluation:
  """A hook whose value joins the records (`IterationRecord.add`).

  Attributes:
    compute: `Snapshot -> value`, a typed evaluation value (`RunMetrics`,
      `ApproxNashConv`).
    every: runs on iterations `0, every, 2 every, ...` (0: none of them), and
      always on the run's last iteration.
  """

  compute: Callable[[Snapshot], records_lib.EvaluationValue]
  every: int = 0

  def due(self, iteration: int) -> bool:
    return self.every > 0 and iteration % self.every == 0


def evaluate(
  record: records_lib.IterationRecord,
  hooks: Sequence[Evaluation],
  snapshot: Callable[[], Snapshot],
) -> float:
  """Runs `hooks` on the snapshot of `record` (made only if one runs);
  adds their seconds to its `evaluation_time_s` and returns them."""
  if not hooks:
    return 0.0
  start = time.perf_counter()
  shown = snapshot()
  for hook in hooks:
    record.add(hook.compute(shown))
  spent = time.perf_counter() - start
  record.evaluation_time_s += spent
  return spent
