"""Uniform meta-strategy: the PSRO baseline (fictitious-play-like targets)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from openspiel_psro_ext.meta_solvers import common


def uniform(meta_games: Sequence[np.ndarray]) -> list[np.ndarray]:
  """Returns `x_p = 1/n_p` for every player `p`.

  Args:
    meta_games: list of `k` payoff tensors of shape `[n_0, ..., n_{k-1}]`
      (one square table = a symmetric two-player game, two vectors returned).

  Returns:
    List of `k` vectors, the `p`-th of shape `[n_p]`, each uniform.
  """
  tables = common.validate_meta_games(meta_games, solver="uniform")
  return [np.full(n, 1.0 / n) for n in tables[0].shape]
