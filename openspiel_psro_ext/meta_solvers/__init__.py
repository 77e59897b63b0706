"""Meta-strategy solvers for PSRO, behind one typed registry.

Every solver maps `meta_games` (OpenSpiel convention: a list of `k` payoff
tensors of shape `[n_0, ..., n_{k-1}]`) to a list of `k` probability vectors,
`x_p` of shape `[n_p]`:

    from openspiel_psro_ext import meta_solvers
    profile = meta_solvers.get("nash")(meta_games)
    meta_solvers.meta_game_nash_conv(meta_games, profile)  # 0 at equilibrium

Registered names: `nash`, `prd`, `alpharank`, `rectified_nash`, `uniform`.
The submodules of the same names hold each solver and its extras (e.g.
`nash.IncrementalZeroSumNash`, `rectified_nash.rectified_targets`).
"""

from __future__ import annotations

from openspiel_psro_ext.meta_solvers import alpharank
from openspiel_psro_ext.meta_solvers import nash
from openspiel_psro_ext.meta_solvers import prd
from openspiel_psro_ext.meta_solvers import rectified_nash
from openspiel_psro_ext.meta_solvers import uniform
from openspiel_psro_ext.meta_solvers.alpharank import AlphaRankConfig
from openspiel_psro_ext.meta_solvers.alpharank import AlphaRankDegenerateError
from openspiel_psro_ext.meta_solvers.alpharank import AlphaRankResult
from openspiel_psro_ext.meta_solvers.common import MetaGameError
from openspiel_psro_ext.meta_solvers.common import MetaSolver
from openspiel_psro_ext.meta_solvers.common import meta_game_nash_conv
from openspiel_psro_ext.meta_solvers.common import validate_meta_games
from openspiel_psro_ext.meta_solvers.nash import IncrementalZeroSumNash
from openspiel_psro_ext.meta_solvers.nash import ZeroSumSolution
from openspiel_psro_ext.meta_solvers.nash import lemke_howson
from openspiel_psro_ext.meta_solvers.nash import solve_zero_sum
from openspiel_psro_ext.meta_solvers.prd import PRDConfig
from openspiel_psro_ext.meta_solvers.rectified_nash import RectifiedTarget
from openspiel_psro_ext.meta_solvers.rectified_nash import rectified_targets

_REGISTRY: dict[str, MetaSolver] = {}


def register_solver(name: str, solver: MetaSolver, *,
                    overwrite: bool = False) -> None:
  """Adds `solver` under `name`; refuses to replace one unless `overwrite`."""
  if not callable(solver):
    raise TypeError(f"meta-solver {name!r} must be callable, got {solver!r}.")
  if name in _REGISTRY and _REGISTRY[name] is not solver and not overwrite:
    raise KeyError(f"meta-solver {name!r} is already registered.")
  _REGISTRY[name] = solver


def get(name: str) -> MetaSolver:
  """The solver registered under `name`."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown meta-solver {name!r}; known: {names()}.") from None


def names() -> list[str]:
  """Registered solver names, sorted."""
  return sorted(_REGISTRY)


for _name, _solver in (("nash", nash.nash), ("prd", prd.prd),
                       ("alpharank", alpharank.alpharank),
                       ("rectified_nash", rectified_nash.rectified_nash),
                       ("uniform", uniform.uniform)):
  register_solver(_name, _solver)

__all__ = [
    "AlphaRankConfig", "AlphaRankDegenerateError", "AlphaRankResult",
    "IncrementalZeroSumNash", "MetaGameError", "MetaSolver", "PRDConfig",
    "RectifiedTarget", "ZeroSumSolution", "alpharank", "get", "lemke_howson",
    "meta_game_nash_conv", "names", "nash", "prd", "rectified_nash",
    "rectified_targets", "register_solver", "solve_zero_sum", "uniform",
    "validate_meta_games",
]
