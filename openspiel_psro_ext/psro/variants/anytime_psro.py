"""Anytime PSRO (McAleer et al. 2022), tabular form, on PSRO's loop.

PSRO's meta-strategy is a Nash equilibrium of the restricted (population)
game, which can be more exploitable in the full game than an earlier one:
PSRO's NashConv goes up and down. Anytime PSRO instead gives each player p
the mixture over its own population that is least exploitable by any
full-game policy,

    sigma_p = argmin_{sigma in simplex(N_p)} max_{beta} u_{-p}(sigma, beta),

where beta ranges over all the opponent's policies. A bigger population only
adds options, so the minimum can only go down: the output improves at any
time. In a two-player zero-sum game NashConv is the sum of the two players'
terms `max_beta u_{-p}(sigma_p, beta)` (less the constant utility sum), and
each term depends on one player's mixture only, so each player solves its
own problem.

The paper solves it with a no-regret learner against best responses
(`learner="regret_matching"`). Each PSRO iteration then runs `inner_steps`
steps of regret matching+ over the population, per player p:

  1. the opponent's exact full-game best response beta_t to the current
     mixture sigma_t (`exploitability.best_response_from_weights` over the
     mixture's terminal reach);
  2. every member k's payoff against it, `u_p(pi_k, beta_t)`, from the
     members' terminal reaches (one `[N_p, Z] @ [Z]` product);
  3. the regrets `R_k <- max(R_k + u_p(pi_k, beta_t) - u_p(sigma_t, beta_t), 0)`
     and `sigma_{t+1}` proportional to them;

and the iteration's candidate is the iterates' average weighted by the step
number (regret matching+'s linear averaging). The regrets carry over from
iteration to iteration (a new member starts at 0). The output -- the
record's `meta_strategy` -- is the candidate if its term is no larger than
the previous output's (which stays a mixture of the grown population),
else the previous output: with an approximate learner this keeps the
anytime property exact, so NashConv never rises.

`learner="linear_program"` (the default) computes the same mixture exactly,
as one linear program in the opponent's sequence form
(`LeastExploitableLP`): the dual of the opponent's best-response LP, with
the mixture's weights as variables too. Each new member adds a column, so
the program lives across iterations and HiGHS restarts from its last basis;
the double oracle below finds the same mixture but re-discovers many
exploiters every iteration, far slower late in an RL run
(benchmarks/RESULTS.md).

`learner="double_oracle"` computes the same mixture exactly too:
the opponent's best responses found so far are its strategies in a
zero-sum matrix game against p's members (`nash.solve_zero_sum`); a fresh
full-game best response to the solution either does no better than the
matrix game's value (the mixture is least exploitable) or joins them. It is
finite and exact, where regret matching+ needs about 1/eps^2 steps for eps.
Each PSRO iteration starts from the best responses the last solution used
(its column strategy's support), so the LP stays small (keeping all of them
makes it grow every iteration).

The populations grow as in double oracle (ADO): each player's new best
response answers the restricted game's Nash equilibrium (the meta-solver's
`sigma`, PSRO's step). Best responses to the least exploitable mixtures
themselves can stall short of equilibrium (each mixture's exploiter is
already in the population, yet neither mixture is the restricted game's
maximin). With DO's expansion the restricted
equilibrium converges as in PSRO, and since it is itself a mixture of the
population, the output is never more exploitable than PSRO's meta-strategy
at the same iteration.

`learner="multiplicative_weights"`: the paper's neural form, for RL
oracles. Player p's best response trains against q's mixture as a
multiplicative-weights learner over q's population (`oracles.hedge`: it
starts uniform and learns from the training episodes' payoffs), and q's
candidate at the next iteration is the time average of that learner's
iterates (the member's `learned_weights`, kept in the record's
`AnytimeState.learned_weights`, per player over the population it had),
with the new member at weight 0. No exact best
response enters the learner; on a compiled tree the candidate still passes
the exact keep-the-previous test above. Here the populations grow against
the learning mixtures, as in the paper, not against the restricted Nash, so
the meta-solver is not used.

Greedy forms (`greedy_forms`, on by default): with RL best responses, each
new member's greedy form (`TorchPolicy.greedy_form`: its most likely action
everywhere) joins the population beside it as a candidate of the output
only. The least exploitable mixture may use it; the restricted Nash the
populations grow against holds the RL members alone (members themselves
greedy grew worse: benchmarks/RESULTS.md). A deterministic policy is a
vertex of the policy space that a softmax member only approaches, so the
mixtures have more to choose from for the price of one forward pass.

Each record's `variant` is an `AnytimeState`: per player the term above
(the opponent's best-response value), whether the previous output was kept,
and the double oracle's best responses in its LP. The meta-solver gives the
restricted Nash the populations grow against (tabular learners).

Resume: the tabular learners are deterministic, so `meta_solve` replayed
over the saved populations rebuilds the regrets and the output exactly; the
multiplicative-weights averages come back from the records' states.
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np

from openspiel_psro_ext import oracles as oracles_lib
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import cfr, exploitability, payoffs
from openspiel_psro_ext.meta_solvers import nash
from openspiel_psro_ext.meta_solvers.least_exploitable import LeastExploitableLP
from openspiel_psro_ext.oracles.rl import hedge
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.psro.config import PSROConfig
from openspiel_psro_ext.psro.variants import base
from openspiel_psro_ext.records import IterationRecord, schema
from openspiel_psro_ext.records.variants import AnytimeState


class Learner(str, enum.Enum):
  """How each player's least exploitable mixture is found (module doc)."""

  LINEAR_PROGRAM = "linear_program"
  DOUBLE_ORACLE = "double_oracle"
  REGRET_MATCHING = "regret_matching"
  MULTIPLICATIVE_WEIGHTS = "multiplicative_weights"


