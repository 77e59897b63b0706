"""Games against OpenSpiel's MCTS and IS-MCTS bots: seeded, on any backend, in the records."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pyspiel
import pytest

from openspiel_psro_ext import backends
from openspiel_psro_ext.evaluation.metrics import bots
from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.records import IterationRecord
from openspiel_psro_ext.records.summary import RunSummary
from openspiel_psro_ext.runs import checkpoints
from openspiel_psro_ext.simulated import simulation

# Tiny: a few games at few simulations (the defaults are 10, 100 and 1000).
TINY = bots.BotConfig(simulations=(2, 20), games=8, task_games=3, seed=7)


def _uniform_members(game):
  modules = [[simulation.UniformRandomPolicy()] for _ in range(game.num_players())]
  return bots.member_policies(game, None, None, modules), [np.ones(1)] * game.num_players()


def _results(game, config, backend=None):
  members, sigma = _uniform_members(game)
  backend = backend or backends.EmbeddedBackend()
  return bots.versus_bots(game, members, sigma, config, backend)


def _without_time(results):
  return dataclasses.replace(results, seconds=0.0)


def test_bot_kind_by_information():
  assert bots.bot_kind(pyspiel.load_game("connect_four")) == bots.MCTS
  assert bots.bot_kind(pyspiel.load_game("phantom_ttt")) == bots.ISMCTS
  assert bots.bot_kind(pyspiel.load_game("dark_hex(board_size=3)")) == bots.ISMCTS
  with pytest.raises(ValueError, match="simultaneous"):
    bots.bot_kind(pyspiel.load_game("matrix_rps"))


@pytest.mark.parametrize("name", ["tic_tac_toe", "phantom_ttt"])
def test_bot_games_are_reproducible_with_a_seed(name):
  game = pyspiel.load_game(name)
  first, again = _results(game, TINY), _results(game, TINY)
  assert _without_time(first) == _without_time(again)
  assert [v.name for v in first.versus] == [f"{bots.bot_kind(game)}{n}" for n in (2, 20)]
  for versus in first.versus:
    assert versus.games == TINY.games and len(versus.seats) == 2
    for outcome in [versus.mean, *versus.seats]:
      assert outcome.win_rate + outcome.draw_rate + outcome.loss_rate == pytest.approx(1.0)
  other = _results(game, dataclasses.replace(TINY, seed=8, games=20))
  assert _without_time(other) != _without_time(first)


def test_consistent_worlds_share_the_bots_information_state():
  """phantom_ttt cannot resample its states; the rejection sampler's worlds
  give the bot the information state it has in the real game."""
  game = pyspiel.load_game("phantom_ttt")
  assert not bots.resamples(game) and bots.resamples(pyspiel.load_game("kuhn_poker"))
  rng = np.random.default_rng(0)
  state = game.new_initial_state()
  for _ in range(5):
    state.apply_action(int(rng.choice(state.legal_actions())))
  player = state.current_player()
  sampler = bots.ConsistentWorlds(game, np.random.RandomState(0))
  worlds = [sampler(state, player) for _ in range(20)]
  for world in worlds:
    assert world.information_state_string(player) == state.information_state_string(player)
  assert len({w.history_str() for w in worlds}) > 1  # other hidden moves, not the real ones


def test_tasks_split_games_over_seats_with_their_own_seeds():
  game = pyspiel.load_game("tic_tac_toe")
  tasks = bots.bot_tasks(game, bots.Bot(bots.MCTS, 10), games=9, task_games=3, seed=(1,))
  assert [(t.seat, t.num_games) for t in tasks] == [(0, 3), (0, 2), (1, 3), (1, 1)]
  assert len({t.seed for t in tasks}) == len(tasks)


def test_search_beats_random_play():
  """Uniform random play against MCTS-200 at tic-tac-toe: it rarely wins."""
  game = pyspiel.load_game("tic_tac_toe")
  results = _results(game, bots.BotConfig(simulations=(200,), games=10, seed=1))
  (versus,) = results.versus
  assert versus.mean.win_rate <= 0.2 and versus.mean.loss_rate >= 0.6


def test_matrix_members_play_by_information_state():
  """A compiled view's matrices play through `policies.MatrixPolicy`: a member
  that always checks/calls at Kuhn poker never folds."""
  tree = game_tree.get_tree("kuhn_poker")
  members = [tree.infostates[p].uniform_policy()[None] for p in range(2)]
  policies = bots.member_policies(tree.game, tree, members, None)
  results = bots.versus_bots(
    tree.game, policies, [np.ones(1), np.ones(1)], TINY, backends.EmbeddedBackend()
  )
  assert [v.bot for v in results.versus] == [bots.ISMCTS, bots.ISMCTS]


def test_run_records_bot_results(tmp_path):
  """`--bot_simulations` puts the results in the records, the summary and a plot."""
  out = str(tmp_path / "run")
  env = dict(os.environ, RAY_AUTH_MODE="disabled")
  args = [
    "--game=tic_tac_toe",
    "--oracle=exact",
    "--iterations=2",
    "--backend=embedded",
    "--metrics_every=0",
    "--bot_simulations=2,5",
    "--bot_games=4",
    f"--output_dir={out}",
  ]
  proc = subprocess.run(
    [sys.executable, "-m", "openspiel_psro_ext.run", *args],
    capture_output=True,
    text=True,
    env=env,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  records = [IterationRecord.from_json(r) for r in checkpoints.read_metrics(out)]
  assert records[-1].bots is not None and records[0].bots is None  # the last one only
  assert [v.name for v in records[-1].bots.versus] == ["mcts2", "mcts5"]
  with open(os.path.join(out, "summary.json")) as f:
    summary = RunSummary.from_json(json.load(f))
  assert summary.bots == records[-1].bots
  assert os.path.exists(os.path.join(out, "bots.png"))
  assert "win_vs_mcts5=" in proc.stderr


@pytest.mark.slow
def test_bot_games_on_ray_equal_embedded():
  pytest.importorskip("ray")
  game = pyspiel.load_game("tic_tac_toe")
  backend = backends.RayBackend(num_cpus=2)
  try:
    on_ray = _results(game, TINY, backend)
  finally:
    backend.close()
  assert _without_time(on_ray) == _without_time(_results(game, TINY))
