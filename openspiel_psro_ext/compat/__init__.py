"""Adapters into stock OpenSpiel psro_v2, and the stock baseline (the only place that imports psro_v2)."""
