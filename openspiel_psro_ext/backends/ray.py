"""The Ray backend: best responses and simulated games as Ray tasks."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import socket
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyspiel

from openspiel_psro_ext.backends.base import (
  Backend,
  Seats,
  release_freed_memory,
  timed_best_response,
)
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.simulated import simulation

# Tasks run one per CPU: BLAS and OpenMP threads inside them only contend.
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Each worker's writable copy of a run's tree, by its object-store ref.
_WORKER_TREES: dict[str, GameTree] = {}


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


def _remote_play(game: pyspiel.Game, seats: Seats, task: simulation.PlayTask) -> np.ndarray:
  """A Ray task: one share of simulated games."""
  returns = task.run(game, seats)
  release_freed_memory()
  return returns


@dataclasses.dataclass(frozen=True)
class _RemoteTasks:
  """The Ray remote functions of the two tasks. Ray types a remote function by
  its arity in a private module, so they are held as `Any`."""

  best_response: Any
  play: Any


def check_address(address: str, timeout_s: float = 5.0) -> None:
  """Refuses, within `timeout_s`, a cluster address where nothing answers.

  `ray.init` retries an unreachable address for minutes; one bounded TCP
  connect to its host and port answers at once. "auto" (Ray finds a local
  cluster itself) is not checked.

  Raises:
    UsageError: the address is malformed or nothing listens there.
  """
  if address == "auto":
    return
  target = address.split("://", 1)[-1]
  host, _, port = target.rpartition(":")
  if not host or not port.isdigit():
    raise UsageError(
      f"--ray_address={address!r} is not host:port (e.g. 127.0.0.1:6379 or"
      " ray://host:10001); drop it to start a local Ray."
    )
  try:
    socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
  except OSError as e:
    raise UsageError(
      f"--ray_address={address}: nothing answers at {host}:{port} ({e}); start the"
      " cluster (ray start --head) or drop --ray_address to start a local Ray."
    ) from e


class RayBackend(Backend):
  """Best responses as Ray tasks, one CPU each (a share of one when a batch
  has more tasks than the cluster has CPUs: they all run at once).

  Args:
    address: an existing Ray cluster's address ("auto", "ray://host:10001"),
      or None to start a local Ray for this run with `num_cpus` CPUs; one
      where nothing answers is refused at once (`check_address`).
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
    if address is not None:
      check_address(address)
    self._ray = ray
    self._address, self._num_cpus = address, num_cpus
    self._started_here = False
    self._tasks: _RemoteTasks | None = None
    self._tree_refs: dict[int, tuple[GameTree | None, Any]] = {}

  def _remote(self) -> _RemoteTasks:
    """Connects to (or starts) Ray on first use: a run refused for bad input
    or a taken output directory never starts it."""
    if self._tasks is not None:
      return self._tasks
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
    self._tasks = _RemoteTasks(
      best_response=ray.remote(num_cpus=1)(_remote_best_response),
      play=ray.remote(num_cpus=1)(_remote_play),
    )
    logging.info("Ray backend: %s CPUs.", ray.cluster_resources().get("CPU"))
    return self._tasks

  def _tree_ref(self, tree: GameTree | None) -> Any:
    # One copy of the compiled tree in the object store per run, not per task
    # (the tree is kept with its ref, so its id is not reused).
    key = id(tree)
    if key not in self._tree_refs:
      self._tree_refs[key] = (tree, self._ray.put(tree))
    return self._tree_refs[key][1]

  def best_responses(
    self, oracle: oracle_base.Oracle, requests: Sequence[oracle_base.BestResponseRequest]
  ) -> list[oracle_base.PopulationMember]:
    tasks = self._remote()
    # A batch larger than the cluster shares its CPUs rather than queueing:
    # oracles with wall-time budgets would otherwise take several rounds.
    cpus = self._ray.cluster_resources().get("CPU", 1.0)
    share = min(1.0, math.floor(1e4 * cpus / max(len(requests), 1)) / 1e4)
    task = tasks.best_response.options(num_cpus=share)
    futures = [
      task.remote(oracle, [self._tree_ref(r.tree)], dataclasses.replace(r, tree=None))
      for r in requests
    ]
    members: list[oracle_base.PopulationMember] = self._ray.get(futures)
    for member in members:
      if member.matrix is not None and not member.matrix.flags.writeable:
        # arrays from the object store (simulated members have no matrix)
        member.matrix = member.matrix.copy()
    return members

  def play(
    self, game: pyspiel.Game, seats: Seats, tasks: Sequence[simulation.PlayTask]
  ) -> list[np.ndarray]:
    remote = self._remote()
    # The seats (torch modules of the whole population) go to the object
    # store once per call, not once per task.
    game_ref, seats_ref = self._ray.put(game), self._ray.put(list(seats))
    return self._ray.get([remote.play.remote(game_ref, seats_ref, task) for task in tasks])

  def close(self) -> None:
    if self._started_here and self._ray.is_initialized():
      self._ray.shutdown()
