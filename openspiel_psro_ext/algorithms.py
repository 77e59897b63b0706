"""PSRO and its variants, by name (`PSROConfig.algorithm`, `--algorithm`).

A variant is a subclass of `psro.PSRO` that replaces one step of the loop
(`meta_solve`, `output_nash_conv`, `best_response_requests`) and keeps the
rest: the run directory, records, evaluation hooks, verification and resume.
Variants live in their own modules and register here, loaded on first use.

    run = algorithms.make(config, output_dir="runs/x")   # config.algorithm
    run.run()
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from openspiel_psro_ext import psro
from openspiel_psro_ext.errors import UsageError

_REGISTRY: dict[str, Callable[[], type[psro.PSRO]]] = {"psro": lambda: psro.PSRO}


def _load(module: str, cls: str) -> Callable[[], type[psro.PSRO]]:
  """A loader importing `openspiel_psro_ext.<module>` on first use."""
  def loader() -> type[psro.PSRO]:
    return getattr(importlib.import_module(f"openspiel_psro_ext.{module}"), cls)
  return loader


def register(name: str, loader: Callable[[], type[psro.PSRO]]) -> None:
  """Registers a variant class under `name` (loaded lazily)."""
  if name in _REGISTRY:
    raise KeyError(f"algorithm {name!r} is already registered.")
  _REGISTRY[name] = loader


register("xdo", _load("xdo", "XDO"))
register("anytime_psro", _load("anytime_psro", "AnytimePSRO"))
register("jpsro", _load("jpsro", "JPSRO"))
register("p2sro", _load("p2sro", "P2SRO"))


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> type[psro.PSRO]:
  """The loop class registered as `name`."""
  if name not in _REGISTRY:
    raise UsageError(f"unknown algorithm {name!r}; choose one of {names()}.")
  return _REGISTRY[name]()


def make(config: psro.PSROConfig, **kwargs: Any) -> psro.PSRO:
  """The run `config.algorithm` names; `kwargs` go to its constructor."""
  return get(config.algorithm)(config, **kwargs)
