"""The figures of a PSRO run directory, rendered from its files alone.

`render_run_plots(run_dir)` reads

  metrics.jsonl    one `IterationRecord` per iteration: `iteration`,
                   `nash_conv`, `exploitability_per_player`, `meta_strategy`,
                   `wall_time_s`, and the typed `run_metrics` (Elo,
                   diversity, outcomes against baselines) and
                   `approx_nash_conv`
  payoffs.npy      `[P, N_0, ..., N_{P-1}]` payoff table
  comparison.json  optional stock psro_v2 curve: {"label", "stock": [{
                   "iteration", "nash_conv", "wall_time_s"}, ...]}

and writes PNGs next to them (each written to a temporary file in the run
directory and renamed into place, so a reader never sees half an image):

  nash_conv.png       NashConv against iterations and against seconds
  exploitability.png  each player's best-response improvement
  payoff_table.png    player 0's payoff table, meta-strategies beside it
  elo.png             Elo of each new member and of the meta-strategy, and
                      of the rated members (`elo.rated_members`: support and
                      newest) at the last record that has them
  diversity.png       behavioural diversity and expected cardinality
  win_rate.png        win rate and expected return against each baseline
  bots.png            win, draw and loss rates against OpenSpiel's search
                      bots (`bots`), per simulation count, against seconds

A metric series has a point for every record carrying that metric: every
`--metrics_every`-th iteration and the run's final iteration, so each curve
ends at the run's last point. A figure whose data the run lacks (Elo of a
three-player game, say) is skipped.
Matplotlib's object API is used with the Agg canvas; the global pyplot
backend is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records import metrics as records_metrics
from openspiel_psro_ext.runs import checkpoints

# Floor for log-scale axes, so an exact zero NashConv still plots.
_LOG_FLOOR = 1e-12


class RunDirError(checkpoints.CheckpointError):
  """A run directory that has nothing to plot or report."""


def load_records(run_dir: str) -> list[IterationRecord]:
  """The iteration records of `run_dir`, one per iteration, in order.

  A resumed run may have rewritten an iteration; the last record wins.

  Raises:
    RunDirError: the directory or its metrics are missing, empty or corrupt.
  """
  if not os.path.isdir(run_dir):
    raise RunDirError(f"run directory {run_dir!r} does not exist.")
  path = os.path.join(run_dir, checkpoints.METRICS_FILE)
  if not os.path.exists(path):
    raise RunDirError(f"{run_dir!r} has no {checkpoints.METRICS_FILE}; is it a PSRO run directory?")
  try:
    records = checkpoints.read_metrics(run_dir)
  except checkpoints.CheckpointError as e:
    raise RunDirError(str(e)) from e
  by_iteration: dict[int, IterationRecord] = {}
  for number, data in enumerate(records, 1):
    try:
      record = IterationRecord.from_json(data)
    except (TypeError, KeyError, AttributeError) as e:
      raise RunDirError(
        f"{path} record {number} is no iteration record ({e}); the file is corrupted."
      ) from e
    by_iteration[record.iteration] = record
  if not by_iteration:
    raise RunDirError(f"{path} is empty: the run finished no iteration yet.")
  return [by_iteration[k] for k in sorted(by_iteration)]


def load_comparison(run_dir: str) -> dict[str, Any] | None:
  """`comparison.json` if present and readable, else None (with a warning)."""
  path = os.path.join(run_dir, "comparison.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      comparison = json.load(f)
    if not isinstance(comparison.get("stock"), list):
      raise ValueError("no 'stock' list")
    return comparison
  except (OSError, ValueError, AttributeError) as e:
    logging.warning("Ignoring unreadable %s: %s", path, e)
    return None


def load_payoffs(run_dir: str) -> np.ndarray | None:
  """`[P, N_0, ..., N_{P-1}]` payoff table, or None if absent/unreadable."""
  path = os.path.join(run_dir, checkpoints.PAYOFFS_FILE)
  if not os.path.exists(path):
    return None
  try:
    table = np.load(path)
  except (OSError, ValueError) as e:
    logging.warning("Ignoring unreadable %s: %s", path, e)
    return None
  if table.ndim < 2 or table.ndim != table.shape[0] + 1:
    logging.warning("Ignoring %s: shape %s is not [P, N_0, ..., N_{P-1}].", path, table.shape)
    return None
  return table


def _save(figure: Figure, path: str) -> str:
  """Writes `figure` as PNG atomically (temp file in the same dir, rename)."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
  try:
    with os.fdopen(fd, "wb") as f:
      # The layout engine fits labels in one draw; bbox_inches="tight" drew twice.
      figure.set_layout_engine("constrained")
      figure.savefig(f, format="png", dpi=110)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return path


