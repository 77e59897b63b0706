"""openspiel_psro_ext: exact, fast PSRO for OpenSpiel.

The public face. Layers, bottom up (ARCHITECTURE.md): `records` and
`errors`; `game` (a pyspiel game compiled into arrays, exact NashConv);
`simulated` and `meta_solvers`; `oracles`; `backends`; `evaluation` and
`runs`; `psro` (the loop and its variants); `compat` (stock psro_v2); the
command `python -m openspiel_psro_ext.run`.

    from openspiel_psro_ext import PSRO, PSROConfig
    run = PSRO(PSROConfig(game="kuhn_poker", oracle="exact", iterations=20))
    run.run()

Names load on first use, so importing the package imports neither torch nor
stock psro_v2.
"""

from __future__ import annotations

import importlib
from typing import Any

from openspiel_psro_ext.errors import UsageError

__version__ = "0.1.0"

# Public name -> (module, attribute or None for the module itself).
_EXPORTS: dict[str, tuple[str, str | None]] = {
  "PSRO": ("openspiel_psro_ext.psro", "PSRO"),
  "PSROConfig": ("openspiel_psro_ext.psro", "PSROConfig"),
  "nash_conv": ("openspiel_psro_ext.game.exploitability", "nash_conv"),
  "exploitability": ("openspiel_psro_ext.game.exploitability", None),
  "game_tree": ("openspiel_psro_ext.game.game_tree", None),
  "payoffs": ("openspiel_psro_ext.game.payoffs", None),
  "policies": ("openspiel_psro_ext.game.policies", None),
  "meta_solvers": ("openspiel_psro_ext.meta_solvers", None),
  "oracles": ("openspiel_psro_ext.oracles", None),
  "psro": ("openspiel_psro_ext.psro", None),
  "openspiel_compat": ("openspiel_psro_ext.compat.openspiel_compat", None),
}

__all__ = ["UsageError", "__version__", "load_run", "register", *_EXPORTS]


def __getattr__(name: str) -> Any:
  if name not in _EXPORTS:
    raise AttributeError(f"module 'openspiel_psro_ext' has no attribute {name!r}")
  module, attribute = _EXPORTS[name]
  value = importlib.import_module(module)
  return value if attribute is None else getattr(value, attribute)


def load_run(run_dir: str) -> Any:
  """A run directory's game, population (OpenSpiel policies), last
  meta-strategy, records and config (`runs.checkpoints.LoadedRun`)."""
  from openspiel_psro_ext.runs import checkpoints

  return checkpoints.load_run(run_dir)


def register() -> None:
  """Registers our meta-solvers and oracles with stock psro_v2 as `ext_*`
  (idempotent)."""
  from openspiel_psro_ext.compat import openspiel_compat

  openspiel_compat.register()
