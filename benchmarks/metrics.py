"""Timing of the per-iteration run metrics on a 100-member Leduc population.

    python benchmarks/metrics.py [--members=100] [--repeats=5]

Prints one line: the time of `IterationMetrics.compute` (win rates against
four baselines, Elo of 2 x 104 policies, both diversity measures) for random
populations of `members` policies per player, half of them deterministic, plus
the one-off baseline build time (CFR+ included) and the CFR+ NashConv.
"""

import time

from absl import app
from absl import flags
import numpy as np

from openspiel_psro_ext import game_tree, payoffs
from openspiel_psro_ext.metrics import IterationMetrics

FLAGS = flags.FLAGS
flags.DEFINE_string("game", "leduc_poker", "Game to time.")
flags.DEFINE_integer("members", 100, "Population size per player.")
flags.DEFINE_integer("repeats", 5, "Timed calls (the median is reported).")


def _population(tree, player, size, rng):
  mask = tree.infostates[player].legal_mask
  noise = rng.random((size,) + mask.shape) * mask
  pure = np.eye(mask.shape[1])[noise.argmax(axis=2)]
  noise[size // 2:] = pure[size // 2:]
  return noise / noise.sum(axis=2, keepdims=True)


def main(argv):
  del argv
  tree = game_tree.get_tree(FLAGS.game)
  start = time.perf_counter()
  metrics = IterationMetrics(tree)
  build = time.perf_counter() - start
  rng = np.random.default_rng(0)
  populations = [_population(tree, p, FLAGS.members, rng)
                 for p in range(tree.num_players)]
  sigmas = [rng.dirichlet(np.ones(FLAGS.members)) for _ in populations]
  meta_games = payoffs.payoff_tensors(tree, populations)
  metrics.compute(populations, sigmas, meta_games)  # Warm-up.
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    metrics.compute(populations, sigmas, meta_games)
    times.append(time.perf_counter() - start)
  print(f"metrics {FLAGS.game} {FLAGS.members} members/player:"
        f" compute median {np.median(times) * 1e3:.0f} ms"
        f" (min {min(times) * 1e3:.0f} ms, {FLAGS.repeats} runs);"
        f" baselines built in {build:.2f} s, CFR+ NashConv"
        f" {metrics.baseline_info.get('baselines/cfr_plus/nash_conv', float('nan')):.2e}"
        f" after {metrics.baseline_info.get('baselines/cfr_plus/iterations', 0):.0f}"
        " iterations")


if __name__ == "__main__":
  app.run(main)
