"""Learner steps per second: our rollouts vs OpenSpiel's rl_environment.

  python benchmarks/rollouts.py [--seconds=5] [--num_envs=16384]
      [--sim_num_envs=1024] [--games=leduc_poker,universal_poker]

Every side plays a uniformly random learner (player 0), in this process, in
turns (each side runs `seconds / 6` at a time, six times, so that all see the
same load on a shared machine), and counts the learner's decisions:

* stock: `open_spiel.python.rl_environment.Environment` with OpenSpiel's
  `random_agent.RandomAgent` for every player;
* ours, simulated: `PyspielVecEnv` (pyspiel states, `sim_num_envs` games at
  once) against (a) the uniform random policy and (b) a `TorchPolicy`
  opponent (an untrained 64x64 PPO actor: a real population member, one
  batched forward pass per step for all waiting games);
* ours, compiled: `TreeVecEnv` (numpy over the compiled tree, `num_envs`
  games), for games that compile.

Targets: simulated at least 5x stock on every game (issue 13), compiled at
least 100x on leduc_poker. `universal_poker` (2-player limit hold'em) stands
for the games that do not compile; `liars_dice` is another choice.
"""

import argparse
import time

import numpy as np
import pyspiel
import torch
from open_spiel.python import rl_environment
from open_spiel.python.algorithms import random_agent

from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import rollouts, torch_policy
from openspiel_psro_ext.simulated import simulation


class _VecStepper:
  """A uniformly random learner on a vectorised environment."""

  def __init__(self, env, num_envs: int):
    self.env, self.num_envs = env, num_envs
    self.rng = np.random.default_rng(0)
    _, self.legal = env.reset()

  def run(self, seconds: float) -> int:
    """Learner steps taken in about `seconds`."""
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
      _, self.legal, _, _ = self.env.step(rollouts.uniform_legal_actions(self.legal, self.rng))
      steps += self.num_envs
    return steps


class _StockStepper:
  """`rl_environment` with a `RandomAgent` per player; counts player 0's steps."""

  def __init__(self, game: str):
    self.env = rl_environment.Environment(game)
    num_actions = self.env.action_spec()["num_actions"]
    self.agents = [random_agent.RandomAgent(p, num_actions) for p in range(self.env.num_players)]

  def run(self, seconds: float) -> int:
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
      step = self.env.reset()
      while not step.last():
        player = step.observations["current_player"]
        steps += player == 0
        step = self.env.step([self.agents[player].step(step).action])
      for agent in self.agents:
        agent.step(step)
    return steps


def tree_env(game: str, num_envs: int) -> _VecStepper:
  tree = game_tree.get_tree(game)
  uniform = tree.uniform_policy()
  pops = [None] + [u[None] for u in uniform[1:]]
  weights = [None] + [np.ones(1)] * (tree.num_players - 1)
  opponents = base.MemberMixture(pops, weights)
  return _VecStepper(rollouts.TreeVecEnv(tree, 0, opponents, num_envs, seed=0), num_envs)


def simulated_env(game: str, num_envs: int, opponent: str) -> _VecStepper:
  loaded = pyspiel.load_game(game)
  players = loaded.num_players()
  torch.manual_seed(0)
  if opponent == "uniform":
    members = [simulation.UniformRandomPolicy() for _ in range(players)]
  else:
    members = [
      torch_policy.TorchPolicy(loaded, q, loaded.information_state_tensor_shape(), (64, 64))
      for q in range(players)
    ]
  pops = [None] + [[members[q]] for q in range(1, players)]
  weights = [None] + [np.ones(1)] * (players - 1)
  opponents = base.MemberMixture(pops, weights)
  return _VecStepper(rollouts.PyspielVecEnv(loaded, 0, opponents, num_envs, seed=0), num_envs)


def interleaved(steppers: dict[str, object], seconds: float, rounds: int = 6) -> dict[str, float]:
  """Steps per second of each stepper, run in turns of `seconds / rounds`
  each, so that all see the same load on a shared machine."""
  steps = dict.fromkeys(steppers, 0)
  for _ in range(rounds):
    for name, stepper in steppers.items():
      steps[name] += stepper.run(seconds / rounds)
  return {name: n / seconds for name, n in steps.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--games", default="leduc_poker,universal_poker")
  parser.add_argument("--seconds", type=float, default=5.0)
  parser.add_argument("--num_envs", type=int, default=16384)
  parser.add_argument("--sim_num_envs", type=int, default=1024)
  parser.add_argument(
    "--compiled", default="leduc_poker", help="games also measured on the compiled tree"
  )
  args = parser.parse_args()
  torch.set_num_threads(1)
  verdicts = []
  results_rows = []  # benchmarks/RESULTS.md: | environment | ours | stock | ratio |
  for game in args.games.split(","):
    steppers = {"stock": _StockStepper(game)}
    for opponent in ("uniform", "torch"):
      steppers[opponent] = simulated_env(game, args.sim_num_envs, opponent)
    if game in args.compiled.split(","):
      steppers["tree"] = tree_env(game, args.num_envs)
    rates = interleaved(steppers, args.seconds)
    theirs = rates["stock"]
    print(f"{game}: stock rl_environment + RandomAgent: {theirs:,.0f} learner steps/s", flush=True)
    for opponent in ("uniform", "torch"):
      ratio = rates[opponent] / theirs
      print(
        f"{game}: ours PyspielVecEnv ({args.sim_num_envs} games, {opponent}"
        f" opponent): {rates[opponent]:,.0f} learner steps/s = {ratio:.1f}x stock",
        flush=True,
      )
      verdicts.append((ratio >= 5, f"{game} simulated vs {opponent}: {ratio:.1f}x (target >= 5x)"))
      results_rows.append(
        f"| `PyspielVecEnv` (simulated), {game}, {opponent} opponent ({args.sim_num_envs} games)"
        f" | {_rate(rates[opponent])} | {_rate(theirs)} | {ratio:.1f}x |"
      )
    if "tree" in rates:
      ratio = rates["tree"] / theirs
      print(
        f"{game}: ours TreeVecEnv ({args.num_envs} games): {rates['tree']:,.0f}"
        f" learner steps/s = {ratio:.0f}x stock",
        flush=True,
      )
      verdicts.append((ratio >= 100, f"{game} compiled: {ratio:.0f}x (target >= 100x)"))
      results_rows.insert(
        0,
        f"| `TreeVecEnv`, {game} ({args.num_envs:,} games) | {_rate(rates['tree'])}"
        f" | {_rate(theirs)} | {ratio:.0f}x |",
      )
  for ok, line in verdicts:
    print(f"{'PASS' if ok else 'MISS'}: {line}")
  print("\nbenchmarks/RESULTS.md rows:")
  print("\n".join(results_rows))


def _rate(steps_per_s: float) -> str:
  """Steps per second as RESULTS.md writes them (6.8M, 36k)."""
  if steps_per_s >= 1e6:
    return f"{steps_per_s / 1e6:.1f}M steps/s"
  return f"{steps_per_s / 1e3:.0f}k steps/s"


if __name__ == "__main__":
  main()