def _series(
  records: list[IterationRecord], value: Callable[[IterationRecord], Any]
) -> tuple[np.ndarray, list]:
  """(iterations, values) of the records whose `value(record)` is not None."""
  pairs = [(r.iteration, value(r)) for r in records]
  have = [(iteration, v) for iteration, v in pairs if v is not None]
  return np.array([iteration for iteration, _ in have]), [v for _, v in have]


def _run_metrics(records: list[IterationRecord]) -> list[tuple[int, records_metrics.RunMetrics]]:
  """(iteration, run metrics) of the records that have them."""
  return [(r.iteration, r.run_metrics) for r in records if r.run_metrics is not None]


def _positive(values) -> np.ndarray:
  return np.maximum(np.asarray(values, dtype=np.float64), _LOG_FLOOR)


def plot_nash_conv(records, comparison, path: str) -> str | None:
  iterations, nash_conv = _series(records, lambda r: r.nash_conv)
  approx_iterations, approx = _series(records, lambda r: r.approx_nash_conv)
  if not len(iterations) and not len(approx_iterations):
    return None
  figure = Figure(figsize=(11, 4))
  by_iter, by_time = figure.subplots(1, 2)
  if len(iterations):
    _, seconds = _series(records, lambda r: None if r.nash_conv is None else r.wall_time_s)
    by_iter.plot(iterations, _positive(nash_conv), "o-", ms=3, label="this run")
    by_time.plot(seconds, _positive(nash_conv), "o-", ms=3, label="this run")
  if len(approx_iterations):
    # Estimates by RL best responses: lower bounds, with their 95% intervals.
    _, seconds = _series(records, lambda r: None if r.approx_nash_conv is None else r.wall_time_s)
    values = _positive([a.value for a in approx])
    errors = [a.ci95 for a in approx]
    label = "approximate (lower bound, 95% interval)"
    by_iter.errorbar(approx_iterations, values, yerr=errors, fmt="^:", ms=4, capsize=2, label=label)
    by_time.errorbar(seconds, values, yerr=errors, fmt="^:", ms=4, capsize=2, label=label)
  if comparison:
    stock = [s for s in comparison["stock"] if "nash_conv" in s]
    label = comparison.get("label", "stock psro_v2")
    by_iter.plot(
      [s["iteration"] for s in stock],
      _positive([s["nash_conv"] for s in stock]),
      "s--",
      ms=3,
      label=label,
    )
    by_time.plot(
      [s.get("wall_time_s", np.nan) for s in stock],
      _positive([s["nash_conv"] for s in stock]),
      "s--",
      ms=3,
      label=label,
    )
  for axis, xlabel in ((by_iter, "iteration"), (by_time, "wall time (s)")):
    axis.set_yscale("log")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("NashConv of the meta-strategy")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper right")
  figure.suptitle("NashConv")
  return _save(figure, path)


def plot_exploitability(records, path: str) -> str | None:
  iterations, values = _series(records, lambda r: r.exploitability_per_player)
  if not len(iterations):
    return None
  per_player = np.asarray(values, dtype=np.float64)  # [T, P]
  figure = Figure(figsize=(6, 4))
  axis = figure.subplots()
  for p in range(per_player.shape[1]):
    axis.plot(iterations, _positive(per_player[:, p]), "o-", ms=3, label=f"player {p}")
  axis.set_yscale("log")
  axis.set_xlabel("iteration")
  axis.set_ylabel("best-response improvement")
  axis.set_title("Per-player exploitability (NashConv terms)")
  axis.grid(True, which="both", alpha=0.3)
  axis.legend(fontsize=8)
  return _save(figure, path)


def _padded(sigma: list[float], size: int) -> np.ndarray:
  """A meta-strategy over the first members, zero for members added later."""
  out = np.zeros(size)
  head = np.asarray(sigma, dtype=np.float64)[:size]
  out[: len(head)] = head
  return out


