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
  assert "far more than 2,000,000 histories" in estimate.refusal()
  assert "simulated mode" in estimate.refusal()
  with pytest.raises(game_tree.GameTooLargeError, match="Knuth's estimate"):
    game_tree.compile_game(game)
  assert time.process_time() - start < 1.0  # no count: a few random playouts


@pytest.mark.parametrize(
  "name",
  ["kuhn_poker", "leduc_poker", "liars_dice(dice_sides=3)", "tiny_hanabi", "tic_tac_toe"],
)
def test_games_that_compile_pass_the_estimate(name):
  game = game_tree._check_game(pyspiel.load_game(name))  # pylint: disable=protected-access
  assert not game_tree._sampled_size(game, game_tree.DEFAULT_MAX_HISTORIES)  # pylint: disable=protected-access


def test_a_tight_limit_is_left_to_the_count():
  # Leduc has 9,457 histories: far above 100 by the estimate too, yet the
  # answer is the same either way (refused), and a limit near the size is
  # decided by the exact count.
  game = pyspiel.load_game("leduc_poker")
  assert not game_tree.check_compilable(game, max_histories=9_000).compiles
  assert game_tree.check_compilable(game, max_histories=9_457).compiles
