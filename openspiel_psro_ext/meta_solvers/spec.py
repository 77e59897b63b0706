"""What a meta-solver declares about itself: `MetaSolverSpec`.

The PSRO loop, the command line and the `psro_v2` bridge never compare solver
names; they ask the solver's spec:

- `supports_players(k)`: can it solve a `k`-player meta-game?
- `incremental`: does `solve` accept `incremental=<state>` (a warm start kept
  across PSRO iterations, made fresh by `new_incremental()`)?
- `rectified`: should PSRO train best responses against rectified targets
  (`rectified_nash.rectified_targets`) rather than against the profile?
- `joint`: does it also give a joint distribution over joint profiles
  (`joint_solve`, same keyword arguments; JPSRO needs one), and which
  equilibrium (`correlation`: "cce" or "ce") is it?
- `parameters()`: the keyword arguments `solve` accepts (read from its
  signature); `check_kwargs` refuses a misspelt key, and holds each value
  against its annotated type and the range `bounds` declares for it
  (`records.schema`), in one line;
- `stock_kwargs` / `stock_defaults`: how stock `psro_v2`'s solver kwargs
  (which it passes to every meta-strategy method, relevant or not) map onto
  ours, used by `from_stock_kwargs`.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.records import schema


class MetaSolverConfigError(UsageError):
  """A meta-solver keyword argument the solver does not have."""


def _frozen_map(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
  return dict(mapping or {})


@dataclasses.dataclass(frozen=True, eq=False)  # identity: specs hold dicts
class MetaSolverSpec:
  """A registered meta-solver and its capabilities.

  Attributes:
    name: registry name.
    solve: `solve(meta_games, **params) -> list of [n_p] vectors`.
    min_players: fewest payoff tensors accepted (1: a single square table, a
      symmetric two-player game played by one population).
    max_players: most players supported; None for any number.
    incremental: `solve` accepts `incremental=<state>`, a warm start that
      `incremental_factory()` creates and PSRO keeps for the whole run.
    incremental_factory: makes a fresh incremental state (needed iff
      `incremental`).
    rectified: PSRO trains best responses against `rectified_targets`.
    joint_solve: `joint_solve(meta_games, **params) -> [n_0, ..., n_{P-1}]`
      joint distribution whose marginals `solve` returns (correlated
      solvers), or None.
    correlation: "cce" or "ce", the equilibrium `joint_solve` returns (JPSRO
      best-responds to the opponents' part of the joint, or once per
      recommendation to its conditional); None iff no `joint_solve`.
    stock_kwargs: stock `psro_v2` kwarg name -> our parameter name.
    stock_defaults: our parameter values stock's own implementation uses
      when its kwargs leave them unset (applied by `from_stock_kwargs`).
    bounds: parameter name -> its range or choices (`schema.bounds(...)`);
      its type is the annotation in `solve`'s signature.
  """

  name: str
  solve: Callable[..., list[np.ndarray]]
  min_players: int = 1
  max_players: int | None = None
  incremental: bool = False
  incremental_factory: Callable[[], Any] | None = None
  rectified: bool = False
  joint_solve: Callable[..., np.ndarray] | None = None
  correlation: str | None = None
  stock_kwargs: Mapping[str, str] = dataclasses.field(default_factory=dict)
  stock_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  bounds: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

  def __post_init__(self) -> None:
    if not callable(self.solve):
      raise TypeError(f"meta-solver {self.name!r}: solve must be callable, got {self.solve!r}.")
    if self.incremental != (self.incremental_factory is not None):
      raise ValueError(
        f"meta-solver {self.name!r}: incremental=True needs an incremental_factory, and only then."
      )
    if (self.joint_solve is None) != (self.correlation is None) or self.correlation not in (
      None,
      "cce",
      "ce",
    ):
      raise ValueError(
        f"meta-solver {self.name!r}: a joint_solve needs correlation 'cce' or 'ce', and only then."
      )
    object.__setattr__(self, "stock_kwargs", _frozen_map(self.stock_kwargs))
    object.__setattr__(self, "stock_defaults", _frozen_map(self.stock_defaults))
    object.__setattr__(self, "bounds", _frozen_map(self.bounds))
    own = set(self.parameters())
    for ours in [*self.stock_kwargs.values(), *self.stock_defaults, *self.bounds]:
      if not self._accepts_any() and ours not in own:
        raise ValueError(
          f"meta-solver {self.name!r}: stock mapping names {ours!r}, which"
          f" is not a parameter of its solve ({sorted(own)})."
        )

  def _signature(self) -> inspect.Signature:
    return inspect.signature(self.solve)

  def _accepts_any(self) -> bool:
    """True for a plain callable registered with a `**kwargs` catch-all."""
    return any(
      p.kind is inspect.Parameter.VAR_KEYWORD for p in self._signature().parameters.values()
    )

  def parameters(self) -> tuple[str, ...]:
    """Keyword names `solve` accepts, without `meta_games` and `incremental`."""
    params = list(self._signature().parameters.values())[1:]
    return tuple(
      p.name
      for p in params
      if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      and p.name != "incremental"
    )

  def declared(self) -> dict[str, schema.Declared]:
    """Each parameter's type (its annotation; `Any` where unreadable) and
    declared bounds."""
    try:
      hints = typing.get_type_hints(self.solve)
    except (NameError, TypeError):
      hints = {}
    return {
      name: schema.Declared(name, hints.get(name, Any), self.bounds.get(name, {}))
      for name in self.parameters()
    }

  @property
  def joint(self) -> bool:
    """Whether the solver gives a joint distribution (`joint_solve`)."""
    return self.joint_solve is not None

  def supports_players(self, num_players: int) -> bool:
    """Whether `solve` handles a `num_players`-player meta-game."""
    return num_players >= self.min_players and (
      self.max_players is None or num_players <= self.max_players
    )

  def new_incremental(self) -> Any:
    """A fresh warm-start state for `solve(..., incremental=state)`."""
    if self.incremental_factory is None:
      raise ValueError(f"meta-solver {self.name!r} has no incremental mode.")
    return self.incremental_factory()

  def check_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Returns `kwargs` as a dict; refuses a key `solve` does not accept, and
    a value of the wrong type or out of its bounds (`schema.problem`)."""
    kwargs = dict(kwargs or {})
    if self._accepts_any():
      return kwargs
    own = self.parameters()
    for key in kwargs:
      if key not in own:
        raise MetaSolverConfigError(
          f"meta-solver {self.name!r} has no parameter {key!r}; its parameters are {list(own)}."
        )
    wrong = schema.problem(self.declared(), kwargs, lambda key: f"meta-solver {self.name!r}: {key}")
    if wrong is not None:
      raise MetaSolverConfigError(wrong)
    return kwargs

  def from_stock_kwargs(self, stock_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Our kwargs from stock `psro_v2`'s `solver.get_kwargs()`.

    Keeps the stock keys listed in `stock_kwargs` (renamed to ours; None
    values count as unset, as in stock), fills `stock_defaults` for the rest
    and drops every other key: stock hands all of its kwargs to every
    meta-strategy method.
    """
    out = dict(self.stock_defaults)
    for stock_name, value in (stock_kwargs or {}).items():
      ours = self.stock_kwargs.get(stock_name)
      if ours is not None and value is not None:
        out[ours] = value
    return out
