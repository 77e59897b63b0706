"""Loop variants (`algorithms`): XDO, NXDO and Anytime PSRO, and the CFR+ under XDO and NXDO."""

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability as os_exploitability

from openspiel_psro_ext import errors, psro
from openspiel_psro_ext.game import cfr, exploitability, game_tree
from openspiel_psro_ext.psro import variants as algorithms
from openspiel_psro_ext.psro.variants import anytime_psro, xdo
from openspiel_psro_ext.records.variants import NXDOState, XDOState
from openspiel_psro_ext.runs import checkpoints
from tests.helpers import make_run


def _config(**kwargs):
  defaults = dict(
    game="kuhn_poker", iterations=30, meta_solver="nash", oracle="exact", target_nash_conv=0.0
  )
  defaults.update(kwargs)
  return psro.PSROConfig(**defaults)


def _openspiel_cfr_plus_nash_conv(game: str, iterations: int) -> float:
  solver = pyspiel.CFRPlusSolver(pyspiel.load_game(game))
  for _ in range(iterations):
    solver.evaluate_and_update_policy()
  return pyspiel.nash_conv(pyspiel.load_game(game), solver.tabular_average_policy())


@pytest.mark.parametrize("game", ["kuhn_poker", "leduc_poker"])
def test_cfr_plus_matches_openspiel_cfr_plus(game):
  tree = game_tree.get_tree(game)
  solver = cfr.CFRPlus(tree)
  solver.iterate(30)
  ours = exploitability.exact_nash_conv(tree, solver.average_policy()).nash_conv
  # The same algorithm (alternating updates, linear averaging) as OpenSpiel's C++ one.
  assert ours == pytest.approx(_openspiel_cfr_plus_nash_conv(game, 30), rel=1e-6)


def test_predictive_cfr_plus_solves_kuhn():
  tree = game_tree.get_tree("kuhn_poker")
  solver = cfr.CFRPlus(tree, predictive=True)
  solver.iterate(1000)
  result = exploitability.exact_nash_conv(tree, solver.average_policy())
  assert result.nash_conv < 1e-6
  assert result.on_policy_values[0] == pytest.approx(-1 / 18, abs=1e-5)


def test_restricted_game_and_its_best_responses():
  tree = game_tree.get_tree("kuhn_poker")
  rng = np.random.default_rng(0)
  # A restriction to one action per state is one pure profile: its average is
  # that profile and nobody can deviate inside it.
  pure = [
    np.eye(tree.num_actions, dtype=bool)[rng.integers(0, 2, t.num_infostates)]
    for t in tree.infostates
  ]
  solver = cfr.CFRPlus(tree, pure)
  solver.iterate(5)
  for average, allowed in zip(solver.average_policy(), pure):
    np.testing.assert_array_equal(average, allowed.astype(float))
  assert cfr.restricted_nash_conv(tree, solver.average_policy(), pure) == pytest.approx(0.0)
  # Unrestricted, the restricted NashConv is OpenSpiel's NashConv.
  policies = [t.uniform_policy() for t in tree.infostates]
  legal = [t.legal_mask for t in tree.infostates]
  assert cfr.restricted_nash_conv(tree, policies, legal) == pytest.approx(
    os_exploitability.nash_conv(tree.game, policy_lib.TabularPolicy(tree.game)), abs=1e-12
  )
  with pytest.raises(ValueError, match="no allowed action"):
    cfr.CFRPlus(tree, [np.zeros_like(m) for m in legal])


def _always(tree, player):
  """`[A, I, A]`: member k plays action k where legal (else the first legal one)."""
  legal = tree.infostates[player].legal_mask
  members = []
  for k in range(tree.num_actions):
    actions = np.where(legal[:, k], k, legal.argmax(axis=1))
    members.append(np.eye(tree.num_actions)[actions])
  return np.stack(members)


def test_member_cfr_over_every_pure_action_solves_the_full_game():
  # Members that between them play every action at every state leave the
  # full game: the known Kuhn value, and the member best response is the
  # action best response.
  tree = game_tree.get_tree("kuhn_poker")
  members = [_always(tree, p) for p in range(2)]
  solver = cfr.MemberCFRPlus(tree, members, predictive=True)
  solver.iterate(1000)
  average = solver.average_policy()
  result = exploitability.exact_nash_conv(tree, average)
  assert result.nash_conv < 1e-5
  assert result.on_policy_values[0] == pytest.approx(-1 / 18, abs=1e-4)
  assert solver.restricted_gap() == pytest.approx(result.nash_conv, abs=1e-12)


