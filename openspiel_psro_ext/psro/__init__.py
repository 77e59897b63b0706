"""The PSRO layer: the loop, its config, the game's views and the loop variants.

Names load on first use: the command reads `psro.config` (its flags) and
refuses bad input before the loop, its meta-solvers (scipy) and backends are
imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
  from openspiel_psro_ext.evaluation.verification import VerificationError
  from openspiel_psro_ext.psro.config import PSROConfig
  from openspiel_psro_ext.psro.evaluations import Evaluation, Snapshot
  from openspiel_psro_ext.psro.loop import PSRO

_EXPORTS = {
  "PSRO": "openspiel_psro_ext.psro.loop",
  "PSROConfig": "openspiel_psro_ext.psro.config",
  "Evaluation": "openspiel_psro_ext.psro.evaluations",
  "Snapshot": "openspiel_psro_ext.psro.evaluations",
  "VerificationError": "openspiel_psro_ext.evaluation.verification",
}

__all__ = ["PSRO", "Evaluation", "PSROConfig", "Snapshot", "VerificationError"]


def __getattr__(name: str) -> Any:
  if name not in _EXPORTS:
    raise AttributeError(f"module 'openspiel_psro_ext.psro' has no attribute {name!r}")
  return getattr(importlib.import_module(_EXPORTS[name]), name)
