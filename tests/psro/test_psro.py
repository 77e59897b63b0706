"""The PSRO loop: convergence, variants, checkpoints and resume."""

import dataclasses
import os

import numpy as np
import pytest
from open_spiel.python.algorithms import exploitability as os_exploitability
from open_spiel.python.algorithms import policy_aggregator

import openspiel_psro_ext
from openspiel_psro_ext import psro
from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.evaluation import verification
from openspiel_psro_ext.game import game_tree, payoffs
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.runs import checkpoints


def _config(**kwargs):
  defaults = dict(
    game="kuhn_poker", iterations=15, meta_solver="nash", oracle="exact", target_nash_conv=0.0
  )
  defaults.update(kwargs)
  return psro.PSROConfig(**defaults)


def test_kuhn_exact_nash_converges_within_15_iterations():
  run = psro.PSRO(_config())
  run.run()
  assert len(run.records) == 15  # no stopping rule but the iteration count
  assert min(r.nash_conv for r in run.records) < 1e-6
  # Player 0's value at the end is Kuhn's game value, -1/18.
  assert run.records[-1].on_policy_values[0] == pytest.approx(-1 / 18, abs=1e-6)


def test_records_match_openspiel_verification():
  run = psro.PSRO(_config(game="leduc_poker", iterations=6))
  run.run()
  theirs = run.verify(tolerance=1e-9)
  assert theirs == pytest.approx(run.records[-1].nash_conv, abs=1e-9)
  record = run.records[-1]
  assert len(record.meta_strategy[0]) == record.population_size[0]
  assert sum(record.exploitability_per_player) == pytest.approx(record.nash_conv)


@pytest.mark.parametrize("solver", ["prd", "uniform", "alpharank"])
def test_other_meta_solvers_run_and_improve(solver):
  run = psro.PSRO(_config(meta_solver=solver, iterations=8))
  run.run()
  assert run.records[-1].nash_conv < run.records[0].nash_conv


@pytest.mark.slow
def test_three_players_with_prd():
  run = psro.PSRO(_config(game="kuhn_poker(players=3)", meta_solver="prd", iterations=5))
  run.run()
  assert run.records[-1].population_size == [5, 5, 5]
  pops, weights = verification.support_policies(
    run.tree, run.population_matrices(), run.meta_strategies
  )
  aggregated = policy_aggregator.PolicyAggregator(run.tree.game).aggregate([0, 1, 2], pops, weights)
  assert os_exploitability.nash_conv(run.tree.game, aggregated) == pytest.approx(
    run.records[-1].nash_conv, abs=1e-9
  )


def test_nash_on_three_players_is_refused():
  with pytest.raises(ValueError, match="does not support 3-player games.*'alpharank'.*'prd'"):
    psro.PSRO(_config(game="kuhn_poker(players=3)"))


def test_rectified_nash_trains_one_response_per_support_member():
  run = psro.PSRO(
    _config(game="matrix_rps", meta_solver="rectified_nash", symmetric=True, iterations=4)
  )
  run.run()
  sizes = [r.population_size[0] for r in run.records]
  supports = [r.support_size[0] for r in run.records]
  for before, after, support in zip(sizes, sizes[1:], supports):
    assert after - before == support
  assert run.records[-1].nash_conv == pytest.approx(0.0, abs=1e-9)


def test_symmetric_needs_matching_players():
  with pytest.raises(ValueError, match="Drop --symmetric"):
    psro.PSRO(_config(symmetric=True)).run()
  with pytest.raises(ValueError, match="Drop --symmetric"):
    psro.PSRO(_config(game="kuhn_poker(players=3)", meta_solver="prd", symmetric=True))


def test_sampled_payoffs_approach_exact():
  exact = psro.PSRO(_config(iterations=4))
  exact.run()
  sampled = psro.PSRO(_config(iterations=4, sims_per_entry=20000))
  sampled.run()
  np.testing.assert_allclose(
    sampled.table.meta_games[0][:3, :3], exact.table.meta_games[0][:3, :3], atol=0.03
  )


def test_resume_matches_uninterrupted_run(tmp_path):
  full = psro.PSRO(_config(game="leduc_poker", iterations=12))
  full.run()
  out = str(tmp_path / "run")
  first = psro.PSRO(_config(game="leduc_poker", iterations=5), output_dir=out)
  first.run()
  resumed = psro.PSRO(
    _config(game="leduc_poker", iterations=12), output_dir=out, resume=True
  ).restore()
  assert resumed.iteration == 5
  resumed.run()
  ours = [r["nash_conv"] for r in checkpoints.read_metrics(out)]
  assert ours == [r.nash_conv for r in full.records]
  loaded = openspiel_psro_ext.load_run(out)  # the top-level spelling
  assert [len(p) for p in loaded.population] == full.records[-1].population_size
  aggregated = policy_aggregator.PolicyAggregator(loaded.game).aggregate(
    [0, 1], loaded.population, loaded.meta_strategy
  )
  assert os_exploitability.nash_conv(loaded.game, aggregated) == pytest.approx(
    full.records[-1].nash_conv, abs=1e-9
  )


