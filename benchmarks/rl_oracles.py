"""Best-response quality of each RL oracle on leduc_poker, measured exactly.

  python benchmarks/rl_oracles.py [--algorithms=ppo,dqn,sac,mpo,crossq]
      [--networks=mlp,gru,lstm] [--learner_seeds=0,1,2] [--seconds=45]
  python benchmarks/rl_oracles.py --sections=approx_nash_conv
      [--approx_points=0,2,5,10,20,40] [--approx_episodes=400000]

Section `best_response` (the default):

For each algorithm, player 0 learns a best response, within the oracle's
default budget (45 s of wall time, at most 60 s), against

* the uniform random policy, and
* a fixed mixture (1/5 each) of 5 random deterministic policies.

The learned policy's exact value `v` (sequence form over the compiled tree) is
reported as the share of the exact best response's gain over uniform play,
`(v - v_uniform) / (v_BR - v_uniform)`, for each network (`gru` and `lstm`
read the player's observation sequences) and each learner seed (the
opponents stay those of `--seed`); the summary gives each cell's worst seed.
Target: at least 95%.

Section `approx_nash_conv`: the simulated mode's NashConv estimator
(`approx_exploitability`) against the exact NashConv of the same
meta-strategies. An exact-oracle PSRO run on leduc_poker gives the
meta-strategies of its iterations `--approx_points`; at each, the members
play as `simulation.BatchedMatrixPolicy` (they only see information-state
tensors), the estimator trains a fresh simulated PPO best response per player
(`--approx_episodes` episodes, no tree) and evaluates it over
`--approx_eval_games` games. Target (issue 13): at every point
|approx - exact| <= 0.05 + 10% of exact, and approx <= exact + its 95%
interval.
"""

import argparse
import time

import config_overrides
import numpy as np

from openspiel_psro_ext import oracles, psro
from openspiel_psro_ext.evaluation import approx_exploitability
from openspiel_psro_ext.game import exploitability, game_tree
from openspiel_psro_ext.oracles import base
from openspiel_psro_ext.oracles.rl import rollouts, torch_policy
from openspiel_psro_ext.psro import config as psro_config
from openspiel_psro_ext.simulated import simulation


def opponents(
  tree: game_tree.GameTree, player: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """`{label: ([N, I, A] population, [N] weights)}` for the opponent."""
  rng = np.random.default_rng(seed)
  mask = tree.infostates[player].legal_mask
  deterministic = []
  for _ in range(5):
    noise = rng.random(mask.shape) * mask
    deterministic.append(np.eye(mask.shape[1])[noise.argmax(axis=1)])
  return {
    "uniform": (tree.uniform_policy()[player][None], np.ones(1)),
    "5 random deterministic": (np.stack(deterministic), np.full(5, 0.2)),
  }


def approx_nash_conv_section(
  game: str, points: list[int], episodes: int, envs: int, eval_games: int, seed: int
) -> None:
  """Prints approximate against exact NashConv along an exact PSRO run."""
  run = psro.PSRO(
    psro_config.PSROConfig(
      game=game,
      iterations=max(points) + 1,
      oracle="exact",
      seed=seed,
      time_budget_s=0,
      target_nash_conv=0,
    )
  )
  run.run()
  tree, matrices = run.tree, run.population_matrices()
  config = approx_exploitability.ApproxNashConvConfig(
    oracle_config=dict(
      time_budget_s=0.0, total_episodes=episodes, simulated_num_envs=envs, progress=False
    ),
    eval_games=eval_games,
    seed=seed,
  )
  print(
    f"approximate NashConv on {game}: simulated PPO best responses,"
    f" {episodes:,} episodes each ({envs} games at once), {eval_games:,}"
    " evaluation games",
    flush=True,
  )
  verdicts = []
  for point in points:
    record = run.records[point]
    meta = [np.asarray(m) for m in record.meta_strategy]
    members = [mats[: len(m)] for mats, m in zip(matrices, meta)]
    exact = exploitability.mixture_nash_conv(tree, members, meta).nash_conv
    populations = [
      [simulation.BatchedMatrixPolicy(tree, p, m) for m in mats] for p, mats in enumerate(members)
    ]
    result = approx_exploitability.approx_nash_conv(tree.game, populations, meta, config)
    approx, ci = result.estimate.value, result.estimate.ci95
    ok = abs(approx - exact) <= 0.05 + 0.1 * exact and approx <= exact + ci
    verdicts.append(ok)
    print(
      f"  iteration {point:3d} ({len(meta[0])} members): exact {exact:.4f},"
      f" approx {approx:.4f} +- {ci:.4f}, gap {exact - approx:+.4f}"
      f" (allowed {0.05 + 0.1 * exact:.4f}), {result.seconds:.0f} s"
      f" {'ok' if ok else 'MISS'}",
      flush=True,
    )
  print(
    f"{'PASS' if all(verdicts) else 'MISS'}: approximate NashConv within"
    f" 0.05 + 10% of exact and below exact + its interval at"
    f" {sum(verdicts)}/{len(verdicts)} points"
  )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--sections", default="best_response", help="comma-separated: best_response, approx_nash_conv"
  )
  parser.add_argument("--approx_points", default="0,2,5,10,20,40")
  parser.add_argument("--approx_episodes", type=int, default=400_000)
  parser.add_argument("--approx_envs", type=int, default=512)
  parser.add_argument("--approx_eval_games", type=int, default=20_000)
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--algorithms", default="ppo,dqn,sac,mpo,crossq")
  parser.add_argument("--networks", default="mlp", help="comma-separated: mlp, gru, lstm")
  parser.add_argument(
    "--learner_seeds", default="0,1,2", help="learner seeds per cell (the summary shows the worst)"
  )
  parser.add_argument(
    "--seconds", type=float, default=0.0, help="wall-time budget per best response (0: default)"
  )
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="override a Config field of every algorithm",
  )
  parser.add_argument("--opponents", default="uniform,5 random deterministic")
  args = parser.parse_args()
  sections = args.sections.split(",")
  if "approx_nash_conv" in sections:
    approx_nash_conv_section(
      args.game,
      [int(x) for x in args.approx_points.split(",")],
      args.approx_episodes,
      args.approx_envs,
      args.approx_eval_games,
      args.seed,
    )
  if "best_response" in sections:
    best_response_section(args)


