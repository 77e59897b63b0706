"""The compiled tree against known counts and a direct pyspiel walk."""

import pickle
import time

import numpy as np
import pyspiel
import pytest
from open_spiel.python import policy as policy_lib
from open_spiel.python.algorithms import exploitability as os_exploitability

from openspiel_psro_ext.game import exploitability, game_tree


@pytest.mark.parametrize(
  "name,histories,terminals,infostates",
  [
    ("kuhn_poker", 58, 30, [6, 6]),
    ("leduc_poker", 9457, 5520, [468, 468]),
    ("kuhn_poker(players=3)", 617, 312, [16, 16, 16]),
  ],
)
def test_known_sizes(name, histories, terminals, infostates):
  tree = game_tree.compile_game(name)
  assert tree.num_histories == histories
  assert tree.num_terminals == terminals
  assert [t.num_infostates for t in tree.infostates] == infostates


def test_arrays_are_consistent_with_pyspiel():
  game = pyspiel.load_game("leduc_poker")
  tree = game_tree.compile_game(game)
  # Parents precede children and every edge is recorded in `child`.
  nonroot = np.arange(1, tree.num_histories)
  assert np.all(tree.parent[nonroot] < nonroot)
  assert np.all(tree.child[tree.parent[nonroot], tree.action[nonroot]] == nonroot)
  # Terminal reach probabilities under any joint policy sum to one; chance
  # rows are distributions.
  uniform = tree.uniform_policy()
  reach = tree.terminal_chance_reach * np.prod(
    [tree.terminal_reach(p, uniform[p]) for p in range(2)], axis=0
  )
  assert reach.sum() == pytest.approx(1.0)
  chance = tree.player == int(pyspiel.PlayerId.CHANCE)
  np.testing.assert_allclose(tree.chance_probs[chance].sum(axis=1), 1.0)
  # Replaying each terminal's action path in pyspiel gives its returns.
  rng = np.random.default_rng(0)
  for z in rng.choice(tree.terminals, size=50, replace=False):
    path = []
    h = z
    while tree.parent[h] >= 0:
      path.append(tree.action[h])
      h = tree.parent[h]
    state = game.new_initial_state()
    for a in reversed(path):
      if not state.is_chance_node():
        p = state.current_player()
        table = tree.infostates[p]
        row = table.index[state.information_state_string(p)]
        assert table.legal_mask[row].nonzero()[0].tolist() == state.legal_actions()
        np.testing.assert_allclose(table.tensors[row], state.information_state_tensor(p))
      state.apply_action(int(a))
    assert state.is_terminal()
    np.testing.assert_allclose(tree.returns[z], state.returns())


def test_uniform_realization_plan_matches_reach_product():
  tree = game_tree.compile_game("kuhn_poker")
  for p in range(2):
    reach = tree.terminal_reach(p, tree.uniform_policy()[p])
    # Kuhn: each own decision on the path halves the reach.
    own_moves = np.zeros(tree.num_terminals)
    for k, z in enumerate(tree.terminals):
      h = z
      while tree.parent[h] >= 0:
        own_moves[k] += tree.player[tree.parent[h]] == p
        h = tree.parent[h]
    np.testing.assert_allclose(reach, 0.5**own_moves)


def test_too_large_game_is_refused_with_counts():
  with pytest.raises(game_tree.GameTooLargeError, match="more than 1,000 histories"):
    game_tree.compile_game("leduc_poker", max_histories=1000)


def test_simultaneous_game_is_converted():
  tree = game_tree.compile_game("goofspiel(num_cards=3)")
  assert tree.game.get_type().dynamics == pyspiel.GameType.Dynamics.SEQUENTIAL
  assert tree.num_terminals > 0


def test_non_sequential_game_is_refused():
  with pytest.raises(ValueError, match="only sequential games"):
    game_tree.compile_game("mfg_crowd_modelling")


def test_get_tree_caches_by_game_string():
  assert game_tree.get_tree("kuhn_poker") is game_tree.get_tree(pyspiel.load_game("kuhn_poker"))


def test_check_compilable_counts_every_history():
  estimate = game_tree.check_compilable("leduc_poker")
  assert estimate.complete and estimate.compiles
  assert estimate.num_histories == 9457
  assert estimate.refusal() == ""
  assert game_tree.compiles("kuhn_poker")


