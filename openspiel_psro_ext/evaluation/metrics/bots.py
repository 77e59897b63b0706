"""Strength against OpenSpiel's own search bots: win, draw and loss rates.

For games too large to compile, the approximate NashConv is a lower bound
from a short RL best response. A plainer yardstick is a fixed, known player:
OpenSpiel's Monte Carlo tree search. The output meta-strategy `sigma` plays

  * `pyspiel.MCTSBot` in perfect-information games: UCT with constant
    `uct_c` (sqrt 2) over `simulations` simulations per move, each leaf
    valued by one random rollout (`pyspiel.RandomRolloutEvaluator`);
  * IS-MCTS in imperfect-information games (phantom_ttt, dark_hex): the
    same search over information sets, each simulation sampling a world
    consistent with the bot's information state. `pyspiel.ISMCTSBot` where
    the game samples those worlds itself (`ResampleFromInfostate`: kuhn,
    leduc); where it cannot (phantom_ttt, dark_hex), OpenSpiel's Python
    `ismcts.ISMCTSBot` with a rejection sampler (`ConsistentWorlds`): the
    other players' and chance's moves drawn uniformly (chance by its
    probabilities), kept when the bot's information states along the way
    are the ones it saw.

The strength of both is set by `simulations` alone, so a run's curve against
MCTS-10, -100 and -1000 shows its strength against fixed external players.

The meta-strategy sits in seat `p`, a bot in every other seat, and each seat
gets an equal share of the games. Each game draws one member per
meta-strategy seat by `sigma_p` (as PSRO's meta-game does), which then plays
the whole game; its actions are sampled from the member's policy. From the
`n` games of seat `p`, with returns `u_p`:

    win rate  = #{u_p > 0} / n,   draw rate = #{u_p = 0} / n,
    loss rate = #{u_p < 0} / n,   expected return = mean u_p,

each within `1 / sqrt(n)` of its true value at 95% (a binomial share's
standard error is at most `1 / (2 sqrt(n))`).

The games are `BotTask`s, a `simulation.PlayTask` whose `run` plays them one
by one, so a backend runs them (at once, as Ray tasks, on Ray). Every random
choice is seeded by the task: the members drawn, their actions and chance by
the task's stream, and each game's bots by `(task seed, game, seat)`, so the
results do not depend on the backend or on how the tasks are scheduled.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from typing import cast

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import ismcts as python_ismcts
from open_spiel.python.algorithms import mcts as python_mcts

from openspiel_psro_ext import backends
from openspiel_psro_ext.game import policies
from openspiel_psro_ext.game.game_tree import GameTree
from openspiel_psro_ext.records import metrics as records_metrics
from openspiel_psro_ext.simulated import simulation

MCTS = "mcts"
ISMCTS = "ismcts"

# Returns within this of zero count as draws (`outcomes.DRAW_TOLERANCE`).
_DRAW_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class BotConfig:
  """Which bots the meta-strategy meets, and for how many games.

  Attributes:
    simulations: one bot per entry, with that many simulations per move.
    games: games against each bot, split evenly over the seats.
    uct_c: the UCT exploration constant.
    solve: MCTS backs up proven wins and losses (MCTS-Solver); off, plain
      UCT. ISMCTS has no solver.
    task_games: games per backend task.
    max_memory_mb: MCTS's tree memory limit per move.
    seed: seeds every task (with the population sizes, the bot and the seat).
  """

  simulations: tuple[int, ...] = (10, 100, 1000)
  games: int = 100
  uct_c: float = math.sqrt(2)
  solve: bool = False
  task_games: int = 25
  max_memory_mb: int = 256
  seed: int = 0

  def __post_init__(self) -> None:
    if not self.simulations or min(self.simulations) < 1:
      raise ValueError(f"bot simulations must be positive, got {self.simulations}.")
    if self.games < 1 or self.task_games < 1:
      raise ValueError(f"need games >= 1 and task_games >= 1; got {self}.")


def bot_kind(game: pyspiel.Game) -> str:
  """`MCTS` for perfect-information games, `ISMCTS` otherwise.

  Raises:
    ValueError: a simultaneous-move game (load it turn-based).
  """
  game_type = game.get_type()
  if game_type.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
    raise ValueError(
      f"{game} is a simultaneous-move game; the search bots play turn-based games"
      f" (turn_based_simultaneous_game(game={game}))."
    )
  if game_type.information == pyspiel.GameType.Information.PERFECT_INFORMATION:
    return MCTS
  return ISMCTS


@dataclasses.dataclass(frozen=True)
class Bot:
  """One search bot: its kind, simulations per move and settings."""

  kind: str
  simulations: int
  uct_c: float = math.sqrt(2)
  solve: bool = False
  max_memory_mb: int = 256

  @property
  def name(self) -> str:
    """E.g. `mcts100`."""
    return f"{self.kind}{self.simulations}"

  def make(self, game: pyspiel.Game, seed: int) -> pyspiel.Bot:
    """A fresh bot, its search and rollouts seeded by `seed`."""
    evaluator = pyspiel.RandomRolloutEvaluator(1, seed)
    if self.kind == MCTS:
      return pyspiel.MCTSBot(
        game,
        evaluator,
        self.uct_c,
        self.simulations,
        self.max_memory_mb,
        self.solve,
        seed,
        False,
      )
    if resamples(game):
      return pyspiel.ISMCTSBot(seed, evaluator, self.uct_c, self.simulations)
    random_state = np.random.RandomState(seed)
    bot = python_ismcts.ISMCTSBot(
      game,
      python_mcts.RandomRolloutEvaluator(1, random_state),
      self.uct_c,
      self.simulations,
      random_state=random_state,
      # pyspiel.ISMCTSBot's default: a move drawn by the root's visit counts.
      final_policy_type=python_ismcts.ISMCTSFinalPolicyType.NORMALIZED_VISITED_COUNT,
    )
    bot.set_resampler(ConsistentWorlds(game, random_state))
    return bot


@functools.cache
def _resamples(game_string: str) -> bool:
  game = pyspiel.load_game(game_string)
  state = game.new_initial_state()
  while state.is_chance_node():
    state.apply_action(state.chance_outcomes()[0][0])
  try:
    state.resample_from_infostate(state.current_player(), pyspiel.UniformProbabilitySampler(0, 1))
  except pyspiel.SpielError:
    return False
  return True


def resamples(game: pyspiel.Game) -> bool:
  """Whether `game`'s states sample worlds consistent with an information
  state themselves (`ResampleFromInfostate`)."""
  return _resamples(str(game))


class ConsistentWorlds:
  """A state consistent with `player`'s information state, by rejection.

  Plays the game from its start: the player's own moves are those it made,
  every other move is uniform over the legal actions (chance by its
  probabilities); a try is rejected as soon as the player reaches one of its
  decisions with an information state other than the one it saw. Called by
  IS-MCTS once per simulation with the same state, so the player's own
  decisions are read once per state.
  """

  def __init__(self, game: pyspiel.Game, random_state: np.random.RandomState, tries: int = 100_000):
    self.game, self.random_state, self.tries = game, random_state, tries
    self._key: tuple[str, int] | None = None
    self._seen: list[str] = []
    self._actions: list[int] = []

  def _decisions(self, state: pyspiel.State, player: int) -> None:
    key = (state.history_str(), player)
    if key == self._key:
      return
    replay, seen, actions = self.game.new_initial_state(), [], []
    for action in state.history():
      if replay.current_player() == player:
        seen.append(replay.information_state_string(player))
        actions.append(action)
      replay.apply_action(action)
    seen.append(state.information_state_string(player))
    self._key, self._seen, self._actions = key, seen, actions

  def __call__(self, state: pyspiel.State, player: int) -> pyspiel.State:
    self._decisions(state, player)
    seen, actions, choice = self._seen, self._actions, self.random_state.choice
    for _ in range(self.tries):
      world, k = self.game.new_initial_state(), 0
      while not world.is_terminal():
        if world.is_chance_node():
          outcomes, probs = zip(*world.chance_outcomes())
          world.apply_action(outcomes[choice(len(outcomes), p=probs)])
        elif world.current_player() != player:
          world.apply_action(choice(world.legal_actions()))
        elif world.information_state_string(player) != seen[k]:
          break
        elif k == len(actions):
          return world
        else:
          world.apply_action(actions[k])
          k += 1
    raise RuntimeError(
      f"{self.game}: no world consistent with player {player}'s information state"
      f" in {self.tries} tries."
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class BotTask(simulation.PlayTask):
  """`num_games` games: the meta-strategy in `seat`, `bot` in every other.

  `seats` (`run`'s argument, the backend's) holds per player the
  meta-strategy's `simulation.Population` of `simulation.StatePolicy`
  members; the bot's seats ignore theirs.
  """

  bot: Bot
  seat: int

  def run(
    self, game: pyspiel.Game, seats: Sequence[simulation.Population | simulation.BatchedPolicy]
  ) -> np.ndarray:
    """`[num_games, P]` returns."""
    rng = np.random.default_rng(list(self.seed))
    population = simulation.Population.of(seats[self.seat])
    drawn = population.draw(self.num_games, rng)
    num_players, num_actions = game.num_players(), game.num_distinct_actions()
    out = np.zeros((self.num_games, num_players))
    for g in range(self.num_games):
      member = population.members[drawn[g]]
      if not isinstance(member, simulation.StatePolicy):
        raise TypeError(f"bot games need members acting on states, got {type(member).__name__}.")
      bots = {
        p: self.bot.make(game, _bot_seed(self.seed, g, p))
        for p in range(num_players)
        if p != self.seat
      }
      state = game.new_initial_state()
      while not state.is_terminal():
        player = state.current_player()
        if state.is_chance_node():
          actions, probs = zip(*state.chance_outcomes())
          state.apply_action(actions[_sample(np.asarray(probs), rng)])
        elif player == self.seat:
          legal = np.zeros((1, num_actions), dtype=bool)
          legal[0, state.legal_actions()] = True
          probs = member.probabilities([state], legal)[0]
          state.apply_action(_sample(probs, rng))
        else:
          state.apply_action(bots[player].step(state))
      out[g] = state.returns()
    return out


def _bot_seed(task_seed: Sequence[int], game_index: int, seat: int) -> int:
  """A bot's seed: a 31-bit draw from the task's seed, the game and the seat."""
  entropy = [*task_seed, game_index, seat]
  return int(np.random.SeedSequence(entropy).generate_state(1)[0] & 0x7FFFFFFF)


def _sample(probs: np.ndarray, rng: np.random.Generator) -> int:
  return int(simulation.sample_actions(np.asarray(probs, dtype=np.float64)[None], rng)[0])


def member_policies(
  game: pyspiel.Game,
  tree: GameTree | None,
  matrices: Sequence[np.ndarray] | None,
  modules: Sequence[Sequence[simulation.BatchedPolicy]] | None,
) -> list[list[policy_lib.Policy]]:
  """Per player, each member as an OpenSpiel policy acting on states.

  The simulated view's members are modules (`TorchPolicy`, an OpenSpiel
  policy, and the uniform member 0); a compiled view's are `[N_p, I_p, A]`
  matrices, read by information-state string (`policies.MatrixPolicy`).
  """
  if modules is not None:
    return [[_state_policy(game, m) for m in members] for members in modules]
  if tree is None or matrices is None:
    raise ValueError("bot games need the members' modules or their matrices over a tree.")
  uniform = [tree.infostates[q].uniform_policy() for q in range(tree.num_players)]
  return [
    [
      policies.MatrixPolicy(tree, [m if q == p else uniform[q] for q in range(tree.num_players)])
      for m in population
    ]
    for p, population in enumerate(matrices)
  ]


def _state_policy(game: pyspiel.Game, member: simulation.BatchedPolicy) -> policy_lib.Policy:
  if isinstance(member, policy_lib.Policy):
    return member
  if isinstance(member, simulation.UniformRandomPolicy):
    return policy_lib.UniformRandomPolicy(game)
  raise TypeError(f"a {type(member).__name__} member cannot play bot games (no policy on states).")


def bot_tasks(
  game: pyspiel.Game, bot: Bot, games: int, task_games: int, seed: Sequence[int]
) -> list[BotTask]:
  """`games` games against `bot`, split evenly over the meta-strategy's seats
  (the first seats take the remainder), in tasks of at most `task_games`."""
  num_players = game.num_players()
  tasks = []
  for seat in range(num_players):
    share = games // num_players + (seat < games % num_players)
    for i, start in enumerate(range(0, share, task_games)):
      tasks.append(
        BotTask(
          num_games=min(share, start + task_games) - start,
          seed=(*seed, bot.simulations, seat, i),
          bot=bot,
          seat=seat,
        )
      )
  return tasks


def seat_outcome(returns: np.ndarray) -> records_metrics.Outcome:
  """Win, draw and loss rates and the mean of `[n]` returns."""
  return records_metrics.Outcome(
    win_rate=float(np.mean(returns > _DRAW_TOLERANCE)),
    draw_rate=float(np.mean(np.abs(returns) <= _DRAW_TOLERANCE)),
    loss_rate=float(np.mean(returns < -_DRAW_TOLERANCE)),
    expected_return=float(np.mean(returns)),
  )


def versus_bots(
  game: pyspiel.Game,
  members: Sequence[Sequence[policy_lib.Policy]],
  meta_strategy: Sequence[np.ndarray],
  config: BotConfig,
  backend: backends.Backend,
) -> records_metrics.BotResults:
  """The meta-strategy's outcomes against each bot of `config` (module doc).

  Args:
    game: the pyspiel game.
    members: per player, its population as OpenSpiel policies
      (`member_policies`).
    meta_strategy: per player, `[N_p]` probabilities.
    config: the bots and games.
    backend: runs the games (`Backend.play`).
  """
  start = time.perf_counter()
  kind = bot_kind(game)
  if config.games < game.num_players():
    raise ValueError(
      f"{config.games} bot games cannot give each of {game.num_players()} seats one."
    )
  sizes = [len(s) for s in meta_strategy]
  seats = []
  for p, (population, sigma) in enumerate(zip(members, meta_strategy)):
    sigma = np.asarray(sigma, dtype=np.float64)
    support = np.flatnonzero(sigma > 0)  # only they play: less to ship to workers
    # `StatePolicy` is handed states, not tensors (`BotTask.run` checks).
    players = [
      cast(simulation.BatchedPolicy, simulation.StatePolicy(population[k], p))
      for k in support.tolist()
    ]
    seats.append(simulation.Population(players, sigma[support]))
  tasks, bots = [], []
  for simulations in config.simulations:
    bot = Bot(kind, simulations, config.uct_c, config.solve, config.max_memory_mb)
    bots.append(bot)
    tasks += bot_tasks(game, bot, config.games, config.task_games, (config.seed, *sizes))
  returns = backend.play(game, seats, tasks)
  versus = []
  for bot in bots:
    per_seat = [
      np.concatenate(
        [r[:, t.seat] for t, r in zip(tasks, returns) if t.bot == bot and t.seat == seat]
      )
      for seat in range(game.num_players())
    ]
    outcomes = [seat_outcome(r) for r in per_seat]
    versus.append(
      records_metrics.VersusBot(
        bot=bot.kind,
        simulations=bot.simulations,
        games=sum(len(r) for r in per_seat),
        mean=records_metrics.Outcome.mean_of(outcomes),
        seats=outcomes,
      )
    )
  return records_metrics.BotResults(versus=versus, seconds=time.perf_counter() - start)
