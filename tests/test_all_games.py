"""A fixed, diverse dozen of OpenSpiel games through the command: each runs, or
is refused in one line; none ends in a traceback (`benchmarks/all_games.py`
runs every registered game the same way)."""

import concurrent.futures
import importlib.util
import os
import sys

import pytest

_SPEC = importlib.util.spec_from_file_location(
  "all_games", os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "all_games.py")
)
assert _SPEC is not None and _SPEC.loader is not None
all_games = importlib.util.module_from_spec(_SPEC)
sys.modules["all_games"] = all_games  # its dataclasses look their module up
_SPEC.loader.exec_module(all_games)

# (game, mode, expected result): exact and simulated views, simultaneous
# moves, sampled chance, n players, crashes inside pyspiel, games PSRO does
# not apply to.
CASES = [
  ("kuhn_poker", "exact", "ran"),
  ("tiny_hanabi", "exact", "ran"),
  ("python_iterated_prisoners_dilemma(max_game_length=3)", "exact", "ran"),
  ("goofspiel(num_cards=3)", "rl", "ran"),
  ("oshi_zumo(coins=3,size=1)", "rl", "ran"),
  ("connect_four", "exact", "refused"),  # too large to compile, one line
  ("go_fish", "exact", "refused"),
  ("nfg_game", "exact", "refused"),  # pyspiel's IndexError at load
  ("cliff_walking", "rl", "refused"),  # one player
  ("mfg_garnet", "rl", "refused"),  # mean-field
  ("negotiation", "rl", "ran"),  # sampled chance, observation tensor only
  ("chess", "exact", "refused"),
]
# Tiny best responses and no run budget (both iterations run): whether the
# game runs, not how well.
_TINY = [
  '--oracle_config={"time_budget_s": 0.3, "simulated_num_envs": 8}',
  "--approx_episodes=4",
  "--approx_eval_games=8",
]


@pytest.mark.slow
def test_a_diverse_dozen_runs_or_is_refused_in_one_line():
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    outcomes = list(
      pool.map(
        lambda case: all_games.run_one(
          case[0], case[1], budget_s=0.0, limit_s=120.0, extra=_TINY if case[1] == "rl" else ()
        ),
        CASES,
      )
    )
  for (game, mode, expected), outcome in zip(CASES, outcomes):
    assert outcome.result == expected, (game, mode, outcome)
    if expected == "refused":
      assert outcome.reason.startswith("error: ") and "Traceback" not in outcome.reason
