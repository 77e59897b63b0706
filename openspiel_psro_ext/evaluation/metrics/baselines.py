"""Fixed reference policies a PSRO run is measured against.

A run's meta-strategy is scored against opponents that do not change over the
run, so the numbers are comparable from one iteration to the next:

* `uniform`: every legal action with equal probability. It is also the anchor
  of the Elo scale (rating 0).
* `always_call`: the passive poker player -- check when nobody has bet, call
  when facing a bet, never fold, never raise.
* `always_raise`: the aggressive one -- bet or raise whenever that is legal,
  otherwise call/check.
* `cfr_plus`: a near-equilibrium policy, the average policy of CFR+
  (`cfr.CFRPlus`, vectorised over the tree; the same iterates as OpenSpiel's
  C++ `pyspiel.CFRPlusSolver`). CFR+ runs in rounds of `check_every`
  iterations until the exact NashConv of its average policy drops below
  `target_nash_conv` or `max_iterations` is reached (defaults: 1e-3, 400).
  On kuhn_poker that is 200 iterations (NashConv ~6e-4); on leduc_poker the
  400-iteration cap (NashConv ~2.5e-3, 0.4 s on one core; 3 s with the C++
  solver).
  The result is cached per game string in-process and, optionally, on disk.

Call/raise actions are recognised by the names `action_to_string` gives them
("Call", "Check", "Raise", "Bet", "AllIn", ...). Kuhn poker names its actions
"Pass" and "Bet", where "Bet" facing a bet means call; it is handled by
looking for an earlier bet in the history. Games without such actions (liar's
dice, Hanabi) get no call/raise baselines; `fixed_baselines` returns a note
saying so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import time
import zipfile

import numpy as np
import pyspiel

from openspiel_psro_ext.game import cfr, exploitability
from openspiel_psro_ext.game.game_tree import GameTree

DEFAULT_CFR_PLUS_MAX_ITERATIONS = 400
DEFAULT_CFR_PLUS_TARGET_NASH_CONV = 1e-3
DEFAULT_CFR_PLUS_CHECK_EVERY = 50

_PASSIVE = re.compile(r"\b(call|check)\b", re.IGNORECASE)
_AGGRESSIVE = re.compile(r"raise|bet|allin|all-in|pot", re.IGNORECASE)


@dataclasses.dataclass
class Baseline:
  """A fixed joint policy.

  Attributes:
    name: the key of its values in `RunMetrics` (`versus[name]`, ...).
    matrices: per-player `[I_p, A]` behaviour policies.
    info: facts about how it was built (CFR+ iterations, NashConv, seconds).
  """

  name: str
  matrices: list[np.ndarray]
  info: dict[str, float] = dataclasses.field(default_factory=dict)


def uniform_baseline(tree: GameTree) -> Baseline:
  """Uniform random play for every player."""
  return Baseline("uniform", tree.uniform_policy())


def _kuhn_choice(state: pyspiel.State, aggressive: bool) -> int:
  """Kuhn poker: 0 = Pass (check or fold), 1 = Bet (bet or call)."""
  if aggressive:
    return 1
  facing_bet = 1 in state.history()[state.get_game().num_players() :]
  return 1 if facing_bet else 0


def _named_choice(
  state: pyspiel.State, player: int, legal: np.ndarray, aggressive: bool
) -> int | None:
  names = {a: state.action_to_string(player, int(a)) for a in legal}
  passive = [a for a, n in names.items() if _PASSIVE.search(n)]
  raises = [a for a, n in names.items() if _AGGRESSIVE.search(n) and a not in passive]
  if aggressive and raises:
    return int(min(raises))  # The smallest raise.
  return int(passive[0]) if passive else None


def _action_baseline(tree: GameTree, name: str, aggressive: bool) -> Baseline | str:
  """A deterministic call/raise policy, or a note saying why there is none."""
  is_kuhn = tree.game.get_type().short_name == "kuhn_poker"
  matrices = []
  for p, table in enumerate(tree.infostates):
    choice = np.zeros(table.num_infostates, dtype=np.int64)
    for i, state in enumerate(table.states):
      legal = np.flatnonzero(table.legal_mask[i])
      action = (
        _kuhn_choice(state, aggressive) if is_kuhn else _named_choice(state, p, legal, aggressive)
      )
      if action is None:
        return (
          f"{name} skipped: {tree.game.get_type().short_name} has no"
          f" action named call or check (player {p}, information state"
          f" {i})."
        )
      choice[i] = action
    matrices.append(np.eye(tree.num_actions)[choice])
  return Baseline(name, matrices)


def always_call_baseline(tree: GameTree) -> Baseline | str:
  """Check or call everywhere (a note instead, when the game has no calls)."""
  return _action_baseline(tree, "always_call", aggressive=False)


def always_raise_baseline(tree: GameTree) -> Baseline | str:
  """Bet or raise when legal, else call (a note when the game has no calls)."""
  return _action_baseline(tree, "always_raise", aggressive=True)


def _solve_cfr_plus(
  tree: GameTree, max_iterations: int, target_nash_conv: float, check_every: int
) -> tuple[list[np.ndarray], dict]:
  start = time.perf_counter()
  solver = cfr.CFRPlus(tree)
  iterations = 0
  while True:
    step = min(check_every, max_iterations - iterations)
    solver.iterate(step)
    iterations += step
    matrices = solver.average_policy()
    nash_conv = exploitability.exact_nash_conv(tree, matrices).nash_conv
    if nash_conv <= target_nash_conv or iterations >= max_iterations:
      break
  info = dict(
    iterations=float(iterations), nash_conv=float(nash_conv), seconds=time.perf_counter() - start
  )
  logging.info(
    "CFR+ baseline for %s: %d iterations, NashConv %.3g, %.2f s.",
    tree.game,
    iterations,
    nash_conv,
    info["seconds"],
  )
  return matrices, info


# In-process cache: (game string, max_iterations, target, check_every) ->
# (matrices, info).
_MEMORY_CACHE: dict[tuple, tuple[list[np.ndarray], dict]] = {}


def _disk_cache_path(
  cache_dir: str, game_string: str, max_iterations: int, target_nash_conv: float
) -> str:
  key = f"{game_string}|{max_iterations}|{target_nash_conv!r}"
  digest = hashlib.sha1(key.encode()).hexdigest()[:16]
  stem = re.sub(r"[^A-Za-z0-9_]+", "_", game_string)[:40]
  return os.path.join(cache_dir, f"cfr_plus_{stem}_{digest}.npz")


def cfr_plus_baseline(
  tree: GameTree,
  max_iterations: int = DEFAULT_CFR_PLUS_MAX_ITERATIONS,
  target_nash_conv: float = DEFAULT_CFR_PLUS_TARGET_NASH_CONV,
  check_every: int = DEFAULT_CFR_PLUS_CHECK_EVERY,
  cache_dir: str | None = None,
) -> Baseline:
  """CFR+ average policy, cached per game string (in-process and on disk).

  Args:
    tree: the compiled game.
    max_iterations: CFR+ iterations at most.
    target_nash_conv: stop once the average policy's exact NashConv is below.
    check_every: CFR+ iterations between NashConv checks.
    cache_dir: if set, the policy is read from / written to an `.npz` there.

  Returns:
    `Baseline("cfr_plus", ...)` with `info` holding iterations, nash_conv and
    seconds (the time CFR+ took; 0 when read from the disk cache).
  """
  game_string = str(tree.game)
  path = None
  if cache_dir:
    path = _disk_cache_path(cache_dir, game_string, max_iterations, target_nash_conv)
    cached = _read_disk_cache(tree, path)
    if cached is not None:
      return cached
  key = (game_string, max_iterations, target_nash_conv, check_every)
  if key not in _MEMORY_CACHE:
    _MEMORY_CACHE[key] = _solve_cfr_plus(tree, max_iterations, target_nash_conv, check_every)
  matrices, info = _MEMORY_CACHE[key]
  matrices = [m.copy() for m in matrices]
  info = dict(info)
  if path:
    _write_disk_cache(path, matrices, info)
  return Baseline("cfr_plus", matrices, info)


def _read_disk_cache(tree: GameTree, path: str) -> Baseline | None:
  """The cached CFR+ baseline, or None (with a warning) if absent or unusable.

  A file that cannot be read, lacks an entry, or holds anything but a policy
  of the game (a distribution over legal actions in every information state)
  is ignored; the caller recomputes and rewrites it.
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as data:
      matrices = [np.array(data[f"player{p}"], dtype=np.float64) for p in range(tree.num_players)]
      info = dict(
        iterations=float(data["iterations"]), nash_conv=float(data["nash_conv"]), seconds=0.0
      )
  # zipfile.BadZipFile: a truncated file; EOFError: an empty one.
  except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
    logging.warning("Recomputing CFR+: unreadable cache %s (%s).", path, e)
    return None
  for matrix, table in zip(matrices, tree.infostates):
    if (
      matrix.shape != table.legal_mask.shape
      or not np.all(np.isfinite(matrix))
      or np.any(matrix < 0)
      or np.any(matrix[~table.legal_mask] != 0)
      or not np.allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    ):
      logging.warning("Recomputing CFR+: cache %s does not hold a policy of %s.", path, tree.game)
      return None
  return Baseline("cfr_plus", matrices, info)


