"""Best-response oracles behind one interface, found by name.

`get(name)` returns the oracle class, `names()` the registered names. Each
oracle class has a `Config` dataclass of hyperparameters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from openspiel_psro_ext.oracles.base import (
  BestResponseRequest,
  ConditionedMixtures,
  JointMixture,
  LearningMixture,
  MemberMixture,
  Opponents,
  Oracle,
  PopulationMember,
  TrainingPlan,
)
from openspiel_psro_ext.oracles.exact_br import ExactBestResponseConfig, ExactBestResponseOracle

_REGISTRY: dict[str, Callable[[], type[Oracle]]] = {
  "exact": lambda: ExactBestResponseOracle,
}


def _load(module: str, cls: str) -> Callable[[], type[Oracle]]:
  """A loader importing `openspiel_psro_ext.oracles.<module>` on first use."""

  def loader() -> type[Oracle]:
    return getattr(importlib.import_module(f"openspiel_psro_ext.oracles.rl.{module}"), cls)

  return loader


# Deep RL oracles (torch is imported only when one is used).
_REGISTRY.update(
  ppo=_load("ppo", "PPOOracle"),
  dqn=_load("dqn", "DQNOracle"),
  sac=_load("sac", "SACOracle"),
  mpo=_load("mpo", "MPOOracle"),
  crossq=_load("crossq", "CrossQOracle"),
  neupl=_load("neupl", "NeuPLOracle"),
)


def register(name: str, loader: Callable[[], type[Oracle]]) -> None:
  """Registers an oracle class under `name` (loaded lazily: torch is heavy)."""
  _REGISTRY[name] = loader


def names() -> list[str]:
  return sorted(_REGISTRY)


def trains(name: str) -> bool:
  """Whether oracle `name` trains for a budget (RL) rather than computes."""
  return get(name).trains


def get(name: str) -> type[Oracle]:
  """The oracle class registered as `name`."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown oracle {name!r}; choose one of {names()}.")
  return _REGISTRY[name]()


__all__ = [
  "BestResponseRequest",
  "ConditionedMixtures",
  "JointMixture",
  "LearningMixture",
  "MemberMixture",
  "Opponents",
  "Oracle",
  "PopulationMember",
  "TrainingPlan",
  "ExactBestResponseConfig",
  "ExactBestResponseOracle",
  "get",
  "names",
  "register",
  "trains",
]
