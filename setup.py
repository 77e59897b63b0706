"""openspiel_psro_ext: exact, fast PSRO on top of OpenSpiel."""

import setuptools

_STOCK = ["cvxpy>=1.3", "ecos>=2.0", "networkx>=2.6"]
_STOCK_RL = [
  "jax>=0.8.1",
  "jaxlib>=0.8.1",
  "chex>=0.1.91",
  "dm-haiku>=0.0.16",
  "optax>=0.2.6",
  "rlax>=0.1.8",
  "distrax>=0.1.7",
  "flax>=0.12.1",
  "orbax-checkpoint>=0.11",
  "etils>=1.5",
]

setuptools.setup(
  name="openspiel_psro_ext",
  version="0.1.0",
  description=(
    "Exact, vectorised PSRO (Policy-Space Response Oracles) for OpenSpiel:"
    " compiled game trees, exact NashConv, meta-solvers and RL oracles."
  ),
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  packages=setuptools.find_packages(include=["openspiel_psro_ext", "openspiel_psro_ext.*"]),
  python_requires=">=3.10",
  install_requires=[
    "open_spiel>=1.5",
    "torch>=2.1",
    "numpy>=1.24",
    "scipy>=1.10",
    "absl-py>=1.0",
    "matplotlib>=3.5",
    "threadpoolctl>=3.1",
    "highspy>=1.7",
  ],
  extras_require={
    # Stock psro_v2 (for --compare_stock) imports cvxpy; its 'nash' needs ECOS
    # and its alpharank needs networkx. Our own code needs none of them.
    "stock": _STOCK,
    # Stock's own RL PSRO (psro_v2 rl_oracle + rl_policy: OpenSpiel's JAX
    # policy gradient and DQN), which --compare_stock runs for RL oracles.
    # CPU JAX from PyPI; constraints.txt pins the versions OpenSpiel tests.
    "stock-rl": _STOCK + _STOCK_RL,
    # tensorboard: CI runs the --tensorboard test too; JAX: CI runs stock's
    # own RL PSRO (about 45 s more install and 0.5 GB, measured).
    # ruff and mypy: .ci/run checks lint, format and types before the tests
    # (versions pinned in constraints.txt: a newer ruff may format differently).
    "test": [
      "pytest>=7",
      "hypothesis>=6.100",
      "ruff>=0.15",
      "mypy>=1.10",
      "ray>=2.9",
      "tensorboard>=2.10",
    ]
    + _STOCK
    + _STOCK_RL,
    "tensorboard": ["tensorboard>=2.10"],
    # backend="ray": best responses as parallel Ray tasks (run.py --backend=ray).
    "ray": ["ray>=2.9"],
  },
)
