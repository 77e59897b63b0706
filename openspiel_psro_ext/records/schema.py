"""What a setting takes: its type and range, declared beside the field.

Every setting of a run (`PSROConfig`, the command's `RunOptions`, each
oracle's `Config`, each variant's `Options`, each meta-solver's parameters)
is a dataclass field or a keyword parameter whose annotation is its type and
whose `setting(...)` metadata is its range or choice set. `problem` is the
one function that holds values against these declarations; a value of the
wrong kind, outside its range, NaN, or too large for this machine's memory is
a problem naming the setting, the value and what it takes, which the caller
raises as a `UsageError` (this layer sits beside `errors`, not above it):

    --oracle_config hidden must be small enough for this machine's memory: it
    needs at least 40 GB (the network's parameters at 4 bytes each), and 12.3
    GB are available (got [100000, 100000]).

Types: `bool`, `int` (not a bool), `float` (an int too; finite unless
`infinite`), `str`, `tuple[T, ...]` (a list or tuple of T), `dict[...]`
(a JSON object), an `enum.Enum` (a member or its value), `X | None`, `Any`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# Bytes of one network parameter (float32); the sanity bound counts nothing else.
_PARAMETER_BYTES = 4


def setting(
  default: Any = dataclasses.MISSING,
  *,
  help: str = "",
  default_factory: Any = dataclasses.MISSING,
  choices: Sequence[str] | None = None,
  aliases: dict[str, str] | None = None,
  json_object: bool = False,
  min: float | None = None,
  max: float | None = None,
  below: float | None = None,
  above: float | None = None,
  pattern: str | None = None,
  infinite: bool = False,
  network: bool = False,
  bytes_each: int | None = None,
) -> Any:
  """A dataclass field with what the command line and `check` need to know.

  Args:
    default: the field's default (or `default_factory`).
    help: the flag's help text (settings that are flags).
    default_factory: as `dataclasses.field`.
    choices: the values a string setting takes.
    aliases: other names accepted for a choice (`{alias: choice}`).
    json_object: a JSON object on the command line (`--oracle_config='{...}'`).
    min: the smallest value allowed (inclusive; each element of a tuple).
    max: the largest value allowed (inclusive).
    below: values must be strictly smaller than this.
    above: values must be strictly larger than this.
    pattern: a regular expression a string setting must match (whole).
    infinite: a float setting may be infinite.
    network: a tuple of hidden-layer widths: the network's parameters must
      fit in the memory available.
    bytes_each: each unit of an integer size takes at least this many bytes:
      `value * bytes_each` must fit in the memory available.
  """
  return dataclasses.field(
    default=default,
    default_factory=default_factory,
    metadata=bounds(
      help=help,
      choices=choices,
      aliases=aliases,
      json_object=json_object,
      min=min,
      max=max,
      below=below,
      above=above,
      pattern=pattern,
      infinite=infinite,
      network=network,
      bytes_each=bytes_each,
    ),
  )


def new_default(cls: type, name: str, default: Any) -> Any:
  """The setting `name` of dataclass `cls` with another default: for a
  subclass's field, which a plain default would leave without `cls`'s
  declared bounds."""
  parent = next(f for f in dataclasses.fields(cls) if f.name == name)
  return dataclasses.field(default=default, metadata=parent.metadata)


def bounds(**declared: Any) -> dict[str, Any]:
  """`setting`'s metadata without the field (for keyword parameters, e.g. a
  meta-solver's): the declared keys whose values are set."""
  metadata = {k: v for k, v in declared.items() if v is not None and v is not False}
  if "choices" in metadata:
    metadata["choices"] = tuple(metadata["choices"])
  if declared.get("help") is not None:
    metadata["help"] = declared["help"]
  return metadata


@dataclasses.dataclass(frozen=True)
class Declared:
  """One setting: its name, type (an annotation) and `setting` metadata."""

  name: str
  hint: Any
  metadata: Mapping[str, Any]


def fields(cls: type) -> dict[str, Declared]:
  """The declared settings of a dataclass, by name."""
  hints = typing.get_type_hints(cls)
  return {f.name: Declared(f.name, hints[f.name], f.metadata) for f in dataclasses.fields(cls)}


def problem(
  declared: Mapping[str, Declared], values: Mapping[str, Any], name: Callable[[str], str]
) -> str | None:
  """Holds each of `values` against its declaration (keys without one are
  left to the caller, which knows how to name them); returns the first
  problem, worded as an error message, or None.

  Args:
    declared: the settings (`fields(cls)`, or a meta-solver's parameters).
    values: setting name -> value.
    name: how a setting is named in the error (`--iterations`,
      `--oracle_config hidden`).

  Returns:
    `<name> must be <what it takes> (got <value>).`, or None.
  """
  for key, value in values.items():
    if key in declared:
      wrong = _problem(declared[key].hint, declared[key].metadata, value)
      if wrong is not None:
        return f"{name(key)} must be {wrong} (got {_show(value)})."
  return None


def object_problem(obj: Any, name: Callable[[str], str]) -> str | None:
  """`problem` of every field of the dataclass instance `obj`."""
  values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
  return problem(fields(type(obj)), values, name)


