"""Known answers for the run metrics: baselines, win rates, Elo, diversity."""

import dataclasses
import json

import numpy as np
import pyspiel
import pytest

from openspiel_psro_ext.evaluation import metrics as metrics_lib
from openspiel_psro_ext.evaluation.metrics import (
  IterationMetrics,
  baselines,
  diversity,
  elo,
  outcomes,
)
from openspiel_psro_ext.game import exploitability, game_tree, payoffs
from openspiel_psro_ext.records import metrics as records_metrics
from tests.helpers import random_matrix


@pytest.fixture(scope="module")
def kuhn():
  return game_tree.get_tree("kuhn_poker")


@pytest.fixture(scope="module")
def kuhn_metrics(kuhn):
  return IterationMetrics(kuhn)


def _compute(metrics, populations, sigmas=None):
  tree = metrics.tree
  populations = [np.stack(p) for p in populations]
  if sigmas is None:
    sigmas = [np.full(len(p), 1.0 / len(p)) for p in populations]
  return metrics.compute(populations, sigmas, payoffs.payoff_tensors(tree, populations))


def test_cfr_plus_baseline_is_near_equilibrium_and_cached(kuhn, tmp_path):
  made = baselines.cfr_plus_baseline(kuhn, cache_dir=str(tmp_path))
  nash_conv = exploitability.exact_nash_conv(kuhn, made.matrices).nash_conv
  assert nash_conv < 1e-3
  assert made.info["nash_conv"] == pytest.approx(nash_conv)
  assert len(list(tmp_path.iterdir())) == 1
  loaded = baselines.cfr_plus_baseline(kuhn, cache_dir=str(tmp_path))
  assert loaded.info["seconds"] == 0.0
  for a, b in zip(made.matrices, loaded.matrices):
    np.testing.assert_array_equal(a, b)


def test_call_and_raise_baselines_on_kuhn(kuhn):
  call = baselines.always_call_baseline(kuhn)
  raise_ = baselines.always_raise_baseline(kuhn)
  strings = kuhn.infostates[1].strings
  # Player 1 holding the queen: checks behind a check, calls a bet.
  check_row, facing_row = strings.index("1p"), strings.index("1b")
  assert call.matrices[1][check_row].argmax() == 0
  assert call.matrices[1][facing_row].argmax() == 1
  assert np.all(raise_.matrices[0].argmax(axis=1) == 1)


def test_baselines_skipped_with_a_note_without_calls():
  tree = game_tree.get_tree("liars_dice(dice_sides=3)")
  made, notes = baselines.fixed_baselines(tree, cfr_plus=False)
  assert [b.name for b in made] == ["uniform"]
  assert len(notes) == 2 and all("no action named call" in n for n in notes)


def test_self_play_win_rate_is_symmetric(kuhn, kuhn_metrics, rng):
  cfr = next(b for b in kuhn_metrics.baselines if b.name == "cfr_plus")
  result = _compute(kuhn_metrics, [[m] for m in cfr.matrices])
  against_cfr = result.versus["cfr_plus"].mean
  assert against_cfr.win_rate == pytest.approx(against_cfr.loss_rate)
  assert against_cfr.expected_return == pytest.approx(0.0, abs=1e-12)
  # A symmetric game: the same mixed action in both seats of rock-paper-scissors.
  rps = game_tree.get_tree(pyspiel.load_game("matrix_rps"))
  mixed = rng.dirichlet(np.ones(3))
  reach = [rps.terminal_reach(p, mixed[None]) for p in range(2)]
  seat0, seat1 = (outcomes.seat_outcomes(rps, s, reach) for s in range(2))
  assert seat0.win_rate == pytest.approx(seat1.win_rate)
  assert seat0.draw_rate == pytest.approx(float(mixed @ mixed))


def test_win_probabilities_match_returns(kuhn, rng):
  reach = [kuhn.terminal_reach(p, random_matrix(kuhn, p, rng)) for p in range(2)]
  result = outcomes.seat_outcomes(kuhn, 0, reach)
  assert result.win_rate + result.draw_rate + result.loss_rate == pytest.approx(1.0)
  win, _ = outcomes.pairwise_scores(kuhn, reach[0][None], reach[1][None])
  assert win[0, 0] == pytest.approx(result.win_rate)
  returns = outcomes.pairwise_expected_returns(kuhn, reach[0][None], reach[1][None])
  assert returns[0, 0, 0] == pytest.approx(result.expected_return)


