"""Backends: Ray runs the same best responses as the embedded backend."""

import numpy as np
import pytest

from openspiel_psro_ext import backends, psro


def _ppo_config(**kwargs):
  # An episode budget, not a time budget: the members must not depend on speed.
  defaults = dict(
    game="kuhn_poker",
    iterations=3,
    meta_solver="nash",
    oracle="ppo",
    oracle_config=dict(total_episodes=8192, time_budget_s=0.0, progress=False, hidden=(16,)),
  )
  defaults.update(kwargs)
  return psro.PSROConfig(**defaults)


@pytest.fixture(scope="module")
def ray_backend():
  pytest.importorskip("ray")
  backend = backends.RayBackend(num_cpus=2)
  yield backend
  backend.close()


@pytest.mark.slow
def test_ray_backend_gives_the_embedded_results(ray_backend):
  embedded = psro.PSRO(_ppo_config())
  embedded.run()
  on_ray = psro.PSRO(_ppo_config(), backend=ray_backend)
  on_ray.run()
  for ours, theirs in zip(on_ray.population_matrices(), embedded.population_matrices()):
    np.testing.assert_array_equal(ours, theirs)
  assert [r.nash_conv for r in on_ray.records] == [r.nash_conv for r in embedded.records]
  # Members come back with their trained modules (for checkpoints, warm starts).
  assert on_ray.populations[0][-1].module is not None
  assert on_ray.populations[0][-1].matrix.flags.writeable


def test_ray_backend_runs_rectified_batches(ray_backend):
  # Rectified Nash asks for one best response per support member: one batch.
  config = psro.PSROConfig(
    game="kuhn_poker", iterations=4, meta_solver="rectified_nash", oracle="exact"
  )
  embedded = psro.PSRO(config)
  embedded.run()
  on_ray = psro.PSRO(config, backend=ray_backend)
  on_ray.run()
  assert [r.nash_conv for r in on_ray.records] == pytest.approx(
    [r.nash_conv for r in embedded.records], abs=1e-12
  )
  assert [len(p) for p in on_ray.populations] == [len(p) for p in embedded.populations]


class _RecordingBackend(backends.EmbeddedBackend):
  """The embedded backend, noting each batch's per-request budgets."""

  def __init__(self):
    self.budgets = []

  def best_responses(self, oracle, requests):
    self.budgets.append([r.time_budget_s for r in requests])
    return super().best_responses(oracle, requests)


@pytest.mark.slow
def test_oracle_budget_ramps_linearly_then_holds():
  backend = _RecordingBackend()
  run = psro.PSRO(
    _ppo_config(
      oracle_config=dict(time_budget_s=1.0, progress=False),
      oracle_budget_final_s=3.0,
      oracle_budget_ramp_iterations=4,
    ),
    backend=backend,
  )
  assert [run.oracle_time_budget(t) for t in (0, 1, 2, 4, 10)] == [1.0, 1.5, 2.0, 3.0, 3.0]
  # The ramped budget reaches every best-response request of its iteration.
  for _ in range(3):
    run.step()
  assert backend.budgets == [[1.0, 1.0], [1.5, 1.5], [2.0, 2.0]]
  constant = psro.PSRO(_ppo_config(oracle_config=dict(time_budget_s=1.0)))
  assert constant.oracle_time_budget(50) == 1.0


def test_oracle_budget_ramp_needs_an_rl_oracle():
  with pytest.raises(ValueError, match="computes its best responses exactly"):
    psro.PSRO(_ppo_config(oracle="exact", oracle_config={}, oracle_budget_final_s=2.0))


def test_unknown_backend_is_named():
  with pytest.raises(ValueError, match="unknown backend 'threads'"):
    backends.make("threads")


def test_more_best_responses_for_one_player(ray_backend):
  config = _ppo_config(iterations=2, best_responses_per_player=(2, 1))
  embedded = psro.PSRO(config)
  embedded.run()
  assert [len(p) for p in embedded.populations] == [5, 3]  # uniform + 2 x 2, + 2 x 1
  first, second = embedded.populations[0][1:3]
  assert not np.array_equal(first.matrix, second.matrix)  # different seeds
  # Three tasks on a 2-CPU Ray share the CPUs, and give the same members.
  on_ray = psro.PSRO(config, backend=ray_backend)
  on_ray.run()
  for ours, theirs in zip(on_ray.population_matrices(), embedded.population_matrices()):
    np.testing.assert_array_equal(ours, theirs)


def test_best_responses_per_player_is_checked():
  with pytest.raises(ValueError, match="one count of at least 1 per population"):
    psro.PSRO(_ppo_config(best_responses_per_player=(2,)))
