"""Shared pieces of the meta-solvers: input validation and meta-game NashConv.

Conventions (OpenSpiel's `psro_v2`): a meta-game with `k` players is a list
`meta_games` of `k` payoff tensors, each of shape `[n_0, ..., n_{k-1}]`, where
`meta_games[p][a_0, ..., a_{k-1}]` is player `p`'s expected payoff when each
player `q` plays its `a_q`-th population policy. A (product) meta-strategy
profile is a list of `k` probability vectors, `profile[p]` of shape `[n_p]`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

if TYPE_CHECKING:
  import highspy

_T = TypeVar("_T")


class MetaGameError(ValueError):
  """A meta-game or profile that a meta-solver cannot accept."""


@runtime_checkable
class MetaSolver(Protocol):
  """A meta-solver: `solver(meta_games, **kwargs) -> list of [n_p] vectors`."""

  def __call__(self, meta_games: Sequence[np.ndarray], **kwargs: Any) -> list[np.ndarray]: ...


def validate_meta_games(
  meta_games: np.ndarray | Sequence[np.ndarray],
  *,
  solver: str = "meta-solver",
  num_players: int | None = None,
  min_players: int = 1,
) -> list[np.ndarray]:
  """Checks `meta_games` and returns it as a list of float64 arrays.

  A bare 2-D array `A` is accepted as the shorthand stock `psro_v2` uses for a
  two-player zero-sum game and expanded to `[A, -A]`.

  Args:
    meta_games: list of `k` payoff tensors of identical shape `[n_0..n_{k-1}]`.
    solver: name of the calling solver, used in error messages.
    num_players: if given, the exact number of players the solver supports.
    min_players: the smallest number of players the solver supports.

  Returns:
    List of `k` float64 arrays of shape `[n_0, ..., n_{k-1}]`.

  Raises:
    MetaGameError: on empty input, ragged or mismatched shapes, a tensor whose
      rank differs from the number of players, a wrong player count for the
      solver, or NaN/inf payoffs.
  """
  if isinstance(meta_games, np.ndarray) and meta_games.ndim == 2:
    meta_games = [meta_games, -meta_games]
  if not isinstance(meta_games, (list, tuple)) or not meta_games:
    raise MetaGameError(
      f"{solver}: meta_games must be a non-empty list with one payoff tensor"
      f" per player (OpenSpiel convention), got {type(meta_games).__name__}."
    )
  try:
    tables = [np.asarray(t, dtype=np.float64) for t in meta_games]
  except (TypeError, ValueError) as e:
    raise MetaGameError(f"{solver}: payoff tensors must be numeric arrays ({e}).") from e
  k = len(tables)
  shape = tables[0].shape
  for p, t in enumerate(tables):
    if t.shape != shape:
      raise MetaGameError(
        f"{solver}: payoff tensor of player {p} has shape {t.shape} but"
        f" player 0's has shape {shape}; all players' tensors must share"
        " the shape [n_0, ..., n_{k-1}]."
      )
  # A single table is a symmetric two-player (single-population) game.
  expected_rank = 2 if k == 1 else k
  if len(shape) != expected_rank:
    raise MetaGameError(
      f"{solver}: with {k} payoff tensor(s) each tensor must have rank"
      f" {expected_rank} (one axis per player), got shape {shape}."
    )
  if any(n < 1 for n in shape):
    raise MetaGameError(f"{solver}: every player needs at least one policy, got shape {shape}.")
  if k == 1 and shape[0] != shape[1]:
    raise MetaGameError(
      f"{solver}: a single-population (symmetric) table must be square, got shape {shape}."
    )
  if num_players is not None and k != num_players:
    raise MetaGameError(
      f"{solver}: supports exactly {num_players} players, got {k} payoff tensors."
    )
  if k < min_players:
    raise MetaGameError(f"{solver}: needs at least {min_players} players, got {k}.")
  for p, t in enumerate(tables):
    if not np.all(np.isfinite(t)):
      bad = np.argwhere(~np.isfinite(t))[0]
      raise MetaGameError(
        f"{solver}: payoff tensor of player {p} has a non-finite entry"
        f" ({t[tuple(bad)]}) at index {tuple(int(i) for i in bad)}; fill"
        " missing payoff-table entries before solving."
      )
  return tables


def as_two_player(tables: list[np.ndarray]) -> list[np.ndarray]:
  """Expands a single symmetric table `[A]` to the two-player `[A, A^T]`."""
  return [tables[0], tables[0].T] if len(tables) == 1 else tables


def validate_profile(
  meta_games: Sequence[np.ndarray], profile: Sequence[np.ndarray], atol: float = 1e-6
) -> list[np.ndarray]:
  """Checks that `profile` is one probability vector per player."""
  shape = np.shape(meta_games[0])
  if len(profile) != len(shape):
    raise MetaGameError(f"profile has {len(profile)} vectors for a {len(shape)}-player game.")
  out = []
  for p, (x, n) in enumerate(zip(profile, shape)):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.shape != (n,):
      raise MetaGameError(f"profile[{p}] has {x.size} entries, player {p} has {n} policies.")
    if not np.all(np.isfinite(x)) or np.any(x < -atol) or abs(x.sum() - 1.0) > atol:
      raise MetaGameError(f"profile[{p}] is not a probability vector: {x}.")
    out.append(x)
  return out


def action_values(payoff: np.ndarray, profile: Sequence[np.ndarray], player: int) -> np.ndarray:
  """Expected payoff of each pure strategy of `player` against `profile`.

  `v[a] = sum_{a_{-p}} payoff[a_p=a, a_{-p}] prod_{q != p} profile[q][a_q]`,
  computed by contracting every other axis, last axis first.

  Args:
    payoff: tensor of shape `[n_0, ..., n_{k-1}]`.
    profile: list of `k` vectors, `profile[q]` of shape `[n_q]`.
    player: the axis left uncontracted.

  Returns:
    Vector of shape `[n_player]`.
  """
  v = payoff
  for q in range(payoff.ndim - 1, -1, -1):
    if q != player:
      v = np.tensordot(v, profile[q], axes=([q], [0]))
  return v


def meta_game_nash_conv(meta_games: Sequence[np.ndarray], profile: Sequence[np.ndarray]) -> float:
  """NashConv of a product profile in the meta-game.

  `NashConv(x) = sum_p [ max_a u_p(a, x_{-p}) - u_p(x) ]`: the total gain the
  players could get by each unilaterally switching to a best pure response.
  It is >= 0 and is 0 exactly at a Nash equilibrium; in a two-player zero-sum
  game it equals the duality gap `max_i (A y)_i - min_j (x^T A)_j`.

  Args:
    meta_games: list of `k` payoff tensors of shape `[n_0, ..., n_{k-1}]`
      (a single square table is read as a symmetric game played by both
      players with the same mixture).
    profile: list of `k` probability vectors, `profile[p]` of shape `[n_p]`.

  Returns:
    The NashConv, a float >= 0 (up to rounding).
  """
  tables = validate_meta_games(meta_games, solver="meta_game_nash_conv")
  if len(tables) == 1:
    a = tables[0]
    tables = [a, a.T]
    if len(profile) == 1:
      profile = [profile[0], profile[0]]
  profile = validate_profile(tables, profile)
  total = 0.0
  for p, t in enumerate(tables):
    v = action_values(t, profile, p)
    total += float(np.max(v) - v @ profile[p])
  return total


def normalize_distribution(x: np.ndarray) -> np.ndarray:
  """Clips tiny negative round-off to 0 and renormalises to sum 1."""
  x = np.maximum(np.asarray(x, dtype=np.float64).reshape(-1), 0.0)
  s = x.sum()
  if s <= 0:
    return np.full(x.shape, 1.0 / x.size)
  return x / s


def is_zero_sum(meta_games: Sequence[np.ndarray], atol: float = 1e-9) -> bool:
  """True when the payoffs sum to one constant over all joint profiles."""
  total = np.sum(np.stack(meta_games), axis=0)
  scale = max(1.0, max(float(np.max(np.abs(t))) for t in meta_games))
  return bool(np.ptp(total) <= atol * scale)


def _quietly(make: Callable[[], _T]) -> _T:
  """Calls `make()` with the process's stdout muted: highspy prints a banner
  from C++ on construction, before any option can turn output off."""
  sys.stdout.flush()
  saved = os.dup(1)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 1)
      return make()
  finally:
    os.dup2(saved, 1)
    os.close(saved)


def new_highs(feasibility_tolerance: float | None = None) -> highspy.Highs:
  """A quiet, single-threaded `highspy.Highs` for the meta-solvers' LPs and QPs.

  Every HiGHS instance in a process shares one thread scheduler, and an
  instance asking for another thread count than the first one's fails to run
  (model status "Not Set"): so all of ours ask for one thread. These problems
  are small, and HiGHS's default thread pool can stall on a busy machine.
  `feasibility_tolerance` sets the primal and dual ones (None: HiGHS's).
  """
  import highspy  # pylint: disable=g-import-not-at-top

  highs = _quietly(highspy.Highs)
  highs.setOptionValue("output_flag", False)
  highs.setOptionValue("threads", 1)
  if feasibility_tolerance is not None:
    for option in ("primal_feasibility_tolerance", "dual_feasibility_tolerance"):
      highs.setOptionValue(option, feasibility_tolerance)
  return highs