def test_output_dir_protection(tmp_path):
  out = str(tmp_path / "run")
  psro.PSRO(_config(iterations=2), output_dir=out).run()
  with pytest.raises(checkpoints.CheckpointError, match="not empty"):
    psro.PSRO(_config(iterations=2), output_dir=out)
  with pytest.raises(checkpoints.CheckpointError, match="meta_solver"):
    psro.PSRO(_config(iterations=3, meta_solver="prd"), output_dir=out, resume=True).restore()
  # A corrupted checkpoint is named.
  with open(checkpoints.member_path(out, 0, 1, ".npy"), "wb") as f:
    f.write(b"garbage")
  with pytest.raises(checkpoints.CheckpointError, match="player0_0001.npy"):
    psro.PSRO(_config(iterations=3), output_dir=out, resume=True).restore()


def test_restoring_is_a_step_after_construction_and_old_formats_are_refused(tmp_path):
  out = str(tmp_path / "run")
  psro.PSRO(_config(iterations=2), output_dir=out).run()
  pending = psro.PSRO(_config(iterations=3), output_dir=out, resume=True)
  assert pending.iteration == 0 and not pending.populations[0]  # nothing replayed yet
  with pytest.raises(UsageError, match="call restore"):
    pending.step()
  assert pending.restore().iteration == 2
  # A directory written before typed variant states (no "format") is refused in one line.
  state_path = os.path.join(out, checkpoints.STATE_FILE)
  state = checkpoints.read_json(state_path)
  del state["format"]
  checkpoints.write_json(state_path, state)
  with pytest.raises(checkpoints.CheckpointError, match=r"format 1.*rerun it") as refused:
    psro.PSRO(_config(iterations=3), output_dir=out, resume=True)
  assert "\n" not in str(refused.value)


def test_atomic_writes_leave_no_temporary_files(tmp_path):
  out = str(tmp_path / "run")
  psro.PSRO(_config(iterations=3), output_dir=out).run()
  leftovers = [n for _, _, files in os.walk(out) for n in files if n.startswith(".tmp")]
  assert not leftovers


def test_resume_with_neural_members_matches_uninterrupted_run(tmp_path):
  pytest.importorskip("torch")
  rl = dict(
    game="kuhn_poker",
    oracle="ppo",
    oracle_config={"time_budget_s": 0, "total_episodes": 8000, "progress": False, "num_threads": 1},
  )
  full = psro.PSRO(_config(iterations=3, **rl))
  full.run()
  out = str(tmp_path / "ppo")
  psro.PSRO(_config(iterations=2, **rl), output_dir=out).run()
  resumed = psro.PSRO(_config(iterations=3, **rl), output_dir=out, resume=True).restore()
  # Neural members come back as torch modules (for warm starts), not just matrices.
  assert type(resumed.populations[0][-1].module).__name__ == "TorchPolicy"
  resumed.run()
  assert [r["nash_conv"] for r in checkpoints.read_metrics(out)] == [
    r.nash_conv for r in full.records
  ]


def _simulated_config(**kwargs):
  pytest.importorskip("torch")
  defaults = dict(
    game="kuhn_poker",
    iterations=3,
    meta_solver="nash",
    oracle="ppo",
    evaluation="sampled",
    payoff_target_stderr=0.05,
    target_nash_conv=0.0,
    oracle_config=dict(
      time_budget_s=0, total_episodes=6000, num_envs=256, progress=False, num_threads=1
    ),
  )
  defaults.update(kwargs)
  return psro.PSROConfig(**defaults)


def test_simulated_mode_estimates_the_exact_payoffs():
  run = psro.PSRO(_simulated_config())
  assert run.view.simulated and run.tree is not None  # kuhn compiles: kept beside
  run.run()
  # Every member is a torch module playing pyspiel games; on a compiling game
  # its exact matrix is kept too, so the estimated table can be checked.
  exact = payoffs.payoff_tensors(run.tree, run.population_matrices())
  stderr = run.table.stderr
  for ours, theirs, err in zip(run.table.meta_games, exact, stderr):
    assert ours.shape == theirs.shape == err.shape == (4, 4)
    # Each entry is a mean of at least 64 games: within 5 standard errors
    # (plus the resolution of a 64-game estimate where the spread is tiny).
    assert np.all(np.abs(ours - theirs) <= 5 * err + 0.02)
    # Games follow the meta-strategy (simulation.SimulatedPayoffTable.add):
    # every entry gets at least 64, the first (uniform vs uniform) the target.
    assert np.all(run.table.games >= 64)
    assert err[0, 0] <= 0.05 + 1e-12 or run.table.games[0, 0] == 4096
  assert all(r.nash_conv is not None for r in run.records)
  assert run.records[-1].nash_conv < run.records[0].nash_conv


