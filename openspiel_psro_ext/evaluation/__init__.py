"""The evaluation layer: run metrics, verification with OpenSpiel, approximate exploitability."""
