"""`--compare_stock` with RL oracles: stock's own RL PSRO, or ours in its loop."""

import math

import pytest

pytest.importorskip("cvxpy")  # stock psro_v2 imports it.
pytest.importorskip("torch")

from openspiel_psro_ext import (
  oracles,  # pylint: disable=g-import-not-at-top,wrong-import-position
  psro,  # pylint: disable=g-import-not-at-top,wrong-import-position
)
from openspiel_psro_ext.compat import stock_baseline  # pylint: disable=g-import-not-at-top,wrong-import-position

# Kuhn payoffs lie in [-2, 2]: each player's best-response gain is at most 4.
_KUHN_MAX_NASH_CONV = 2 * 4.0


@pytest.fixture(scope="module")
def ppo_run() -> psro.PSRO:
  """Our PSRO with PPO on Kuhn, 3 iterations, budgets ramping 0.1 -> 0.3 s."""
  config = psro.PSROConfig(
    game="kuhn_poker",
    iterations=3,
    meta_solver="nash",
    oracle="ppo",
    seed=3,
    oracle_config=dict(time_budget_s=0.1, progress=False, num_threads=1),
    oracle_budget_final_s=0.3,
    oracle_budget_ramp_iterations=2,
  )
  run = psro.PSRO(config)
  run.run()
  return run


# Stock's PG loss (rlax) warns about its own future; not ours to act on.
@pytest.mark.filterwarnings("ignore:Rlax softmax will be deprecated")
@pytest.mark.slow
def test_stock_own_rl_psro_runs_on_kuhn_for_our_wall_time(ppo_run):
  reason = stock_baseline.stock_rl_import_error()
  if reason is not None:
    pytest.skip(f"stock's RL oracles need JAX (the stock-rl extra): {reason}")
  # The example's PG oracle, smaller so the test takes seconds.
  rl_config = stock_baseline.StockRLConfig(
    number_training_episodes=40, hidden_layer_size=16, n_hidden_layers=1
  )
  result = stock_baseline.compare_with_stock(ppo_run, sims_per_entry=10, rl_config=rl_config)
  assert result.oracle_kind == "stock_rl"
  assert result.oracle_used.startswith("stock's own PG oracle (JAX")
  # Stock gets the wall time our run took, up to our run's iteration cap, and
  # at least one iteration; the final meta-strategy's NashConv is measured.
  # (Here its set-up and first iteration, JAX compiling each new agent,
  # usually take longer than our whole run.)
  sizes = [r["population_size"] for r in result.records]
  assert sizes == list(range(1, len(sizes) + 1)) and len(sizes) >= 2
  if result.stopped_by == "time_budget":
    assert result.records[-1]["wall_time_s"] >= ppo_run.records[-1].wall_time_s
    assert result.records[-2]["wall_time_s"] < ppo_run.records[-1].wall_time_s or (len(sizes) == 2)
  else:
    assert result.stopped_by == "iterations" and len(sizes) == ppo_run.config.iterations
  for record in result.records:
    assert 0.0 <= record["nash_conv"] <= _KUHN_MAX_NASH_CONV
  table = stock_baseline.comparison_table(ppo_run.records, result)
  assert "stock's own PG oracle (JAX" in table.splitlines()[0]


def test_fallback_runs_our_oracle_in_stock_loop_with_our_budget_schedule(ppo_run, monkeypatch):
  received = []
  ppo_class = oracles.get("ppo")
  best_response = ppo_class.best_response

  def spy(self, request):
    received.append(request.time_budget_s)
    return best_response(self, request)

  monkeypatch.setattr(ppo_class, "best_response", spy)
  result = stock_baseline.compare_with_stock(ppo_run, sims_per_entry=10, use_stock_rl=False)
  assert result.oracle_kind == "ours_in_stock_loop"
  assert "our ppo oracle inside stock's loop, same budget schedule (0.1 -> 0.3 s" in (
    result.oracle_used
  )
  # As many iterations as ours; before each of stock's iterations, the
  # budget ours had at that iteration: 0.1 s, then 0.2 s on the ramp.
  assert [r["population_size"] for r in result.records] == [1, 2, 3]
  schedule = [ppo_run.oracle_time_budget(i) for i in range(2)]
  assert schedule == [pytest.approx(0.1), pytest.approx(0.2)]
  assert [r["oracle_time_budget_s"] for r in result.records[:-1]] == schedule
  # Stock's loop trains both players' best responses with that budget.
  assert received == [schedule[0]] * 2 + [schedule[1]] * 2
  for record in result.records:
    assert 0.0 <= record["nash_conv"] <= _KUHN_MAX_NASH_CONV
  assert all(math.isfinite(r["wall_time_s"]) for r in result.records)
  assert (
    "same budget schedule"
    in stock_baseline.comparison_table(ppo_run.records, result).splitlines()[0]
  )
