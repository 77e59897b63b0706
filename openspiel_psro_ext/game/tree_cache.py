"""A disk cache of compiled game trees, so a game is compiled once per machine.

Compiling walks every history of a game through pyspiel: milliseconds for
Kuhn or Leduc poker, tens of seconds for tic-tac-toe or Liar's Dice. The
compiled tree is a handful of numpy arrays (`GameTree.to_arrays`), so a
command that finds them on disk loads them instead.

One entry is one `.npz` file named by a hash of its key: the game string and
the versions of pyspiel and of this package, and a digest of the compiler's
source (a new version of either, or a changed compiler, may compile
differently, so it never reads an older entry). The key is stored
inside the file too, and a file whose key differs (a hash collision, another
program's file) or that does not load (truncated, corrupt) is ignored with
one log line and rebuilt.

Safety and bounds:
  - entries are read with `np.load(..., allow_pickle=False)`: only plain
    arrays, so a cache file can never run code;
  - writes go to a temporary file in the same folder, then `os.replace`: a
    reader sees a whole entry or none;
  - the folder is kept under `max_bytes` by evicting the least recently used
    entries (a load refreshes an entry's modification time);
  - only trees that took at least `min_compile_s` to compile are stored:
    loading a file costs more than compiling a small game.

Where: `$OPENSPIEL_PSRO_EXT_TREE_CACHE` if set (`off` disables the cache),
else `$XDG_CACHE_HOME/openspiel_psro_ext/trees` (`~/.cache/...` by default);
`configure` overrides both (the command's `--tree_cache_dir` and
`--no_tree_cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

ENV_VAR = "OPENSPIEL_PSRO_EXT_TREE_CACHE"
_KEY = "__key__"
_SUFFIX = ".npz"


def default_directory() -> str | None:
  """The cache folder the environment asks for (None: the cache is off)."""
  value = os.environ.get(ENV_VAR)
  if value is not None:
    return None if value.strip().lower() in ("", "0", "off", "none") else value
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "openspiel_psro_ext", "trees")


@dataclasses.dataclass
class TreeCacheSettings:
  """Attributes:
  directory: the cache folder; None turns the cache off.
  max_bytes: the folder's size bound (least recently used entries go).
  min_compile_s: trees compiled faster than this are not stored.
  """

  directory: str | None
  max_bytes: int = 2 << 30
  min_compile_s: float = 0.25


_settings = TreeCacheSettings(directory=default_directory())


def settings() -> TreeCacheSettings:
  """The settings in force (`configure` changes them)."""
  return _settings


def configure(
  directory: str | None = None,
  enabled: bool = True,
  max_bytes: int | None = None,
  min_compile_s: float | None = None,
) -> TreeCacheSettings:
  """Sets where and whether trees are cached; returns the new settings.

  Args:
    directory: the cache folder (None: the environment's, `default_directory`).
    enabled: False turns the cache off.
    max_bytes, min_compile_s: see `TreeCacheSettings` (None: unchanged).
  """
  global _settings
  _settings = TreeCacheSettings(
    directory=(directory or default_directory()) if enabled else None,
    max_bytes=_settings.max_bytes if max_bytes is None else max_bytes,
    min_compile_s=_settings.min_compile_s if min_compile_s is None else min_compile_s,
  )
  return _settings


def key(game_string: str, compiler: str) -> str:
  """The cache key of a game: its string, the versions of pyspiel and of
  this package, and `compiler` (a digest of the compiling code, so that a
  changed compiler never reads an older entry, even at the same version)."""
  versions = []
  for distribution in ("open_spiel", "openspiel_psro_ext"):
    try:
      versions.append(f"{distribution} {importlib.metadata.version(distribution)}")
    except importlib.metadata.PackageNotFoundError:
      versions.append(f"{distribution} unknown")
  return "|".join([game_string, *versions, f"compiler {compiler}"])


def _path(directory: str, cache_key: str) -> str:
  digest = hashlib.sha256(cache_key.encode("utf-8")).hexdigest()[:32]
  return os.path.join(directory, digest + _SUFFIX)


def load(cache_key: str) -> dict[str, np.ndarray] | None:
  """The arrays stored under `cache_key`, or None (no entry, cache off, or
  an entry that does not load: logged and removed)."""
  directory = _settings.directory
  if directory is None:
    return None
  path = _path(directory, cache_key)
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {name: data[name] for name in data.files}
    stored = str(arrays.pop(_KEY))
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    logging.warning("Tree cache: ignoring unreadable %s (%s); compiling again.", path, e)
    _remove(path)
    return None
  if stored != cache_key:
    logging.warning("Tree cache: %s holds %r, not %r; compiling again.", path, stored, cache_key)
    return None
  try:
    os.utime(path)  # least recently used: a load counts as a use
  except OSError:
    pass
  return arrays


def store(cache_key: str, arrays: dict[str, np.ndarray], compile_seconds: float) -> str | None:
  """Writes `arrays` under `cache_key` (atomically), then evicts the least
  recently used entries past `max_bytes`. Returns the path, or None when
  the cache is off, the tree compiled too fast to be worth a file, or the
  folder cannot be written (logged: a cache never fails a run)."""
  directory = _settings.directory
  if directory is None or compile_seconds < _settings.min_compile_s:
    return None
  path = _path(directory, cache_key)
  try:
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
      payload: dict[str, Any] = {**arrays, _KEY: np.asarray(cache_key)}
      with os.fdopen(handle, "wb") as f:
        np.savez(f, allow_pickle=False, **payload)
      os.replace(temporary, path)
    except BaseException:
      _remove(temporary)
      raise
  except OSError as e:
    logging.warning("Tree cache: could not write %s (%s); continuing without it.", path, e)
    return None
  _evict(directory, _settings.max_bytes, keep=path)
  return path


def _evict(directory: str, max_bytes: int, keep: str) -> None:
  """Removes the least recently used entries until the folder fits."""
  entries = []
  for name in os.listdir(directory):
    if not name.endswith(_SUFFIX):
      continue
    path = os.path.join(directory, name)
    try:
      stat = os.stat(path)
    except OSError:
      continue
    entries.append((stat.st_mtime, stat.st_size, path))
  total = sum(size for _, size, _ in entries)
  for _, size, path in sorted(entries):
    if total <= max_bytes:
      break
    if path != keep:
      _remove(path)
      total -= size


def _remove(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass
