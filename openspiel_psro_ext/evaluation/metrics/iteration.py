"""All per-iteration evaluation metrics of a PSRO run, as one `RunMetrics`.

`IterationMetrics(tree)` is built once per run: it compiles the fixed
baselines (uniform, always-call, always-raise, CFR+; see `baselines`) and the
per-history sequence table the diversity measure needs. Any PSRO iteration
(every `--metrics_every`-th and, always, the run's final one) then calls
`compute(populations, meta_strategies, meta_games)`, which returns a
`records.metrics.RunMetrics` (its fields below).

What a pass looks at (its cost). A population grows by one member per player
per iteration, so anything computed over all member pairs makes a pass
`O(N^2)` or worse in time and memory. A pass here reads, per player p, only

  * the support of p's meta-strategy `sigma_p` (for the mixture's realization
    plan: `O(|support| S_p)`);
  * the rated members `R_p`: the `scope.max_support` most probable members of
    the support (ties to the older member) and the `scope.newest_members`
    newest members, so `|R_p| <= max_support + newest_members`;
  * a sample of at most `scope.diversity_pairs` member pairs;
  * `R_p`'s rows of the payoff table (`O(|R_p| prod_{q != p} N_q)`).

So apart from the support's realization plan and the table rows (linear in N
for two players) the cost and memory of a pass do not depend on N
(`benchmarks/metrics.py` measures it). When
`R_p` is the whole population (N <= newest_members, or a support that
covers it) and all pairs fit in the sample, every value equals the
all-members computation.

Fields of `RunMetrics`:

  versus[b].seats[p]     win, draw and loss rates and expected return of the
                         meta-strategy mixture in seat p with every other
                         seat played by baseline b (see `outcomes`); exact,
                         from the mixture's realization plan.
  versus[b].mean         their means over seats.
  elo.rated_members      per player, the indices of `R_p` (sorted)
  elo.members            per player, Elo of each rated member (same order)
  elo.newest             per player, Elo of the newest member
  elo.meta_strategy      per player, Elo of the meta-strategy mixture
  elo.baselines[b]       per player, Elo of baseline b
  elo.seat_advantage     seat 0's fitted advantage (Elo points)
      two-player games only (else `elo` is None). Method: every seat-0 policy of the pool (the
      rated members `R_0` and the baselines) meets every seat-1 policy of the
      pool (`R_1` and the baselines), at most `(max_support + newest_members
      + 4)^2` pairs; seat 0's exact expected score is derived from the payoff
      table (default: `1/2 + (u_0 - u_1) / 4U`, see `seat0_scores`; or from
      win/draw probabilities); ratings are the maximum-likelihood logistic
      (Bradley-Terry) fit of those scores with a seat-0 advantage term,
      anchored so uniform random is 0 in each seat (see `elo`). The mixture
      is rated against the fitted pool, which it does not move. Members
      outside `R_p` are not rated in that pass. Payoff scores rank policies as
      the payoff table does (a near-equilibrium policy well above uniform);
      win-probability scores can rank a policy that folds often below one
      that wins small pots.
  diversity.behavioural, diversity.behavioural_per_player
      mean reach-weighted TV distance (see `diversity`) over the member pairs
      of `diversity.pairs`: all `N(N-1)/2` pairs while they number at most
      `scope.diversity_pairs`, else a uniform sample of that many distinct
      pairs (seeded by `scope.seed`, the player and N, so a pass is
      reproducible), an unbiased estimate of the all-pairs mean with
      standard error at most `1 / (2 sqrt(pairs))`. The context `c(I)` is
      the other players' meta-strategy mixtures.
  diversity.pairs        per player, the number of pairs evaluated
  diversity.expected_cardinality, diversity.expected_cardinality_per_player
      DPP expected cardinality (see `diversity`) of the kernel over the payoff
      vectors of the rated members `R_p` against the whole opposing
      population.
  diversity.cardinality_members  per player, `|R_p|` (the kernel's size)
      The diversity fields without `_per_player` are means over players.
  baselines[b]           baseline b's NashConv (and CFR+'s iterations)
  seconds                time spent in `compute`
  notes                  skipped baselines or metrics, when any
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pyspiel
import threadpoolctl

from openspiel_psro_ext.evaluation.metrics import baselines as baselines_lib
from openspiel_psro_ext.evaluation.metrics import diversity, elo, outcomes
from openspiel_psro_ext.game import exploitability
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.records import metrics as records_metrics


@dataclasses.dataclass(frozen=True)
class MetricsScope:
  """Which members one metrics pass reads; bounds its cost (see module doc).

  Attributes:
    max_support: the most probable members of each meta-strategy's support
      that are rated (Elo) and enter the DPP kernel.
    newest_members: the newest members of each population, rated as well.
    diversity_pairs: member pairs per player in the behavioural diversity
      mean (all pairs while there are at most this many, else a sample).
    seed: seeds the pair sample, together with the player and population size.
  """

  max_support: int = 64
  newest_members: int = 8
  diversity_pairs: int = 256
  seed: int = 0

  def __post_init__(self):
    for name in ("max_support", "newest_members", "diversity_pairs"):
      if getattr(self, name) < 1:
        raise ValueError(f"MetricsScope.{name} must be at least 1, not {getattr(self, name)}.")


def rated_members(meta_strategy: np.ndarray, scope: MetricsScope) -> np.ndarray:
  """`[K]` sorted indices of the rated members `R_p` (see module doc).

  The `scope.max_support` most probable members of the support (ties go to
  the older member) and the `scope.newest_members` newest members.

  Args:
    meta_strategy: `[N]` one player's meta-strategy.
    scope: the bounds.
  """
  sigma = np.asarray(meta_strategy, dtype=np.float64)
  support = np.flatnonzero(sigma > 0)
  if len(support) > scope.max_support:
    # lexsort's last key is the primary one: probability descending, then index.
    order = np.lexsort((support, -sigma[support]))
    support = support[order[: scope.max_support]]
  newest = np.arange(max(0, len(sigma) - scope.newest_members), len(sigma))
  return np.union1d(support, newest).astype(np.int64)


def _utility_scale(tree: GameTree) -> float:
  game = tree.game
  scale = max(abs(game.max_utility()), abs(game.min_utility()))
  if not np.isfinite(scale) or scale <= 0:
    scale = float(np.abs(tree.terminal_returns).max(initial=1.0)) or 1.0
  return float(scale)


class IterationMetrics:
  """Win rates, Elo and diversity of a PSRO population (see module doc)."""

  def __init__(
    self,
    tree: GameTree,
    cfr_plus: bool = True,
    cache_dir: str | None = None,
    cfr_plus_max_iterations: int = baselines_lib.DEFAULT_CFR_PLUS_MAX_ITERATIONS,
    cfr_plus_target_nash_conv: float = baselines_lib.DEFAULT_CFR_PLUS_TARGET_NASH_CONV,
    elo_scores: str = "payoff",
    scope: MetricsScope = MetricsScope(),
  ):
    """Builds the baselines.

    Args:
      tree: the compiled game.
      cfr_plus: include the CFR+ near-equilibrium baseline (a few seconds
        on leduc_poker the first time; cached per game string afterwards).
      cache_dir: directory for the on-disk CFR+ cache (None: in-process only).
      cfr_plus_max_iterations: CFR+ iterations at most.
      cfr_plus_target_nash_conv: stop CFR+ once its NashConv is below this.
      elo_scores: what an Elo "score" is: "payoff" (from expected returns,
        the default) or "win" (win probability plus half the draw
        probability); see `seat0_scores`.
      scope: which members a pass reads (bounds its cost; see module doc).
    """
    if elo_scores not in ("payoff", "win"):
      raise ValueError(f"elo_scores must be 'payoff' or 'win', not {elo_scores!r}.")
    self.tree = tree
    self.elo_scores = elo_scores
    self.scope = scope
    self.baselines, self.notes = baselines_lib.fixed_baselines(
      tree,
      cfr_plus=cfr_plus,
      cache_dir=cache_dir,
      max_iterations=cfr_plus_max_iterations,
      target_nash_conv=cfr_plus_target_nash_conv,
    )
    self._baseline_reach = [
      [tree.terminal_reach(p, b.matrices[p]) for p in range(tree.num_players)]
      for b in self.baselines
    ]
    self._sequences = diversity.history_sequences(tree)
    self._scale = _utility_scale(tree)
    self.baseline_facts: dict[str, records_metrics.BaselineFacts] = {}
    for b in self.baselines:
      nash_conv = b.info.get("nash_conv")
      if nash_conv is None:
        nash_conv = exploitability.exact_nash_conv(tree, b.matrices).nash_conv
      iterations, seconds = b.info.get("iterations"), b.info.get("seconds")
      self.baseline_facts[b.name] = records_metrics.BaselineFacts(
        float(nash_conv),
        None if iterations is None else float(iterations),
        None if seconds is None else float(seconds),
      )
    self.rate_elo = tree.num_players == 2
    if not self.rate_elo:
      self.notes.append(
        f"Elo skipped: {tree.game.get_type().short_name} has"
        f" {tree.num_players} players (Elo here rates"
        " two-seat matches)."
      )
    elif tree.game.get_type().utility == pyspiel.GameType.Utility.IDENTICAL:
      self.rate_elo = False
      self.notes.append(
        f"Elo skipped: {tree.game.get_type().short_name} is"
        " cooperative (identical payoffs); nobody wins."
      )

  @property
  def baseline_names(self) -> list[str]:
    return [b.name for b in self.baselines]

  def compute(
    self,
    populations: Sequence[np.ndarray],
    meta_strategies: Sequence[np.ndarray],
    meta_games: Sequence[np.ndarray],
  ) -> records_metrics.RunMetrics:
    """Metrics of one PSRO iteration (any iteration: they need no history).

    Only the members the scope names are read (module doc); the arrays are
    not copied whole.

    Args:
      populations: per player `[N_p, I_p, A]` behaviour policies.
      meta_strategies: per player `[N_p]` meta-strategy probabilities.
      meta_games: per player `[N_0, ..., N_{P-1}]` payoff tensors (or one
        `[P, N_0, ..., N_{P-1}]` array).

    Returns:
      The metrics; fields in module doc.
    """
    # Matrix products here are small ([K, Z] x [Z, K]): BLAS threads only add
    # synchronisation, much slower on a busy machine (BUILD_NOTES).
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
      return self._compute(populations, meta_strategies, meta_games)

  def _compute(
    self,
    populations: Sequence[np.ndarray],
    meta_strategies: Sequence[np.ndarray],
    meta_games: Sequence[np.ndarray],
  ) -> records_metrics.RunMetrics:
    start = time.perf_counter()
    tree = self.tree
    num_players = tree.num_players
    if len(populations) != num_players or len(meta_strategies) != num_players:
      raise ValueError(
        f"{tree.game} has {num_players} players; pass one"
        " population and one meta-strategy per player."
      )
    sigmas = [np.asarray(s, dtype=np.float64) for s in meta_strategies]
    sizes = tuple(len(s) for s in sigmas)
    for p, (pop, sigma) in enumerate(zip(populations, sigmas)):
      if np.ndim(pop) != 3 or len(pop) != len(sigma):
        raise ValueError(
          f"player {p}: population shape {np.shape(pop)} does"
          f" not match a meta-strategy of length {len(sigma)}."
        )
      if np.shape(meta_games[p]) != sizes:
        raise ValueError(
          f"player {p}: payoff table shape"
          f" {np.shape(meta_games[p])} does not match population"
          f" sizes {sizes}."
        )
    rated = [rated_members(sigma, self.scope) for sigma in sigmas]
    supports = [np.flatnonzero(sigma > 0) for sigma in sigmas]
    pairs = [
      diversity.sample_pairs(
        n, self.scope.diversity_pairs, np.random.default_rng([self.scope.seed, p, n])
      )
      for p, n in enumerate(sizes)
    ]
    # Per player, the members this pass reads, and their realization plans.
    read = [
      np.unique(np.concatenate([support, members, *pair]))
      for support, members, pair in zip(supports, rated, pairs)
    ]
    policies = [
      np.asarray(np.asarray(pop)[members], dtype=np.float64)
      for pop, members in zip(populations, read)
    ]
    plans = [tree.realization_plans(p, policy) for p, policy in enumerate(policies)]

    def row(player: int, members: np.ndarray) -> np.ndarray:
      """Rows of `policies[player]` and `plans[player]` holding `members`."""
      return np.searchsorted(read[player], members)

    mixture_plans = [
      sigma[support] @ plan[row(p, support)]
      for p, (sigma, support, plan) in enumerate(zip(sigmas, supports, plans))
    ]
    mixture_reaches = [plan[tree.terminal_sequence[p]] for p, plan in enumerate(mixture_plans)]

    versus = self._versus_baselines(mixture_reaches)
    ratings = None
    if self.rate_elo:
      rated_reaches = [
        plans[p][row(p, members)][:, tree.terminal_sequence[p]] for p, members in enumerate(rated)
      ]
      ratings = self._elo(rated, rated_reaches, mixture_reaches)
    behavioural, cardinality = [], []
    for p in range(num_players):
      context = diversity.context_reach(tree, p, mixture_plans, self._sequences)
      first, second = pairs[p]
      distance = diversity.pair_behavioural_distance(
        tree, p, policies[p], context, row(p, first), row(p, second), plans=plans[p]
      )
      behavioural.append(float(distance.mean()) if len(distance) else 0.0)
      cardinality.append(
        diversity.expected_cardinality(
          diversity.payoff_rows(meta_games[p], p, rated[p]), self._scale
        )
      )
    diversity_value = records_metrics.Diversity(
      behavioural=float(np.mean(behavioural)),
      behavioural_per_player=behavioural,
      pairs=[len(first) for first, _ in pairs],
      expected_cardinality=float(np.mean(cardinality)),
      expected_cardinality_per_player=cardinality,
      cardinality_members=[len(members) for members in rated],
    )
    return records_metrics.RunMetrics(
      versus=versus,
      elo=ratings,
      diversity=diversity_value,
      baselines=dict(self.baseline_facts),
      seconds=time.perf_counter() - start,
      notes=list(self.notes),
    )

  def _versus_baselines(
    self, mixture_reaches: list[np.ndarray]
  ) -> dict[str, records_metrics.VersusBaseline]:
    out = {}
    for baseline, base_reach in zip(self.baselines, self._baseline_reach):
      seats = []
      for seat in range(self.tree.num_players):
        reach = list(base_reach)
        reach[seat] = mixture_reaches[seat]
        seats.append(outcomes.seat_outcomes(self.tree, seat, reach))
      mean = records_metrics.Outcome.mean_of(seats)
      out[baseline.name] = records_metrics.VersusBaseline(mean, seats)
    return out

  def _elo(
    self,
    rated: list[np.ndarray],
    rated_reaches: list[np.ndarray],
    mixture_reaches: list[np.ndarray],
  ) -> records_metrics.EloRatings:
    """Elo of the pool: rated members and baselines, both seats (module doc).

    Args:
      rated: per seat `[K_p]` sorted member indices (the newest is last).
      rated_reaches: per seat `[K_p, Z]` their terminal reaches.
      mixture_reaches: per seat `[Z]` the meta-strategy mixture's.
    """
    k0, k1 = len(rated[0]), len(rated[1])
    pool0 = np.concatenate([rated_reaches[0]] + [r[0][None] for r in self._baseline_reach])
    pool1 = np.concatenate([rated_reaches[1]] + [r[1][None] for r in self._baseline_reach])
    score = self.seat0_scores(pool0, pool1)
    # Uniform random is the first baseline: the anchor in each seat.
    ratings0, ratings1, advantage = elo.seat_elo(score, k0, k1)
    # Scores are bilinear in the reaches, so the mixture's are those of its
    # realization plan.
    mixture0 = elo.rating_against(
      self.seat0_scores(mixture_reaches[0][None], pool1)[0], ratings1, advantage
    )
    mixture1 = elo.rating_against(
      1.0 - self.seat0_scores(pool0, mixture_reaches[1][None])[:, 0], ratings0, -advantage
    )
    return records_metrics.EloRatings(
      rated_members=[rated[0].tolist(), rated[1].tolist()],
      members=[ratings0[:k0].tolist(), ratings1[:k1].tolist()],
      newest=[float(ratings0[k0 - 1]), float(ratings1[k1 - 1])],
      meta_strategy=[mixture0, mixture1],
      seat_advantage=advantage,
      baselines={
        baseline.name: [float(ratings0[k0 + k]), float(ratings1[k1 + k])]
        for k, baseline in enumerate(self.baselines)
      },
    )

  def seat0_scores(self, reach0: np.ndarray, reach1: np.ndarray) -> np.ndarray:
    """`[K0, K1]` seat 0's expected Elo score for every pair of policies.

    With `elo_scores="payoff"`: `1/2 + (E[u_0] - E[u_1]) / (4 U)`, `U` the
    game's largest absolute utility -- the expected score when each game's
    result is read as a win with probability `(1 + (u_0 - u_1) / (2U)) / 2`.
    It is affine in the payoff table, so payoff dominance means a higher score.
    With `elo_scores="win"`: `P(win) + P(draw) / 2` of seat 0.

    Args:
      reach0: `[K0, Z]` terminal reaches of seat-0 policies.
      reach1: `[K1, Z]` terminal reaches of seat-1 policies.
    """
    if self.elo_scores == "win":
      win, draw = outcomes.pairwise_scores(self.tree, reach0, reach1)
      return win + draw / 2
    margin = outcomes.pairwise_margin(self.tree, reach0, reach1)
    return np.clip(0.5 + margin / (4 * self._scale), 0, 1)