def test_member_cfr_mixes_only_what_members_play():
  tree = game_tree.get_tree("leduc_poker")
  rng = np.random.default_rng(0)
  members = []
  for t in tree.infostates:
    raw = rng.random((3, t.num_infostates, tree.num_actions)) * t.legal_mask
    members.append(raw / raw.sum(axis=2, keepdims=True))
  solver = cfr.MemberCFRPlus(tree, members)
  solver.iterate(50)
  for p, policy in enumerate(solver.current):
    weights = solver.member_weights(p)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(policy, np.einsum("ik,kia->ia", weights, members[p]))
  # Growing keeps the old regrets and starts the new member's at 0.
  before = [r.copy() for r in solver.regrets]
  grown = [np.concatenate([m, m[:1]]) for m in members]
  solver.extend(grown)
  for p in range(2):
    np.testing.assert_array_equal(solver.regrets[p][:, :3], before[p])
    assert not solver.regrets[p][:, 3].any()
  assert solver.iterations == 0
  with pytest.raises(ValueError, match="existing 4 members first"):
    solver.extend([m[::-1] for m in grown])
  # The member best response never beats the action best response.
  assert (
    solver.restricted_gap()
    <= cfr.restricted_nash_conv(
      tree, solver.average_policy(), [t.legal_mask for t in tree.infostates]
    )
    + 1e-12
  )


def test_nxdo_kuhn_reaches_nash_conv_1e3_and_is_verified():
  run = make_run(_config(algorithm="nxdo", target_nash_conv=1e-3))
  assert isinstance(run.variant, xdo.NXDO)
  assert run.run() == "target_nash_conv"
  last = run.records[-1]
  assert last.nash_conv <= 1e-3
  assert run.verify(tolerance=1e-9) == pytest.approx(last.nash_conv, abs=1e-9)
  assert all(isinstance(r.variant, NXDOState) for r in run.records)
  # Iteration t's restricted game chooses among the t best responses so far.
  assert [r.variant.members for r in run.records] == [[t, t] for t in range(len(run.records))]


def test_nxdo_resume_matches_uninterrupted_run(tmp_path):
  full = make_run(_config(game="leduc_poker", algorithm="nxdo", iterations=8))
  full.run()
  out = str(tmp_path / "nxdo")
  make_run(_config(game="leduc_poker", algorithm="nxdo", iterations=5), output_dir=out).run()
  resumed = make_run(
    _config(game="leduc_poker", algorithm="nxdo", iterations=8), output_dir=out, resume=True
  )
  resumed.run()
  saved = checkpoints.read_metrics(out)
  assert [r["nash_conv"] for r in saved] == [r.nash_conv for r in full.records]
  assert checkpoints.read_records(out)[-1].variant == full.records[-1].variant


def test_xdo_kuhn_reaches_nash_conv_1e6_and_is_verified():
  run = make_run(_config(algorithm="xdo", target_nash_conv=1e-6))
  assert isinstance(run.variant, xdo.XDO)
  assert run.run() == "target_nash_conv"
  last = run.records[-1]
  assert last.nash_conv <= 1e-6 and last.iteration <= 25
  assert run.verify(tolerance=1e-9) == pytest.approx(last.nash_conv, abs=1e-9)
  assert last.on_policy_values[0] == pytest.approx(-1 / 18, abs=1e-5)
  # The threshold halves and the restricted game is what the records say.
  states = [r.variant for r in run.records]
  assert all(isinstance(s, XDOState) for s in states)
  thresholds = [s.threshold for s in states]
  assert thresholds == sorted(thresholds, reverse=True) and thresholds[-1] < thresholds[0]
  assert last.variant.restricted_nash_conv <= last.variant.threshold
  restricted = [int(a.sum()) for a in run.variant.restricted_actions()]
  assert last.variant.restricted_actions == restricted
  # meta_strategy: the best responses spanning the restricted game, equally.
  assert last.meta_strategy[0][0] == 0.0 and sum(last.meta_strategy[0]) == pytest.approx(1.0)


