"""Run directories: atomic writes, population checkpoints and `load_run`.

A run directory holds

  config.json        the `PSROConfig` the run was started with
  metrics.jsonl      one JSON object per finished iteration (`records`)
  payoffs.npy        `[P, N_0, ..., N_{P-1}]` payoff table, written when the
                     run stops (resuming recomputes it from the population)
  population/        `player{p}_{k:04d}.npy` behaviour matrices `[I_p, A]`, and
                     `player{p}_{k:04d}.pt` torch `state_dict`s of neural members
  state.json         the commit point: iterations finished, members added,
                     and the directory's format (`FORMAT`)
  summary.json       written when the run ends
  .lock              the process id of the run writing here: a second run on
                     the directory is refused while that process holds it
                     (an advisory `flock`, released when the process ends,
                     so a lock left by a killed run is taken over)

An iteration writes only what is new: its members' files, one appended line
of `metrics.jsonl`, then `state.json`, so its cost does not grow with the run.
Whole files are written to a temporary name in the same directory and renamed
into place, so a killed run leaves either the old or the new file, never half
of one. `state.json` is the commit point: resuming reads it and discards
anything newer (metric lines, members) than the iterations it counts.

Durability: a killed process loses nothing it committed (the files are in
the page cache once renamed). Against a crash of the machine, the commit point
is fsynced at most once a second and when the run stops (`RunDirectory.sync`);
on ext4's default ordered mode that journal commit also writes the data of
every file renamed before it. An fsync costs about as much as an exact
iteration of a small game: one per file would multiply the run's time.

A write that fails for lack of space (`ENOSPC`, `EDQUOT`) is a `DiskFullError`:
the run stops with one line, and `--resume` continues from the last commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import tempfile
import time
import weakref
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib

from openspiel_psro_ext import records as records_lib
from openspiel_psro_ext.errors import UsageError

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
ALGORITHM_OPTIONS_FILE = "algorithm_options.json"
METRICS_FILE = "metrics.jsonl"
PAYOFFS_FILE = "payoffs.npy"
PAYOFFS_STDERR_FILE = "payoffs_stderr.npy"
SUMMARY_FILE = "summary.json"
POPULATION_DIR = "population"
LOCK_FILE = ".lock"

_SYNC_INTERVAL_S = 1.0

# The run directory's format, in `state.json`. 2: the loop variants' state is
# typed in each record (`IterationRecord.variant`); 1 (no "format"): it was
# run-metric keys, which this version does not read.
FORMAT = 2


class CheckpointError(UsageError):
  """A run directory that cannot be used as asked."""


class DiskFullError(CheckpointError):
  """A write failed for lack of space; the last commit is intact."""


_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def _full_disk_stops(path: str) -> Iterator[None]:
  """Turns a write failing for lack of space into a `DiskFullError`."""
  try:
    yield
  except OSError as e:
    if e.errno not in _FULL:
      raise
    raise DiskFullError(
      f"cannot write {path} ({os.strerror(e.errno)}); the run stopped at its last"
      " finished iteration: free some space and continue it with --resume."
    ) from e


@contextlib.contextmanager
def _atomic_file(path: str, mode: str, durable: bool = True) -> Iterator[IO[Any]]:
  directory = os.path.dirname(os.path.abspath(path))
  with _full_disk_stops(path):
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with _full_disk_stops(path):
      with os.fdopen(fd, mode) as f:
        yield f
        f.flush()
        if durable:
          os.fsync(f.fileno())
      os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_json(path: str, data: Any, durable: bool = True) -> None:
  with _atomic_file(path, "w", durable) as f:
    json.dump(data, f, indent=1, default=_json_default)


def write_text(path: str, text: str) -> None:
  with _atomic_file(path, "w") as f:
    f.write(text)


def write_npy(path: str, array: np.ndarray, durable: bool = True) -> None:
  with _atomic_file(path, "wb", durable) as f:
    np.save(f, array)


def write_torch(path: str, state_dict: dict[str, Any], durable: bool = True) -> None:
  import torch  # pylint: disable=g-import-not-at-top

  with _atomic_file(path, "wb", durable) as f:
    torch.save(state_dict, f)


def _json_default(value: Any) -> Any:
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
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
    raise CheckpointError(
      f"{path} is corrupted ({e}); restore it or start a new run in another --output_dir."
    ) from e


def read_metrics(run_dir: str, limit: int | None = None) -> list[dict[str, Any]]:
  """The objects of `metrics.jsonl`, one per finished iteration.

  `limit` reads only the first lines (a run killed while appending may have
  left a partial line after its last commit).
  """
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  records: list[dict[str, Any]] = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if limit is not None and len(records) >= limit:
        break
      if not line.endswith("\n"):
        break  # an append still under way, or cut by a kill: not committed
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} line {number} is corrupted ({e}).") from e
  return records


def read_records(run_dir: str, limit: int | None = None) -> list[records_lib.IterationRecord]:
  """`read_metrics` as typed records."""
  return [records_lib.IterationRecord.from_json(r) for r in read_metrics(run_dir, limit)]


def member_path(run_dir: str, player: int, index: int, suffix: str) -> str:
  return os.path.join(run_dir, POPULATION_DIR, f"player{player}_{index:04d}{suffix}")


def load_matrix(path: str, shape: tuple[int, int]) -> np.ndarray:
  try:
    matrix = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"checkpoint {path} is unreadable ({e}).") from e
  if matrix.shape != shape:
    raise CheckpointError(
      f"checkpoint {path} has shape {matrix.shape}, expected {shape}; it belongs to another game."
    )
  return matrix


def load_torch(path: str) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top

  try:
    return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a bad file.
    # `weights_only` refuses a pickle that would run code; its message is
    # paragraphs long: the first line says what it found.
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise CheckpointError(
      f"checkpoint {path} is unreadable, or not only weights ({reason})."
    ) from e


@dataclasses.dataclass
class RunState:
  """The commit point (`state.json`) of a run directory.

  Attributes:
    iterations_done: finished iterations (records in `metrics.jsonl`).
    add_batches: per expansion of the populations (the initial one, then one
      per iteration), how many members each population got.
    wall_time_s: the run's `wall_time_s` at the last commit.
    format: the run directory's format (`FORMAT`).
  """

  iterations_done: int
  add_batches: list[list[int]]
  wall_time_s: float
  format: int = FORMAT


class RunDirectory:
  """One run's directory (see module doc): where every write of a run goes.

  `RunDirectory.open(path, config, resume)` refuses a directory it must not
  use, before writing anything; `state` is the commit point to resume from
  (None for a fresh run).
  """

  def __init__(self, path: str, state: RunState | None = None):
    self.path = path
    self.state = state
    self._synced_at = time.monotonic()
    self._unlock: weakref.finalize | None = None

  @staticmethod
  def check(path: str, resume: bool) -> None:
    """Refuses, writing nothing, a `path` this run cannot use: a file (or a
    path through one), a folder it cannot write, a non-empty directory it
    did not write, a missing one to resume, or one another live run holds.

    Raises:
      CheckpointError: naming the path and the fix.
    """
    ancestor = os.path.abspath(path)
    while not os.path.exists(ancestor):
      ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
      raise CheckpointError(
        f"--output_dir={path}: {ancestor} is a file, not a directory; choose another --output_dir."
      )
    if not os.access(ancestor, os.W_OK | os.X_OK):
      raise CheckpointError(
        f"--output_dir={path}: cannot write in {ancestor}; choose another --output_dir."
      )
    if resume and not os.path.isdir(path):
      raise CheckpointError(
        f"--resume: {path} does not exist; drop --resume to start"
        " a new run there, or name the run's --output_dir."
      )
    if not os.path.isdir(path):
      return
    if not (resume and os.path.exists(os.path.join(path, STATE_FILE))):
      has_files = any(not n.startswith(".") for n in os.listdir(path))
      started_here = os.path.exists(os.path.join(path, CONFIG_FILE))
      if has_files and not (resume and started_here):
        raise CheckpointError(
          f"{path} has no {CONFIG_FILE}; it is not a run directory this package wrote."
          if resume
          else f"output directory {path} is not empty; pass --resume to continue that"
          " run, or choose another --output_dir."
        )
    holder = _lock_holder(path)
    if holder is not None:
      raise CheckpointError(holder)

  @classmethod
  def open(cls, path: str, config: dict[str, Any], resume: bool) -> RunDirectory:
    """A fresh run directory, or one to resume (`resume` and a commit point),
    locked for this process (`close` releases it).

    Raises:
      CheckpointError: `path` holds other files, is not a run directory,
        does not exist while `resume` is asked, or another run holds it.
    """
    cls.check(path, resume)
    run_dir = cls(path)
    with _full_disk_stops(path):
      os.makedirs(path, exist_ok=True)
    # Released by `close`, or when the object is collected.
    run_dir._unlock = weakref.finalize(run_dir, _release_lock, _acquire_lock(path))
    try:
      cls.check(path, resume)  # again, holding the lock: a run that started meanwhile
      run_dir._read_or_start(config, resume)
    except BaseException:
      run_dir.close()
      raise
    return run_dir

  def close(self) -> None:
    """Releases the directory's lock (the process's end releases it too)."""
    if self._unlock is not None:
      self._unlock()  # once: a finalizer runs at most once

  def _read_or_start(self, config: dict[str, Any], resume: bool) -> None:
    """Reads the commit point to resume from, or starts a fresh run."""
    run_dir, path = self, self.path
    if resume and os.path.exists(run_dir.file(STATE_FILE)):
      state = read_json(run_dir.file(STATE_FILE))
      written = int(state.get("format", 1))
      if written != FORMAT:
        raise CheckpointError(
          f"{path} was written in run-directory format {written}; this version"
          f" resumes format {FORMAT} only: rerun it in a new --output_dir."
        )
      try:
        run_dir.state = RunState(
          int(state["iterations_done"]), state["add_batches"], float(state["wall_time_s"])
        )
      except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
          f"{run_dir.file(STATE_FILE)} is corrupted ({e!r}); restore it or start a new run"
          " in another --output_dir."
        ) from e
      return
    # A fresh run (also --resume of a run that never finished an iteration).
    with _full_disk_stops(path):
      os.makedirs(os.path.join(path, POPULATION_DIR), exist_ok=True)
    write_json(run_dir.file(CONFIG_FILE), config)

  def file(self, name: str) -> str:
    return os.path.join(self.path, name)

  def saved_config(self) -> dict[str, Any]:
    return read_json(self.file(CONFIG_FILE))

  def check_algorithm_options(self, algorithm: str, options: Any) -> None:
    """Keeps a variant's options (its `Options` dataclass,
    `--algorithm_options`) beside the config: a resumed run must use the
    saved ones.

    Raises:
      UsageError: the run is resumed with other options.
    """
    options = dataclasses.asdict(options)
    path = self.file(ALGORITHM_OPTIONS_FILE)
    if self.state is not None and os.path.exists(path):
      saved = read_json(path)
      if saved != options:
        raise UsageError(
          f"{self.path} ran {algorithm} with options {saved}; resume it"
          f" with the same (got {options})."
        )
      return
    write_json(path, options)

  def records(self) -> list[records_lib.IterationRecord]:
    """The committed records; later lines (an unfinished commit) are dropped."""
    done = self.state.iterations_done if self.state else 0
    records = read_records(self.path, limit=done)
    if len(records) < done:
      raise CheckpointError(
        f"{METRICS_FILE} has {len(records)} records but {STATE_FILE} says {done}"
        " iterations finished."
      )
    return records

  def write_member(
    self, player: int, index: int, matrix: np.ndarray | None, module: Any = None
  ) -> None:
    """A member's behaviour matrix, and its module's `state_dict` if it has one."""
    if matrix is not None:
      write_npy(member_path(self.path, player, index, ".npy"), matrix, durable=False)
    if module is not None and hasattr(module, "state_dict"):
      write_torch(member_path(self.path, player, index, ".pt"), module.state_dict(), durable=False)

  def write_members(self, first: list[int], members: list[list[Any]]) -> float:
    """Per population, its new members (`PopulationMember`s) from index
    `first[p]` on (`write_member`); returns the writes' seconds."""
    start = time.perf_counter()
    for p, new in enumerate(members):
      for k, member in enumerate(new):
        self.write_member(p, first[p] + k, member.matrix, member.module)
    return time.perf_counter() - start

  def load_member(
    self, player: int, index: int, shape: tuple[int, int] | None
  ) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """A member's `shape` matrix (None: not read) and its module's `state_dict`
    (None if it has no module)."""
    matrix = (
      None if shape is None else load_matrix(member_path(self.path, player, index, ".npy"), shape)
    )
    module_path = member_path(self.path, player, index, ".pt")
    return matrix, (load_torch(module_path) if os.path.exists(module_path) else None)

  def rewrite_records(self, records: list[records_lib.IterationRecord]) -> None:
    """Replaces `metrics.jsonl` (once per resume or run end, not per iteration)."""
    write_text(self.file(METRICS_FILE), "".join(to_json_line(r.to_json()) + "\n" for r in records))

  def commit(self, record: records_lib.IterationRecord, state: RunState) -> None:
    """Appends the iteration's record, then moves the commit point past it."""
    line = (to_json_line(record.to_json()) + "\n").encode()
    with _full_disk_stops(self.file(METRICS_FILE)):
      fd = os.open(self.file(METRICS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
      try:
        os.write(fd, line)  # one write: readers see the whole line or none of it
      finally:
        os.close(fd)
    durable = time.monotonic() - self._synced_at >= _SYNC_INTERVAL_S
    write_json(self.file(STATE_FILE), dataclasses.asdict(state), durable=durable)
    if durable:
      self._synced_at = time.monotonic()
    self.state = state

  def sync(self) -> None:
    """Flushes the commit point (and, on ext4, what came before it) to disk."""
    path = self.file(STATE_FILE)
    if os.path.exists(path):
      fd = os.open(path, os.O_RDONLY)
      try:
        os.fsync(fd)
      finally:
        os.close(fd)
    self._synced_at = time.monotonic()

  def write_payoffs(
    self, meta_games: list[np.ndarray], stderr: list[np.ndarray] | None = None
  ) -> None:
    """`payoffs.npy`, and each entry's standard error beside it (sampled)."""
    write_npy(self.file(PAYOFFS_FILE), np.stack(meta_games))
    if stderr is not None:
      write_npy(self.file(PAYOFFS_STDERR_FILE), np.stack(stderr))

  def write_summary(self, summary: dict[str, Any]) -> None:
    write_json(self.file(SUMMARY_FILE), summary)


# This process's locks, by the directory's real path: its open descriptor and
# how many `RunDirectory`s share it (one process may open a directory twice,
# e.g. a run and then its resumption; an flock is per descriptor).
_HELD: dict[str, list[int]] = {}


def _lock_holder(path: str) -> str | None:
  """Why `path` is taken (another live process holds its lock), or None."""
  lock_path = os.path.join(path, LOCK_FILE)
  if os.path.realpath(path) in _HELD or not os.path.exists(lock_path):
    return None
  try:
    fd = os.open(lock_path, os.O_RDONLY)
  except OSError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return _taken(path, fd)
  finally:
    os.close(fd)  # also releases a lock this peek took
  return None


def _taken(path: str, fd: int) -> str:
  pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
  return (
    f"{path} is in use by another run (process {pid}); wait for it to finish, or"
    " choose another --output_dir."
  )


def _acquire_lock(path: str) -> str:
  """Locks `path` for this process (shared within it); returns the key."""
  key = os.path.realpath(path)
  if key in _HELD:
    _HELD[key][1] += 1
    return key
  with _full_disk_stops(path):
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    message = _taken(path, fd)
    os.close(fd)
    raise CheckpointError(message) from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  _HELD[key] = [fd, 1]
  return key


def _release_lock(key: str) -> None:
  held = _HELD.get(key)
  if held is None:
    return
  held[1] -= 1
  if held[1] == 0:
    del _HELD[key]
    os.close(held[0])  # releases the flock; the file stays, with a dead pid


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
  from openspiel_psro_ext.game import (
    game_tree,  # pylint: disable=g-import-not-at-top
    policies,  # pylint: disable=g-import-not-at-top
  )

  config = read_json(os.path.join(run_dir, CONFIG_FILE))
  state_path = os.path.join(run_dir, STATE_FILE)
  done = read_json(state_path)["iterations_done"] if os.path.exists(state_path) else 0
  metrics = read_metrics(run_dir, limit=done)
  if not metrics:
    raise CheckpointError(f"{run_dir} has no finished iteration yet.")
  last = metrics[-1]
  game = pyspiel.load_game(config["game"])
  sizes = last["population_size"]
  sizes = sizes if isinstance(sizes, list) else [sizes] * game.num_players()
  networked = None  # NeuPL: members 1.. are views of one network per population
  if config.get("algorithm") == "neupl" and max(sizes) > 1:
    from openspiel_psro_ext.oracles.rl import neupl  # pylint: disable=g-import-not-at-top

    networked = neupl.load_members(run_dir, done, sizes)
  population = []
  for p in range(game.num_players()):
    owner = 0 if config.get("symmetric") else p
    members = []
    for k in range(sizes[p]):
      if networked is not None and k > 0:
        members.append(networked[p][k - 1])
      elif os.path.exists(member_path(run_dir, owner, k, ".npy")):
        tree = game_tree.get_tree(
          config["game"], config.get("max_histories", game_tree.DEFAULT_MAX_HISTORIES)
        )
        shape = (tree.infostates[owner].num_infostates, tree.num_actions)
        matrix = load_matrix(member_path(run_dir, owner, k, ".npy"), shape)
        per_player: list[np.ndarray | None] = [None] * tree.num_players
        per_player[p] = matrix
        members.append(policies.to_tabular_policy(tree, per_player))
      elif k == 0:  # a simulated run's first member: uniform random
        members.append(policy_lib.UniformRandomPolicy(game))
      else:  # a simulated run's member: its torch module is an OpenSpiel Policy
        from openspiel_psro_ext.oracles.rl import torch_policy  # pylint: disable=g-import-not-at-top

        members.append(
          torch_policy.TorchPolicy.from_state_dict(
            load_torch(member_path(run_dir, owner, k, ".pt"))
          )
        )
    population.append(members)
  meta_strategy = [np.asarray(s, dtype=np.float64) for s in last["meta_strategy"]]
  return LoadedRun(
    game=game, population=population, meta_strategy=meta_strategy, metrics=metrics, config=config
  )
