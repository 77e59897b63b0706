"""Evaluation metrics of a PSRO run beyond NashConv.

Modules: `baselines` (fixed reference policies, CFR+ included), `outcomes`
(exact win/draw/loss probabilities and expected returns), `elo` (Elo by a
logistic fit of exact scores), `diversity` (behavioural distance and DPP
expected cardinality) and `iteration` (`IterationMetrics`, everything per
PSRO iteration as one `records.metrics.RunMetrics`, and `MetricsScope`, the
members a pass reads).
"""

from openspiel_psro_ext.evaluation.metrics.iteration import IterationMetrics, MetricsScope

__all__ = ["IterationMetrics", "MetricsScope"]
