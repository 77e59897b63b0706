"""Best-response quality of each RL oracle on leduc_poker, measured exactly.

  python benchmarks/rl_oracles.py [--algorithms=ppo,dqn,sac] [--seconds=45]

For each algorithm, player 0 learns a best response, within the oracle's
default budget (45 s of wall time, at most 60 s), against

* the uniform random policy, and
* a fixed mixture (1/5 each) of 5 random deterministic policies.

The learned policy's exact value `v` (sequence form over the compiled tree) is
reported as the share of the exact best response's gain over uniform play,
`(v - v_uniform) / (v_BR - v_uniform)`. Target: at least 95%.
"""

import argparse
import ast
import time

import numpy as np

from openspiel_psro_ext import exploitability
from openspiel_psro_ext import game_tree
from openspiel_psro_ext import oracles
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles import rollouts


def opponents(tree: game_tree.GameTree, player: int, seed: int
              ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """`{label: ([N, I, A] population, [N] weights)}` for the opponent."""
  rng = np.random.default_rng(seed)
  mask = tree.infostates[player].legal_mask
  deterministic = []
  for _ in range(5):
    noise = rng.random(mask.shape) * mask
    deterministic.append(np.eye(mask.shape[1])[noise.argmax(axis=1)])
  return {"uniform": (tree.uniform_policy()[player][None], np.ones(1)),
          "5 random deterministic": (np.stack(deterministic), np.full(5, 0.2))}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--algorithms", default="ppo,dqn,sac")
  parser.add_argument("--seconds", type=float, default=0.0,
                      help="wall-time budget per best response (0: default)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="override a Config field of every algorithm")
  parser.add_argument("--opponents", default="uniform,5 random deterministic")
  args = parser.parse_args()
  tree = game_tree.get_tree(args.game)
  player, opponent = 0, 1
  rows = []
  for name in args.algorithms.split(","):
    cls = oracles.get(name)
    overrides = dict(progress=False)
    if args.seconds:
      overrides["time_budget_s"] = args.seconds
    for item in args.set:
      key, value = item.split("=", 1)
      overrides[key] = ast.literal_eval(value)
    for label, (population, weights) in opponents(tree, opponent, args.seed).items():
      if label not in args.opponents.split(","):
        continue
      pops, ws = [None, None], [None, None]
      pops[opponent], ws[opponent] = population, weights
      request = base.BestResponseRequest(tree, player, pops, ws, seed=args.seed)
      start = time.perf_counter()
      member = cls(cls.Config(**overrides)).best_response(request)
      seconds = time.perf_counter() - start
      weights_z = request.opponent_terminal_reach() * tree.terminal_returns[:, player]
      best, _ = exploitability.best_response_from_weights(tree, player, weights_z)
      uniform = rollouts.policy_value(request, tree.uniform_policy()[player])
      value = rollouts.policy_value(request, member.matrix)
      share = (value - uniform) / (best - uniform)
      rows.append((name, label, share, seconds, member.stats["episodes"]))
      print(f"{name:4s} vs {label:22s}: value {value:7.4f} (BR {best:.4f}, uniform"
            f" {uniform:.4f}) = {100 * share:5.1f}% of the exact gain in {seconds:5.1f} s,"
            f" {member.stats['episodes']:,} episodes", flush=True)
  for name, label, share, seconds, _ in rows:
    status = "PASS" if share >= 0.95 and seconds <= 60 else "MISS"
    print(f"{status}: {name} vs {label}: {100 * share:.1f}% in {seconds:.0f} s"
          " (target >= 95% within 60 s)")


if __name__ == "__main__":
  main()
