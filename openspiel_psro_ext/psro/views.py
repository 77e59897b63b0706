"""Two views of a game behind one PSRO loop: compiled (exact) and simulated.

The loop asks its view for what depends on how the game is seen, and never
tests which view it has:

  uniform_member(p)   the first member of population p (uniform random);
  add(members, seed)  appends each population's new members and the payoff
                      table's new entries;
  opponent_populations(p)  the others' populations as a best-response
                      request carries them;
  nash_conv(sigma)    exact NashConv of the meta-strategy, or None where the
                      game has no compiled tree;
  load_member(...)    a checkpointed member.

`CompiledView` (the default wherever the game compiles) holds members as
`[I_p, A]` behaviour matrices over a `GameTree`: payoff tables are exact
sequence-form products and NashConv is exact. `SimulatedView` plays the game
through pyspiel: members are batched policies (the RL oracles' torch
modules), payoff entries are means of simulated games with their standard
errors (`simulation.SimulatedPayoffTable`), best responses train on batched
pyspiel games, and exploitability is estimated by `approx_exploitability`
(a lower bound, never stored as `nash_conv`). Forced onto a game that does
compile, the simulated view keeps the tree beside it so its records carry
the exact NashConv too, to validate the simulated mode.

`make_view(config)` chooses: `evaluation="exact"` compiles or refuses (one
line, with the reason: too large, no information-state string, sampled
chance, imperfect recall, pyspiel failing on a state), `"simulated"` simulates
(keeping the tree beside it where the game compiles), and `"auto"` compiles
where `game_tree.get_tree` can (it decides within seconds of CPU and bounded
memory) and simulates otherwise. Both views play a simultaneous-move game in
its turn-based form; games PSRO does not apply to (one player, mean-field)
are refused (`check_applies`).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyspiel

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.game import exploitability, payoffs
from openspiel_psro_ext.game import game_tree as game_tree_lib
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.runs import checkpoints
from openspiel_psro_ext.simulated import simulation

EVALUATIONS = ("auto", "exact", "simulated")


class View(abc.ABC):
  """What the loop needs from a game (see module doc).

  Attributes:
    game: the pyspiel game.
    tree: the compiled game, or None.
    num_players: players of the game.
    num_populations: 1 when both players share a population, else players.
    table: the payoff table (`add`, `meta_games`, `shape`).
    simulated: members are batched policies playing pyspiel games
      (`policies`); NashConv is still exact where `tree` is kept beside.
    name: "exact" or "simulated", for the log and the record.
  """

  name: str
  game: pyspiel.Game
  tree: game_tree_lib.GameTree | None
  num_players: int
  num_populations: int
  table: Any
  simulated: bool = False
  policies: list[list[simulation.BatchedPolicy]] | None = None

  def players_of(self, per_population: Sequence[Any]) -> list[Any]:
    """Per population -> per player (a shared population serves both seats)."""
    return (
      list(per_population) * self.num_players if self.num_populations == 1 else list(per_population)
    )

  @abc.abstractmethod
  def uniform_member(self, population: int) -> oracle_base.PopulationMember:
    """The uniform random policy of a population, its first member."""

  @abc.abstractmethod
  def add(
    self,
    new_members: Sequence[Sequence[oracle_base.PopulationMember]],
    seed: int,
    weights: Sequence[np.ndarray] | None = None,
  ) -> None:
    """Appends each population's members and the table's new entries
    (`weights`: the meta-strategy before the add, which a sampled table uses
    to spend its games where the meta-solver needs them)."""

  def use_backend(self, backend: Any) -> None:
    """Runs the view's own work (a simulated table's games) on `backend`."""
    del backend

  def payoff_stderr(self) -> list[np.ndarray] | None:
    """Per player, the payoff table's standard errors (None: exact entries)."""
    return None

  @abc.abstractmethod
  def population(self, player: int) -> Any:
    """Player's population as a request carries it: `[N, I, A]` matrices,
    or a list of batched policies (simulated)."""

  def opponent_populations(self, player: int) -> list[Any]:
    """Per player its population as a request carries it, None at `player`
    (`oracles.base.MemberMixture.populations`)."""
    return [None if q == player else self.population(q) for q in range(self.num_players)]

  @property
  def request_tree(self) -> game_tree_lib.GameTree | None:
    return self.tree

  @abc.abstractmethod
  def population_matrices(self) -> list[np.ndarray] | None:
    """Per player `[N_p, I_p, A]` matrices, or None without a tree."""

  def nash_conv(self, sigma: Sequence[np.ndarray]) -> exploitability.NashConvResult | None:
    """Exact NashConv of the meta-strategy, or None without a tree."""
    matrices, tree = self.population_matrices(), self.tree
    if matrices is None or tree is None:
      return None
    reaches = [tree.terminal_reach(p, m[s > 0]) for p, (m, s) in enumerate(zip(matrices, sigma))]
    return exploitability.nash_conv_from_reach(tree, [s[s > 0] @ r for s, r in zip(sigma, reaches)])

  @abc.abstractmethod
  def load_member(
    self, run_dir: checkpoints.RunDirectory, oracle: oracle_base.Oracle, population: int, index: int
  ) -> oracle_base.PopulationMember:
    """A member checkpointed by `RunDirectory.write_member`."""


