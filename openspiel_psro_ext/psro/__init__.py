"""The PSRO layer: the loop, its config, the game's views and the loop variants."""

from openspiel_psro_ext.evaluation.verification import VerificationError
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.evaluations import Evaluation, Snapshot
from openspiel_psro_ext.psro.loop import PSRO

__all__ = ["PSRO", "Evaluation", "PSROConfig", "Snapshot", "VerificationError"]
