"""Pipeline PSRO (`p2sro`): convergence on Kuhn, the pipeline's targets,
resume, and a 2-node Ray cluster."""

import numpy as np
import pytest

from openspiel_psro_ext import backends, errors, psro
from openspiel_psro_ext.meta_solvers import nash
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.psro import variants as algorithms
from openspiel_psro_ext.psro.variants import p2sro
from openspiel_psro_ext.records.variants import PipelineState
from tests.helpers import make_run


def _config(**kwargs):
  defaults = dict(
    game="kuhn_poker",
    iterations=40,
    meta_solver="nash",
    oracle="exact",
    target_nash_conv=0.0,
    algorithm="p2sro",
  )
  defaults.update(kwargs)
  return psro.PSROConfig(**defaults)


def _ppo(**kwargs):
  # An episode budget per chunk, not a time budget: the run must not depend on speed.
  defaults = dict(
    oracle="ppo",
    oracle_config=dict(
      time_budget_s=0.0,
      total_episodes=4096,
      num_envs=1024,
      hidden=(32,),
      progress=False,
      num_threads=1,
    ),
  )
  defaults.update(kwargs)
  return _config(**defaults)


def _small_ppo(**kwargs):
  """One PPO update per chunk: for tests of the machinery, not of convergence."""
  return _ppo(
    oracle_config=dict(
      time_budget_s=0.0,
      total_episodes=1024,
      num_envs=512,
      hidden=(16,),
      progress=False,
      num_threads=1,
    ),
    **kwargs,
  )


def test_exact_p2sro_kuhn_reaches_nash_conv_1e6_and_is_verified():
  run = make_run(_config(target_nash_conv=1e-6))
  assert isinstance(run.variant, p2sro.P2SRO) and run.variant.options.num_active == 2
  assert run.run() == "target_nash_conv"
  assert run.records[-1].nash_conv <= 1e-6
  assert run.verify(tolerance=1e-9) == pytest.approx(run.records[-1].nash_conv, abs=1e-9)
  # An exact best response's gain is 0: the lowest level is fixed after each
  # step, so the population grows by one per player and step after the first.
  assert [r.population_size for r in run.records[:3]] == [[1, 1], [2, 2], [3, 3]]


@pytest.mark.slow
def test_ppo_p2sro_kuhn_reaches_nash_conv_0_05():
  pytest.importorskip("torch")
  # Measured: 0.035 at step 56 (a policy anneals over its chunks, so one
  # fixed early by the plateau test is left partly annealed).
  run = make_run(_ppo(target_nash_conv=0.05, iterations=80))
  assert run.run() == "target_nash_conv"
  last = run.records[-1]
  assert last.nash_conv <= 0.05
  assert run.verify(tolerance=1e-9) == pytest.approx(last.nash_conv, abs=1e-9)
  # Both players' lowest policies became fixed together, some before the cap.
  states = [r.variant for r in run.records]
  assert all(isinstance(s, PipelineState) for s in states)
  # (The last step's fixed policies joined after its record.)
  fixed = [len(population) - 1 for population in run.populations]
  assert sum(s.fixed for s in states) == fixed[0] == fixed[1]
  assert any(s.fixed and max(s.chunks) < 8 for s in states)


def test_each_level_trains_against_the_meta_nash_of_the_policies_below():
  pytest.importorskip("torch")
  options = p2sro.PipelineOptions(num_active=3, min_chunks=3)  # nothing fixed yet
  run = make_run(_ppo(iterations=2), options=options)
  run.run()
  pipeline = run.variant
  assert [a.chunks for a in pipeline.active] == [2, 2, 2]
  sigma = pipeline.meta_solve()
  requests = [r for _, r in pipeline.requests(sigma)]
  assert [r.player for r in requests] == [0, 1] * 3
  fixed = run.population_matrices()
  for level in range(3):
    for p in range(2):
      request, q = requests[2 * level + p], 1 - p
      below = [a.members[q].matrix[None] for a in pipeline.active[:level]]
      np.testing.assert_array_equal(
        request.opponents.populations[q], np.concatenate([fixed[q]] + below)
      )
      np.testing.assert_array_equal(
        request.previous.matrix, pipeline.active[level].members[p].matrix
      )
      # The chunk continues its policy: the third chunk of max_chunks (8).
      assert request.plan == base.TrainingPlan(continues=True, schedule_span=(2 / 8, 3 / 8))
  # Level 0 answers the record's sigma; level 2 an equilibrium of the 3 x 3
  # table of the fixed member and levels 0 and 1 (any equilibrium has the
  # game's value and no profitable deviation).
  np.testing.assert_array_equal(requests[0].opponents.weights[1], sigma[1])
  tree = run.tree
  rows = tree.terminal_reach(0, requests[5].opponents.populations[0])
  cols = tree.terminal_reach(1, requests[4].opponents.populations[1])
  table = (rows * tree.terminal_chance_reach * tree.terminal_returns[:, 0]) @ cols.T
  assert table.shape == (3, 3)
  value = nash.IncrementalZeroSumNash().solve(table).value
  row, col = requests[5].opponents.weights[0], requests[4].opponents.weights[1]
  assert row @ table @ col == pytest.approx(value, abs=1e-8)
  assert (table @ col).max() <= value + 1e-8 and (row @ table).min() >= value - 1e-8


