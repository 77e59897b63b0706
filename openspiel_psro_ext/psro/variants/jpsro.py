"""JPSRO (Marris et al. 2021): PSRO towards correlated equilibria.

Nash equilibria are the wrong target in n-player and general-sum games: hard
to compute and not unique. JPSRO's meta-solver returns a joint distribution
`sigma` over the populations' joint profiles, a (coarse) correlated
equilibrium of the meta-game (`meta_solvers.correlated`, a spec with
`joint_solve`), and best responses answer it. Each iteration t:

  1. `sigma_t`, the meta-solver's joint (`[N_0, ..., N_{P-1}]`);
  2. its exact full-game gaps (`correlated_gaps.joint_gaps`): `cce_gap`
     and `ce_gap` join every record's metrics, with `jpsro/cce_gains` (per
     player), `jpsro/joint_values` (per player, expected returns under
     `sigma_t`) and `jpsro/joint` (the support: `[k_0, ..., k_{P-1}, prob]`
     rows);
  3. per player p, best responses:
       CCE: one against the opponents' part of `sigma_t` (p's axis summed
            out): a correlated opponent distribution;
       CE:  one per member k in the support of p's marginal, against
            `sigma_t(. | s_p = k)`, the opponents it is recommended with;
     a member that plays like one already in the population (the same
     terminal reach: exact oracles find the same best response often, one
     per recommendation, differing at most where its own play never goes)
     is not added.

With an exact oracle this converges to a full-game CCE (CE): if no best
response improves on its recommendation, the gap is 0 (JPSRO's theorem),
and the population of pure policies is finite. The run stops at
`target_nash_conv`, read as the target for the gap of the solver's own
equilibrium (`cce_gap` or `ce_gap`), or once an iteration adds no member
(converged: an exact oracle's best responses are all in the populations).

What the records mean for JPSRO: `meta_strategy` holds the marginals of
`sigma_t`; `nash_conv`, `exploitability_per_player` and `on_policy_values`
are those of the marginals played independently (the product
distribution; NashConv is defined for products only, and equals the CCE gap
when `sigma_t` is one), not of `sigma_t`. Run metrics (win rates, Elo) see
the marginals too. With two players the opponent's part of the joint is
one mixture, so requests carry it as the usual `opponent_weights` and every
oracle answers them; with three or more the request carries the
correlated joint (`BestResponseRequest.opponent_joint`).

Resume: the meta-solver (HiGHS) is deterministic, so replaying `meta_solve`
over the saved populations rebuilds `sigma_t`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from openspiel_psro_ext import meta_solvers, psro
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import correlated_gaps
from openspiel_psro_ext.meta_solvers import correlated
from openspiel_psro_ext.oracles import base as oracle_base


class JPSRO(psro.PSRO):
  """JPSRO (module doc); `joint` is the last meta-solve's `sigma_t`."""

  def __init__(self, *args: Any, **kwargs: Any):
    self.joint: np.ndarray | None = None
    self.gaps: correlated_gaps.CorrelatedGaps | None = None
    self._stats: dict[str, Any] = {}
    super().__init__(*args, **kwargs)
    self.evaluations.append(psro.Evaluation(lambda snapshot: dict(self._stats), every=1))

  @classmethod
  def check_variant(cls, config, view):
    spec = meta_solvers.spec(config.meta_solver)
    if not spec.joint:
      raise UsageError(
        f"JPSRO needs a correlated meta-solver; {config.meta_solver!r}"
        " gives independent mixtures. Use --meta_solver=cce or ce."
      )
    if view.tree is None or view.simulated:
      raise UsageError(
        f"JPSRO measures its gaps on the compiled tree, which {config.game}"
        " runs without here; use --evaluation=exact on a game that compiles."
      )
    if config.symmetric:
      raise UsageError("JPSRO keeps one population per player; drop --symmetric.")

  @property
  def gap(self) -> float | None:
    """The last meta-solve's gap of the solver's own equilibrium (the last
    record's, also after a resume: it replays `meta_solve`)."""
    if self.gaps is None:
      return None
    return self.gaps.ce_gap if self.meta_solver.correlation == "ce" else self.gaps.cce_gap

  def meta_solve(self) -> list[np.ndarray]:
    joint = self.meta_solver.joint_solve(self.table.meta_games, **self._solver_kwargs)
    self.joint = joint = np.where(joint > 0, joint, 0.0)
    reaches = [self.table.terminal_reach(q) for q in range(self.num_players)]
    self.gaps = gaps = correlated_gaps.joint_gaps(self.tree, reaches, joint)
    support = np.argwhere(joint > 0)
    self._stats = {
      "cce_gap": gaps.cce_gap,
      "ce_gap": gaps.ce_gap,
      "jpsro/cce_gains": gaps.cce_gains.tolist(),
      "jpsro/joint_values": gaps.values.tolist(),
      "jpsro/joint": [[*map(int, s), float(joint[tuple(s)])] for s in support],
    }
    return correlated.marginals(joint)

  def best_response_requests(self, sigma):
    del sigma  # the marginals; best responses answer the joint
    counts = self.config.best_responses_per_player or (1,) * self.num_players
    requests = []
    for p in range(self.num_players):
      by_recommendation = np.moveaxis(self.joint, p, 0)
      if self.meta_solver.correlation == "ce":
        recommended = np.flatnonzero(
          by_recommendation.reshape(len(by_recommendation), -1).sum(axis=1) > 0
        )
        targets = [by_recommendation[k] for k in recommended]
      else:
        targets = [by_recommendation.sum(axis=0)]
      for j, target in enumerate(targets * counts[p]):
        requests.append((p, self._request(p, target / target.sum(), j)))
    return requests

  def _request(
    self, player: int, opponent_joint: np.ndarray, index: int
  ) -> oracle_base.BestResponseRequest:
    """A request against `opponent_joint`, `[N_q for q != player]`."""
    opponents = [q for q in range(self.num_players) if q != player]
    marginals = correlated.marginals(opponent_joint)
    weights = [None] * self.num_players
    for q, marginal in zip(opponents, marginals):
      weights[q] = marginal
    request = self.view.request(
      player,
      weights,
      self.previous_member(player),
      self.request_seed(player, index),
      self.oracle_time_budget(self.iteration),
    )
    if len(opponents) > 1:  # one opponent: its marginal is the whole joint
      request.opponent_joint = opponent_joint
    return request

  def _best_responses(self, requests):
    """The oracle's answers, less those that play like a member already in
    the population: the same terminal reach (they differ only where their
    own play never goes) means the same payoffs against anything."""
    new = super()._best_responses(requests)
    kept = []
    for p, members in enumerate(new):
      known = self.table.terminal_reach(p)
      unique = []
      for member in members:
        reach = self.tree.terminal_reach(p, member.matrix)
        if not np.any(np.all(np.abs(known - reach) <= 1e-12, axis=1)):
          unique.append(member)
          known = np.vstack([known, reach])
      kept.append(unique)
    return kept

  def should_stop(self) -> str | None:
    config, last = self.config, self.records[-1] if self.records else None
    if self.stop_requested:
      return "interrupted"
    if self.iteration >= config.iterations:
      return "iterations"
    if last is None:
      return None
    if not self.oracle.trains and not any(self._add_batches[-1]):
      return "converged"
    if config.target_nash_conv > 0 and self.gap is not None and self.gap <= config.target_nash_conv:
      return "target_gap"
    if config.time_budget_s > 0 and last.wall_time_s >= config.time_budget_s:
      return "time_budget"
    return None
