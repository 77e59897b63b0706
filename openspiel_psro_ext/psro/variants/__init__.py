"""PSRO and its variants, by name (`PSROConfig.algorithm`, `--algorithm`).

A variant is a subclass of `psro.PSRO` that replaces one step of the loop
(`meta_solve`, `output_nash_conv`, `best_response_requests`) and keeps the
rest: the run directory, records, evaluation hooks, verification and resume.
Variants live in their own modules and register here, loaded on first use.

    run = algorithms.make(config, output_dir="runs/x")   # config.algorithm
    run.run()

A variant with settings of its own declares them as a dataclass `Options`
(e.g. `P2SRO.Options`); `options(name, mapping)` builds and checks them from
`--algorithm_options`, and the constructor takes them as `options=`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from openspiel_psro_ext import psro
from openspiel_psro_ext.errors import UsageError

_REGISTRY: dict[str, Callable[[], type[psro.PSRO]]] = {"psro": lambda: psro.PSRO}


def _load(module: str, cls: str) -> Callable[[], type[psro.PSRO]]:
  """A loader importing `openspiel_psro_ext.<module>` on first use."""

  def loader() -> type[psro.PSRO]:
    return getattr(importlib.import_module(f"openspiel_psro_ext.psro.variants.{module}"), cls)

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


def options(name: str, mapping: dict[str, Any]) -> Any | None:
  """Variant `name`'s `Options` from `mapping` (None: the variant's defaults).

  Raises:
    UsageError: the variant takes no options, a key is not one of its
      options, or a value is out of range.
  """
  cls = get(name)
  options_cls = getattr(cls, "Options", None)
  if options_cls is None:
    if mapping:
      raise UsageError(
        f"algorithm {name!r} takes no options; drop --algorithm_options"
        f" {sorted(mapping)} (variants with options:"
        f" {[n for n in names() if getattr(get(n), 'Options', None)]})."
      )
    return None
  fields = [f.name for f in dataclasses.fields(options_cls)]
  unknown = sorted(set(mapping) - set(fields))
  if unknown:
    raise UsageError(f"algorithm {name!r} has no options {unknown}; it takes {fields}.")
  try:
    built = options_cls(**mapping)
  except TypeError as e:  # a value of the wrong kind, e.g. a list for an int
    raise UsageError(f"--algorithm_options for {name!r}: {e}") from e
  built.check()
  return built


def make(config: psro.PSROConfig, algorithm_options: Any | None = None, **kwargs: Any) -> psro.PSRO:
  """The run `config.algorithm` names; `algorithm_options` (see `options`)
  and `kwargs` go to its constructor."""
  if algorithm_options is not None:
    kwargs["options"] = algorithm_options
  return get(config.algorithm)(config, **kwargs)
