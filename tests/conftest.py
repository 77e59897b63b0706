"""Shared fixtures (helpers live in `tests/helpers.py`)."""

import os
import tempfile

import numpy as np
import pytest

# Compiled trees go to a disk cache; the tests (and the commands they start)
# use one of their own, so they neither read nor fill the user's.
os.environ.setdefault("OPENSPIEL_PSRO_EXT_TREE_CACHE", tempfile.mkdtemp(prefix="tree_cache_"))


@pytest.fixture
def rng():
  return np.random.default_rng(1234)
