"""Meta-strategy solvers for PSRO, behind one typed registry.

Every solver maps `meta_games` (OpenSpiel convention: a list of `k` payoff
tensors of shape `[n_0, ..., n_{k-1}]`) to a list of `k` probability vectors,
`x_p` of shape `[n_p]`:

    from openspiel_psro_ext import meta_solvers
    profile = meta_solvers.get("nash")(meta_games)
    meta_solvers.meta_game_nash_conv(meta_games, profile)  # 0 at equilibrium

Each solver is registered with a `MetaSolverSpec` (`meta_solvers.spec(name)`)
that says what it supports: the number of players, an incremental warm start
kept across PSRO iterations, rectified training targets, its keyword
parameters (unknown keys are refused) and how stock `psro_v2`'s kwargs map
onto them. Callers ask the spec, never compare names.

Registered names: `nash`, `prd`, `alpharank`, `rectified_nash`, `uniform`,
and the correlated `cce` and `ce` (`correlated`: a joint distribution over
joint profiles, `spec.joint`; their `solve` gives its marginals).
The submodules of the same names hold each solver and its extras (e.g.
`nash.IncrementalZeroSumNash`, `rectified_nash.rectified_targets`).
"""

from __future__ import annotations

from openspiel_psro_ext.meta_solvers import (
  alpharank,
  correlated,
  nash,
  prd,
  rectified_nash,
  uniform,
)
from openspiel_psro_ext.meta_solvers.alpharank import (
  AlphaRankConfig,
  AlphaRankDegenerateError,
  AlphaRankResult,
)
from openspiel_psro_ext.meta_solvers.common import (
  MetaGameError,
  MetaSolver,
  meta_game_nash_conv,
  validate_meta_games,
)
from openspiel_psro_ext.meta_solvers.nash import (
  IncrementalZeroSumNash,
  ZeroSumSolution,
  lemke_howson,
  solve_zero_sum,
)
from openspiel_psro_ext.meta_solvers.prd import PRDConfig
from openspiel_psro_ext.meta_solvers.rectified_nash import RectifiedTarget, rectified_targets
from openspiel_psro_ext.meta_solvers.spec import MetaSolverConfigError, MetaSolverSpec
from openspiel_psro_ext.records import schema

_REGISTRY: dict[str, MetaSolverSpec] = {}


def register_solver(
  solver: MetaSolverSpec | str, solve: MetaSolver | None = None, *, overwrite: bool = False
) -> MetaSolverSpec:
  """Registers a `MetaSolverSpec` (or, for back-compatibility, a plain
  callable under a name: `register_solver("mine", fn)`, any number of players,
  no incremental or rectified mode). Refuses to replace a registered solver
  unless `overwrite`. Returns the spec."""
  if isinstance(solver, str):
    if solve is None:
      raise TypeError(f"register_solver({solver!r}, ...) needs the callable.")
    solver = MetaSolverSpec(name=solver, solve=solve)
  elif solve is not None:
    raise TypeError("register_solver(spec) takes no second argument.")
  if not isinstance(solver, MetaSolverSpec):
    raise TypeError(f"register_solver needs a MetaSolverSpec, got {solver!r}.")
  current = _REGISTRY.get(solver.name)
  if current is not None and current.solve is not solver.solve and not overwrite:
    raise KeyError(f"meta-solver {solver.name!r} is already registered.")
  _REGISTRY[solver.name] = solver
  return solver


def spec(name: str) -> MetaSolverSpec:
  """The spec registered under `name`."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise KeyError(f"unknown meta-solver {name!r}; known: {names()}.") from None


def get(name: str) -> MetaSolver:
  """The solve function registered under `name`."""
  return spec(name).solve


def names() -> list[str]:
  """Registered solver names, sorted."""
  return sorted(_REGISTRY)


def names_supporting(num_players: int) -> list[str]:
  """Registered solver names that solve a `num_players`-player meta-game."""
  return [n for n in names() if _REGISTRY[n].supports_players(num_players)]


for _spec in (
  MetaSolverSpec(
    "nash",
    nash.nash,
    max_players=2,
    incremental=True,
    incremental_factory=IncrementalZeroSumNash,
    bounds=dict(general_sum_tol=schema.bounds(min=0)),
  ),
  MetaSolverSpec(
    "rectified_nash",
    rectified_nash.rectified_nash,
    max_players=2,
    incremental=True,
    incremental_factory=IncrementalZeroSumNash,
    rectified=True,
    bounds=dict(general_sum_tol=schema.bounds(min=0)),
  ),
  MetaSolverSpec(
    "prd",
    prd.prd,
    stock_kwargs=prd.STOCK_KWARGS,
    stock_defaults=prd.STOCK_DEFAULTS,
    # The keyword arguments are PRDConfig's fields, with its declared bounds.
    bounds={name: d.metadata for name, d in schema.fields(PRDConfig).items()},
  ),
  MetaSolverSpec(
    "alpharank",
    alpharank.alpharank,
    stock_kwargs=alpharank.STOCK_KWARGS,
    stock_defaults=alpharank.STOCK_DEFAULTS,
    bounds=dict(alpha=schema.bounds(min=0, infinite=True), m=schema.bounds(min=2, max=10**6)),
  ),
  MetaSolverSpec("uniform", uniform.uniform),
  MetaSolverSpec(
    "cce",
    correlated.cce,
    joint_solve=correlated.cce_joint,
    correlation="cce",
    bounds=dict(criterion=schema.bounds(choices=correlated.CRITERIA)),
  ),
  MetaSolverSpec(
    "ce",
    correlated.ce,
    joint_solve=correlated.ce_joint,
    correlation="ce",
    bounds=dict(criterion=schema.bounds(choices=correlated.CRITERIA)),
  ),
):
  register_solver(_spec)

__all__ = [
  "AlphaRankConfig",
  "AlphaRankDegenerateError",
  "AlphaRankResult",
  "IncrementalZeroSumNash",
  "MetaGameError",
  "MetaSolver",
  "MetaSolverConfigError",
  "MetaSolverSpec",
  "PRDConfig",
  "RectifiedTarget",
  "ZeroSumSolution",
  "alpharank",
  "correlated",
  "get",
  "lemke_howson",
  "meta_game_nash_conv",
  "names",
  "names_supporting",
  "nash",
  "prd",
  "rectified_nash",
  "rectified_targets",
  "register_solver",
  "solve_zero_sum",
  "spec",
  "uniform",
  "validate_meta_games",
]
