"""Adapters into stock OpenSpiel psro_v2, and the stock baseline.

The only place that imports psro_v2.
"""
