"""openspiel_psro_ext: exact, fast PSRO on top of OpenSpiel."""

import setuptools

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
        "stock": ["cvxpy>=1.3", "ecos>=2.0", "networkx>=2.6"],
        # tensorboard: CI runs the --tensorboard test too.
        "test": ["pytest>=7", "cvxpy>=1.3", "ecos>=2.0", "networkx>=2.6", "ray>=2.9",
                 "tensorboard>=2.10"],
        "tensorboard": ["tensorboard>=2.10"],
        # backend="ray": best responses as parallel Ray tasks (run.py --backend=ray).
        "ray": ["ray>=2.9"],
    },
)
