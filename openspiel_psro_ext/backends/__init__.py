"""Where best responses and simulated games run: in this process, or on Ray.

One PSRO iteration asks the oracle for several best responses that do not
depend on each other (one per player; one per support member under rectified
Nash). A backend answers such a batch,

    members = backend.best_responses(oracle, [request_1, ..., request_k]),

in the order of the requests. `EmbeddedBackend` (the default) runs them one
after another in this process. `RayBackend` runs them as Ray tasks, one CPU
each, on a local Ray started for the run or on an existing cluster by address:
on a 2-core laptop the two players' RL best responses train at the same time,
so an iteration takes half as long with the same training per best response.

The simulated mode's games (payoff entries, the approximate NashConv's
evaluation games) go the same way: `backend.play(game, seats, tasks)` runs
`simulation.PlayTask`s, each seeded on its own, one after another or as Ray
tasks beside the best responses.

Each member's `stats["call_seconds"]` is the whole oracle call as timed
where it ran (set-up and the result's matrix included, Ray's scheduling and
transfers not): what one worker spends on it.

Results do not depend on the backend: every request carries its own seed, so
oracles with episode or step budgets return the same members either way (wall
time budgets are time-dependent on any backend).
"""

from __future__ import annotations

import abc
import ctypes
import ctypes.util
import dataclasses
import functools
import logging
import math
import os
import pickle
import time
from collections.abc import Sequence
from typing import Any

from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.simulated import simulation

# Tasks run one per CPU: BLAS and OpenMP threads inside them only contend.
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@functools.cache
def _malloc_trim() -> Any:
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
  memory grows by about 10 MiB an iteration on limit hold'em while its live
  data grows by about 1 MiB (benchmarks/psro_simulated.py; BUILD_NOTES).
  `malloc_trim(0)` hands the free pages back; it costs milliseconds, after
  each batch of best responses or games. A no-op without glibc.
  """
  trim = _malloc_trim()
  if trim is not None:
    trim(0)


class Backend(abc.ABC):
  """Computes batches of independent best responses."""

  name: str

  @abc.abstractmethod
  def best_responses(
    self, oracle: oracle_base.Oracle, requests: Sequence[oracle_base.BestResponseRequest]
  ) -> list[oracle_base.PopulationMember]:
    """One member per request, in order."""

  @abc.abstractmethod
  def play(
    self, game: Any, seats: Sequence[Any], tasks: Sequence[simulation.PlayTask]
  ) -> list[Any]:
    """Simulated games (`simulation.PlayTask`s, each seeded on its own) of
    `game` with `seats` (per player a `simulation.Population` or batched
    policy): per task its `[num_games, P]` returns, in order."""

  def close(self) -> None:  # noqa: B027 (a backend that starts nothing has nothing to release)
    """Releases what the backend started."""


def timed_best_response(
  oracle: oracle_base.Oracle, request: oracle_base.BestResponseRequest
) -> oracle_base.PopulationMember:
  """`oracle.best_response(request)` with `stats["call_seconds"]` (module doc)."""
  start = time.perf_counter()
  member = oracle.best_response(request)
  member.stats["call_seconds"] = time.perf_counter() - start
  return member


class EmbeddedBackend(Backend):
  """Best responses one after another in this process."""

  name = "embedded"

  def best_responses(self, oracle, requests):
    members = [timed_best_response(oracle, request) for request in requests]
    release_freed_memory()
    return members

  def play(self, game, seats, tasks):
    returns = simulation.SerialPlayer().play(game, seats, tasks)
    release_freed_memory()
    return returns


_WORKER_TREES: dict[str, Any] = {}


def _remote_best_response(
  oracle: oracle_base.Oracle, tree_ref: list[Any], request: oracle_base.BestResponseRequest
) -> oracle_base.PopulationMember:
  """A Ray task: one best response, with the worker's own copy of the tree."""
  import ray  # pylint: disable=g-import-not-at-top

  # The ref comes wrapped in a list so that Ray does not resolve it: the
  # object store's arrays are read-only, so each worker keeps one writable
  # copy of the tree for all its tasks.
  key = tree_ref[0].hex()
  if key not in _WORKER_TREES:
    _WORKER_TREES[key] = pickle.loads(pickle.dumps(ray.get(tree_ref[0])))
  member = timed_best_response(oracle, dataclasses.replace(request, tree=_WORKER_TREES[key]))
  release_freed_memory()
  return member