def test_a_new_policy_starts_from_the_one_below_and_its_chunks_anneal_once():
  pytest.importorskip("torch")
  # Levels 0 and 1 fixed at once (max_chunks=1): the pipeline is one new level.
  run = make_run(
    _small_ppo(iterations=1),
    options=p2sro.PipelineOptions(num_active=2, min_chunks=1, max_chunks=1),
  )
  run.run()
  pipeline = run.variant
  assert [a.chunks for a in pipeline.active] == [1, 0]
  requests = [r for _, r in pipeline.requests(pipeline.meta_solve())]
  for p in range(2):
    lowest, fresh = requests[p], requests[2 + p]
    assert lowest.plan == base.TrainingPlan(continues=True, schedule_span=(1.0, 1.0))
    # PSRO's warm start source for a new best response: the policy just below.
    assert fresh.previous is pipeline.active[0].members[p]
    assert fresh.plan == base.TrainingPlan()  # a whole fresh training
  # With nothing trained above the fixed population, the newest fixed member.
  pipeline.active = [pipeline._fresh(), pipeline._fresh()]  # pylint: disable=protected-access
  requests = [r for _, r in pipeline.requests(pipeline.meta_solve())]
  assert all(r.previous is run.populations[r.player][-1] for r in requests)


@pytest.mark.slow
def test_a_best_response_trained_in_chunks_anneals_once_over_them():
  """16 chunks of PPO against 5 fixed Leduc policies: slices of one schedule
  end near one run of the same episodes; restarting the schedule (learning
  rate and entropy) every chunk ends far above it."""
  pytest.importorskip("torch")
  import pyspiel  # pylint: disable=g-import-not-at-top

  from openspiel_psro_ext.game import (
    exploitability,  # pylint: disable=g-import-not-at-top
    game_tree,  # pylint: disable=g-import-not-at-top
  )
  from openspiel_psro_ext.oracles.rl import ppo  # pylint: disable=g-import-not-at-top

  tree = game_tree.compile_game(pyspiel.load_game("leduc_poker"))
  legal = tree.infostates[1].legal_mask
  opponents = np.random.default_rng(0).random((5,) + legal.shape) ** 4 * legal
  opponents /= opponents.sum(2, keepdims=True)
  weights = np.full(5, 0.2)
  payoff = (
    tree.terminal_chance_reach
    * (weights @ tree.terminal_reach(1, opponents))
    * tree.terminal_returns[:, 0]
  )
  best, _ = exploitability.best_response_from_weights(tree, 0, payoff)

  def gain(member):
    return best - tree.terminal_reach(0, member.matrix) @ payoff

  def train(chunks, spans):
    oracle = ppo.PPOOracle.for_psro(
      dict(
        time_budget_s=0.0,
        total_episodes=16384 * 16 // chunks,
        num_envs=8192,
        progress=False,
        num_threads=1,
      )
    )
    member = None
    for c in range(chunks):
      member = oracle.best_response(
        base.BestResponseRequest(
          tree=tree,
          player=0,
          opponents=base.MemberMixture([None, opponents], [None, weights]),
          previous=member,
          seed=c,
          plan=base.TrainingPlan(
            continues=member is not None,
            schedule_span=(c / chunks, (c + 1) / chunks) if spans else (0.0, 1.0),
          ),
        )
      )
    return gain(member)

  one_run, slices, restarts = train(1, False), train(16, True), train(16, False)
  # Measured: 0.29, 0.17, 0.32.
  assert slices <= 0.75 * restarts
  assert slices <= 1.25 * one_run + 0.02


