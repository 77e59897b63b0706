"""XDO, the extensive-form double oracle (McAleer et al. 2021), on PSRO's loop.

PSRO's restricted game is normal-form: a player picks one population member
for the whole game, so mixing `k` members at each of `I` information states
independently needs up to `k^I` members. XDO's restricted game keeps the
extensive form instead: at each information state of player p it allows only

    A_t(I) = { a : some best response in p's population plays a at I },

and solves that game with CFR+ (`cfr.CFRPlus`, vectorised over the compiled
tree, restricted to `A_t`). The restricted game's equilibrium can combine
the best responses' actions state by state, so far fewer best responses are
needed than PSRO's members (on Leduc: tens against hundreds).

Each iteration t:

  1. restrict the game to the actions of the best responses so far (the
     uniform policy every run starts from seeds the first best responses
     but is not part of the restricted game; iteration 0's output is it);
  2. run CFR+ on the restricted game until the restricted-game NashConv of
     its average policy `pi_t` is at most the threshold `eps_t`, warm-started
     from the previous iteration's regrets (new actions start at 0; the
     average restarts when the restricted game grew, since the old average
     is an equilibrium of a smaller game);
  3. the output is `pi_t`; its exact NashConv in the full game is the
     record's `nash_conv`. If that is at most `eps_t`, the threshold halves
     (as in the paper; repeatedly, while it still is, so no iteration only
     halves it);
  4. each player's best response (exact, or RL through the same requests)
     against the other player's `pi_t` -- a request whose opponent population
     is that one behaviour matrix with weight 1 -- joins its population.

What the records mean for XDO: `nash_conv`, `exploitability_per_player` and
`on_policy_values` are `pi_t`'s. The output is a behaviour policy, not a
mixture of members, so `meta_strategy` lists the members that span the
restricted game, equally weighted (member 0, the uniform seed, has weight 0
after iteration 0); `support_size` is their count. Run metrics (win rates,
Elo) evaluate `pi_t` itself, as a population of one (`evaluation_snapshot`);
`verify` checks `pi_t` with OpenSpiel's `exploitability.nash_conv`. The keys
`xdo/threshold`, `xdo/restricted_nash_conv`, `xdo/cfr_iterations` and
`xdo/restricted_actions` (per player, allowed actions over all states) join
each record's metrics. The meta-solver is not used.

Resume: CFR+ is deterministic, so `meta_solve` replayed over the saved
populations rebuilds the regrets, average and threshold exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pyspiel

from openspiel_psro_ext import psro
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.evaluation import verification
from openspiel_psro_ext.game import cfr, exploitability
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import views

_ZERO_SUM = (pyspiel.GameType.Utility.ZERO_SUM, pyspiel.GameType.Utility.CONSTANT_SUM)


def check_two_player_zero_sum(name: str, config: psro.PSROConfig, view: views.View) -> None:
  """Refuses what a two-player zero-sum variant over the tree cannot run."""
  if view.tree is None or view.simulated:
    raise UsageError(
      f"{name} works on the compiled tree, which {config.game} runs"
      " without here; use --evaluation=exact on a game that compiles."
    )
  game_type = view.game.get_type()
  if view.num_players != 2 or game_type.utility not in _ZERO_SUM:
    raise UsageError(
      f"{name} solves two-player zero-sum games; {config.game} has"
      f" {view.num_players} players and {game_type.utility}. Use"
      " --algorithm=psro."
    )
  if config.symmetric:
    raise UsageError(f"{name} keeps one population per player; drop --symmetric.")


@dataclasses.dataclass
class _OutputView:
  """The one-member populations an evaluation hook sees of a policy output."""

  tree: GameTree
  output: list[np.ndarray]
  policies: None = None

  @property
  def game(self) -> pyspiel.Game:
    return self.tree.game

  def population_matrices(self) -> list[np.ndarray]:
    return [m[None] for m in self.output]


class XDO(psro.PSRO):
  """XDO (module doc); `output_policy` is the restricted game's average policy.

  Class attributes (the algorithm's constants):
    initial_threshold: `eps_0`, restricted-game NashConv CFR+ solves to.
    min_threshold: the threshold halves no further (floating-point noise).
    min_action_probability: a best response plays an action at a state when
      its probability there is above this. Exact members are one-hot; an RL
      member's exploration stays out of the restricted game, but RL members
      that stay spread over actions (short training) span nearly the full
      game, where XDO becomes CFR+ on the full game (on Kuhn with 8,000-episode
      PPO members: every action from iteration 1).
    check_every: CFR+ iterations between restricted-game NashConv checks.
    max_cfr_iterations: CFR+ iterations per XDO iteration at most.
    predictive_cfr: solve with predictive CFR+ (`cfr` module doc).
  """

  initial_threshold: ClassVar[float] = 0.5
  min_action_probability: ClassVar[float] = 0.05
  min_threshold: ClassVar[float] = 1e-12
  check_every: ClassVar[int] = 10
  max_cfr_iterations: ClassVar[int] = 100_000
  predictive_cfr: ClassVar[bool] = True

  def __init__(self, *args: Any, **kwargs: Any):
    self._cfr: cfr.CFRPlus | None = None
    self.threshold = self.initial_threshold
    self.output_policy: list[np.ndarray] = []
    self._output_result: exploitability.NashConvResult | None = None
    self._stats: dict[str, Any] = {}
    super().__init__(*args, **kwargs)
    self.evaluations.append(psro.Evaluation(lambda snapshot: dict(self._stats), every=1))

  @classmethod
  def check_variant(cls, config, view):
    check_two_player_zero_sum("XDO", config, view)

  def restricted_actions(self) -> list[np.ndarray]:
    """Per player `[I_p, A]` bool: the actions of the best responses so far
    (each member's most probable actions always among them)."""
    return [
      ((m[1:] > self.min_action_probability) | (m[1:] == m[1:].max(axis=2, keepdims=True))).any(
        axis=0
      )
      for m in self.population_matrices()
    ]

  def meta_solve(self) -> list[np.ndarray]:
    matrices = self.population_matrices()
    tree, threshold = self.tree, self.threshold
    if len(matrices[0]) == 1:  # only the uniform seed members
      self.output_policy = [m[0].copy() for m in matrices]
      gap, cfr_iterations = None, 0
    else:
      allowed = self.restricted_actions()
      if self._cfr is None:
        self._cfr = cfr.CFRPlus(tree, allowed, predictive=self.predictive_cfr)
      elif any(not np.array_equal(a, b) for a, b in zip(allowed, self._cfr.allowed)):
        self._cfr.restrict(allowed)
        self._cfr.restart_average()
      before = self._cfr.total_iterations
      gap = self._cfr.solve(threshold, self.max_cfr_iterations, self.check_every)
      cfr_iterations = self._cfr.total_iterations - before
      self.output_policy = self._cfr.average_policy()
    reach = [tree.terminal_reach(p, m) for p, m in enumerate(self.output_policy)]
    self._output_result = exploitability.nash_conv_from_reach(tree, reach)
    while (
      len(matrices[0]) > 1
      and self._output_result.nash_conv <= self.threshold
      and self.threshold > self.min_threshold
    ):  # an exact 0 would never stop
      self.threshold /= 2
    self._stats = {
      "xdo/threshold": threshold,
      "xdo/restricted_nash_conv": gap,
      "xdo/cfr_iterations": cfr_iterations,
      "xdo/restricted_actions": [int(a.sum()) for a in self._cfr.allowed]
      if self._cfr is not None
      else [int(t.legal_mask.sum()) for t in tree.infostates],
    }
    sigma = []
    for m in matrices:
      weights = np.zeros(len(m))
      weights[1 if len(m) > 1 else 0 :] = 1.0
      sigma.append(weights / weights.sum())
    return sigma

  def output_nash_conv(self, sigma):
    del sigma
    return self._output_result

  def best_response_requests(self, sigma):
    del sigma
    counts = self.config.best_responses_per_player or (1,) * self.num_players
    requests = []
    for p in range(self.num_players):
      for j in range(counts[p]):
        requests.append(
          (
            p,
            oracle_base.BestResponseRequest(
              tree=self.view.request_tree,
              player=p,
              game=self.view.game,
              opponent_populations=[
                None if q == p else self.output_policy[q][None] for q in range(self.num_players)
              ],
              opponent_weights=[None if q == p else np.ones(1) for q in range(self.num_players)],
              previous=self.previous_member(p),
              seed=self.request_seed(p, j),
              time_budget_s=self.oracle_time_budget(self.iteration),
            ),
          )
        )
    return requests

  def evaluation_snapshot(self, record, meta_games):
    del meta_games
    values = np.asarray(record.on_policy_values)
    return psro.Snapshot(
      _OutputView(self.tree, self.output_policy),
      [1] * self.num_players,
      [np.ones(1)] * self.num_players,
      [np.full((1,) * self.num_players, v) for v in values],
      self.backend,
    )

  def verify(self, tolerance: float = 1e-6, method: str = "behaviour_mixture") -> float:
    """The last record's NashConv -- `output_policy`'s -- by OpenSpiel's code."""
    last = self.records[-1]
    return verification.verify(
      self.tree,
      [m[None] for m in self.output_policy],
      [np.ones(1)] * self.num_players,
      last.nash_conv,
      tolerance,
      method,
      label=f"XDO iteration {last.iteration}: ",
    )