def test_check_compilable_stops_past_the_limit():
  # 5,000 of Leduc's 9,457: too near for the size estimate, so counted.
  estimate = game_tree.check_compilable("leduc_poker", max_histories=5000)
  assert not estimate.compiles
  assert estimate.num_histories == 5001
  assert "more than 5,000 histories" in estimate.refusal()
  assert "--evaluation=simulated" in estimate.refusal()
  assert not game_tree.compiles("leduc_poker", max_histories=5000)
  # Far below it, random playouts refuse it before any count.
  assert game_tree.check_compilable("leduc_poker", max_histories=1000).stopped_by == "size"


def test_game_too_large_to_count_in_time_is_refused_naming_simulated_mode():
  # No CPU time at all: the walk records its first slice, then counts nothing.
  with pytest.raises(
    game_tree.GameTooLargeError, match=r"at least [\d,]+ histories.*--evaluation=simulated"
  ):
    game_tree.compile_game("leduc_poker", time_limit_s=0.0)
  assert not game_tree.compiles("leduc_poker", time_limit_s=0.0)


def test_chess_is_refused_quickly():
  start = time.process_time()
  with pytest.raises(game_tree.GameTooLargeError, match="simulated mode"):
    game_tree.compile_game("chess", time_limit_s=0.5)
  # The limit plus loading the game; generous for slow machines.
  assert time.process_time() - start < 3.0


def test_game_without_information_states_is_refused():
  with pytest.raises(ValueError, match="provides no information_state_string"):
    game_tree.compile_game("catch")
  assert not game_tree.compiles("catch")


def test_information_state_found_beyond_the_type_flag():
  # The turn-based iterated prisoner's dilemma says it has no information-state
  # string or tensor, yet its states have both.
  game = pyspiel.load_game("python_iterated_prisoners_dilemma(max_game_length=3)")
  assert not game.get_type().provides_information_state_string
  tree = game_tree.compile_game(game)
  uniform = tree.uniform_policy()
  reach = tree.terminal_chance_reach * np.prod(
    [tree.terminal_reach(p, uniform[p]) for p in range(2)], axis=0
  )
  assert reach.sum() == pytest.approx(1.0)
  # One information state per joint history of the earlier rounds.
  assert tree.infostates[0].tensors is not None
  assert tree.infostates[0].num_infostates == 1 + 4 + 16
  # NashConv of the uniform policy agrees with OpenSpiel's.
  policy = policy_lib.TabularPolicy(tree.game)
  assert exploitability.nash_conv(tree.game, policy) == pytest.approx(
    os_exploitability.nash_conv(tree.game, policy), abs=1e-9
  )


def test_states_are_rebuilt_from_their_paths():
  tree = game_tree.compile_game("leduc_poker")
  for p, table in enumerate(tree.infostates):
    states = table.states
    assert len(states) == table.num_infostates
    for i in range(0, table.num_infostates, 37):
      assert states[i].information_state_string(p) == table.strings[i]
      path = []
      h = table.histories[i]
      while tree.parent[h] >= 0:
        path.append(int(tree.action[h]))
        h = tree.parent[h]
      assert states[i].history() == path[::-1]


def test_tree_pickles_with_its_states():
  tree = game_tree.compile_game("kuhn_poker")
  copy = pickle.loads(pickle.dumps(tree))
  np.testing.assert_array_equal(copy.child, tree.child)
  assert [s.history() for s in copy.infostates[1].states] == [
    s.history() for s in tree.infostates[1].states
  ]


def test_count_stops_at_the_memory_limit():
  # A negative allowance is spent at the first check.
  estimate = game_tree.check_compilable("leduc_poker", memory_limit_mb=-1)
  assert not estimate.compiles and estimate.stopped_by == "memory"
  assert "MB of memory" in estimate.refusal()


def test_information_states_are_ordered_by_level_then_first_visit():
  tree = game_tree.compile_game("kuhn_poker(players=3)")
  for p, table in enumerate(tree.infostates):
    assert np.all(np.diff(table.level) >= 0)
    for states in table.level_slices:
      assert np.all(np.diff(table.histories[states]) > 0)
    # Each information state's first history is the first history where it
    # appears in depth-first order.
    decisions = np.flatnonzero(tree.player == p)
    first = np.full(table.num_infostates, tree.num_histories)
    np.minimum.at(first, tree.infostate[decisions], decisions)
    np.testing.assert_array_equal(first, table.histories)


def test_get_tree_remembers_refusals():
  with pytest.raises(game_tree.GameTooLargeError) as first:
    game_tree.get_tree("leduc_poker", max_histories=999)
  start = time.process_time()
  with pytest.raises(game_tree.GameTooLargeError) as second:
    game_tree.get_tree("leduc_poker", max_histories=999)
  assert str(second.value) == str(first.value)
  assert time.process_time() - start < 0.1