def _show(value: Any) -> str:
  text = repr(value)
  return text if len(text) <= 60 else text[:57] + "..."


def _problem(hint: Any, metadata: Mapping[str, Any], value: Any) -> str | None:
  """What is wrong with `value` for a setting (None: nothing)."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:
      return _problem(options[0], metadata, value)
    problems = [_problem(a, metadata, value) for a in options]
    return None if None in problems else " or ".join(p for p in problems if p)
  if hint is Any or hint is object:
    return None
  if hint is bool:
    return None if isinstance(value, bool) else "true or false"
  if hint is int:
    if isinstance(value, bool) or not isinstance(value, int):
      return f"an integer{_range(metadata)}"
    if _out_of_range(value, metadata):
      return f"an integer{_range(metadata)}"
    return _memory(value, metadata)
  if hint is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      return f"a number{_range(metadata)}"
    if math.isnan(value) or (math.isinf(value) and not metadata.get("infinite")):
      return f"a finite number{_range(metadata)}"
    return f"a number{_range(metadata)}" if _out_of_range(value, metadata) else None
  if hint is str:
    if not isinstance(value, str):
      return "a string" + _choices(metadata)
    allowed = tuple(metadata.get("choices", ())) + tuple(metadata.get("aliases", {}))
    if allowed and value not in allowed:
      return f"one of {list(allowed)}"
    if "pattern" in metadata and not re.fullmatch(metadata["pattern"], value):
      return f"a string matching {metadata['pattern']}"
    return None
  if isinstance(hint, type) and issubclass(hint, enum.Enum):
    values = [m.value for m in hint]
    if isinstance(value, hint) or (isinstance(value, str) and value in values):
      return None
    return f"one of {values}"
  if origin in (tuple, list, Sequence):
    element = args[0] if args else Any
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
      return f"a list of {_kind(element)}{_range(metadata)}"
    for item in value:
      if _problem(element, {k: v for k, v in metadata.items() if k != "network"}, item):
        return f"a list of {_kind(element)}{_range(metadata)}"
    if metadata.get("network"):
      return _network_memory(value)
    return None
  if origin in (dict, Mapping) or hint is dict:
    return None if isinstance(value, dict) else "a JSON object"
  if hint is np.ndarray:
    return None if isinstance(value, (list, tuple, np.ndarray)) else "a list of numbers"
  if isinstance(hint, type):
    return None if isinstance(value, hint) else f"a {hint.__name__}"
  raise TypeError(f"no check for a setting of type {hint!r}")


def _kind(hint: Any) -> str:
  return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, str(hint))


def _range(metadata: Mapping[str, Any]) -> str:
  """` in [0, 1)`, ` >= 1`, or nothing."""
  low = [f"[{metadata['min']!r}"] if "min" in metadata else []
  low += [f"({metadata['above']!r}"] if "above" in metadata else []
  high = [f"{metadata['max']!r}]"] if "max" in metadata else []
  high += [f"{metadata['below']!r})"] if "below" in metadata else []
  if low and high:
    return f" in {low[0]}, {high[0]}"
  bounds = (("min", ">="), ("above", ">"), ("below", "<"), ("max", "<="))
  parts = [f"{sign} {metadata[key]!r}" for key, sign in bounds if key in metadata]
  return f" {' and '.join(parts)}" if parts else ""


def _choices(metadata: Mapping[str, Any]) -> str:
  return f", one of {list(metadata['choices'])}" if "choices" in metadata else ""


def _out_of_range(value: float, metadata: Mapping[str, Any]) -> bool:
  low, high, below = metadata.get("min"), metadata.get("max"), metadata.get("below")
  above = metadata.get("above")
  return (
    (low is not None and not value >= low)
    or (above is not None and not value > above)
    or (high is not None and not value <= high)
    or (below is not None and not value < below)
  )


def available_memory_bytes() -> int:
  """Memory the kernel could give this process now (MemAvailable), else the
  free physical pages."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, AttributeError):
    return 1 << 62  # unknown: no bound


def _too_large(needed: int, what: str) -> str | None:
  available = available_memory_bytes()
  if needed <= available:
    return None
  return (
    f"small enough for this machine's memory: it needs at least {needed / 1e9:.3g} GB"
    f" ({what}), and {available / 1e9:.3g} GB are available"
  )


def _memory(value: int, metadata: Mapping[str, Any]) -> str | None:
  each = metadata.get("bytes_each")
  return None if each is None else _too_large(value * each, f"{each} bytes each")


def network_parameters(hidden: Sequence[int]) -> int:
  """A lower bound on an MLP's parameters with these hidden widths: weights
  and biases between the layers, and at least one input and one output."""
  widths = [1, *hidden, 1]
  return sum(a * b + b for a, b in zip(widths, widths[1:]))


def _network_memory(hidden: Sequence[int]) -> str | None:
  return _too_large(
    network_parameters(hidden) * _PARAMETER_BYTES,
    f"the network's parameters at {_PARAMETER_BYTES} bytes each",
  )