@pytest.mark.slow
def test_simulated_mode_without_a_tree_and_its_resume(tmp_path):
  # leduc_poker does not fit in 100 histories: auto chooses the simulated mode,
  # with no exact NashConv; the approximate one is an evaluation hook.
  config = _simulated_config(game="leduc_poker", evaluation="auto", max_histories=100, iterations=2)
  full = psro.PSRO(config)
  assert full.view.simulated and full.tree is None
  full.run()
  assert all(r.nash_conv is None for r in full.records)
  out = str(tmp_path / "sim")
  psro.PSRO(dataclasses.replace(config, iterations=1), output_dir=out).run()
  resumed = psro.PSRO(config, output_dir=out, resume=True).restore()
  assert type(resumed.populations[0][1].module).__name__ == "TorchPolicy"
  resumed.run()
  np.testing.assert_array_equal(resumed.table.meta_games[0], full.table.meta_games[0])
  # Each entry's standard error is written beside the table.
  np.testing.assert_array_equal(
    np.load(os.path.join(out, "payoffs_stderr.npy")), np.stack(resumed.table.stderr)
  )
  assert [r.meta_strategy for r in resumed.records] == [r.meta_strategy for r in full.records]
  # load_run gives OpenSpiel policies: the uniform first member, then torch modules.
  loaded = openspiel_psro_ext.load_run(out)
  state = loaded.game.new_initial_state().child(0).child(1)
  for member in loaded.population[0]:
    probs = member.action_probabilities(state, 0)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-6)
  assert type(loaded.population[0][1]).__name__ == "TorchPolicy"


def test_exact_evaluation_of_a_game_too_large_is_one_line(tmp_path):
  with pytest.raises(game_tree.GameTooLargeError, match="simulated mode"):
    psro.PSRO(_config(game="leduc_poker", evaluation="exact", max_histories=100))
  with pytest.raises(ValueError, match="needs the compiled tree"):
    psro.PSRO(_config(evaluation="sampled"))  # the exact oracle


def test_meta_strategy_average_is_the_decayed_average_and_resumes(tmp_path):
  decay = 0.6
  config = _config(game="leduc_poker", iterations=8, meta_strategy_average_decay=decay)
  full = psro.PSRO(config)
  full.run()
  trained = [
    r.sigma
    if r.training_meta_strategy is None
    else [np.asarray(s) for s in r.training_meta_strategy]
    for r in full.records
  ]
  assert full.records[0].training_meta_strategy is None  # one meta-strategy so far
  for t, record in enumerate(full.records):
    weights = decay ** (t - np.arange(t + 1))
    for p in range(2):
      size = record.population_size[p]
      average = (
        sum(
          w * np.pad(trained[s][p], (0, size - len(trained[s][p]))) for s, w in enumerate(weights)
        )
        / weights.sum()
      )
      np.testing.assert_allclose(record.sigma[p], average, atol=1e-12)
  # The output's NashConv is OpenSpiel's for the averaged mixture.
  assert full.verify(tolerance=1e-9) == pytest.approx(full.records[-1].nash_conv, abs=1e-9)
  # Best responses trained against the meta-solver's own: the same populations
  # as an unaveraged run.
  plain = psro.PSRO(_config(game="leduc_poker", iterations=8))
  plain.run()
  assert [r.meta_strategy for r in plain.records] == [[list(s) for s in t] for t in trained]
  # A resumed run continues the average.
  out = str(tmp_path / "run")
  psro.PSRO(dataclasses.replace(config, iterations=3), output_dir=out).run()
  resumed = psro.PSRO(config, output_dir=out, resume=True).restore()
  resumed.run()
  saved = checkpoints.read_metrics(out)
  assert [r["nash_conv"] for r in saved] == [r.nash_conv for r in full.records]
  assert "training_meta_strategy" in saved[-1]
  loaded = openspiel_psro_ext.load_run(out)
  np.testing.assert_allclose(loaded.meta_strategy[0], full.records[-1].sigma[0])


def test_meta_strategy_average_refusals():
  with pytest.raises(UsageError, match=r"\[0, 1\)"):
    psro.PSRO(_config(meta_strategy_average_decay=1.0))
  with pytest.raises(UsageError, match="xdo variant outputs its own"):
    psro.PSRO(_config(meta_strategy_average_decay=0.9, algorithm="xdo"))
  run = psro.PSRO(_config(iterations=2))
  run.run()
  assert "training_meta_strategy" not in run.records[-1].to_json()
  # Defaults: averaged for plain PSRO with an oracle that trains, else not.
  resolve = lambda **kw: psro_config.resolve(_config(**kw)).meta_strategy_average_decay
  assert resolve() == 0.0
  assert resolve(oracle="ppo") == psro_config.RL_AVERAGE_DECAY == 0.9
  assert resolve(oracle="ppo", algorithm="p2sro") == 0.0
