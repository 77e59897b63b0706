"""NeuPL beside plain PSRO+PPO and Anytime PSRO+PPO, exactly evaluated.

  python benchmarks/neupl.py [--game=leduc_poker] [--seconds=600] [--seeds=3]
      [--first_seed=0] [--algorithms=neupl,psro,anytime_psro]
      [--neupl_options=JSON] [--neupl_oracle=JSON]
      [--sections=curves,size,transfer,simplex]

curves: each algorithm (`--algorithms`; Anytime PSRO with its defaults) on
  the same PSRO clock (`time_budget_s`, the runs' `wall_time_s`; no run
  metrics, no run directory) and seeds (`--first_seed`, `--seeds`); the
  exact NashConv of the output at 60, 120, 300 and 600 s (those within
  `--seconds`; with a shorter budget, at its quarter, half and end), median
  over seeds and each seed's.
size: parameters, checkpoint bytes and peak memory (a fresh process's peak
  resident memory, imports included: build the members, compute every
  member's matrix) at N = 10, 50,
  100 members: NeuPL's one network (told `Sigma` rows and member indices
  of its default `max_population`) plus `Sigma`
  against PSRO's N PPO networks.
transfer: after a short NeuPL run, the newest member's exact best-response
  gain against its row (its training: the run's episode budget per
  iteration, shared by all rows) against a fresh PPO best response's to the
  same mixture with the same episodes.
simplex: Simplex-NeuPL on the same budget; at the end, the median over 20
  held-out mixtures of the network's exact gain over the uniform policy,
  relative to an exact best response's (the target: at least 0.8).
"""

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from openspiel_psro_ext import psro
from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles import base as oracle_base
from openspiel_psro_ext.oracles import get as get_oracle
from openspiel_psro_ext.psro import variants
from openspiel_psro_ext.psro.variants import neupl as neupl_variant

MARKS = (60.0, 120.0, 300.0, 600.0)


def _run(game: str, algorithm: str, seconds: float, seed: int, **kwargs) -> psro.PSRO:
  oracle = "neupl" if algorithm == "neupl" else "ppo"
  config = psro.PSROConfig(
    game=game,
    algorithm=algorithm,
    oracle=oracle,
    evaluation="exact",
    seed=seed,
    iterations=10_000,
    time_budget_s=seconds,
    oracle_config=dict(progress=False, num_threads=1, **kwargs.pop("oracle_config", {})),
  )
  options = variants.options(algorithm, kwargs) if kwargs else None
  run = psro.PSRO(config, variant=variants.make(algorithm, options)).restore()
  run.run()
  return run


def _at(run: psro.PSRO, mark: float) -> float:
  """The last recorded NashConv at or before `mark` seconds of the run's clock."""
  done = [r.nash_conv for r in run.records if r.wall_time_s <= mark]
  return done[-1] if done else float("nan")


def curves(game: str, seconds: float, seeds: list[int], algorithms: list[str], neupl: dict) -> None:
  marks = [m for m in MARKS if m <= seconds] or [seconds / 4, seconds / 2, seconds]
  print(f"| algorithm | {' | '.join(f'{m:g} s' for m in marks)} | iterations | per seed |")
  print(f"|---|{'---|' * len(marks)}---|---|")
  for algorithm in algorithms:
    kwargs = neupl if algorithm == "neupl" else {}
    runs = [_run(game, algorithm, seconds, seed, **copy.deepcopy(kwargs)) for seed in seeds]
    values = [np.median([_at(r, m) for r in runs]) for m in marks]
    iterations = int(np.median([len(r.records) for r in runs]))
    cells = " | ".join(f"{v:.3f}" for v in values)
    each = "; ".join("/".join(f"{_at(r, m):.3f}" for r in runs) for m in marks)
    print(f"| {algorithm} | {cells} | {iterations} | {each} |", flush=True)


_SIZE_CHILD = """
import resource, sys, numpy as np, torch
from openspiel_psro_ext.game import game_tree
from openspiel_psro_ext.oracles.rl import neupl, torch_policy
game, method, n, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tree = game_tree.get_tree(game)
obs = tree.infostates[0].tensors.shape[1]
if method == "neupl":
  net = torch_policy.TorchPolicy(
    tree.game, 0, (obs + 2 * width,), (128, 128), "mlp", with_value=True)
  sigma = np.random.default_rng(0).dirichlet(np.ones(n - 1), size=n)
  told = neupl.PopulationGraph([None], [sigma]).conditions(0, width)
  neupl.member_matrices(net, tree, told)
  nets = [net]
else:
  nets = [torch_policy.TorchPolicy(tree.game, 0, (obs,), (64, 64), "mlp", with_value=True)
          for _ in range(n)]
  [m.matrix(tree) for m in nets]
params = sum(p.numel() for m in nets for p in m.parameters())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(params, after / 1024)
"""