class CompiledView(View):
  """The game compiled into a `GameTree`: exact payoffs and NashConv."""

  name = "exact"
  tree: game_tree_lib.GameTree

  def __init__(self, tree: game_tree_lib.GameTree, num_populations: int, sims_per_entry: int = 0):
    self.tree, self.game = tree, tree.game
    self.num_players, self.num_populations = tree.num_players, num_populations
    self._rows = [
      payoffs.GrowingArray((tree.infostates[p].num_infostates, tree.num_actions))
      for p in range(num_populations)
    ]
    self._sampled = sims_per_entry > 0
    self.table = (
      payoffs.SampledPayoffTable(tree, sims_per_entry)
      if self._sampled
      else payoffs.PayoffTable(tree)
    )

  def uniform_member(self, population):
    return oracle_base.PopulationMember(matrix=self.tree.infostates[population].uniform_policy())

  def add(self, new_members, seed, weights=None):
    del weights  # exact (or fixed-count) entries
    stacked = [
      np.stack([m.matrix for m in members]) if members else None for members in new_members
    ]
    for rows, new in zip(self._rows, stacked):
      if new is not None:
        rows.append(new)
    self.table.add(self.players_of(stacked), seed=seed)
    if self.num_populations == 1:
      self._check_symmetric()

  def _check_symmetric(self) -> None:
    """A shared population needs M_1 = M_0^T (roles swap with the seats)."""
    m0, m1 = self.table.meta_games
    if not np.allclose(m1, m0.T, atol=0.1 if self._sampled else 1e-9):
      raise UsageError(
        f"{self.game} is not symmetric under a shared population: the payoff"
        " table is not M_1 = M_0^T when both seats play the same policy. Drop"
        " --symmetric."
      )

  def population_matrices(self):
    return self.players_of([rows.array for rows in self._rows])

  def nash_conv(self, sigma):
    # The table keeps every member's terminal reach already.
    reaches = [self.table.terminal_reach(q) for q in range(self.num_players)]
    return exploitability.nash_conv_from_reach(
      self.tree, [s[s > 0] @ r[s > 0] for s, r in zip(sigma, reaches)]
    )

  def population(self, player):
    return self.population_matrices()[player]

  def load_member(self, run_dir, oracle, population, index):
    shape = (self.tree.infostates[population].num_infostates, self.tree.num_actions)
    matrix, state_dict = run_dir.load_member(population, index, shape)
    module = None
    if state_dict is not None and oracle.restores_modules:
      module = oracle.restore_module(self.tree, population, state_dict)
    return oracle_base.PopulationMember(matrix=matrix, module=module)


