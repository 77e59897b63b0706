"""Known answers for the run metrics: baselines, win rates, Elo, diversity."""

import json

import numpy as np
import pyspiel
import pytest

from conftest import random_matrix
from openspiel_psro_ext import exploitability, game_tree, payoffs
from openspiel_psro_ext.metrics import IterationMetrics, short_log
from openspiel_psro_ext.metrics import baselines, diversity, elo, outcomes


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
  return metrics.compute(populations, sigmas,
                         payoffs.payoff_tensors(tree, populations))


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
  assert result["win_rate/cfr_plus"] == pytest.approx(result["loss_rate/cfr_plus"])
  assert result["expected_return/cfr_plus"] == pytest.approx(0.0, abs=1e-12)
  # A symmetric game: the same mixed action in both seats of rock-paper-scissors.
  rps = game_tree.get_tree(pyspiel.load_game("matrix_rps"))
  mixed = rng.dirichlet(np.ones(3))
  reach = [rps.terminal_reach(p, mixed[None]) for p in range(2)]
  seat0, seat1 = (outcomes.seat_outcomes(rps, s, reach) for s in range(2))
  assert seat0["win"] == pytest.approx(seat1["win"])
  assert seat0["draw"] == pytest.approx(float(mixed @ mixed))


def test_win_probabilities_match_returns(kuhn, rng):
  reach = [kuhn.terminal_reach(p, random_matrix(kuhn, p, rng)) for p in range(2)]
  result = outcomes.seat_outcomes(kuhn, 0, reach)
  assert result["win"] + result["draw"] + result["loss"] == pytest.approx(1.0)
  win, _ = outcomes.pairwise_scores(kuhn, reach[0][None], reach[1][None])
  assert win[0, 0] == pytest.approx(result["win"])
  returns = outcomes.pairwise_expected_returns(kuhn, reach[0][None], reach[1][None])
  assert returns[0, 0, 0] == pytest.approx(result["expected_return"])


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
  result = _compute(metrics, [[cfr[p], worse[p]] for p in range(2)],
                    sigmas=[np.array([1.0, 0.0])] * 2)
  for p in range(2):
    good, bad = result["elo/members"][p]
    assert good > bad + 1.0
    # The mixture on the first member alone is that member.
    assert result["elo/meta_strategy"][p] == pytest.approx(good, abs=1e-3)
  assert result["elo/baselines/uniform"] == [0.0, 0.0]
  assert result["elo/newest"] == [result["elo/members"][0][1],
                                  result["elo/members"][1][1]]


def test_elo_fit_matches_openspiel_elo():
  wins = np.array([[0, 700, 900], [300, 0, 600], [100, 400, 0]])
  first, second = np.triu_indices(3, 1)
  games = wins[first, second] + wins[second, first]
  fit = elo.fit_elo(first, second, wins[first, second] / games, 3,
                    weights=games, fixed={2: 0.0}, smoothing=0.0)
  expected = pyspiel.elo.compute_ratings_from_matrices(wins.tolist())
  np.testing.assert_allclose(fit.ratings, expected, atol=0.05)


def test_diversity_zero_for_copies_and_grows(kuhn, kuhn_metrics, rng):
  policy = [random_matrix(kuhn, p, rng) for p in range(2)]
  other = [random_matrix(kuhn, p, rng, deterministic=True) for p in range(2)]
  copies = _compute(kuhn_metrics, [[policy[p]] * 3 for p in range(2)])
  assert copies["diversity/behavioural"] == 0.0
  assert copies["diversity/expected_cardinality"] < 1.0
  grown = _compute(kuhn_metrics, [[policy[p]] * 3 + [other[p]] for p in range(2)])
  assert grown["diversity/behavioural"] > 0.05
  for p in range(2):
    assert (grown["diversity/expected_cardinality_per_player"][p]
            > copies["diversity/expected_cardinality_per_player"][p])


def test_behavioural_distance_of_opposite_pure_policies_is_one(kuhn):
  sequences = diversity.history_sequences(kuhn)
  plans = [kuhn.realization_plans(p, kuhn.uniform_policy()[p]) for p in range(2)]
  context = diversity.context_reach(kuhn, 0, plans, sequences)
  # Player 0 holds each card with probability 1/3 (first decisions); it acts
  # again only after the opponent bets (1/2 under uniform play).
  np.testing.assert_allclose(np.sort(context), [1/6] * 3 + [1/3] * 3)
  population = np.stack([np.eye(2)[np.zeros(6, int)], np.eye(2)[np.ones(6, int)]])
  distance = diversity.pairwise_behavioural_distance(kuhn, 0, population, context)
  np.testing.assert_allclose(distance, [[0, 1], [1, 0]])


def test_multiplayer_skips_elo_with_a_note(rng):
  tree = game_tree.get_tree("kuhn_poker(players=3)")
  metrics = IterationMetrics(tree, cfr_plus=False)
  result = _compute(metrics, [[random_matrix(tree, p, rng)] * 2 for p in range(3)])
  assert not any(k.startswith("elo/") for k in result)
  assert any("Elo skipped" in n for n in result["metrics/notes"])
  assert {f"win_rate/uniform/seat{s}" for s in range(3)} <= set(result)


def test_result_is_json_and_short_log(kuhn, kuhn_metrics, rng):
  result = _compute(kuhn_metrics, [[random_matrix(kuhn, p, rng) for _ in range(3)]
                                   for p in range(2)])
  assert json.loads(json.dumps(result)) == result
  line = short_log(result)
  for part in ("elo_new=", "div=", "card=", "win_vs_cfr=", "win_vs_unif="):
    assert part in line
  assert "\n" not in line