def _fold_the_king(tree, matrices):
  """CFR+ but folding the king to a bet: strictly dominated by CFR+."""
  worse = [m.copy() for m in matrices]
  for p, facing in ((0, "2pb"), (1, "2b")):
    row = tree.infostates[p].strings.index(facing)
    worse[p][row] = [1.0, 0.0]
  return worse


@pytest.mark.parametrize("elo_scores", ["payoff", "win"])
def test_dominating_policy_has_higher_elo(kuhn, elo_scores):
  metrics = IterationMetrics(kuhn, elo_scores=elo_scores)
  cfr = next(b for b in metrics.baselines if b.name == "cfr_plus").matrices
  worse = _fold_the_king(kuhn, cfr)
  result = _compute(
    metrics, [[cfr[p], worse[p]] for p in range(2)], sigmas=[np.array([1.0, 0.0])] * 2
  )
  for p in range(2):
    good, bad = result.elo.members[p]
    assert good > bad + 1.0
    # The mixture on the first member alone is that member.
    assert result.elo.meta_strategy[p] == pytest.approx(good, abs=1e-3)
  assert result.elo.baselines["uniform"] == [0.0, 0.0]
  assert result.elo.newest == [result.elo.members[0][1], result.elo.members[1][1]]


def test_elo_fit_matches_openspiel_elo():
  wins = np.array([[0, 700, 900], [300, 0, 600], [100, 400, 0]])
  first, second = np.triu_indices(3, 1)
  games = wins[first, second] + wins[second, first]
  fit = elo.fit_elo(
    first, second, wins[first, second] / games, 3, weights=games, fixed={2: 0.0}, smoothing=0.0
  )
  expected = pyspiel.elo.compute_ratings_from_matrices(wins.tolist())
  np.testing.assert_allclose(fit.ratings, expected, atol=0.05)


def test_diversity_zero_for_copies_and_grows(kuhn, kuhn_metrics, rng):
  policy = [random_matrix(kuhn, p, rng) for p in range(2)]
  other = [random_matrix(kuhn, p, rng, deterministic=True) for p in range(2)]
  copies = _compute(kuhn_metrics, [[policy[p]] * 3 for p in range(2)])
  assert copies.diversity.behavioural == 0.0
  assert copies.diversity.expected_cardinality < 1.0
  grown = _compute(kuhn_metrics, [[policy[p]] * 3 + [other[p]] for p in range(2)])
  assert grown.diversity.behavioural > 0.05
  for p in range(2):
    assert (
      grown.diversity.expected_cardinality_per_player[p]
      > copies.diversity.expected_cardinality_per_player[p]
    )


def test_behavioural_distance_of_opposite_pure_policies_is_one(kuhn):
  sequences = diversity.history_sequences(kuhn)
  plans = [kuhn.realization_plans(p, kuhn.uniform_policy()[p]) for p in range(2)]
  context = diversity.context_reach(kuhn, 0, plans, sequences)
  # Player 0 holds each card with probability 1/3 (first decisions); it acts
  # again only after the opponent bets (1/2 under uniform play).
  np.testing.assert_allclose(np.sort(context), [1 / 6] * 3 + [1 / 3] * 3)
  population = np.stack([np.eye(2)[np.zeros(6, int)], np.eye(2)[np.ones(6, int)]])
  distance = diversity.pairwise_behavioural_distance(kuhn, 0, population, context)
  np.testing.assert_allclose(distance, [[0, 1], [1, 0]])


def test_multiplayer_skips_elo_with_a_note(rng):
  tree = game_tree.get_tree("kuhn_poker(players=3)")
  metrics = IterationMetrics(tree, cfr_plus=False)
  result = _compute(metrics, [[random_matrix(tree, p, rng)] * 2 for p in range(3)])
  assert result.elo is None
  assert any("Elo skipped" in n for n in result.notes)
  assert len(result.versus["uniform"].seats) == 3