def test_resume_equals_an_uninterrupted_run(tmp_path):
  pytest.importorskip("torch")
  # Small chunks; min_chunks=1 fixes some levels early, so the pipeline moves.
  options = p2sro.PipelineOptions(min_chunks=1, plateau_improvement=0.05)
  config = lambda n: _small_ppo(iterations=n)
  whole = make_run(config(6), options=options)
  whole.run()
  out = str(tmp_path / "run")
  make_run(config(3), output_dir=out, options=options).run()
  resumed = make_run(config(6), output_dir=out, resume=True, options=options)
  assert resumed.iteration == 3
  resumed.run()
  assert [r.nash_conv for r in resumed.records] == [r.nash_conv for r in whole.records]
  assert [r.variant.gain for r in resumed.records] == [r.variant.gain for r in whole.records]
  for ours, theirs in zip(resumed.population_matrices(), whole.population_matrices()):
    np.testing.assert_array_equal(ours, theirs)
  for ours, theirs in zip(resumed.variant.active, whole.variant.active):
    assert ours.chunks == theirs.chunks
    for a, b in zip(ours.members, theirs.members):
      assert (a is None) == (b is None)  # None: a fresh top level
      if a is not None:
        np.testing.assert_array_equal(a.matrix, b.matrix)
  with pytest.raises(errors.UsageError, match="same"):
    make_run(config(8), output_dir=out, resume=True, options=p2sro.PipelineOptions(num_active=3))


def test_p2sro_refuses_bad_options_and_games():
  with pytest.raises(errors.UsageError, match="num_active"):
    make_run(_config(), options=p2sro.PipelineOptions(num_active=0))
  with pytest.raises(errors.UsageError, match="min_chunks"):
    make_run(_config(), options=p2sro.PipelineOptions(min_chunks=3, max_chunks=2))
  with pytest.raises(errors.UsageError, match="two-player zero-sum"):
    make_run(_config(game="kuhn_poker(players=3)", meta_solver="prd"))


def test_algorithm_options_build_the_variants_options_and_name_bad_keys():
  # `--algorithm_options` goes through `algorithms.options`.
  built = algorithms.options("p2sro", {"num_active": 3, "max_chunks": 5})
  assert built == p2sro.PipelineOptions(num_active=3, max_chunks=5)
  assert make_run(_config(), built).variant.options.num_active == 3
  assert algorithms.options("p2sro", {}) == p2sro.PipelineOptions()
  with pytest.raises(errors.UsageError, match=r"no options \['workers'\].*num_active"):
    algorithms.options("p2sro", {"workers": 4})
  with pytest.raises(errors.UsageError, match="num_active"):
    algorithms.options("p2sro", {"num_active": 0})
  with pytest.raises(errors.UsageError, match="'xdo' takes no options.*p2sro"):
    algorithms.options("xdo", {"num_active": 2})
  assert algorithms.options("xdo", {}) is None


@pytest.mark.slow
def test_p2sro_on_a_two_node_ray_cluster_equals_embedded():
  ray = pytest.importorskip("ray")
  pytest.importorskip("torch")
  from ray import cluster_utils  # pylint: disable=g-import-not-at-top

  if ray.is_initialized():
    ray.shutdown()
  cluster = cluster_utils.Cluster(initialize_head=True, head_node_args=dict(num_cpus=1))
  try:
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    backend = backends.RayBackend(address=cluster.address)
    on_ray = make_run(_small_ppo(iterations=3), backend=backend)
    on_ray.run()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2
    backend.close()
  finally:
    if ray.is_initialized():
      ray.shutdown()
    cluster.shutdown()
  embedded = make_run(_small_ppo(iterations=3))
  embedded.run()
  assert [r.nash_conv for r in on_ray.records] == [r.nash_conv for r in embedded.records]
  assert [r.variant.gain for r in on_ray.records] == [r.variant.gain for r in embedded.records]
  for ours, theirs in zip(on_ray.variant.active, embedded.variant.active):
    for a, b in zip(ours.members, theirs.members):
      np.testing.assert_array_equal(a.matrix, b.matrix)
