"""Cost of one run-metrics pass against the population size, on Leduc poker.

    python benchmarks/metrics.py [--members=10,100,400,1000,2000] [--repeats=3]

For each population size N (per player) it builds a synthetic population of N
random policies per player (half of them deterministic), a Dirichlet
meta-strategy over a support of `--support` members (the newest ones, as in a
PSRO run whose meta-solver keeps few members) and the exact `[2, N, N]` payoff
table, then times `IterationMetrics.compute` (median of `--repeats` calls
after one warm-up) and measures its peak memory with `tracemalloc` (numpy
reports its buffers there) in one more call. Building the population and the
table is not timed: they are the run's own state. One line per size:

    N  seconds/pass  CPU seconds/pass  peak MiB/pass  pairs  rated members

(CPU seconds are the honest figure on a shared machine, where a pass's wall
time includes waiting for a core.)

A pass whose cost does not grow with N (apart from the meta-strategy's
support and the inputs themselves) prints flat columns.
"""

import time
import tracemalloc

import numpy as np
from absl import app, flags

from openspiel_psro_ext.evaluation.metrics import IterationMetrics
from openspiel_psro_ext.game import game_tree, payoffs

FLAGS = flags.FLAGS
flags.DEFINE_string("game", "leduc_poker", "Game to time.")
flags.DEFINE_list("members", ["10", "100", "400", "1000", "2000"], "Population sizes per player.")
flags.DEFINE_integer("support", 40, "Members in each meta-strategy's support.")
flags.DEFINE_integer("repeats", 3, "Timed calls per size (the median is shown).")


def _population(
  tree: game_tree.GameTree, player: int, size: int, rng: np.random.Generator
) -> np.ndarray:
  mask = tree.infostates[player].legal_mask
  noise = rng.random((size,) + mask.shape) * mask
  pure = np.eye(mask.shape[1])[noise.argmax(axis=2)]
  noise[size // 2 :] = pure[size // 2 :]
  return noise / noise.sum(axis=2, keepdims=True)


def _meta_strategy(size: int, support: int, rng: np.random.Generator) -> np.ndarray:
  sigma = np.zeros(size)
  support = min(size, support)
  sigma[size - support :] = rng.dirichlet(np.ones(support))
  return sigma


def main(argv):
  del argv
  tree = game_tree.get_tree(FLAGS.game)
  start = time.perf_counter()
  metrics = IterationMetrics(tree)
  build = time.perf_counter() - start
  cfr_plus = metrics.baseline_facts.get("cfr_plus")
  print(
    f"metrics pass on {FLAGS.game}, support {FLAGS.support} per player;"
    f" baselines built in {build:.2f} s (CFR+ NashConv"
    f" {cfr_plus.nash_conv if cfr_plus else np.nan:.2e})"
  )
  print(f"{'N':>6} {'s/pass':>8} {'cpu s':>8} {'peak MiB':>9} {'pairs':>6} {'rated':>6}")
  rng = np.random.default_rng(0)
  for size in (int(m) for m in FLAGS.members):
    populations = [_population(tree, p, size, rng) for p in range(tree.num_players)]
    sigmas = [_meta_strategy(size, FLAGS.support, rng) for _ in populations]
    meta_games = payoffs.payoff_tensors(tree, populations)
    result = metrics.compute(populations, sigmas, meta_games)  # Warm-up.
    times, cpu_times = [], []
    for _ in range(FLAGS.repeats):
      start, cpu_start = time.perf_counter(), time.process_time()
      metrics.compute(populations, sigmas, meta_games)
      times.append(time.perf_counter() - start)
      cpu_times.append(time.process_time() - cpu_start)
    tracemalloc.start()
    metrics.compute(populations, sigmas, meta_games)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pairs = result.diversity.pairs
    rated = result.elo.rated_members if result.elo is not None else [range(size)] * 2
    print(
      f"{size:>6} {np.median(times):>8.3f} {np.median(cpu_times):>8.3f}"
      f" {peak / 2**20:>9.1f}"
      f" {max(pairs):>6} {max(len(r) for r in rated):>6}",
      flush=True,
    )


if __name__ == "__main__":
  app.run(main)
