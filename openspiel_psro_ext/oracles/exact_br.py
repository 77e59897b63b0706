"""The exact best-response oracle: a closed-form answer over the compiled tree."""

from __future__ import annotations

import dataclasses

from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.oracles import base


@dataclasses.dataclass
class ExactBestResponseConfig:
  """The exact oracle has no hyperparameters; kept for a uniform interface."""


class ExactBestResponseOracle(base.Oracle):
  """Deterministic exact best response to the opponents' meta-strategy mixture.

  Ties are broken towards the lowest legal action, so runs are reproducible.
  """

  name = "exact"
  Config = ExactBestResponseConfig

  def best_response(self, request: base.BestResponseRequest) -> base.PopulationMember:
    tree, player = request.tree, request.player
    if tree is None:  # a simulated request
      raise ValueError(
        f"the exact oracle needs a compiled tree, which {request.game}"
        " lacks here; use an RL oracle (ppo, dqn, sac) in the"
        " simulated mode."
      )
    weights = request.opponent_terminal_reach() * tree.terminal_returns[:, player]
    value, actions = exploitability.best_response_from_weights(tree, player, weights)
    return base.PopulationMember(
      matrix=exploitability.one_hot_policy(tree, actions),
      stats={"best_response_value": float(value)},
    )
