"""Plots, the report CLI and TensorBoard logging on a small real run directory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image as mpimg

from openspiel_psro_ext.evaluation.metrics import IterationMetrics
from openspiel_psro_ext.game import exploitability, game_tree, payoffs
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records.summary import RunSummary
from openspiel_psro_ext.runs import plots, report
from openspiel_psro_ext.runs import tensorboard as tb

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ALL_PLOTS = {
  "nash_conv.png",
  "exploitability.png",
  "payoff_table.png",
  "elo.png",
  "diversity.png",
  "win_rate.png",
}


def make_run_dir(
  path,
  game="kuhn_poker",
  iterations=4,
  comparison=True,
  cfr_plus=True,
  metrics_every=1,
  final_metrics=True,
):
  """A valid run directory from a real exact PSRO (uniform meta-solver).

  Metrics go on every `metrics_every`-th record and, with `final_metrics`,
  on the last one, as `run` writes them.
  """
  tree = game_tree.get_tree(game)
  metrics = IterationMetrics(tree, cfr_plus=cfr_plus)
  populations = [u[None] for u in tree.uniform_policy()]
  records, wall = [], 0.0
  for it in range(iterations):
    sigmas = [np.full(len(p), 1.0 / len(p)) for p in populations]
    meta_games = payoffs.payoff_tensors(tree, populations)
    result = exploitability.mixture_nash_conv(tree, populations, sigmas)
    wall += 0.01 * (it + 1)
    record = IterationRecord(
      iteration=it,
      population_size=[len(p) for p in populations],
      meta_strategy=[s.tolist() for s in sigmas],
      support_size=[len(p) for p in populations],
      nash_conv=result.nash_conv,
      exploitability_per_player=result.player_improvements.tolist(),
      on_policy_values=result.on_policy_values.tolist(),
      oracle=[[{"seconds": 0.001}]] * len(populations),
      wall_time_s=wall,
    )
    if it % metrics_every == 0 or (final_metrics and it == iterations - 1):
      record.add(metrics.compute(populations, sigmas, meta_games))
    records.append(record)
    populations = [
      np.concatenate([p, br[None]]) for p, br in zip(populations, result.best_responses)
    ]
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r.to_json()) + "\n" for r in records)
  np.save(os.path.join(path, "payoffs.npy"), np.stack(payoffs.payoff_tensors(tree, populations)))
  if comparison:
    stock = [
      {"iteration": r.iteration, "nash_conv": r.nash_conv, "wall_time_s": 5 * r.wall_time_s}
      for r in records
    ]
    with open(os.path.join(path, "comparison.json"), "w") as f:
      json.dump({"label": "stock psro_v2 (test)", "stock": stock}, f)
  return records


@pytest.fixture(scope="module")
def kuhn_run(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("kuhn_run"))
  make_run_dir(path)
  return path


def _assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == _PNG_SIGNATURE
  pixels = mpimg.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_all_plots_written_as_valid_png(kuhn_run):
  written = plots.render_run_plots(kuhn_run)
  assert {os.path.basename(p) for p in written} == _ALL_PLOTS
  for path in written:
    _assert_png(path)
  assert not [n for n in os.listdir(kuhn_run) if n.startswith(".tmp-")]


def test_three_player_run_skips_elo_plot(tmp_path):
  make_run_dir(
    str(tmp_path), game="kuhn_poker(players=3)", iterations=3, comparison=False, cfr_plus=False
  )
  written = {os.path.basename(p) for p in plots.render_run_plots(str(tmp_path))}
  assert written == _ALL_PLOTS - {"elo.png"}
  _assert_png(os.path.join(tmp_path, "payoff_table.png"))


def test_metric_series_end_at_the_final_iteration(tmp_path):
  """Metrics every 3 iterations of 5, and on the final one (iteration 4)."""
  make_run_dir(str(tmp_path), iterations=5, metrics_every=3, comparison=False, cfr_plus=False)
  records = plots.load_records(str(tmp_path))
  iterations, _ = plots._series(records, lambda r: r.run_metrics)  # pylint: disable=protected-access
  assert iterations.tolist() == [0, 3, 4]
  written = {os.path.basename(p) for p in plots.render_run_plots(str(tmp_path))}
  assert written == _ALL_PLOTS
  assert "Metrics at iteration 4:" in report.summarize(str(tmp_path))


def test_report_names_the_last_record_with_metrics(tmp_path):
  make_run_dir(
    str(tmp_path),
    iterations=5,
    metrics_every=3,
    comparison=False,
    cfr_plus=False,
    final_metrics=False,
  )
  text = report.summarize(str(tmp_path))
  assert (
    "Metrics at iteration 3 (the last record with metrics; the run ends at iteration 4):"
  ) in text
  assert "elo/rated_members" in text


def _record(iteration, nash_conv):
  return IterationRecord(
    iteration=iteration,
    population_size=[1, 1],
    meta_strategy=[[1.0], [1.0]],
    support_size=[1, 1],
    nash_conv=nash_conv,
    exploitability_per_player=[0.0, nash_conv],
    on_policy_values=[0.0, 0.0],
  )


def test_load_records_keeps_last_record_per_iteration(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    for it, value in ((0, 1.0), (1, 0.5), (1, 0.25)):
      f.write(json.dumps(_record(it, value).to_json()) + "\n")
  records = plots.load_records(str(tmp_path))
  assert [r.nash_conv for r in records] == [1.0, 0.25]


def test_a_line_that_is_no_record_gives_one_line_error(tmp_path):
  with open(tmp_path / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"iteration": 0, "nash_conv": 1.0}) + "\n")
  with pytest.raises(plots.RunDirError, match="record 1 is no iteration record"):
    plots.load_records(str(tmp_path))


@pytest.mark.parametrize(
  "contents, message",
  [
    (None, "does not exist"),
    ("", "is empty"),
    ('{"iteration": 0}\n{"iteration": 1, "nash\n{"iteration": 2}\n', "line 2 is corrupted"),
  ],
)
def test_bad_run_dirs_give_one_line_errors(tmp_path, contents, message):
  run_dir = str(tmp_path / "run")
  if contents is not None:
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
      f.write(contents)
  with pytest.raises(plots.RunDirError, match=message) as raised:
    plots.render_run_plots(run_dir)
  assert "\n" not in str(raised.value)


def test_summary_table(kuhn_run):
  records = plots.load_records(kuhn_run)
  text = report.summarize(kuhn_run)
  assert f"{records[-1].nash_conv:.6g}" in text
  assert "win_rate/cfr_plus" in text and "elo/newest" in text
  assert "Stock comparison: stock psro_v2 (test)" in text
  assert "no summary.json" in text


def test_report_cli(kuhn_run, tmp_path):
  final = plots.load_records(kuhn_run)[-1]
  summary = RunSummary(
    game="kuhn_poker",
    evaluation="exact",
    stopped_by="iterations",
    iterations=final.iteration + 1,
    population_size=final.population_size,
    nash_conv=final.nash_conv,
    exploitability_per_player=final.exploitability_per_player,
    wall_time_s=final.wall_time_s,
    psro_time_s=final.psro_time_s,
    evaluation_time_s=final.evaluation_time_s,
    write_time_s=final.write_time_s,
  )
  with open(os.path.join(kuhn_run, "summary.json"), "w") as f:
    json.dump(summary.to_json(), f)
  for name in _ALL_PLOTS & set(os.listdir(kuhn_run)):
    os.remove(os.path.join(kuhn_run, name))
  cli = [sys.executable, "-m", "openspiel_psro_ext.runs.report"]
  done = subprocess.run(
    cli + [f"--run_dir={kuhn_run}"], capture_output=True, text=True, check=False
  )
  assert done.returncode == 0, done.stderr
  assert "final NashConv" in done.stdout and "stopped_by" in done.stdout
  assert set(os.listdir(kuhn_run)) >= _ALL_PLOTS
  missing = subprocess.run(
    cli + [f"--run_dir={tmp_path / 'nope'}"], capture_output=True, text=True, check=False
  )
  assert missing.returncode == 2
  assert missing.stderr.strip().startswith("error:")
  assert len(missing.stderr.strip().splitlines()) == 1


def test_scalar_items_flatten_records():
  record = {
    "iteration": 3,
    "nash_conv": 0.5,
    "exploitability_per_player": [0.2, 0.3],
    "meta_strategy": [[1.0], [1.0]],
    "oracle": {"episodes": 10},
    "short_log": "x",
    "elo/newest": [1.0, float("nan")],
  }
  assert dict(tb.scalar_items(record)) == {
    "iteration": 3.0,
    "nash_conv": 0.5,
    "exploitability_per_player/0": 0.2,
    "exploitability_per_player/1": 0.3,
    "oracle/episodes": 10.0,
    "elo/newest/0": 1.0,
  }


def test_tensorboard_logger_writes_events(kuhn_run, tmp_path):
  pytest.importorskip("tensorboard")
  logger = tb.TensorboardLogger(str(tmp_path))
  count = 0
  for record in plots.load_records(kuhn_run):
    count = logger.log(record)
  logger.close()
  assert count > 20
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top

  events = event_accumulator.EventAccumulator(str(tmp_path))
  events.Reload()
  tags = events.Tags()["scalars"]
  assert "nash_conv" in tags and "win_rate/cfr_plus" in tags
  assert {"win_rate/cfr_plus/seat1", "elo/newest/0", "diversity/behavioural"} <= set(tags)
  assert [e.step for e in events.Scalars("nash_conv")] == [0, 1, 2, 3]


def test_missing_tensorboard_names_the_fix(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
  with pytest.raises(tb.TensorboardUnavailableError, match="pip install tensorboard"):
    tb.TensorboardLogger(str(tmp_path))