@dataclasses.dataclass(frozen=True)
class AnytimeOptions:
  """Anytime PSRO's settings (module doc).

  Attributes:
    learner: "linear_program" (default) or "double_oracle" (both exact),
      "regret_matching" (the paper's tabular learner) or
      "multiplicative_weights" (its neural form, for RL oracles); a `Learner`.
    inner_steps: regret-matching+ steps per player and PSRO iteration.
    max_exploiters: best responses the double oracle may collect per player.
    hedge_step, hedge_window: the multiplicative-weights learner's step (on
      the game's payoffs) and episodes per update (`oracles.hedge`); the
      step is smaller than the paper's reference 0.1, which learned too
      fast against PPO best responses of many updates.
    greedy_forms: add each RL member's greedy form as an output candidate
      (module doc; tabular learners).
  """

  learner: Learner = Learner.LINEAR_PROGRAM
  inner_steps: int = schema.setting(100, min=1)
  max_exploiters: int = schema.setting(10_000, min=1)
  hedge_step: float = schema.setting(0.01, above=0)
  hedge_window: int = schema.setting(1000, min=1)
  greedy_forms: bool = True

  def __post_init__(self):
    if self.learner not in [m.value for m in Learner]:
      raise UsageError(
        f"Anytime PSRO has no learner {self.learner!r}; choose one of {[m.value for m in Learner]}."
      )
    object.__setattr__(self, "learner", Learner(self.learner))

  def check(self) -> None:
    """Nothing depends on another value."""

  @property
  def hedge(self) -> hedge.HedgeOptions:
    return hedge.HedgeOptions(step=self.hedge_step, window=self.hedge_window)


