"""How much of a restricted game's NashConv random policies already reach.

  python benchmarks/restricted_games.py [--game=leduc_poker] [--seed=0]
      [--members=5,10,20,40] [--cfr_iterations=3000]

XDO and NXDO (`psro.variants.xdo`) solve an extensive-form restricted game
built from the population: XDO allows the members' actions at each state,
NXDO lets a player pick a member at each state. Both mix state by state, so
a population of arbitrary policies may already span an equilibrium of a
small game. This script measures that floor: K random policies per player
(pure ones, and Dirichlet(alpha) action distributions), the restricted game
solved by CFR+ over the compiled tree (`cfr.CFRPlus` on the allowed actions,
`cfr.MemberCFRPlus` on the members), and the exact full-game NashConv of its
solution. A variant's NashConv with RL best responses means something about
the best responses only where it is well below this floor at the same K.
"""

import argparse
import time

import numpy as np

from openspiel_psro_ext.game import cfr, exploitability, game_tree


def random_members(tree, player, count, alpha, rng):
  """`[K, I, A]`: pure policies (alpha None) or Dirichlet(alpha) ones, legal only."""
  legal = tree.infostates[player].legal_mask
  if alpha is None:
    actions = (legal * rng.random((count, *legal.shape))).argmax(axis=2)
    return np.eye(tree.num_actions)[actions]
  draws = rng.gamma(alpha, size=(count, *legal.shape)) * legal
  return draws / draws.sum(axis=2, keepdims=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--members", default="5,10,20,40")
  parser.add_argument("--cfr_iterations", type=int, default=3000)
  args = parser.parse_args()
  tree = game_tree.get_tree(args.game)
  print(
    f"{args.game}: restricted games of K random policies per player, CFR+ {args.cfr_iterations}"
  )
  print("| policies | K | XDO (allowed actions) | NXDO (members) | seconds |")
  print("|---|---|---|---|---|")
  for label, alpha in (("pure", None), ("Dirichlet(0.2)", 0.2), ("Dirichlet(1)", 1.0)):
    for count in [int(k) for k in args.members.split(",")]:
      rng = np.random.default_rng(args.seed)
      members = [random_members(tree, p, count, alpha, rng) for p in range(tree.num_players)]
      start = time.perf_counter()
      allowed = [
        (m > 0.05).any(axis=0) | (m == m.max(axis=2, keepdims=True)).any(axis=0) for m in members
      ]
      xdo = cfr.CFRPlus(tree, allowed, predictive=True)
      xdo.iterate(args.cfr_iterations)
      nxdo = cfr.MemberCFRPlus(tree, members, predictive=True)
      nxdo.iterate(args.cfr_iterations)
      gaps = [
        exploitability.exact_nash_conv(tree, s.average_policy()).nash_conv for s in (xdo, nxdo)
      ]
      seconds = time.perf_counter() - start
      print(f"| {label} | {count} | {gaps[0]:.4f} | {gaps[1]:.4f} | {seconds:.1f} |")


if __name__ == "__main__":
  main()
