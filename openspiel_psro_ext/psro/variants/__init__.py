"""PSRO and its variants, by name (`PSROConfig.algorithm`, `--algorithm`).

A variant is a `base.Variant`: a small object the loop calls at named steps
(see `base`). Variants live in their own modules and register here, loaded
on first use; a run builds the one its config names:

    run = psro.PSRO(config)   # config.algorithm's variant, default options
    run = psro.PSRO(config, variant=variants.make("p2sro", options))

A variant with settings of its own declares them as a dataclass `Options`
(e.g. `p2sro.PipelineOptions`); `options(name, mapping)` builds and checks
them from `--algorithm_options`, and a run directory keeps them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records import schema

Loader = Callable[[], type[base.Variant]]

_REGISTRY: dict[str, Loader] = {"psro": lambda: base.PSRO}


def _load(module: str, cls: str) -> Loader:
  """A loader importing `openspiel_psro_ext.psro.variants.<module>` on first use."""

  def loader() -> type[base.Variant]:
    loaded = getattr(importlib.import_module(f"openspiel_psro_ext.psro.variants.{module}"), cls)
    assert issubclass(loaded, base.Variant)
    return loaded

  return loader


def register(name: str, loader: Loader) -> None:
  """Registers a variant class under `name` (loaded lazily)."""
  if name in _REGISTRY:
    raise KeyError(f"algorithm {name!r} is already registered.")
  _REGISTRY[name] = loader


register("xdo", _load("xdo", "XDO"))
register("nxdo", _load("xdo", "NXDO"))
register("anytime_psro", _load("anytime_psro", "AnytimePSRO"))
register("jpsro", _load("jpsro", "JPSRO"))
register("p2sro", _load("p2sro", "P2SRO"))
register("neupl", _load("neupl", "NeuPL"))


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(name: str) -> type[base.Variant]:
  """The variant class registered as `name`."""
  if name not in _REGISTRY:
    raise UsageError(f"unknown algorithm {name!r}; choose one of {names()}.")
  return _REGISTRY[name]()


def options(name: str, mapping: dict[str, Any]) -> Any | None:
  """Variant `name`'s `Options` from `mapping` (None: it takes none).

  Raises:
    UsageError: the variant takes no options, a key is not one of its
      options, or a value is out of range.
  """
  options_cls = get(name).Options
  if options_cls is None:
    if mapping:
      raise UsageError(
        f"algorithm {name!r} takes no options; drop --algorithm_options"
        f" {sorted(mapping)} (variants with options:"
        f" {[n for n in names() if get(n).Options is not None]})."
      )
    return None
  declared = schema.fields(options_cls)
  unknown = sorted(set(mapping) - set(declared))
  if unknown:
    raise UsageError(f"algorithm {name!r} has no options {unknown}; it takes {list(declared)}.")
  wrong = schema.problem(declared, mapping, lambda key: f"--algorithm_options {key}")
  if wrong is not None:
    raise UsageError(wrong)
  built = options_cls(**mapping)
  built.check()  # what one value asks of another (e.g. min_chunks <= max_chunks)
  return built


def make(name: str, options: Any | None = None) -> base.Variant:
  """Variant `name` with `options` (its `Options`; None: the defaults),
  checked."""
  return get(name)(options)


__all__ = ["base", "get", "make", "names", "options", "register"]