def test_xdo_best_responses_answer_the_output_policy():
  run = make_run(_config(algorithm="xdo", iterations=4))
  run.run()
  tree = run.tree
  for p in range(2):
    expected = exploitability.exact_nash_conv(tree, run.variant.output_policy).best_responses[p]
    requests = run.variant.requests(run.meta_strategies)
    member = run.oracle.best_response(requests[p][1])
    np.testing.assert_array_equal(member.matrix, expected)


def test_xdo_resume_matches_uninterrupted_run(tmp_path):
  full = make_run(_config(game="leduc_poker", algorithm="xdo", iterations=12))
  full.run()
  out = str(tmp_path / "xdo")
  make_run(_config(game="leduc_poker", algorithm="xdo", iterations=7), output_dir=out).run()
  resumed = make_run(
    _config(game="leduc_poker", algorithm="xdo", iterations=12), output_dir=out, resume=True
  )
  assert resumed.iteration == 7
  resumed.run()
  saved = checkpoints.read_metrics(out)
  assert [r["nash_conv"] for r in saved] == [r.nash_conv for r in full.records]
  assert [r["variant"]["xdo"]["cfr_iterations"] for r in saved] == [
    r.variant.cfr_iterations for r in full.records
  ]
  assert checkpoints.read_records(out)[-1].variant == full.records[-1].variant
  resumed.verify(tolerance=1e-9)


def test_anytime_psro_kuhn_is_exact_monotone_and_below_psro():
  run = make_run(_config(algorithm="anytime_psro", iterations=15))
  assert isinstance(run.variant, anytime_psro.AnytimePSRO)
  run.run()
  plain = psro.PSRO(_config(iterations=15))
  plain.run()
  ours = [r.nash_conv for r in run.records]
  assert min(ours) <= 1e-6
  assert all(b <= a + 1e-12 for a, b in zip(ours, ours[1:]))
  # Same populations as PSRO's (the same best responses to the restricted
  # Nash); the least exploitable mixture is never worse than that Nash.
  assert [r.population_size for r in run.records] == [r.population_size for r in plain.records]
  assert all(a <= b + 1e-12 for a, b in zip(ours, [r.nash_conv for r in plain.records]))
  assert run.verify(tolerance=1e-9) == pytest.approx(ours[-1], abs=1e-9)


def _ppo_anytime(iterations, greedy_forms=True):
  """Anytime PSRO + PPO on Kuhn with episode budgets (deterministic)."""
  config = _config(
    algorithm="anytime_psro",
    iterations=iterations,
    oracle="ppo",
    oracle_config=dict(progress=False, time_budget_s=0, total_episodes=20_000),
    oracle_budget_final_s=0,
  )
  return config, algorithms.options("anytime_psro", {"greedy_forms": greedy_forms})


def test_anytime_psro_greedy_forms_are_output_candidates_only(tmp_path):
  pytest.importorskip("torch")
  config, options = _ppo_anytime(5)
  out = str(tmp_path / "forms")
  run = make_run(config, options, output_dir=out)
  run.run()
  plain = make_run(*_ppo_anytime(5, greedy_forms=False))
  plain.run()
  populations, plain_populations = run.population_matrices(), plain.population_matrices()
  forms = [sorted(k for r in run.records for k in r.variant.greedy_forms[p]) for p in range(2)]
  for p in range(2):
    # Each RL member follows its greedy form: one-hot where it acts.
    assert forms[p] == list(range(1, len(populations[p]), 2))
    greedy, members = populations[p][forms[p]], populations[p][[k + 1 for k in forms[p]]]
    assert np.all(greedy.max(axis=2)[members.sum(axis=2) > 0] == 1.0)
    # The populations grow against the RL members alone, so they are the
    # members of the run without forms, bit for bit.
    np.testing.assert_array_equal(members, plain_populations[p][1:])
    nash = run.variant._restricted_nash[p]  # pylint: disable=protected-access
    assert nash[[k for k in forms[p] if k < len(nash)]].sum() == 0 < nash.sum()
  # More candidates: the output is never more exploitable, and never rises.
  ours, theirs = [r.nash_conv for r in run.records], [r.nash_conv for r in plain.records]
  assert all(a <= b + 1e-12 for a, b in zip(ours, theirs))
  assert ours[-1] < theirs[-1]
  assert all(b <= a + 1e-12 for a, b in zip(ours, ours[1:]))
  assert run.verify(tolerance=1e-9) == pytest.approx(ours[-1], abs=1e-9)
  # Resume from iteration 3: the forms' places come back from the records.
  cut = str(tmp_path / "cut")
  make_run(_ppo_anytime(3)[0], options, output_dir=cut).run()
  resumed = make_run(config, options, output_dir=cut, resume=True)
  resumed.run()
  assert [r.nash_conv for r in resumed.records] == ours
  assert [r.variant.greedy_forms for r in resumed.records] == [
    r.variant.greedy_forms for r in run.records
  ]