def test_result_round_trips_json_and_short_log(kuhn, kuhn_metrics, rng):
  result = _compute(
    kuhn_metrics, [[random_matrix(kuhn, p, rng) for _ in range(3)] for p in range(2)]
  )
  data = json.loads(json.dumps(records_metrics.to_json(result)))
  assert records_metrics.RunMetrics.from_json(data) == result
  line = result.short_log()
  for part in ("elo_new=", "div=", "card=", "win_vs_cfr=", "win_vs_unif="):
    assert part in line
  assert "\n" not in line


def _random_population(tree, player, size, rng):
  return np.stack([random_matrix(tree, player, rng, deterministic=k % 2 == 1) for k in range(size)])


def _reference_distance(tree, player, population, context, i, j):
  """`d(i, j)` one information state at a time, straight from the module doc."""
  table = tree.infostates[player]
  plans = tree.realization_plans(player, population[[i, j]])
  numerator = denominator = 0.0
  for state in range(table.num_infostates):
    weight = context[state] * plans[:, table.parent_sequence[state]].sum() / 2
    tv = 0.5 * np.abs(population[i, state] - population[j, state]).sum()
    numerator += weight * tv
    denominator += weight
  return numerator / denominator if denominator > 0 else 0.0


def test_sample_pairs_all_when_few_and_a_distinct_sample_when_many():
  first, second = diversity.sample_pairs(6, 15, np.random.default_rng(0))
  np.testing.assert_array_equal(np.stack([first, second]), np.triu_indices(6, 1))
  first, second = diversity.sample_pairs(2000, 500, np.random.default_rng(0))
  assert len(first) == 500 and np.all(first < second) and np.all(second < 2000)
  assert len(set(zip(first.tolist(), second.tolist()))) == 500
  again = diversity.sample_pairs(2000, 500, np.random.default_rng(0))
  np.testing.assert_array_equal(first, again[0])
  # The unranking hits both ends of the pair order.
  first, second = diversity.sample_pairs(3, 2, np.random.default_rng(1))
  assert set(zip(first.tolist(), second.tolist())) < {(0, 1), (0, 2), (1, 2)}
  with pytest.raises(ValueError, match="max_pairs"):
    diversity.sample_pairs(5, 0, np.random.default_rng(0))


def test_pair_distance_matches_a_direct_sum(kuhn, rng):
  population = _random_population(kuhn, 1, 5, rng)
  plans = [kuhn.realization_plans(p, m) for p, m in enumerate(kuhn.uniform_policy())]
  context = diversity.context_reach(kuhn, 1, plans, diversity.history_sequences(kuhn))
  full = diversity.pairwise_behavioural_distance(kuhn, 1, population, context)
  np.testing.assert_allclose(full, full.T)
  np.testing.assert_allclose(np.diag(full), 0.0)
  for i, j in ((0, 1), (2, 4), (3, 1)):
    assert full[i, j] == pytest.approx(
      _reference_distance(kuhn, 1, population, context, i, j), abs=1e-12
    )
  first, second = np.array([4, 0, 2]), np.array([1, 3, 2])
  np.testing.assert_allclose(
    diversity.pair_behavioural_distance(kuhn, 1, population, context, first, second),
    full[first, second],
    atol=1e-12,
  )


def test_rated_members_are_the_top_of_the_support_and_the_newest():
  scope = metrics_lib.MetricsScope(max_support=2, newest_members=2)
  sigma = np.array([0.3, 0.0, 0.3, 0.4, 0.0, 0.0, 0.0])
  # Support {0, 2, 3}: 3 (0.4), then 0 before 2 on the tie; newest {5, 6}.
  np.testing.assert_array_equal(metrics_lib.iteration.rated_members(sigma, scope), [0, 3, 5, 6])
  with pytest.raises(ValueError, match="newest_members"):
    metrics_lib.MetricsScope(newest_members=0)