def _remote_play(game: Any, seats: Sequence[Any], task: simulation.PlayTask) -> Any:
  """A Ray task: one share of simulated games."""
  returns = task.run(game, seats)
  release_freed_memory()
  return returns


class RayBackend(Backend):
  """Best responses as Ray tasks, one CPU each (a share of one when a batch
  has more tasks than the cluster has CPUs: they all run at once).

  Args:
    address: an existing Ray cluster's address ("auto", "ray://host:10001"),
      or None to start a local Ray for this run with `num_cpus` CPUs.
    num_cpus: CPUs of the local Ray (None: all of this machine's).
  """

  name = "ray"

  def __init__(self, address: str | None = None, num_cpus: int | None = None):
    try:
      import ray  # pylint: disable=g-import-not-at-top
    except ImportError as error:
      raise ImportError(
        "backend 'ray' needs Ray: pip install -c constraints.txt"
        " 'openspiel_psro_ext[ray]', or use backend 'embedded'."
      ) from error
    self._ray = ray
    self._address, self._num_cpus = address, num_cpus
    self._started_here = False
    self._task = None
    self._tree_refs: dict[int, tuple[Any, Any]] = {}

  def _start(self) -> None:
    """Connects to (or starts) Ray on first use: a run refused for bad input
    or a taken output directory never starts it."""
    ray = self._ray
    # A local single-user Ray needs no token file.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    self._started_here = not ray.is_initialized()
    if self._started_here:
      kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=True,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": dict(_SINGLE_THREAD_ENV)},
      )
      if self._address is None:
        kwargs["num_cpus"] = self._num_cpus
      ray.init(address=self._address, **kwargs)
    self._task = ray.remote(num_cpus=1)(_remote_best_response)
    self._play_task = ray.remote(num_cpus=1)(_remote_play)
    logging.info("Ray backend: %s CPUs.", ray.cluster_resources().get("CPU"))

  def _tree_ref(self, tree: Any) -> Any:
    # One copy of the compiled tree in the object store per run, not per task
    # (the tree is kept with its ref, so its id is not reused).
    key = id(tree)
    if key not in self._tree_refs:
      self._tree_refs[key] = (tree, self._ray.put(tree))
    return self._tree_refs[key][1]

  def best_responses(self, oracle, requests):
    if self._task is None:
      self._start()
    # A batch larger than the cluster shares its CPUs rather than queueing:
    # oracles with wall-time budgets would otherwise take several rounds.
    cpus = self._ray.cluster_resources().get("CPU", 1.0)
    share = min(1.0, math.floor(1e4 * cpus / max(len(requests), 1)) / 1e4)
    task = self._task.options(num_cpus=share)
    futures = [
      task.remote(oracle, [self._tree_ref(r.tree)], dataclasses.replace(r, tree=None))
      for r in requests
    ]
    members = self._ray.get(futures)
    for member in members:
      if member.matrix is not None and not member.matrix.flags.writeable:
        # arrays from the object store (simulated members have no matrix)
        member.matrix = member.matrix.copy()
    return members

  def play(self, game, seats, tasks):
    if self._task is None:
      self._start()
    # The seats (torch modules of the whole population) go to the object
    # store once per call, not once per task.
    game_ref, seats_ref = self._ray.put(game), self._ray.put(list(seats))
    return self._ray.get([self._play_task.remote(game_ref, seats_ref, task) for task in tasks])

  def close(self) -> None:
    if self._started_here and self._ray.is_initialized():
      self._ray.shutdown()


_BACKENDS = {"embedded": EmbeddedBackend, "ray": RayBackend}


def names() -> list[str]:
  return sorted(_BACKENDS)


def make(name: str, **kwargs: Any) -> Backend:
  """A backend by name (`names()`); `kwargs` go to its constructor."""
  if name not in _BACKENDS:
    raise ValueError(f"unknown backend {name!r}; choose one of {names()}.")
  return _BACKENDS[name](**kwargs)
