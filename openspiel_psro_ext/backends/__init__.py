"""Where best responses and simulated games run: in this process, or on Ray.

One PSRO iteration asks the oracle for several best responses that do not
depend on each other (one per player; one per support member under rectified
Nash). A backend answers such a batch,

    members = backend.best_responses(oracle, [request_1, ..., request_k]),

in the order of the requests. `EmbeddedBackend` (the default) runs them one
after another in this process. `RayBackend` runs them as Ray tasks, one CPU
each, on a local Ray started for the run or on an existing cluster by address:
with two cores the two players' RL best responses train at the same time, with
the same training per best response.

The simulated mode's games (payoff entries, the approximate NashConv's
evaluation games) go the same way: `backend.play(game, seats, tasks)` runs
`simulation.PlayTask`s, each seeded on its own, one after another or as Ray
tasks beside the best responses.

Each member's `stats["call_seconds"]` is the whole oracle call as timed
where it ran: what one worker spends on it (`base.timed_best_response`).

Results do not depend on the backend: every request carries its own seed, so
oracles with episode or step budgets return the same members either way (wall
time budgets are time-dependent on any backend).
"""

from __future__ import annotations

from typing import Any

from openspiel_psro_ext.backends.base import (
  Backend,
  EmbeddedBackend,
  release_freed_memory,
  timed_best_response,
)
from openspiel_psro_ext.backends.ray import RayBackend

__all__ = [
  "Backend",
  "EmbeddedBackend",
  "RayBackend",
  "make",
  "names",
  "release_freed_memory",
  "timed_best_response",
]

_BACKENDS: dict[str, type[Backend]] = {"embedded": EmbeddedBackend, "ray": RayBackend}


def names() -> list[str]:
  """The backends `make` knows, sorted."""
  return sorted(_BACKENDS)


def make(name: str, **kwargs: Any) -> Backend:
  """A backend by name (`names()`); `kwargs` go to its constructor."""
  if name not in _BACKENDS:
    raise ValueError(f"unknown backend {name!r}; choose one of {names()}.")
  return _BACKENDS[name](**kwargs)