@pytest.mark.parametrize(
  "scope",
  [
    metrics_lib.MetricsScope(),  # 5 members <= the 8 newest.
    metrics_lib.MetricsScope(
      max_support=5, newest_members=1, diversity_pairs=10
    ),  # The support covers all.
  ],
)
def test_covering_scope_equals_the_all_members_computation(kuhn, rng, scope):
  """Every value equals the O(N^2) computation over all members."""
  metrics = IterationMetrics(kuhn, scope=scope)
  populations = [_random_population(kuhn, p, 5, rng) for p in range(2)]
  sigmas = [rng.dirichlet(np.ones(5)) for _ in range(2)]
  meta_games = payoffs.payoff_tensors(kuhn, populations)
  result = metrics.compute(populations, sigmas, meta_games)
  # Elo: every member meets every member and baseline of the other seat.
  reaches = [kuhn.terminal_reach(p, pop) for p, pop in enumerate(populations)]
  base = [[kuhn.terminal_reach(p, b.matrices[p]) for p in range(2)] for b in metrics.baselines]
  pools = [np.concatenate([reaches[p]] + [r[p][None] for r in base]) for p in range(2)]
  score = metrics.seat0_scores(*pools)
  ratings0, ratings1, advantage = elo.seat_elo(score, 5, 5)
  assert result.elo.rated_members == [list(range(5))] * 2
  np.testing.assert_allclose(result.elo.members[0], ratings0[:5], atol=1e-6)
  np.testing.assert_allclose(result.elo.members[1], ratings1[:5], atol=1e-6)
  assert result.elo.seat_advantage == pytest.approx(advantage, abs=1e-6)
  mixture0 = elo.rating_against(sigmas[0] @ score[:5], ratings1, advantage)
  mixture1 = elo.rating_against(1.0 - score[:, :5] @ sigmas[1], ratings0, -advantage)
  np.testing.assert_allclose(result.elo.meta_strategy, [mixture0, mixture1], atol=1e-6)
  # Diversity over all pairs and the whole payoff table.
  mixture_plans = [
    s @ kuhn.realization_plans(p, pop) for p, (s, pop) in enumerate(zip(sigmas, populations))
  ]
  sequences = diversity.history_sequences(kuhn)
  for p in range(2):
    context = diversity.context_reach(kuhn, p, mixture_plans, sequences)
    full = diversity.mean_pairwise(
      diversity.pairwise_behavioural_distance(kuhn, p, populations[p], context)
    )
    assert result.diversity.behavioural_per_player[p] == pytest.approx(full, abs=1e-12)
    cardinality = diversity.expected_cardinality(
      diversity.payoff_rows(meta_games[p], p), metrics._scale
    )
    assert result.diversity.expected_cardinality_per_player[p] == pytest.approx(
      cardinality, abs=1e-9
    )
  assert result.diversity.pairs == [10, 10]
  assert result.diversity.cardinality_members == [5, 5]


def test_pass_cost_is_bounded_by_the_scope_not_the_population(kuhn, rng, monkeypatch):
  """Pairs, Elo pool, kernel and plans do not grow with N beyond the scope."""
  scope = metrics_lib.MetricsScope(max_support=4, newest_members=3, diversity_pairs=40)
  metrics = IterationMetrics(kuhn, scope=scope)
  sizes = {"pairs": [], "elo": [], "kernel": [], "plans": []}

  def spy(name, function, size_of):
    def wrapped(*args, **kwargs):
      sizes[name].append(size_of(*args, **kwargs))
      return function(*args, **kwargs)

    return wrapped

  monkeypatch.setattr(
    diversity,
    "pair_behavioural_distance",
    spy("pairs", diversity.pair_behavioural_distance, lambda *a, **k: len(a[4])),
  )
  monkeypatch.setattr(elo, "seat_elo", spy("elo", elo.seat_elo, lambda scores, *a: scores.shape))
  monkeypatch.setattr(
    diversity,
    "expected_cardinality",
    spy("kernel", diversity.expected_cardinality, lambda rows, *a: len(rows)),
  )
  monkeypatch.setattr(
    kuhn,
    "realization_plans",
    spy("plans", kuhn.realization_plans, lambda p, policies: len(policies)),
  )
  num_baselines = len(metrics.baselines)
  for n in (30, 300):
    populations = [_random_population(kuhn, p, n, rng) for p in range(2)]
    sigmas = []
    for _ in range(2):  # Six members in the support, more than max_support.
      sigma = np.zeros(n)
      sigma[rng.choice(n, 6, replace=False)] = rng.dirichlet(np.ones(6))
      sigmas.append(sigma)
    meta_games = payoffs.payoff_tensors(kuhn, populations)
    for key in sizes:
      sizes[key].clear()
    result = metrics.compute(populations, sigmas, meta_games)
    assert sizes["pairs"] == [40, 40] == result.diversity.pairs
    assert all(max(shape) <= 4 + 3 + num_baselines for shape in sizes["elo"])
    assert all(k <= 7 for k in sizes["kernel"] + result.diversity.cardinality_members)
    assert all(len(r) <= 7 for r in result.elo.rated_members)
    assert result.elo.rated_members[0][-1] == n - 1
    # Support, rated members and the two ends of each pair, at most.
    assert max(sizes["plans"]) <= 6 + 7 + 2 * 40