def best_response_section(args: argparse.Namespace) -> None:
  """Prints each algorithm's and network's share of the exact best response's gain."""
  tree = game_tree.get_tree(args.game)
  player, opponent = 0, 1
  worst: dict[tuple[str, str, str], tuple[float, float]] = {}
  for name in args.algorithms.split(","):
    cls = oracles.get(name)
    for network in args.networks.split(","):
      overrides = dict(progress=False, network=network)
      if network != "mlp":
        overrides["obs_type"] = torch_policy.OBS_SEQUENCE
      if args.seconds:
        overrides["time_budget_s"] = args.seconds
      overrides.update(config_overrides.parse(args.set))
      for label, (population, weights) in opponents(tree, opponent, args.seed).items():
        if label not in args.opponents.split(","):
          continue
        pops, ws = [None, None], [None, None]
        pops[opponent], ws[opponent] = population, weights
        for seed in (int(s) for s in args.learner_seeds.split(",")):
          request = base.BestResponseRequest(
            tree=tree, player=player, opponents=base.MemberMixture(pops, ws), seed=seed
          )
          start = time.perf_counter()
          member = cls(cls.Config(**overrides)).best_response(request)
          seconds = time.perf_counter() - start
          weights_z = request.opponent_terminal_reach() * tree.terminal_returns[:, player]
          best, _ = exploitability.best_response_from_weights(tree, player, weights_z)
          uniform = rollouts.policy_value(request, tree.uniform_policy()[player])
          value = rollouts.policy_value(request, member.matrix)
          share = (value - uniform) / (best - uniform)
          # The same learner's argmax action (a best response to a fixed
          # mixture can be deterministic): how much of the gap is leftover
          # exploration rather than learning. Reported, not scored.
          argmax = np.eye(member.matrix.shape[1])[
            np.where(tree.infostates[player].legal_mask, member.matrix, -1).argmax(1)
          ]
          argmax_share = (rollouts.policy_value(request, argmax) - uniform) / (best - uniform)
          key = (name, network, label)
          if key not in worst or share < worst[key][0]:
            worst[key] = (share, max(seconds, worst.get(key, (0, 0))[1]))
          print(
            f"{name:6s} {network:4s} seed {seed} vs {label:22s}: value {value:7.4f}"
            f" (BR {best:.4f}, uniform {uniform:.4f}) = {100 * share:5.1f}% of the"
            f" exact gain in {seconds:5.1f} s, {member.stats['episodes']:,} episodes"
            f" (its argmax actions: {100 * argmax_share:5.1f}%)",
            flush=True,
          )
  for (name, network, label), (share, seconds) in worst.items():
    status = "PASS" if share >= 0.95 and seconds <= 60 else "MISS"
    print(
      f"{status}: {name} {network} vs {label}: worst seed {100 * share:.1f}% in"
      f" {seconds:.0f} s (target >= 95% within 60 s)"
    )
  # benchmarks/RESULTS.md's table: worst seed vs each opponent, per network.
  labels = [
    label for label in opponents(tree, opponent, args.seed) if label in args.opponents.split(",")
  ]
  networks = args.networks.split(",")
  print("\nbenchmarks/RESULTS.md rows (worst seed, vs " + " / vs ".join(labels) + "):")
  print("| oracle | " + " | ".join(networks) + " |")
  for name in args.algorithms.split(","):
    cells = [
      " / ".join(
        f"{100 * worst[(name, network, label)][0]:.1f}%" if (name, network, label) in worst else "-"
        for label in labels
      )
      for network in networks
    ]
    print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
