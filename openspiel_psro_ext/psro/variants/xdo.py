"""XDO, the extensive-form double oracle (McAleer et al. 2021), on PSRO's loop.

PSRO's restricted game is normal-form: a player picks one population member
for the whole game, so mixing `k` members at each of `I` information states
independently needs up to `k^I` members. XDO's restricted game keeps the
extensive form instead: at each information state of player p it allows only

    A_t(I) = { a : some best response in p's population plays a at I },

and solves that game with CFR+ (`cfr.CFRPlus`, vectorised over the compiled
tree, restricted to `A_t`). The restricted game's equilibrium can combine
the best responses' actions state by state, so far fewer best responses are
needed than PSRO's members.

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
Elo) evaluate `pi_t` itself, as a population of one (`snapshot`); `verify`
checks `pi_t` with OpenSpiel's `exploitability.nash_conv`. Each record's
`variant` is an `XDOState`: the threshold, the restricted game's NashConv,
the CFR+ iterations and the allowed actions. The meta-solver is not used.

Resume: CFR+ is deterministic, so `meta_solve` replayed over the saved
populations rebuilds the regrets, average and threshold exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pyspiel

from openspiel_psro_ext.game import cfr, exploitability
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import evaluations, views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records.variants import NXDOState, XDOState


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


class XDO(base.Variant):
  """XDO (module doc); `output_policy` is the restricted game's average policy.

  Class attributes (the algorithm's constants):
    initial_threshold: `eps_0`, restricted-game NashConv CFR+ solves to.
    min_threshold: the threshold halves no further (floating-point noise).
    min_action_probability: a best response plays an action at a state when
      its probability there is above this. Exact members are one-hot; an RL
      member's exploration stays out of the restricted game, but RL members
      that stay spread over actions (short training) span nearly the full
      game, where XDO becomes CFR+ on the full game.
    check_every: CFR+ iterations between restricted-game NashConv checks.
    max_cfr_iterations: CFR+ iterations per XDO iteration at most.
    predictive_cfr: solve with predictive CFR+ (`cfr` module doc).
  """

  name = "xdo"
  title = "XDO"
  initial_threshold: ClassVar[float] = 0.5
  min_action_probability: ClassVar[float] = 0.05
  min_threshold: ClassVar[float] = 1e-12
  check_every: ClassVar[int] = 10
  max_cfr_iterations: ClassVar[int] = 100_000
  predictive_cfr: ClassVar[bool] = True

  def __init__(self, options: Any = None):
    super().__init__(options)
    self._cfr: cfr.CFRPlus | None = None
    self.threshold = self.initial_threshold
    self.output_policy: list[np.ndarray] = []
    self._output_result: exploitability.NashConvResult | None = None
    self._state: XDOState | NXDOState | None = None

  def check(self, config: PSROConfig, view: views.View) -> None:
    base.check_two_player_zero_sum(self.title, config, view)

  def restricted_actions(self) -> list[np.ndarray]:
    """Per player `[I_p, A]` bool: the actions of the best responses so far
    (each member's most probable actions always among them)."""
    return [
      ((m[1:] > self.min_action_probability) | (m[1:] == m[1:].max(axis=2, keepdims=True))).any(
        axis=0
      )
      for m in self.run.population_matrices()
    ]

  def _restricted_game(self, matrices: list[np.ndarray]) -> cfr.CFRPlus:
    """The CFR+ solver of this iteration's restricted game (warm: the same
    solver grows with the populations)."""
    del matrices  # restricted_actions reads them
    allowed = self.restricted_actions()
    if self._cfr is None:
      self._cfr = cfr.CFRPlus(self.tree, allowed, predictive=self.predictive_cfr)
    elif any(not np.array_equal(a, b) for a, b in zip(allowed, self._cfr.allowed)):
      self._cfr.restrict(allowed)
      self._cfr.restart_average()
    return self._cfr

  def _restricted_state(
    self, matrices: list[np.ndarray], threshold: float, gap: float | None, cfr_iterations: int
  ) -> XDOState | NXDOState:
    del matrices  # the solver's allowed actions say it
    return XDOState(
      threshold=threshold,
      restricted_nash_conv=gap,
      cfr_iterations=cfr_iterations,
      restricted_actions=[int(a.sum()) for a in self._cfr.allowed]
      if self._cfr is not None
      else [int(t.legal_mask.sum()) for t in self.tree.infostates],
    )

  def meta_solve(self) -> list[np.ndarray]:
    matrices = self.run.population_matrices()
    tree, threshold = self.tree, self.threshold
    if len(matrices[0]) == 1:  # only the uniform seed members
      self.output_policy = [m[0].copy() for m in matrices]
      gap, cfr_iterations = None, 0
    else:
      solver = self._restricted_game(matrices)
      before = solver.total_iterations
      gap = solver.solve(threshold, self.max_cfr_iterations, self.check_every)
      cfr_iterations = solver.total_iterations - before
      self.output_policy = solver.average_policy()
    reach = [tree.terminal_reach(p, m) for p, m in enumerate(self.output_policy)]
    self._output_result = exploitability.nash_conv_from_reach(tree, reach)
    while (
      len(matrices[0]) > 1
      and self._output_result.nash_conv <= self.threshold
      and self.threshold > self.min_threshold
    ):  # an exact 0 would never stop
      self.threshold /= 2
    self._state = self._restricted_state(matrices, threshold, gap, cfr_iterations)
    sigma = []
    for m in matrices:
      weights = np.zeros(len(m))
      weights[1 if len(m) > 1 else 0 :] = 1.0
      sigma.append(weights / weights.sum())
    return sigma

  def output(self, sigma):
    return sigma, self._output_result

  def requests(self, sigma):
    del sigma
    run = self.run
    counts = run.config.best_responses_per_player or (1,) * run.num_players
    requests = []
    for p in range(run.num_players):
      opponents = oracle_base.MemberMixture(
        base.against(p, [m[None] for m in self.output_policy]),
        base.against(p, [np.ones(1)] * run.num_players),
      )
      for j in range(counts[p]):
        requests.append((p, run.request(p, opponents, j, run.previous_member(p))))
    return requests

  def state(self) -> XDOState | NXDOState | None:
    return self._state

  def snapshot(self, record: IterationRecord, meta_games: list[np.ndarray]) -> evaluations.Snapshot:
    del meta_games
    values = np.asarray(record.on_policy_values)
    num_players = self.run.num_players
    return evaluations.Snapshot(
      _OutputView(self.tree, self.output_policy),
      [1] * num_players,
      [np.ones(1)] * num_players,
      [np.full((1,) * num_players, v) for v in values],
      self.run.backend,
    )

  def output_mixture(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """`output_policy`, a population of one per player."""
    return [m[None] for m in self.output_policy], [np.ones(1)] * self.run.num_players


@dataclasses.dataclass(frozen=True)
class NXDOOptions:
  """NXDO's settings.

  Attributes:
    greedy_members: each member also enters the restricted game in its greedy
      form (its most probable action at every state). Off by default: an RL
      member's greedy actions where it never trained are arbitrary, and
      state-by-state mixing of arbitrary pure policies spans small games
      (`benchmarks/restricted_games.py`: a few dozen random pure policies per
      player span a Leduc equilibrium), so the run would measure the
      restricted game's reach, not the best responses.
  """

  greedy_members: bool = False

  def check(self) -> None:
    """Nothing depends on another value."""


class NXDO(XDO):
  """NXDO (McAleer et al. 2021): XDO whose restricted game's actions at each
  state are the population's members, not their actions.

  XDO adds an action to the restricted game where any best response gives it
  probability above `min_action_probability`; an RL best response, spread
  over actions where it was not trained, then opens nearly the whole game,
  and XDO becomes CFR+ on the full game. NXDO's restricted game instead lets
  each player choose, at each information state, which member to follow
  (`cfr.MemberCFRPlus`): its output mixes, state by state, the members'
  own action distributions (and their greedy forms, `NXDOOptions`).
  Everything else is XDO's: the
  threshold schedule, the best responses against the output, resume by
  replay. Member 0, the uniform seed, stays out of the restricted game, as
  in XDO. `restricted_nash_conv` is the average's NashConv against best
  responses that also choose members.

  What its NashConv says: state-by-state mixing is expressive. On Leduc,
  random policies per player already span a restricted game whose
  equilibrium is less exploitable than NXDO + PPO's output on the same
  number of members (`benchmarks/restricted_games.py`, RESULTS.md). On small
  games the restricted game, not the best responses, does most of the work;
  NXDO is for games too large for that, and it is not the default.
  """

  name = "nxdo"
  title = "NXDO"
  Options = NXDOOptions

  def _choices(self, matrices: list[np.ndarray]) -> list[np.ndarray]:
    """Per player `[K, I, A]`: the members after the uniform seed, each
    followed by its greedy form where `greedy_members` (an order that only
    grows at the end, as `MemberCFRPlus.extend` needs)."""
    members = [m[1:] for m in matrices]
    if not self.options.greedy_members:
      return members
    greedy = [np.eye(m.shape[2])[m.argmax(axis=2)] for m in members]
    return [np.stack([m, g], axis=1).reshape(-1, *m.shape[1:]) for m, g in zip(members, greedy)]

  def _restricted_game(self, matrices: list[np.ndarray]) -> cfr.CFRPlus:
    choices = self._choices(matrices)
    if not isinstance(self._cfr, cfr.MemberCFRPlus):
      self._cfr = cfr.MemberCFRPlus(self.tree, choices, predictive=self.predictive_cfr)
    elif any(len(a) != len(b) for a, b in zip(choices, self._cfr.members)):
      self._cfr.extend(choices)
    return self._cfr

  def _restricted_state(
    self, matrices: list[np.ndarray], threshold: float, gap: float | None, cfr_iterations: int
  ) -> XDOState | NXDOState:
    return NXDOState(
      threshold=threshold,
      restricted_nash_conv=gap,
      cfr_iterations=cfr_iterations,
      members=[len(m) - 1 for m in matrices],
    )