def _write_disk_cache(path: str, matrices: list[np.ndarray], info: dict[str, float]) -> None:
  """Writes the cache atomically; a failure costs only the next run's time."""
  tmp = f"{path}.{os.getpid()}.tmp.npz"
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # numpy's stub reads `**kwds` as its bool `allow_pickle`; any name is an array.
    np.savez(
      tmp,
      iterations=info["iterations"],
      nash_conv=info["nash_conv"],
      **{f"player{p}": m for p, m in enumerate(matrices)},  # type: ignore[arg-type]
    )
    os.replace(tmp, path)
  except OSError as e:
    logging.warning("Could not write the CFR+ cache %s (%s); it is recomputed next time.", path, e)
    if os.path.exists(tmp):
      os.unlink(tmp)


def fixed_baselines(
  tree: GameTree, cfr_plus: bool = True, cache_dir: str | None = None, **cfr_plus_kwargs
) -> tuple[list[Baseline], list[str]]:
  """The run's baselines, uniform first, and notes on those skipped.

  Args:
    tree: the compiled game.
    cfr_plus: include the CFR+ baseline.
    cache_dir: on-disk cache for the CFR+ policy.
    **cfr_plus_kwargs: passed to `cfr_plus_baseline`.
  """
  baselines = [uniform_baseline(tree)]
  notes = []
  for made in (always_call_baseline(tree), always_raise_baseline(tree)):
    if isinstance(made, str):
      notes.append(made)
    else:
      baselines.append(made)
  if cfr_plus:
    try:
      baselines.append(cfr_plus_baseline(tree, cache_dir=cache_dir, **cfr_plus_kwargs))
    except (RuntimeError, pyspiel.SpielError) as e:
      notes.append(f"cfr_plus skipped: CFR+ failed on {tree.game}: {e}")
  for note in notes:
    logging.info("%s", note)
  return baselines, notes