@pytest.mark.parametrize("oracle", ["exact", "ppo"])
def test_anytime_psro_linear_program_and_double_oracle_find_equally_exploitable_mixtures(oracle):
  """Both learners are exact: their outputs' NashConv agree at every
  iteration (the mixtures may differ where the optimum is not unique), on
  pure best responses (Leduc) and on stochastic PPO members with their
  greedy forms (Kuhn)."""
  if oracle == "ppo":
    pytest.importorskip("torch")
    config, _ = _ppo_anytime(4)
  else:
    config = _config(game="leduc_poker", algorithm="anytime_psro", iterations=10)
  curves = []
  for learner in ("linear_program", "double_oracle"):
    run = make_run(config, algorithms.options("anytime_psro", {"learner": learner}))
    run.run()
    curves.append([r.nash_conv for r in run.records])
  np.testing.assert_allclose(curves[0], curves[1], rtol=0, atol=1e-7)


def test_anytime_psro_regret_matching_learner_never_rises():
  run = make_run(
    _config(algorithm="anytime_psro", iterations=8),
    algorithms.options("anytime_psro", {"learner": "regret_matching", "inner_steps": 50}),
  )
  run.run()
  ours = [r.nash_conv for r in run.records]
  assert ours[-1] < 0.5 * ours[0]
  assert all(b <= a + 1e-12 for a, b in zip(ours, ours[1:]))


def test_anytime_psro_resume_matches_uninterrupted_run(tmp_path):
  full = make_run(_config(game="leduc_poker", algorithm="anytime_psro", iterations=8))
  full.run()
  out = str(tmp_path / "anytime")
  make_run(
    _config(game="leduc_poker", algorithm="anytime_psro", iterations=4), output_dir=out
  ).run()
  resumed = make_run(
    _config(game="leduc_poker", algorithm="anytime_psro", iterations=8), output_dir=out, resume=True
  )
  resumed.run()
  assert [r["nash_conv"] for r in checkpoints.read_metrics(out)] == [
    r.nash_conv for r in full.records
  ]
  # The run keeps its options: resuming with another learner is refused.
  with pytest.raises(errors.UsageError, match="ran anytime_psro with options.*same"):
    make_run(
      _config(game="leduc_poker", algorithm="anytime_psro", iterations=9),
      algorithms.options("anytime_psro", {"learner": "regret_matching"}),
      output_dir=out,
      resume=True,
    )


@pytest.mark.parametrize("algorithm", ["xdo", "anytime_psro"])
@pytest.mark.parametrize(
  "change, message",
  [
    (dict(game="kuhn_poker(players=3)", meta_solver="prd"), "two-player zero-sum"),
    (dict(symmetric=True), "drop --symmetric"),
  ],
)
def test_variants_refuse_what_they_cannot_run(algorithm, change, message):
  with pytest.raises(errors.UsageError, match=message):
    make_run(_config(algorithm=algorithm, **change))


def test_unknown_algorithm_is_named():
  with pytest.raises(errors.UsageError, match="xdo"):
    algorithms.get("nope")


def test_xdo_with_rl_best_responses_runs_and_verifies():
  pytest.importorskip("torch")
  rl = dict(time_budget_s=0, total_episodes=3000, progress=False, num_threads=1)
  run = make_run(_config(algorithm="xdo", iterations=2, oracle="ppo", oracle_config=rl))
  run.run()
  last = run.records[-1]
  assert last.nash_conv < run.records[0].nash_conv
  assert run.verify(tolerance=1e-9) == pytest.approx(last.nash_conv, abs=1e-9)
  # Each request's opponent is the other player's output policy, weight 1.
  request = run.variant.requests(run.meta_strategies)[0][1]
  np.testing.assert_array_equal(request.opponents.populations[1][0], run.variant.output_policy[1])
  assert request.opponents.weights[1].tolist() == [1.0]