def test_sampled_diversity_estimates_the_all_pairs_mean(kuhn, rng):
  populations = [_random_population(kuhn, p, 60, rng) for p in range(2)]
  sigmas = [np.full(60, 1 / 60)] * 2
  meta_games = payoffs.payoff_tensors(kuhn, populations)
  full = IterationMetrics(
    kuhn, cfr_plus=False, scope=metrics_lib.MetricsScope(diversity_pairs=1770)
  ).compute(populations, sigmas, meta_games)
  sampled = IterationMetrics(
    kuhn, cfr_plus=False, scope=metrics_lib.MetricsScope(diversity_pairs=400)
  ).compute(populations, sigmas, meta_games)
  assert full.diversity.pairs == [1770, 1770]
  assert sampled.diversity.pairs == [400, 400]
  # Four times the standard-error bound 1 / (2 sqrt(400)).
  assert sampled.diversity.behavioural == pytest.approx(full.diversity.behavioural, abs=0.1)


def test_metrics_of_any_iteration_need_no_history(kuhn, kuhn_metrics, rng):
  """A fresh computer gives the same numbers as one that ran earlier passes."""
  populations = [_random_population(kuhn, p, 12, rng) for p in range(2)]
  sigmas = [rng.dirichlet(np.ones(12)) for _ in range(2)]
  first = _compute(
    kuhn_metrics, [list(pop[:7]) for pop in populations], [s[:7] / s[:7].sum() for s in sigmas]
  )
  assert first.elo.rated_members[0] == list(range(7))
  later = _compute(kuhn_metrics, [list(pop) for pop in populations], sigmas)
  fresh = _compute(IterationMetrics(kuhn), [list(pop) for pop in populations], sigmas)
  assert dataclasses.replace(later, seconds=0.0) == dataclasses.replace(fresh, seconds=0.0)


@pytest.mark.parametrize(
  "contents",
  [
    b"not a zip file",
    b"PK\x03\x04truncated",
    b"",
    None,  # A readable file whose policy has NaNs.
  ],
)
def test_corrupt_cfr_plus_cache_is_recomputed(kuhn, tmp_path, contents):
  made = baselines.cfr_plus_baseline(kuhn, cache_dir=str(tmp_path))
  (path,) = tmp_path.iterdir()
  if contents is None:
    np.savez(
      path,
      iterations=1.0,
      nash_conv=0.0,
      **{f"player{p}": np.full_like(m, np.nan) for p, m in enumerate(made.matrices)},
    )
  else:
    path.write_bytes(contents)
  again = baselines.cfr_plus_baseline(kuhn, cache_dir=str(tmp_path))
  for a, b in zip(made.matrices, again.matrices):
    np.testing.assert_array_equal(a, b)
  assert again.info["nash_conv"] == pytest.approx(made.info["nash_conv"])
  loaded = baselines.cfr_plus_baseline(kuhn, cache_dir=str(tmp_path))
  assert loaded.info["seconds"] == 0.0  # The rewritten file reads back.


def test_unwritable_cfr_plus_cache_still_gives_the_baseline(kuhn, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("a file where the cache directory should be")
  made = baselines.cfr_plus_baseline(kuhn, cache_dir=str(blocker / "cache"))
  assert exploitability.exact_nash_conv(kuhn, made.matrices).nash_conv < 1e-3
