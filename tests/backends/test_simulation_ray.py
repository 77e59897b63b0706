"""The simulated mode on a 2-node Ray cluster: payoff games, best responses
and the approximate NashConv run there, with the embedded backend's results."""

import numpy as np
import pyspiel
import pytest

from openspiel_psro_ext import backends, psro
from openspiel_psro_ext.evaluation import approx_exploitability
from openspiel_psro_ext.psro import views
from openspiel_psro_ext.simulated import simulation


class _Counting:
  """Counts a backend's calls (the work itself is the backend's)."""

  def __init__(self, backend):
    self.backend, self.play_tasks, self.best_responses = backend, 0, 0

  def wrap(self):
    play, best_responses = self.backend.play, self.backend.best_responses

    def counted_play(game, seats, tasks):
      self.play_tasks += len(tasks)
      return play(game, seats, tasks)

    def counted_best_responses(oracle, requests):
      self.best_responses += len(requests)
      return best_responses(oracle, requests)

    self.backend.play, self.backend.best_responses = counted_play, counted_best_responses
    return self.backend


def _simulated_run(backend):
  """Kuhn poker simulated: one iteration, small seeded budgets, games split
  into tasks of 128 so that a payoff round is several Ray tasks."""
  config = psro.PSROConfig(
    game="kuhn_poker",
    iterations=2,
    oracle="ppo",
    evaluation="sampled",
    target_nash_conv=0.0,
    seed=3,
    oracle_config=dict(
      time_budget_s=0, total_episodes=2048, simulated_num_envs=256, hidden=(16,), progress=False
    ),
  )
  view = views.SimulatedView(
    pyspiel.load_game("kuhn_poker"), simulation.SamplingConfig(target_stderr=0.1, task_games=128)
  )
  estimator = approx_exploitability.ApproxNashConvConfig(eval_games=600, task_games=200)
  estimator.oracle_config.update(total_episodes=1024, simulated_num_envs=256, hidden=(16,))

  def approx(snap):
    return approx_exploitability.approx_nash_conv(
      snap.view.game, snap.policies(), snap.sigma, estimator, snap.backend
    ).estimate

  run = psro.PSRO(
    config, backend=backend, view=view, evaluations=[psro.Evaluation(approx, every=1)]
  )
  run.run()
  return run


@pytest.mark.slow
def test_simulated_psro_on_a_two_node_cluster_equals_embedded():
  ray = pytest.importorskip("ray")
  from ray import cluster_utils  # pylint: disable=g-import-not-at-top

  cluster = cluster_utils.Cluster(initialize_head=True, head_node_args=dict(num_cpus=1))
  try:
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    counting = _Counting(backends.RayBackend(address=cluster.address))
    on_ray = _simulated_run(counting.wrap())
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    assert ray.cluster_resources()["CPU"] == 2
    counting.backend.close()
  finally:
    if ray.is_initialized():
      ray.shutdown()
    cluster.shutdown()
  embedded = _simulated_run(backends.EmbeddedBackend())
  # Payoff rounds split into several tasks, best responses for both players
  # and the estimator's, all through the Ray backend.
  assert counting.play_tasks > 5 and counting.best_responses == 2 * 2 + 2 * 2
  np.testing.assert_array_equal(on_ray.table.meta_games, embedded.table.meta_games)
  np.testing.assert_array_equal(on_ray.table.stderr, embedded.table.stderr)
  for ours, theirs in zip(on_ray.records, embedded.records):
    assert ours.meta_strategy == theirs.meta_strategy
    assert ours.approx_nash_conv == theirs.approx_nash_conv
