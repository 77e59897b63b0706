"""Knuth's size estimate refuses games far too large before any count."""

import time

import pyspiel
import pytest

from openspiel_psro_ext.game import game_tree

HULH = (
  "universal_poker(betting=limit,numPlayers=2,numRounds=4,blind=10 5,"
  "firstPlayer=2 1 1 1,numSuits=4,numRanks=13,numHoleCards=2,numBoardCards=0 3 1 1,"
  "raiseSize=10 10 20 20,maxRaises=3 4 4 4)"
)


@pytest.mark.parametrize("name", ["chess", "go", "hex", HULH, "phantom_ttt"])
def test_far_too_large_games_are_refused_by_the_estimate(name):
  game = pyspiel.load_game(name)
  start = time.process_time()
  estimate = game_tree.check_compilable(game)
  assert not estimate.compiles and estimate.stopped_by == "size"
  assert "more than 2,000,000 histories (Knuth's estimate" in estimate.refusal()
  assert "simulated mode" in estimate.refusal()
  with pytest.raises(game_tree.GameTooLargeError, match="Knuth's estimate"):
    game_tree.compile_game(game)
  assert time.process_time() - start < 1.0  # no count: a few random playouts


# Games whose count used to run into its limits for seconds before refusing:
# their playouts' widths vary (nim's piles, tiny_bridge_4p's auction), so
# most single estimates are below the limit and a few far above it.
@pytest.mark.parametrize(
  "name", ["nim", "tiny_bridge_4p", "latent_ttt", "repeated_leduc_poker", "liars_dice(numdice=2)"]
)
def test_games_too_large_with_uneven_playouts_are_refused_by_the_estimate(name):
  estimate = game_tree.check_compilable(name)
  assert estimate.stopped_by == "size" and estimate.num_histories == 0  # nothing counted
  assert "more than 2,000,000 histories (Knuth's estimate" in estimate.refusal()


def test_a_game_too_slow_to_count_is_refused_by_the_estimate_of_the_time():
  # colored_trails has about 1.7 million histories, under the limit, but
  # counting them takes ~20 us each (its legal trades are slow to list).
  estimate = game_tree.check_compilable("colored_trails")
  assert estimate.stopped_by == "cost" and estimate.num_histories == 0
  assert "too many histories to count in 4.5 s of CPU time" in estimate.refusal()
  assert "raise max_histories" not in estimate.refusal()  # more would not help
  assert (
    game_tree._sampled_size(  # pylint: disable=protected-access
      game_tree.load_game("colored_trails"), game_tree.DEFAULT_MAX_HISTORIES, time_limit_s=None
    )
    == ""
  )  # without a time limit, the count decides


@pytest.mark.parametrize(
  "name",
  [
    "kuhn_poker",
    "leduc_poker",
    "liars_dice(dice_sides=3)",
    "tiny_hanabi",
    "tic_tac_toe",
    "leduc_poker(players=3)",  # 1,831,601 histories: near the limit
  ],
)
def test_games_that_compile_pass_the_estimate(name):
  game = game_tree._check_game(pyspiel.load_game(name))  # pylint: disable=protected-access
  assert not game_tree._sampled_size(  # pylint: disable=protected-access
    game, game_tree.DEFAULT_MAX_HISTORIES, game_tree.DEFAULT_TIME_LIMIT_S
  )


def test_a_tight_limit_is_left_to_the_count():
  # Leduc has 9,457 histories: far above 100 by the estimate too, yet the
  # answer is the same either way (refused), and a limit near the size is
  # decided by the exact count.
  game = pyspiel.load_game("leduc_poker")
  assert not game_tree.check_compilable(game, max_histories=9_000).compiles
  assert game_tree.check_compilable(game, max_histories=9_457).compiles
