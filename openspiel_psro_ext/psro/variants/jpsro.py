"""JPSRO (Marris et al. 2021): PSRO towards correlated equilibria.

Nash equilibria are the wrong target in n-player and general-sum games: hard
to compute and not unique. JPSRO's meta-solver returns a joint distribution
`sigma` over the populations' joint profiles, a (coarse) correlated
equilibrium of the meta-game (`meta_solvers.correlated`, a spec with
`joint_solve`), and best responses answer it. Each iteration t:

  1. `sigma_t`, the meta-solver's joint (`[N_0, ..., N_{P-1}]`);
  2. its exact full-game gaps (`correlated_gaps.joint_gaps`), every
     record's `variant` (a `JPSROState`: the CCE and CE gaps, per player
     the best deviation's gain and the expected return under `sigma_t`,
     and the support as `[k_0, ..., k_{P-1}, prob]` rows);
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
one mixture, so requests carry it as a `MemberMixture` and every oracle
answers them; with three or more the request carries the correlated joint
(a `JointMixture`).

Resume: the meta-solver (HiGHS) is deterministic, so replaying `meta_solve`
over the saved populations rebuilds `sigma_t`.
"""

from __future__ import annotations

import numpy as np

from openspiel_psro_ext import meta_solvers
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import correlated_gaps
from openspiel_psro_ext.meta_solvers import correlated
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records.variants import JPSROState


class JPSRO(base.Variant):
  """JPSRO (module doc); `joint` is the last meta-solve's `sigma_t`."""

  name = "jpsro"
  title = "JPSRO"
  target_reason = "target_gap"

  def __init__(self, options: None = None):
    super().__init__(options)
    self.joint: np.ndarray = np.zeros(0)
    self._state: JPSROState | None = None

  def check(self, config: PSROConfig, view: views.View) -> None:
    assert config.meta_solver is not None  # chosen by `resolve`
    if not meta_solvers.spec(config.meta_solver).joint:
      raise UsageError(
        f"JPSRO needs a correlated meta-solver; {config.meta_solver!r}"
        " gives independent mixtures. Use --meta_solver=cce or ce."
      )
    base.check_compiled(self.title, config, view)

  def meta_solve(self) -> list[np.ndarray]:
    run, joint_solve = self.run, self.run.meta_solver.joint_solve
    assert joint_solve is not None  # a correlated solver (`check`)
    joint = joint_solve(run.table.meta_games, **run.solver_kwargs)
    self.joint = joint = np.where(joint > 0, joint, 0.0)
    reaches = [run.table.terminal_reach(q) for q in range(run.num_players)]
    gaps = correlated_gaps.joint_gaps(self.tree, reaches, joint)
    self._state = JPSROState(
      cce_gap=gaps.cce_gap,
      ce_gap=gaps.ce_gap,
      cce_gains=gaps.cce_gains.tolist(),
      joint_values=gaps.values.tolist(),
      joint=[[*map(int, s), float(joint[tuple(s)])] for s in np.argwhere(joint > 0)],
    )
    return correlated.marginals(joint)

  def state(self) -> JPSROState | None:
    return self._state

  def gap(self) -> float | None:
    """The last record's gap of the solver's own equilibrium (CE or CCE)."""
    state = self.run.records[-1].variant
    if not isinstance(state, JPSROState):
      return None
    return state.ce_gap if self.run.meta_solver.correlation == "ce" else state.cce_gap

  def stop(self) -> str | None:
    """ "converged" once an iteration added no member to an exact oracle's
    populations (its best responses are all there already)."""
    run = self.run
    added = [len(p) for p in run.populations] != run.records[-1].population_size
    return None if run.oracle.trains or added else "converged"

  def requests(self, sigma):
    del sigma  # the marginals; best responses answer the joint
    run = self.run
    counts = run.config.best_responses_per_player or (1,) * run.num_players
    requests = []
    for p in range(run.num_players):
      by_recommendation = np.moveaxis(self.joint, p, 0)
      if run.meta_solver.correlation == "ce":
        recommended = np.flatnonzero(
          by_recommendation.reshape(len(by_recommendation), -1).sum(axis=1) > 0
        )
        targets = [by_recommendation[k] for k in recommended]
      else:
        targets = [by_recommendation.sum(axis=0)]
      for j, target in enumerate(targets * counts[p]):
        opponents = self._opponents(p, target / target.sum())
        requests.append((p, run.request(p, opponents, j, run.previous_member(p))))
    return requests

  def _opponents(self, player: int, joint: np.ndarray) -> oracle_base.Opponents:
    """Against `joint`, `[N_q for q != player]`: with one opponent its
    marginal is the whole joint."""
    populations = self.run.view.opponent_populations(player)
    if joint.ndim > 1:
      return oracle_base.JointMixture(populations, joint)
    return oracle_base.MemberMixture(populations, base.against(player, [joint] * 2))

  def accept(self, requests, members):
    """The oracle's answers, less those that play like a member already in
    the population: the same terminal reach (they differ only where their
    own play never goes) means the same payoffs against anything."""
    new = super().accept(requests, members)
    kept = []
    for p, new_members in enumerate(new):
      known = self.run.table.terminal_reach(p)
      unique = []
      for member in new_members:
        reach = self.tree.terminal_reach(p, base.matrix(member))
        if not np.any(np.all(np.abs(known - reach) <= 1e-12, axis=1)):
          unique.append(member)
          known = np.vstack([known, reach])
      kept.append(unique)
    return kept
