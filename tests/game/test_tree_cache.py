"""The disk cache of compiled trees: exact round trips, refusal of bad files, LRU bound."""

import os

import numpy as np
import pytest

from openspiel_psro_ext.game import tree_cache


@pytest.fixture
def cache_dir(tmp_path):
  before = tree_cache.settings()
  yield tree_cache.configure(directory=str(tmp_path), min_compile_s=0.0).directory
  tree_cache.configure(
    directory=before.directory,
    enabled=before.directory is not None,
    max_bytes=before.max_bytes,
    min_compile_s=before.min_compile_s,
  )


def _arrays(seed):
  rng = np.random.default_rng(seed)
  return {
    "parent": rng.integers(-1, 50, size=100),
    "chance_reach": rng.random(100),
    "strings": np.asarray(["a", "bb", "ccc"]),
  }


def test_store_then_load_gives_the_same_arrays(cache_dir):
  key = tree_cache.key("kuhn_poker", "digest")
  arrays = _arrays(0)
  assert tree_cache.store(key, arrays, compile_seconds=5.0) is not None
  loaded = tree_cache.load(key)
  assert loaded is not None and sorted(loaded) == sorted(arrays)
  for name, array in arrays.items():
    assert loaded[name].dtype == array.dtype
    np.testing.assert_array_equal(loaded[name], array)


def test_key_names_the_game_the_versions_and_the_compiler():
  key = tree_cache.key("leduc_poker", "abc")
  assert key.startswith("leduc_poker|open_spiel ")
  assert "openspiel_psro_ext" in key and key.endswith("compiler abc")
  assert tree_cache.key("leduc_poker", "abd") != key


def test_fast_compiles_and_a_disabled_cache_store_nothing(cache_dir):
  tree_cache.configure(directory=cache_dir, min_compile_s=1.0)
  assert tree_cache.store("k", _arrays(0), compile_seconds=0.1) is None
  tree_cache.configure(enabled=False)
  assert tree_cache.store("k", _arrays(0), compile_seconds=9.0) is None
  assert tree_cache.load("k") is None
  assert os.listdir(cache_dir) == []


def test_corrupt_and_foreign_files_are_ignored(cache_dir, caplog):
  key = tree_cache.key("kuhn_poker", "x")
  path = tree_cache.store(key, _arrays(0), compile_seconds=5.0)
  with open(path, "r+b") as f:  # truncate: a write cut short
    f.truncate(os.path.getsize(path) // 2)
  assert tree_cache.load(key) is None
  assert "unreadable" in caplog.text and not os.path.exists(path)
  other = tree_cache.key("leduc_poker", "x")
  path = tree_cache.store(other, _arrays(1), compile_seconds=5.0)
  os.replace(path, tree_cache._path(cache_dir, key))  # pylint: disable=protected-access
  assert tree_cache.load(key) is None
  assert "holds" in caplog.text


def test_a_pickled_object_is_never_loaded(cache_dir):
  key = tree_cache.key("kuhn_poker", "x")
  path = tree_cache._path(cache_dir, key)  # pylint: disable=protected-access
  np.savez(path, parent=np.asarray([object()], dtype=object), __key__=np.asarray(key))
  assert tree_cache.load(key) is None


def test_least_recently_used_entries_go_past_the_bound(cache_dir):
  keys = [tree_cache.key(f"game{i}", "x") for i in range(3)]
  paths = [tree_cache.store(k, _arrays(i), compile_seconds=5.0) for i, k in enumerate(keys)]
  size = os.path.getsize(paths[0])
  for age, path in enumerate(paths):  # oldest first
    os.utime(path, (1000 + age, 1000 + age))
  assert tree_cache.load(keys[0]) is not None  # a use: now the newest
  tree_cache.configure(directory=cache_dir, max_bytes=int(3.5 * size))
  tree_cache.store(tree_cache.key("game3", "x"), _arrays(3), compile_seconds=5.0)
  assert not os.path.exists(paths[1])  # the least recently used
  assert os.path.exists(paths[0]) and os.path.exists(paths[2])


@pytest.mark.parametrize("game_string", ["leduc_poker", "liars_dice(dice_sides=3)"])
def test_a_cached_tree_equals_the_compiled_one(cache_dir, game_string):
  from openspiel_psro_ext.game import exploitability, game_tree  # pylint: disable=g-import-not-at-top

  game_tree._cached_tree.cache_clear()  # pylint: disable=protected-access
  compiled = game_tree.get_tree(game_string)  # compiles, then stores
  assert len(os.listdir(cache_dir)) == 1
  game_tree._cached_tree.cache_clear()  # pylint: disable=protected-access
  loaded = game_tree.get_tree(game_string)  # a new process would load it the same way
  assert loaded is not compiled
  expected, actual = compiled.to_arrays(), loaded.to_arrays()
  assert sorted(expected) == sorted(actual)
  for name in expected:
    assert actual[name].dtype == expected[name].dtype, name
    np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
  for before, after in zip(compiled.infostates, loaded.infostates):
    assert before.strings == after.strings and before.index == after.index
    assert before.level_slices == after.level_slices
    assert [s.information_state_string() for s in after.states[:20]] == after.strings[:20]
  uniform = compiled.uniform_policy()
  assert (
    exploitability.nash_conv_from_reach(
      loaded, [loaded.terminal_reach(p, m) for p, m in enumerate(uniform)]
    ).nash_conv
    == exploitability.nash_conv_from_reach(
      compiled, [compiled.terminal_reach(p, m) for p, m in enumerate(uniform)]
    ).nash_conv
  )
  game_tree._cached_tree.cache_clear()  # pylint: disable=protected-access
