"""Run directories: atomic writes, population checkpoints and `load_run`.

A run directory holds

  config.json        the `PSROConfig` the run was started with
  metrics.jsonl      one JSON object per finished iteration
  payoffs.npy        `[P, N_0, ..., N_{P-1}]` payoff table of the last iteration
  population/        `player{p}_{k:04d}.npy` behaviour matrices `[I_p, A]`, and
                     `player{p}_{k:04d}.pt` torch `state_dict`s of neural members
  state.json         the commit point: iterations finished, population files
  summary.json       written when the run ends

Every file is written to a temporary name in the same directory and renamed
into place, so a killed run leaves either the old or the new file, never half
of one. `state.json` is written last in each iteration; resuming reads it and
discards anything newer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np
from open_spiel.python import policy as policy_lib
import pyspiel

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
PAYOFFS_FILE = "payoffs.npy"
SUMMARY_FILE = "summary.json"
POPULATION_DIR = "population"


class CheckpointError(ValueError):
  """A run directory that cannot be used as asked."""


@contextlib.contextmanager
def _atomic_file(path: str, mode: str) -> Iterator[io.IOBase]:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_json(path: str, data: Any) -> None:
  with _atomic_file(path, "w") as f:
    json.dump(data, f, indent=1, default=_json_default)


def write_text(path: str, text: str) -> None:
  with _atomic_file(path, "w") as f:
    f.write(text)


def write_npy(path: str, array: np.ndarray) -> None:
  with _atomic_file(path, "wb") as f:
    np.save(f, array)


def write_torch(path: str, state_dict: dict[str, Any]) -> None:
  import torch  # pylint: disable=g-import-not-at-top
  with _atomic_file(path, "wb") as f:
    torch.save(state_dict, f)


def _json_default(value: Any) -> Any:
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if dataclasses.is_dataclass(value):
    return dataclasses.asdict(value)
  raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json_line(record: dict[str, Any]) -> str:
  return json.dumps(record, default=_json_default)


def read_json(path: str) -> Any:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise CheckpointError(f"{path} is missing; is this a run directory?") from e
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path} is corrupted ({e}); restore it or start"
                          " a new run in another --output_dir.") from e


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
  """The records of `metrics.jsonl`, one per finished iteration."""
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} line {number} is corrupted ({e}).") from e
  return records


def member_path(run_dir: str, player: int, index: int, suffix: str) -> str:
  return os.path.join(run_dir, POPULATION_DIR,
                      f"player{player}_{index:04d}{suffix}")


def load_matrix(path: str, shape: tuple[int, int]) -> np.ndarray:
  try:
    matrix = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"checkpoint {path} is unreadable ({e}).") from e
  if matrix.shape != shape:
    raise CheckpointError(f"checkpoint {path} has shape {matrix.shape},"
                          f" expected {shape}; it belongs to another game.")
  return matrix


def load_torch(path: str) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a bad file.
    raise CheckpointError(f"checkpoint {path} is unreadable ({e}).") from e


@dataclasses.dataclass
class LoadedRun:
  """A finished (or interrupted) run, ready to re-check with OpenSpiel's code.

  Attributes:
    game: the pyspiel game.
    population: per player, OpenSpiel `Policy` objects (TabularPolicy) of the
      members the last meta-strategy mixes.
    meta_strategy: per player, `[N_p]` probabilities (last `metrics.jsonl` line).
    metrics: all `metrics.jsonl` records.
    config: the run's config dict.
  """

  game: pyspiel.Game
  population: list[list[policy_lib.Policy]]
  meta_strategy: list[np.ndarray]
  metrics: list[dict[str, Any]]
  config: dict[str, Any]


def load_run(run_dir: str) -> LoadedRun:
  """Loads a run directory written by `psro.PSRO` (see module doc)."""
  from openspiel_psro_ext import game_tree, policies  # pylint: disable=g-import-not-at-top
  config = read_json(os.path.join(run_dir, CONFIG_FILE))
  metrics = read_metrics(run_dir)
  if not metrics:
    raise CheckpointError(f"{run_dir} has no finished iteration yet.")
  last = metrics[-1]
  tree = game_tree.get_tree(config["game"])
  sizes = last["population_size"]
  sizes = sizes if isinstance(sizes, list) else [sizes] * tree.num_players
  population = []
  for p in range(tree.num_players):
    owner = 0 if config.get("symmetric") else p
    members = []
    for k in range(sizes[p]):
      shape = (tree.infostates[owner].num_infostates, tree.num_actions)
      matrix = load_matrix(member_path(run_dir, owner, k, ".npy"), shape)
      per_player = [None] * tree.num_players
      per_player[p] = matrix
      members.append(policies.to_tabular_policy(tree, per_player))
    population.append(members)
  meta_strategy = [np.asarray(s, dtype=np.float64) for s in last["meta_strategy"]]
  return LoadedRun(game=tree.game, population=population,
                   meta_strategy=meta_strategy, metrics=metrics, config=config)
