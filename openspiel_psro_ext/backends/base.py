"""The backend interface, and what every backend does around an oracle call."""

from __future__ import annotations

import abc
import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable, Sequence
from typing import TypeAlias

import numpy as np
import pyspiel

from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.simulated import simulation

#: Per player, a population or a single batched policy (`simulation.play`).
Seats: TypeAlias = Sequence[simulation.Population | simulation.BatchedPolicy]


class Backend(abc.ABC):
  """Computes batches of independent best responses and simulated games."""

  name: str

  @abc.abstractmethod
  def best_responses(
    self, oracle: oracle_base.Oracle, requests: Sequence[oracle_base.BestResponseRequest]
  ) -> list[oracle_base.PopulationMember]:
    """One member per request, in order."""

  @abc.abstractmethod
  def play(
    self, game: pyspiel.Game, seats: Seats, tasks: Sequence[simulation.PlayTask]
  ) -> list[np.ndarray]:
    """Simulated games (`simulation.PlayTask`s, each seeded on its own) of
    `game` with `seats` (per player a `simulation.Population` or batched
    policy): per task its `[num_games, P]` returns, in order."""

  def close(self) -> None:  # noqa: B027 (a backend that starts nothing has nothing to release)
    """Releases what the backend started."""


def timed_best_response(
  oracle: oracle_base.Oracle, request: oracle_base.BestResponseRequest
) -> oracle_base.PopulationMember:
  """`oracle.best_response(request)` with `stats["call_seconds"]`: the whole
  call as timed where it ran (set-up and the result's matrix included, a
  remote backend's scheduling and transfers not)."""
  start = time.perf_counter()
  member = oracle.best_response(request)
  member.stats["call_seconds"] = time.perf_counter() - start
  return member


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
  """glibc's `malloc_trim`, or None where the C library has none."""
  name = ctypes.util.find_library("c")
  try:
    return ctypes.CDLL(name).malloc_trim if name else None
  except (OSError, AttributeError):
    return None


def release_freed_memory() -> None:
  """Returns the memory the C allocator holds free to the operating system.

  glibc's malloc keeps freed blocks in its arenas for reuse. Training (torch
  tensors) and simulated games (pyspiel states) allocate and free blocks of
  ever-changing sizes, so the free space fragments and a long run's resident
  memory grows much faster than its live data (benchmarks/psro_simulated.py).
  `malloc_trim(0)` hands the free pages back; it costs milliseconds, after
  each batch of best responses or games. A no-op without glibc.
  """
  trim = _malloc_trim()
  if trim is not None:
    trim(0)


class EmbeddedBackend(Backend):
  """Best responses one after another in this process."""

  name = "embedded"

  def best_responses(
    self, oracle: oracle_base.Oracle, requests: Sequence[oracle_base.BestResponseRequest]
  ) -> list[oracle_base.PopulationMember]:
    members = [timed_best_response(oracle, request) for request in requests]
    release_freed_memory()
    return members

  def play(
    self, game: pyspiel.Game, seats: Seats, tasks: Sequence[simulation.PlayTask]
  ) -> list[np.ndarray]:
    returns = simulation.SerialPlayer().play(game, seats, tasks)
    release_freed_memory()
    return returns
