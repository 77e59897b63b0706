"""Which view a game gets, and the one-line refusals where it gets none."""

import numpy as np
import pytest

from openspiel_psro_ext.errors import UsageError
from openspiel_psro_ext.psro import PSRO, PSROConfig, views
from openspiel_psro_ext.simulated import simulation


def _view(game: str, evaluation: str = "auto", needs_tree: bool = False) -> views.View:
  return views.make_view(
    game, evaluation, 2_000_000, False, 0, simulation.SamplingConfig(), needs_tree=needs_tree
  )


@pytest.mark.parametrize(
  "game",
  [
    "liars_dice_ir",  # imperfect recall
    "negotiation",  # sampled chance, no information-state string
    "oshi_zumo(coins=3,size=1)",  # simultaneous, no information-state tensor
  ],
)
def test_auto_simulates_what_does_not_compile(game):
  view = _view(game)
  assert view.simulated and view.tree is None
  assert view.game.get_type().dynamics.name == "SEQUENTIAL"  # turn-based where simultaneous


def test_exact_refusals_give_the_reason_and_only_advice_that_works():
  with pytest.raises(UsageError, match="perfect recall.*--evaluation=simulated"):
    _view("liars_dice_ir", "exact")
  with pytest.raises(UsageError, match="perfect recall.*an RL oracle"):
    _view("liars_dice_ir", needs_tree=True)
  # tarok gives no tensor, but its string plays in the simulated mode
  # (`simulation.encode_string`), so that is the advice; the simulated view
  # is made for it.
  with pytest.raises(UsageError, match="sampled .* chance.*--evaluation=simulated"):
    _view("tarok", "exact")
  assert _view("tarok").simulated


def test_a_game_too_large_is_refused_by_its_size_estimate_in_one_line():
  # nim's count ran to 2,000,001 histories (seconds) before refusing; random
  # playouts show it too large at once. The exact oracle needs the tree.
  with pytest.raises(UsageError, match=r"nim\(\) has more than 2,000,000 histories") as refused:
    _view("nim", needs_tree=True)
  message = str(refused.value)
  assert "Knuth's estimate" in message and "an RL oracle" in message and "\n" not in message


def test_a_game_is_loaded_once_per_command():
  # colored_trails reads its boards on each load (0.3 s); the command asks for
  # the game by the user's string and by pyspiel's.
  game = views.load_game("colored_trails")
  assert views.load_game("colored_trails") is game
  assert views.load_game(str(game)) is game


@pytest.mark.parametrize(
  "game, reason",
  [
    ("cliff_walking", "has 1 player"),
    ("mfg_garnet", "mean-field game"),
    ("nfg_game", r"pyspiel failed to load 'nfg_game': IndexError: map::at"),
  ],
)
def test_games_psro_does_not_apply_to_are_refused_in_one_line(game, reason):
  with pytest.raises(UsageError, match=reason) as refused:
    _view(game)
  assert "\n" not in str(refused.value)


def test_a_converted_python_game_compiles_runs_and_verifies():
  # Its TabularPolicy does not key states by our information-state strings:
  # verification hands OpenSpiel a MatrixPolicy instead.
  run = PSRO(
    PSROConfig(
      game="python_iterated_prisoners_dilemma(max_game_length=3)",
      oracle="exact",
      iterations=3,
      time_budget_s=0,
      target_nash_conv=0,
    )
  )
  run.run()
  assert run.view.tree is not None
  assert np.isclose(run.verify(1e-6), run.records[-1].nash_conv)


def test_the_meta_solver_default_follows_the_players():
  from openspiel_psro_ext.psro import config as psro_config  # pylint: disable=g-import-not-at-top

  assert psro_config.resolve(PSROConfig(game="kuhn_poker", oracle="exact")).meta_solver == "nash"
  assert psro_config.resolve(PSROConfig(game="hearts")).meta_solver == "prd"
  assert psro_config.resolve(PSROConfig(game="kuhn_poker", meta_solver="uniform")).meta_solver == (
    "uniform"
  )


@pytest.mark.parametrize("evaluation", ["auto", "simulated"])
def test_a_game_contradicting_its_own_action_count_is_refused_in_one_line(evaluation):
  # chat_game (OpenSpiel's Python game, mock LLM) declares 2 distinct actions
  # and then lists 8 legal ones: no mode can give policies an output per action.
  with pytest.raises(UsageError, match="gives legal action 7 while its num_distinct_actions"):
    _view("chat_game", evaluation)