def size(game: str) -> None:
  import torch  # pylint: disable=g-import-not-at-top

  from openspiel_psro_ext.oracles.rl import torch_policy  # pylint: disable=g-import-not-at-top

  tree = game_tree.get_tree(game)
  obs = tree.infostates[0].tensors.shape[1]
  width = neupl_variant.NeuPLOptions().max_population
  print("| N | method | parameters | checkpoint bytes | peak resident of the process (MiB) |")
  print("|---|---|---|---|---|")
  with tempfile.TemporaryDirectory() as tmp:
    for n in (10, 50, 100):
      for method in ("neupl", "psro"):
        out = subprocess.run(
          [sys.executable, "-c", _SIZE_CHILD, game, method, str(n), str(width)],
          capture_output=True,
          text=True,
          check=True,
        ).stdout.split()
        params, peak = int(out[0]), float(out[1])
        if method == "neupl":
          net = torch_policy.TorchPolicy(
            tree.game, 0, (obs + 2 * width,), (128, 128), "mlp", with_value=True
          )
          path = os.path.join(tmp, "n.pt")
          torch.save(net.state_dict(), path)
          np.save(os.path.join(tmp, "s.npy"), np.zeros((n, n - 1)))
          nbytes = os.path.getsize(path) + os.path.getsize(os.path.join(tmp, "s.npy"))
        else:
          net = torch_policy.TorchPolicy(tree.game, 0, (obs,), (64, 64), "mlp", with_value=True)
          path = os.path.join(tmp, "m.pt")
          torch.save(net.state_dict(), path)
          nbytes = n * os.path.getsize(path)
        print(f"| {n} | {method} | {params} | {nbytes} | {peak:.1f} |", flush=True)


def transfer(game: str, seconds: float) -> None:
  episodes = 16384
  run = _run(
    game, "neupl", seconds, 0, oracle_config=dict(time_budget_s=0.0, total_episodes=episodes)
  )
  variant = run.variant
  assert isinstance(variant, neupl_variant.NeuPL)
  state = run.records[-1].variant
  tree = variant.tree
  matrices = run.population_matrices()
  ppo = get_oracle("ppo").for_psro(
    # NeuPL's games per update, so both get the same number of updates per episode.
    dict(time_budget_s=0.0, total_episodes=episodes, num_envs=512, progress=False, num_threads=1)
  )
  print("| player | members | NeuPL member's gain | fresh PPO's gain (same episodes) |")
  print("|---|---|---|---|")
  for p in range(2):
    mixture = variant.graph.sigma[p][-2]  # the last recorded new member's row
    n = len(mixture)
    opponents = oracle_base.MemberMixture(
      [None if q == p else matrices[q][:n] for q in range(2)],
      [None if q == p else mixture for q in range(2)],
    )
    fresh = ppo.best_response(
      oracle_base.BestResponseRequest(tree=tree, player=p, opponents=opponents, seed=1)
    )
    member = matrices[p][n]
    gains = variant._gain(p, np.stack([member, fresh.matrix]), mixture)
    print(f"| {p} | {n} | {gains[0]:.4f} | {gains[1]:.4f} |", flush=True)
  del state


def simplex(game: str, seconds: float) -> None:
  run = _run(game, "neupl", seconds, 0, simplex_rows=8, held_out=20)
  ratios = [r.variant.held_out_gain_ratio for r in run.records[1:]]
  print(f"held-out gain ratio (median of 20, per player) at the end: {ratios[-1]}")
  print(f"iterations: {len(run.records)}")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--seconds", type=float, default=600.0)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--first_seed", type=int, default=0)
  parser.add_argument("--algorithms", default="neupl,psro,anytime_psro")
  parser.add_argument("--neupl_options", default="{}", help="JSON: NeuPL's options (curves)")
  parser.add_argument("--neupl_oracle", default="{}", help="JSON: its learner's settings")
  parser.add_argument("--sections", default="curves,size,transfer,simplex")
  args = parser.parse_args()
  start = time.perf_counter()
  sections = args.sections.split(",")
  print(f"# {args.game}, {args.seconds:g} s per run, {args.seeds} seeds")
  if "curves" in sections:
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    neupl = dict(json.loads(args.neupl_options), oracle_config=json.loads(args.neupl_oracle))
    curves(args.game, args.seconds, seeds, args.algorithms.split(","), neupl)
  if "size" in sections:
    size(args.game)
  if "transfer" in sections:
    transfer(args.game, args.seconds)
  if "simplex" in sections:
    simplex(args.game, args.seconds)
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"# {time.perf_counter() - start:.0f} s, peak resident {rss:.0f} MiB")


if __name__ == "__main__":
  main()
