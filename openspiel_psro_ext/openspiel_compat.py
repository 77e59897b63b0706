"""Adapters that make our components usable from stock OpenSpiel.

Importing this module calls `register()`.

Sections:
  1. Meta-strategy solvers -> `psro_v2.meta_strategies.META_STRATEGY_METHODS`.
  (Oracle / policy adapters go in later sections.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from open_spiel.python.algorithms.psro_v2 import meta_strategies

from openspiel_psro_ext import meta_solvers

# ---------------------------------------------------------------------------
# 1. Meta-strategy solvers.
# ---------------------------------------------------------------------------

#: Prefix of our names in `META_STRATEGY_METHODS`; stock names stay untouched.
META_STRATEGY_PREFIX = "ext_"


def make_meta_strategy_method(name: str) -> Callable:
  """Wraps solver `name` in stock's `fn(solver, return_joint=False)` form.

  The wrapper reads `solver.get_meta_game()` (a list of per-player tensors,
  or one matrix for a zero-sum game), forwards `solver.get_kwargs()` when
  the solver has them (so stock's `prd_*` kwargs reach `prd`), and returns the
  per-player marginals, plus, with `return_joint=True`, the flat joint
  `[prod_p n_p]` from `meta_strategies.get_joint_strategy_from_marginals`, as
  stock's methods do. (Our α-Rank's joint is not a product; the marginals'
  product is returned for stock's samplers, like stock's Nash/PRD.)
  """
  fn = meta_solvers.get(name)

  def method(solver, return_joint: bool = False):
    meta_games = solver.get_meta_game()
    if not isinstance(meta_games, list):
      meta_games = [meta_games, -meta_games]
    kwargs = solver.get_kwargs() if hasattr(solver, "get_kwargs") else {}
    marginals = fn([np.asarray(t) for t in meta_games], **(kwargs or {}))
    if not return_joint:
      return marginals
    return marginals, meta_strategies.get_joint_strategy_from_marginals(
        marginals)

  method.__name__ = f"{META_STRATEGY_PREFIX}{name}_strategy"
  method.__doc__ = f"openspiel_psro_ext meta-solver {name!r} for psro_v2."
  method._openspiel_psro_ext_solver = name  # pylint: disable=protected-access
  return method


def register_meta_strategies() -> list[str]:
  """Adds `ext_<name>` for every registered solver; returns the names."""
  added = []
  for name in meta_solvers.names():
    key = META_STRATEGY_PREFIX + name
    current = meta_strategies.META_STRATEGY_METHODS.get(key)
    if getattr(current, "_openspiel_psro_ext_solver", None) == name:
      added.append(key)
      continue
    if current is not None:
      raise KeyError(f"{key!r} is already in META_STRATEGY_METHODS.")
    meta_strategies.META_STRATEGY_METHODS[key] = make_meta_strategy_method(name)
    added.append(key)
  return added


# ---------------------------------------------------------------------------
# Registration entry point.
# ---------------------------------------------------------------------------


def register() -> None:
  """Registers everything with stock OpenSpiel; safe to call repeatedly."""
  register_meta_strategies()


register()
