"""NeuPL's population networks written into a run directory.

The layout and the reading side are the learner's
(`oracles.rl.neupl.graph_dir`, `read_graph`); this writes a step directory
atomically, as every file of a run directory is written.
"""

from __future__ import annotations

import os

from openspiel_psro_ext.oracles.rl.neupl import PopulationGraph
from openspiel_psro_ext.runs import checkpoints


def write(path: str, graph: PopulationGraph) -> None:
  """`graph` into the step directory `path`: per population its network's
  state_dict and its `Sigma`."""
  os.makedirs(path, exist_ok=True)
  for p, (network, sigma) in enumerate(zip(graph.networks, graph.sigma)):
    if network is None:
      raise ValueError(f"population {p} has no network to write yet.")
    checkpoints.write_torch(os.path.join(path, f"network{p}.pt"), network.state_dict(), False)
    checkpoints.write_npy(os.path.join(path, f"sigma{p}.npy"), sigma, durable=False)
