"""openspiel_psro_ext: exact, fast PSRO for OpenSpiel.

Modules, bottom-up: `game_tree` (compile a pyspiel game into flat arrays),
`exploitability` (exact best responses and NashConv), `payoffs` (exact
population payoff tables), `meta_solvers`, `oracles`, `psro`, `run`.
"""

__version__ = "0.1.0"