class AnytimePSRO(base.Variant):
  """Anytime PSRO (module doc); `options` an `AnytimeOptions`."""

  name = "anytime_psro"
  title = "Anytime PSRO"
  Options = AnytimeOptions
  options: AnytimeOptions

  def __init__(self, options: AnytimeOptions | None = None):
    super().__init__(options)
    # Per iteration, per player: the multiplicative-weights learner's average
    # over that player's population (None: no learner ran for it).
    self._learned: list[list[np.ndarray | None]] = []
    self._regrets: list[np.ndarray] = []
    # Per player: the opponent's best responses so far (`[K, Z]` payoff
    # weights, `_payoff_weights`), the members' payoffs against them
    # (`[N_p, K]`) and the warm-started LP of that matrix game.
    self._exploiters: list[payoffs.GrowingArray] = []
    self._payoffs: list[np.ndarray] = []
    self._matrix_solvers: list[nash.IncrementalZeroSumNash] = []
    self._columns: list[np.ndarray] = []  # per player, the last LP's column strategy
    self._programs: list[LeastExploitableLP] = []  # per player (`learner`)
    self._output: list[np.ndarray] = []
    self._output_values: list[float] = []
    self._state: AnytimeState | None = None
    self._restricted_nash: list[np.ndarray] = []
    self._solves = 0
    # Per player, the population indices of greedy forms (output candidates).
    self._greedy_forms: list[set[int]] = []

  @property
  def _learns(self) -> bool:
    """The multiplicative-weights learner: mixtures learn in the oracle."""
    return self.options.learner is Learner.MULTIPLICATIVE_WEIGHTS

  def check(self, config: PSROConfig, view: views.View) -> None:
    if self._learns and not oracles_lib.get(config.oracle).trains:
      raise UsageError(
        f"Anytime PSRO's multiplicative-weights learner learns from the"
        f" episodes of RL best responses; oracle {config.oracle!r} plays"
        f" none. Use an RL oracle (e.g. ppo) or learner 'linear_program'."
      )
    base.check_two_player_zero_sum(self.title, config, view)

  def restore(self, records: list[IterationRecord]) -> None:
    """The multiplicative-weights averages and the greedy forms' places,
    from the records' states."""
    for record in records:
      state = record.variant
      if isinstance(state, AnytimeState) and state.greedy_forms is not None:
        self._note_greedy_forms(state.greedy_forms)
      learned = state.learned_weights if isinstance(state, AnytimeState) else None
      self._learned.append(
        [None if w is None else np.asarray(w, dtype=np.float64) for w in learned]
        if learned is not None
        else [None] * self.run.num_players
      )

  def _exploiter_value(self, player: int, mixture_reach: np.ndarray) -> tuple[float, np.ndarray]:
    """The opponent's best-response value against `player`'s mixture (with
    terminal reach `[Z]`), and the best response's `[Z]` terminal reach."""
    tree, opponent = self.tree, 1 - player
    weights = tree.terminal_chance_reach * mixture_reach * tree.terminal_returns[:, opponent]
    value, actions = exploitability.best_response_from_weights(tree, opponent, weights)
    return float(value), tree.terminal_reach(opponent, exploitability.one_hot_policy(tree, actions))

  def meta_solve(self) -> list[np.ndarray]:
    sigma, terms, kept = [], [], []
    for p in range(self.run.num_players):
      members = self.run.table.terminal_reach(p)  # [N_p, Z]
      first = len(self._output) <= p
      if self.options.learner is Learner.LINEAR_PROGRAM:
        candidate = self._linear_program(p, members)
      elif self.options.learner is Learner.DOUBLE_ORACLE:
        candidate = self._double_oracle(p, members)
      elif self.options.learner is Learner.REGRET_MATCHING:
        candidate = self._regret_matching(p, members)
      else:
        candidate = self._learned_mixture(p, len(members))
      value, _ = self._exploiter_value(p, candidate @ members)
      keep = not first and self._output_values[p] < value
      if keep:
        candidate = np.zeros(len(members))
        candidate[: len(self._output[p])] = self._output[p]
        value = self._output_values[p]
      sigma.append(candidate)
      terms.append(value)
      kept.append(bool(keep))
    self._output, self._output_values = sigma, terms
    if not self._learns:  # what the populations grow against
      self._restricted_nash = base.restricted_nash(self.run, self._growing())
    self._state = AnytimeState(
      exploitability=terms,
      kept_previous=kept,
      exploiters=[len(e) for e in self._exploiters] or [0] * self.run.num_players,
    )
    self._solves += 1
    return sigma

  def requests(self, sigma):
    if not self._learns:
      # sigma is the output; the population grows against the restricted Nash.
      return self.mixture_requests(self._restricted_nash)
    # Against learning mixtures that start uniform (module doc).
    uniform = [np.full(n, 1.0 / n) for n in self.run.table.shape]
    return self.mixture_requests(uniform, self.options.hedge)

  def accept(self, requests, members):
    new_members = super().accept(requests, members)
    if self.options.greedy_forms and not self._learns:
      new_members = self._with_greedy_forms(new_members)
    if self._learns:
      learned: list[np.ndarray | None] = [None] * self.run.num_players
      for member in members:
        for q, weights in enumerate(member.learned_weights or ()):
          if weights is not None:
            learned[q] = np.asarray(weights, dtype=np.float64)
      self._learned.append(learned)
      assert self._state is not None
      self._state.learned_weights = [None if w is None else w.tolist() for w in learned]
    return new_members

  def state(self) -> AnytimeState | None:
    return self._state

  def _with_greedy_forms(self, new_members: base.Members) -> base.Members:
    """Each RL member preceded by its greedy form (the member stays last:
    the next best response warm-starts from it); records their places."""
    # torch only where RL members are (the loop imports without it).
    from openspiel_psro_ext.oracles.rl import torch_policy  # pylint: disable=g-import-not-at-top

    placed: list[list[int]] = []
    for p, members in enumerate(new_members):
      size, placed_p = len(self.run.populations[p]), []
      grown: list[oracles_lib.PopulationMember] = []
      for member in members:
        module = member.module
        if isinstance(module, torch_policy.TorchPolicy) and module.arch["output"] != "greedy":
          form, index = module.greedy_form(), size + len(grown)
          placed_p.append(index)
          # Its record names the member it is the form of (the next one).
          stats = {"greedy_form_of": index + 1}
          grown.append(
            oracles_lib.PopulationMember(matrix=form.matrix(self.tree), module=form, stats=stats)
          )
        grown.append(member)
      new_members[p] = grown
      placed.append(placed_p)
    self._note_greedy_forms(placed)
    assert self._state is not None
    self._state.greedy_forms = placed
    return new_members

  def _note_greedy_forms(self, placed: list[list[int]]) -> None:
    while len(self._greedy_forms) < len(placed):
      self._greedy_forms.append(set())
    for forms, indices in zip(self._greedy_forms, placed):
      forms.update(indices)

  def _growing(self) -> list[np.ndarray] | None:
    """Per player, the members the restricted game holds: all but the
    greedy forms (None: all)."""
    if not any(self._greedy_forms):
      return None
    return [
      np.setdiff1d(np.arange(n), sorted(forms))
      for n, forms in zip(self.run.table.shape, self._greedy_forms)
    ]

  def _learned_mixture(self, player: int, size: int) -> np.ndarray:
    """The last multiplicative-weights average over `player`'s population,
    with its newer members at 0 (uniform before any learner ran)."""
    learned = self._learned[self._solves - 1][player] if self._solves else None
    if learned is None:
      return np.full(size, 1.0 / size)
    mixture = np.zeros(size)
    mixture[: len(learned)] = learned
    return mixture

  def _payoff_weights(self, player: int, opponent_reach: np.ndarray) -> np.ndarray:
    """`[Z]` weights whose dot product with a member's terminal reach is its
    payoff against the opponent policy with terminal reach `opponent_reach`."""
    tree = self.tree
    return tree.terminal_chance_reach * tree.terminal_returns[:, player] * opponent_reach

  def _linear_program(self, player: int, members: np.ndarray) -> np.ndarray:
    """The least exploitable mixture of `[N_p, Z]` members, exactly (see `learner`)."""
    if len(self._programs) <= player:
      self._programs.append(LeastExploitableLP(self.tree, player))
    program = self._programs[player]
    program.add(members[program.size :])
    mixture, _ = program.solve()
    return mixture

  def _double_oracle(self, player: int, members: np.ndarray) -> np.ndarray:
    """The least exploitable mixture, exactly (see `learner`)."""
    if len(self._exploiters) <= player:
      self._exploiters.append(payoffs.GrowingArray((self.tree.num_terminals,)))
      self._payoffs.append(np.zeros((0, 0)))
      self._matrix_solvers.append(nash.IncrementalZeroSumNash())
    exploiters, table = self._exploiters[player], self._payoffs[player]
    if len(self._columns) > player:
      # Only the exploiters the last solution used: within an iteration the
      # columns only grow (so the loop ends), and the LP stays small.
      keep = self._columns[player] > 0
      kept = exploiters.array[keep]
      exploiters = self._exploiters[player] = payoffs.GrowingArray((self.tree.num_terminals,))
      exploiters.append(kept)
      table = table[:, keep]
    if len(table) < len(members):  # the new members' rows
      table = np.vstack([table, members[len(table) :] @ exploiters.array.T])
    for _ in range(self.options.max_exploiters):
      if len(exploiters):
        solution = self._matrix_solvers[player].solve(table)
        mixture, value = solution.row, solution.value
        if len(self._columns) <= player:
          self._columns.append(solution.col)
        self._columns[player] = solution.col  # the opponent's side of the LP
      else:
        mixture, value = np.full(len(members), 1.0 / len(members)), np.inf
      _, br_reach = self._exploiter_value(player, mixture @ members)
      weights = self._payoff_weights(player, br_reach)
      column = members @ weights
      # The LP's value is exact only to its solver's tolerance (~1e-9): with
      # stochastic members (RL best responses) a tighter test keeps adding
      # the exploiter the LP already holds.
      if mixture @ column >= value - 1e-9 * max(1.0, abs(value)):
        self._payoffs[player] = table
        return mixture
      exploiters.append(weights[None])
      table = np.hstack([table, column[:, None]])
    raise RuntimeError(
      f"Anytime PSRO: no least exploitable mixture for player {player}"
      f" after {self.options.max_exploiters} exploiters."
    )

  def _regret_matching(self, player: int, members: np.ndarray) -> np.ndarray:
    """The paper's learner: regret matching+ against exact best responses."""
    n = len(members)
    regrets = np.zeros(n)
    if len(self._regrets) > player:
      regrets[: len(self._regrets[player])] = self._regrets[player]
    average = np.zeros(n)
    for step in range(1, self.options.inner_steps + 1):
      current = cfr.regret_matching(regrets[None], np.ones((1, n)))[0]
      _, br_reach = self._exploiter_value(player, current @ members)
      payoffs = members @ self._payoff_weights(player, br_reach)
      regrets = np.maximum(regrets + payoffs - current @ payoffs, 0.0)
      average += step * current
    if len(self._regrets) > player:
      self._regrets[player] = regrets
    else:
      self._regrets.append(regrets)
    return average / average.sum()