def plot_payoff_table(records, payoffs: np.ndarray | None, path: str) -> str | None:
  if payoffs is None or payoffs.shape[0] < 2:
    return None
  num_players = payoffs.shape[0]
  sizes = payoffs.shape[1:]
  sigmas = [_padded(s, n) for s, n in zip(records[-1].meta_strategy, sizes)]
  table = payoffs[0]
  title = "player 0's payoff"
  if num_players > 2:  # Seats 2.. play their meta-strategies.
    for p in range(num_players - 1, 1, -1):
      weights = sigmas[p] if sigmas[p].sum() > 0 else np.full(sizes[p], 1 / sizes[p])
      table = np.tensordot(table, weights, axes=([p], [0]))
    title += " (seats 2+ at their meta-strategies)"
  figure = Figure(figsize=(8, 6.5))
  grid = figure.add_gridspec(
    2, 2, width_ratios=(6, 1), height_ratios=(6, 1), wspace=0.05, hspace=0.08
  )
  heat = figure.add_subplot(grid[0, 0])
  limit = float(np.abs(table).max()) or 1.0
  image = heat.imshow(
    table, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest"
  )
  heat.set_ylabel("player 0 member")
  heat.set_title(title)
  heat.tick_params(labelbottom=False)
  rows = figure.add_subplot(grid[0, 1], sharey=heat)
  # One step artist per bar chart, not one patch per member (2000 members
  # would draw 2000 rectangles).
  rows.stairs(
    sigmas[0], np.arange(sizes[0] + 1) - 0.5, orientation="horizontal", fill=True, color="tab:blue"
  )
  rows.set_xlim(0, 1)
  rows.set_title("meta-strategy 0", fontsize=9)
  rows.tick_params(labelleft=False)
  cols = figure.add_subplot(grid[1, 0], sharex=heat)
  cols.stairs(sigmas[1], np.arange(sizes[1] + 1) - 0.5, fill=True, color="tab:orange")
  cols.set_ylim(1, 0)
  cols.set_ylabel("meta 1", fontsize=9)
  cols.set_xlabel("player 1 member")
  # Shrinking the bottom bar chart with the heat map keeps their columns aligned.
  figure.colorbar(image, ax=[heat, rows, cols], fraction=0.04, pad=0.02)
  return _save(figure, path)


def plot_elo(records, path: str) -> str | None:
  rated = [(iteration, m.elo) for iteration, m in _run_metrics(records) if m.elo is not None]
  if not rated:
    return None
  iterations = np.array([iteration for iteration, _ in rated])
  newest = np.asarray([elo.newest for _, elo in rated], dtype=np.float64)
  meta = np.asarray([elo.meta_strategy for _, elo in rated], dtype=np.float64)
  figure = Figure(figsize=(11, 4))
  over_time, final = figure.subplots(1, 2)
  for p in range(newest.shape[1]):
    (line,) = over_time.plot(
      iterations, newest[:, p], "o-", ms=3, label=f"newest member, player {p}"
    )
    over_time.plot(
      iterations, meta[:, p], "--", color=line.get_color(), label=f"meta-strategy, player {p}"
    )
  over_time.axhline(0.0, color="gray", lw=0.8)
  over_time.set_xlabel("iteration")
  over_time.set_ylabel("Elo (uniform random = 0)")
  over_time.set_title("Elo of each new member")
  over_time.legend(fontsize=8)
  over_time.grid(True, alpha=0.3)
  last_iteration, last = rated[-1]
  for p, (members, ratings) in enumerate(zip(last.rated_members, last.members)):
    final.plot(members, ratings, "o-", ms=3, label=f"player {p}")
  for name, value in sorted(last.baselines.items()):
    if name != "uniform":  # the anchor: the 0 line
      final.axhline(float(np.mean(value)), ls=":", lw=1, color="gray")
      final.annotate(name, (0, float(np.mean(value))), fontsize=7, color="gray")
  final.axhline(0.0, color="gray", lw=0.8)
  final.set_xlabel("member index")
  final.set_ylabel("Elo")
  final.set_title(f"Rated members (support and newest) at iteration {last_iteration}")
  final.legend(fontsize=8)
  final.grid(True, alpha=0.3)
  return _save(figure, path)


