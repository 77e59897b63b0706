"""openspiel_psro_ext: exact, fast PSRO for OpenSpiel.

Modules, bottom-up: `game_tree` (compile a pyspiel game into flat arrays),
`exploitability` (exact best responses and NashConv), `payoffs` (exact
population payoff tables), `meta_solvers`, `oracles`, `psro`, `run`.
"""

__version__ = "0.1.0"


def load_run(run_dir: str):
  """A run directory's game, population (OpenSpiel policies), last meta-strategy,
  metrics and config: `checkpoints.load_run` (a `checkpoints.LoadedRun`)."""
  from openspiel_psro_ext.runs import checkpoints  # pylint: disable=g-import-not-at-top

  return checkpoints.load_run(run_dir)


def register() -> None:
  """Registers our components with stock OpenSpiel (idempotent)."""
  from openspiel_psro_ext.compat import openspiel_compat  # pylint: disable=g-import-not-at-top

  openspiel_compat.register()