class SimulatedView(View):
  """The game played through pyspiel: sampled payoffs, no exact NashConv.

  Args:
    game: the pyspiel game.
    sampling: how many games each payoff entry gets.
    tree: the compiled game, when the simulated mode is forced onto a game
      that compiles: members' exact matrices and NashConv are then kept too.
  """

  name = "simulated"
  simulated = True

  def __init__(
    self,
    game: pyspiel.Game,
    sampling: simulation.SamplingConfig,
    tree: game_tree_lib.GameTree | None = None,
  ):
    simulation.check_game(game)
    self.game, self.tree = game, tree
    self.num_players = self.num_populations = game.num_players()
    self.table = simulation.SimulatedPayoffTable(game, sampling)
    self.policies: list[list[simulation.BatchedPolicy]] = [[] for _ in range(self.num_players)]
    self._rows = (
      None
      if tree is None
      else [
        payoffs.GrowingArray((tree.infostates[p].num_infostates, tree.num_actions))
        for p in range(self.num_players)
      ]
    )

  @property
  def request_tree(self):
    return None  # best responses train on pyspiel games even where a tree exists

  def uniform_member(self, population):
    matrix = None if self.tree is None else self.tree.infostates[population].uniform_policy()
    return oracle_base.PopulationMember(matrix=matrix, module=simulation.UniformRandomPolicy())

  def use_backend(self, backend):
    self.table.player = backend

  def payoff_stderr(self):
    return self.table.stderr

  def add(self, new_members, seed, weights=None):
    for p, members in enumerate(new_members):
      for member in members:
        if not isinstance(member.module, simulation.BatchedPolicy):
          raise UsageError(
            f"the simulated mode needs members that act on batches"
            f" (an RL oracle's); got {type(member.module).__name__}."
          )
        self.policies[p].append(member.module)
        if self._rows is not None:
          if member.matrix is None:  # kept (and checkpointed) for the exact check
            trained: Any = member.module  # an RL oracle's `TorchPolicy`
            member.matrix = trained.matrix(self.tree)
          self._rows[p].append(np.asarray(member.matrix)[None])
    self.table.add(
      [[m.module for m in members] for members in new_members], seed=seed, weights=weights
    )

  def population_matrices(self):
    return None if self._rows is None else [rows.array for rows in self._rows]

  def population(self, player):
    return list(self.policies[player])

  def load_member(self, run_dir, oracle, population, index):
    if index == 0:
      return self.uniform_member(population)
    _, state_dict = run_dir.load_member(population, index, shape=None)
    if state_dict is None:
      raise checkpoints.CheckpointError(
        f"{run_dir.path}: member {index} of player {population} has no module"
        " checkpoint (.pt); a simulated run's members are torch modules."
      )
    module = oracle.restore_module(self.game, population, state_dict)
    matrix = None if self.tree is None else module.matrix(self.tree)
    return oracle_base.PopulationMember(matrix=matrix, module=module)


def load_game(game_string: str) -> pyspiel.Game:
  """`pyspiel.load_game`, with pyspiel crashing on the game's parameters (e.g.
  `nfg_game` without its file: `IndexError: map::at`) turned into one line.

  Raises:
    pyspiel.SpielError: an unknown or malformed game string (the caller
      names the fix).
    UsageError: pyspiel failed otherwise; names the game and pyspiel's message.
  """
  try:
    return game_tree_lib.load_game(game_string)  # once per string
  except pyspiel.SpielError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (pyspiel raises any kind)
    message = (str(e).strip().splitlines() or [""])[0]
    raise UsageError(
      f"pyspiel failed to load {game_string!r}: {type(e).__name__}: {message}"
      " (check the game's parameters)."
    ) from None


def check_applies(game: pyspiel.Game) -> None:
  """Refuses, in one line, a game PSRO does not apply to.

  Raises:
    UsageError: a mean-field game, or a game of one player.
  """
  if game.get_type().dynamics == pyspiel.GameType.Dynamics.MEAN_FIELD:
    raise UsageError(
      f"{game} is a mean-field game: a representative player against the"
      " population's distribution, not players responding to each other's"
      " policies, so PSRO does not apply; solve it with OpenSpiel's mean-field"
      " algorithms (open_spiel.python.mfg)."
    )
  if game.num_players() < 2:
    raise UsageError(
      f"{game} has {game.num_players()} player: PSRO finds equilibria between"
      " players and has no opponent to respond to here; a single-agent RL or"
      " planning algorithm solves it."
    )


