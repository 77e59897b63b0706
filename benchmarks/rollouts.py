"""Learner steps per second on leduc_poker: our tree rollouts vs rl_environment.

  python benchmarks/rollouts.py [--seconds=5] [--num_envs=16384]

Both sides play a uniformly random learner (player 0) against a uniformly
random opponent, in this process, one after the other:

* ours: `TreeVecEnv` (numpy, `num_envs` games per step; chance and the
  opponent advanced automatically; one learner decision per game per step);
* stock: `open_spiel.python.rl_environment.Environment` with OpenSpiel's
  `random_agent.RandomAgent` for both players, counting player 0's steps.

Target: at least 100x.
"""

import argparse
import time

import numpy as np
from open_spiel.python import rl_environment
from open_spiel.python.algorithms import random_agent

from openspiel_psro_ext import game_tree
from openspiel_psro_ext.oracles import rollouts


def ours(game: str, seconds: float, num_envs: int) -> float:
  tree = game_tree.get_tree(game)
  uniform = tree.uniform_policy()
  pops = [None] + [u[None] for u in uniform[1:]]
  weights = [None] + [np.ones(1)] * (tree.num_players - 1)
  env = rollouts.TreeVecEnv(tree, 0, pops, weights, num_envs, seed=0)
  rng = np.random.default_rng(0)
  _, legal = env.reset()
  steps = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    _, legal, _, _ = env.step(rollouts.uniform_legal_actions(legal, rng))
    steps += num_envs
  return steps / (time.perf_counter() - start)


def stock(game: str, seconds: float) -> float:
  env = rl_environment.Environment(game)
  num_actions = env.action_spec()["num_actions"]
  agents = [random_agent.RandomAgent(p, num_actions) for p in range(env.num_players)]
  steps = 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    step = env.reset()
    while not step.last():
      player = step.observations["current_player"]
      steps += player == 0
      step = env.step([agents[player].step(step).action])
    for agent in agents:
      agent.step(step)
  return steps / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--num_envs", type=int, default=16384)
  args = parser.parse_args()
  theirs = stock(args.game, args.seconds)
  mine = ours(args.game, args.seconds, args.num_envs)
  ratio = mine / theirs
  print(f"stock rl_environment + RandomAgent: {theirs:,.0f} learner steps/s")
  print(f"ours  TreeVecEnv ({args.num_envs} games): {mine:,.0f} learner steps/s")
  print(f"{'PASS' if ratio >= 100 else 'MISS'}: {ratio:.0f}x (target >= 100x)")


if __name__ == "__main__":
  main()