def plot_diversity(records, path: str) -> str | None:
  measured = _run_metrics(records)
  if not measured:
    return None
  its = np.array([iteration for iteration, _ in measured])
  diversity = [m.diversity for _, m in measured]
  figure = Figure(figsize=(11, 4))
  left, right = figure.subplots(1, 2)
  for axis, mean, per_player, label in (
    (
      left,
      [d.behavioural for d in diversity],
      [d.behavioural_per_player for d in diversity],
      "mean pairwise TV distance",
    ),
    (
      right,
      [d.expected_cardinality for d in diversity],
      [d.expected_cardinality_per_player for d in diversity],
      "expected cardinality E|Y|",
    ),
  ):
    axis.plot(its, mean, "o-", ms=3, label="mean over players")
    per_player_array = np.asarray(per_player, dtype=np.float64)
    for p in range(per_player_array.shape[1]):
      axis.plot(its, per_player_array[:, p], ":", label=f"player {p}")
    axis.set_xlabel("iteration")
    axis.set_ylabel(label)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
  left.set_title("Behavioural diversity")
  right.set_title("Payoff diversity (DPP)")
  return _save(figure, path)


def plot_win_rate(records, path: str) -> str | None:
  measured = _run_metrics(records)
  names = sorted({name for _, m in measured for name in m.versus})
  if not names:
    return None
  figure = Figure(figsize=(11, 4))
  wins, returns = figure.subplots(1, 2)
  for name in names:
    have = [(iteration, m.versus[name].mean) for iteration, m in measured if name in m.versus]
    its = [iteration for iteration, _ in have]
    (line,) = wins.plot(its, [o.win_rate for _, o in have], "o-", ms=3, label=name)
    returns.plot(
      its, [o.expected_return for _, o in have], "o-", ms=3, color=line.get_color(), label=name
    )
  wins.set_ylim(0, 1)
  wins.set_ylabel("P(return > 0), mean over seats")
  wins.set_title("Meta-strategy win rate against baselines")
  returns.axhline(0.0, color="gray", lw=0.8)
  returns.set_ylabel("expected return, mean over seats")
  returns.set_title("Meta-strategy expected return against baselines")
  for axis in (wins, returns):
    axis.set_xlabel("iteration")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
  return _save(figure, path)


def plot_bots(records, path: str) -> str | None:
  played = [r for r in records if r.bots is not None]
  names = list(dict.fromkeys(v.name for r in played for v in r.bots.versus))
  if not names:
    return None
  figure = Figure(figsize=(11, 4))
  wins, draws = figure.subplots(1, 2)
  for name in names:
    have = [(r.wall_time_s, v.mean) for r in played for v in r.bots.versus if v.name == name]
    seconds = [t for t, _ in have]
    (line,) = wins.plot(seconds, [o.win_rate for _, o in have], "o-", ms=3, label=name)
    draws.plot(
      seconds, [o.draw_rate for _, o in have], "o-", ms=3, color=line.get_color(), label=name
    )
  wins.set_ylabel("win rate, mean over seats")
  wins.set_title("Meta-strategy against OpenSpiel's search bots")
  draws.set_ylabel("draw rate, mean over seats")
  draws.set_title("Draws against the bots")
  for axis in (wins, draws):
    axis.set_ylim(0, 1)
    axis.set_xlabel("PSRO wall time (s)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
  return _save(figure, path)


def render_run_plots(run_dir: str) -> list[str]:
  """Renders every figure the run's data supports; returns the PNG paths.

  Raises:
    RunDirError: `run_dir` is missing, or its metrics.jsonl is missing,
      empty or corrupt.
  """
  records = load_records(run_dir)
  comparison = load_comparison(run_dir)
  payoffs = load_payoffs(run_dir)
  makers: list[tuple[str, Callable[[str], str | None]]] = [
    ("nash_conv.png", lambda p: plot_nash_conv(records, comparison, p)),
    ("exploitability.png", lambda p: plot_exploitability(records, p)),
    ("payoff_table.png", lambda p: plot_payoff_table(records, payoffs, p)),
    ("elo.png", lambda p: plot_elo(records, p)),
    ("diversity.png", lambda p: plot_diversity(records, p)),
    ("win_rate.png", lambda p: plot_win_rate(records, p)),
    ("bots.png", lambda p: plot_bots(records, p)),
  ]
  written = []
  for name, make in makers:
    path = make(os.path.join(run_dir, name))
    if path is None:
      logging.info("Skipped %s: the run has no data for it.", name)
    else:
      written.append(path)
  return written