def _without_way_on(error: Exception) -> str:
  """A compile refusal's reason, without its advice (which the caller chooses)."""
  return str(error).split("; run it in the simulated mode")[0].rstrip(".")


def make_view(
  game_string: str,
  evaluation: str,
  max_histories: int,
  symmetric: bool,
  sims_per_entry: int,
  sampling: simulation.SamplingConfig,
  needs_tree: bool = False,
) -> View:
  """The view `evaluation` asks for (see module doc).

  A simultaneous-move game is played in its turn-based form in both views
  (`game_tree.turn_based`). With `evaluation="auto"`, a game the compiler
  cannot take, for whatever reason, is simulated (one log line says why),
  unless `needs_tree` (an oracle that computes best responses over the
  tree): then, as with `evaluation="exact"`, it is refused with the reason.

  Raises:
    UsageError: an unknown `evaluation`, a game PSRO does not apply to
      (`check_applies`), a game that does not compile where the tree is
      needed (`game_tree.NotCompilableError`), or a game neither view can take.
  """
  if evaluation not in EVALUATIONS:
    raise UsageError(f"evaluation must be one of {list(EVALUATIONS)}, got {evaluation!r}.")
  game = game_tree_lib.turn_based(load_game(game_string))
  check_applies(game)
  tree: game_tree_lib.GameTree | None = None
  refusal: game_tree_lib.NotCompilableError | None = None
  # Compiling decides within seconds, in bounded memory (and remembers a refusal).
  try:
    tree = game_tree_lib.get_tree(game_string, max_histories)
  except game_tree_lib.NotCompilableError as e:
    refusal = e
  if tree is not None and evaluation != "simulated":
    return CompiledView(tree, 1 if symmetric else tree.num_players, sims_per_entry)
  try:
    simulation.check_game(game)
    cannot_simulate = ""
  except UsageError as e:
    cannot_simulate = str(e)
  if refusal is not None and (evaluation == "exact" or needs_tree):
    raise _exact_refusal(refusal, evaluation, cannot_simulate)
  if cannot_simulate:
    raise UsageError(
      cannot_simulate
      if refusal is None
      else f"{_without_way_on(refusal)}, and the simulated mode cannot take it either: "
      + cannot_simulate
    )
  if refusal is not None:
    logging.info(
      "%s; PSRO runs in the simulated mode (sampled payoffs, approximate NashConv).",
      _without_way_on(refusal).split(";")[0],
    )
  if symmetric:
    raise UsageError(
      "--symmetric needs the compiled view; the simulated mode keeps"
      " one population per player. Drop --symmetric."
    )
  return SimulatedView(game, sampling, tree)


def _exact_refusal(
  refusal: game_tree_lib.NotCompilableError, evaluation: str, cannot_simulate: str
) -> UsageError:
  """Why a run that needs the compiled tree cannot have it, with the advice
  that works (the simulated mode only where it can take the game)."""
  if cannot_simulate:
    return UsageError(
      f"{_without_way_on(refusal)}, and the simulated mode cannot take it either: {cannot_simulate}"
    )
  if evaluation == "exact":
    if isinstance(refusal, game_tree_lib.GameTooLargeError):
      return refusal  # its advice: the simulated mode, or more histories
    return UsageError(
      f"{_without_way_on(refusal)}; run it in the simulated mode"
      f" ({game_tree_lib.SIMULATED_MODE_FLAG} with an RL oracle)."
    )
  return UsageError(
    f"{_without_way_on(refusal)}; the exact oracle needs the compiled tree: an RL"
    " oracle (e.g. --oracle=ppo) runs it in the simulated mode."
  )
