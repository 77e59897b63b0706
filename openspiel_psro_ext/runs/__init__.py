"""The runs layer: the run directory, plots, report and TensorBoard."""
