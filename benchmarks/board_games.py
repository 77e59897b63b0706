"""PSRO+PPO on board games: a Conv2D torso against an MLP, at equal time and seeds.

Each run is the command (`python -m openspiel_psro_ext.run`) on a game too large
to compile (the simulated view), with PPO's network set to `conv` or `mlp`
and every other setting equal: the same PSRO clock (`--minutes`), seeds and
estimator budget. Its yardsticks, from the run's `summary.json`:

  * the output meta-strategy's win, draw and loss rates against OpenSpiel's
    `MCTSBot` (random rollouts, UCT constant sqrt 2) at `--bot_simulations`,
    each seat half of `--bot_games` (`evaluation.metrics.bots`);
  * the approximate NashConv (a lower bound from RL best responses with the
    same budget for both networks; `evaluation.approx_exploitability`).

It also prints the conv network's forward passes per second at batch
`--batch` on this machine's CPU (and on CUDA where available), for each
game's observation shape, and markdown rows for benchmarks/RESULTS.md.

  python benchmarks/board_games.py --minutes=30 --seeds=3 --bot_games=400
  python benchmarks/board_games.py --minutes=1 --seeds=1 --games=connect_four \\
      --bot_games=20 --approx_episodes=256 --approx_eval_games=100   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyspiel
import torch

from openspiel_psro_ext import oracles
from openspiel_psro_ext.oracles.rl import torch_policy

GAMES = ("connect_four", "hex(board_size=5)", "breakthrough(rows=5,columns=5)")


def throughput(game_string: str, batch: int, device: str, seconds: float = 3.0) -> float:
  """Forward passes (observations) per second of PPO's conv actor at `batch`."""
  game = pyspiel.load_game(game_string)
  config = oracles.get("ppo").Config()
  module = torch_policy.TorchPolicy(
    game,
    0,
    game.observation_tensor_shape(),
    config.hidden,
    "conv",
    obs_type=torch_policy.OBS_OBSERVATION,
    conv_channels=config.conv_channels,
    conv_layers=config.conv_layers,
  ).to(device)
  obs = torch.rand((batch, *game.observation_tensor_shape()), device=device)
  legal = torch.ones((batch, game.num_distinct_actions()), dtype=torch.bool, device=device)
  with torch.no_grad():
    module(obs, legal)  # warm-up
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      module(obs, legal)
      passes += batch
    if device.startswith("cuda"):
      torch.cuda.synchronize()
  return passes / (time.perf_counter() - start)


def run_one(args: argparse.Namespace, game: str, network: str, seed: int, out: str) -> dict:
  """One PSRO run; its summary's bot results and approximate NashConv."""
  oracle_config = {"network": network}
  command = [
    sys.executable,
    "-m",
    "openspiel_psro_ext.run",
    f"--game={game}",
    "--oracle=ppo",
    f"--seed={seed}",
    f"--time_budget_s={args.minutes * 60}",
    "--iterations=100000",
    "--target_nash_conv=0",
    f"--backend={args.backend}",
    f"--oracle_config={json.dumps(oracle_config)}",
    f"--bot_simulations={args.bot_simulations}",
    f"--bot_games={args.bot_games}",
    "--metrics_every=0",  # bots on the last iteration only
    f"--approx_episodes={args.approx_episodes}",
    f"--approx_eval_games={args.approx_eval_games}",
    f"--output_dir={out}",
  ]
  env = dict(os.environ, RAY_AUTH_MODE="disabled")
  start = time.perf_counter()
  proc = subprocess.run(command, capture_output=True, text=True, env=env)
  if proc.returncode != 0:
    raise RuntimeError(f"{game} {network} seed {seed} failed:\n{proc.stderr[-3000:]}")
  with open(os.path.join(out, "summary.json")) as f:
    summary = json.load(f)
  return dict(summary=summary, command_s=time.perf_counter() - start)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--games", default=",".join(GAMES), help="';'-separated game strings")
  parser.add_argument("--networks", default="conv,mlp")
  parser.add_argument("--minutes", type=float, default=30.0, help="PSRO clock per run")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--bot_simulations", default="100")
  parser.add_argument("--bot_games", type=int, default=400)
  parser.add_argument("--approx_episodes", type=int, default=200_000)
  parser.add_argument("--approx_eval_games", type=int, default=20_000)
  parser.add_argument("--backend", default="embedded", choices=("embedded", "ray"))
  parser.add_argument("--batch", type=int, default=4096)
  parser.add_argument("--out", default="", help="run directories (default: a temporary one)")
  args = parser.parse_args()
  games = args.games.split(";") if ";" in args.games else _split_games(args.games)
  load = os.getloadavg()[0]
  print(f"# {os.cpu_count()} CPUs, load average {load:.2f} at start")

  devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
  for game in games:
    for device in devices:
      rate = throughput(game, args.batch, device)
      print(f"throughput {game} conv batch {args.batch} {device}: {rate:,.0f} obs/s")

  root = args.out or tempfile.mkdtemp(prefix="board_games_")
  rows = []
  for game in games:
    for network in args.networks.split(","):
      for seed in range(args.seeds):
        out = os.path.join(root, f"{_slug(game)}-{network}-{seed}")
        result = run_one(args, game, network, seed, out)
        summary = result["summary"]
        bots = summary.get("bots") or {"versus": []}
        approx = summary.get("approx_nash_conv") or {}
        for versus in bots["versus"]:
          mean = versus["mean"]
          print(
            f"{game} {network} seed {seed}: {versus['bot']}{versus['simulations']}"
            f" win {mean['win_rate']:.3f} draw {mean['draw_rate']:.3f}"
            f" loss {mean['loss_rate']:.3f} ({versus['games']} games);"
            f" approx NashConv {approx.get('value', float('nan')):.3f}"
            f" +- {approx.get('ci95', float('nan')):.3f};"
            f" {summary['iterations']} iterations, population {summary['population_size']}"
          )
          rows.append(
            (game, network, versus["simulations"], seed, mean["win_rate"], approx.get("value"))
          )
  print("\n| game | network | MCTS sims | seeds | win rate (mean, min-max) | approx NashConv |")
  print("|---|---|---|---|---|---|")
  keys = sorted({(g, n, s) for g, n, s, *_ in rows}, key=lambda k: (games.index(k[0]), k[1], k[2]))
  for game, network, sims in keys:
    wins = [w for g, n, s, _, w, _ in rows if (g, n, s) == (game, network, sims)]
    approx = [
      a for g, n, s, _, _, a in rows if (g, n, s) == (game, network, sims) and a is not None
    ]
    approx_text = f"{np.mean(approx):.3f}" if approx else "-"
    print(
      f"| {game} | {network} | {sims} | {len(wins)} | {np.mean(wins):.3f}"
      f" ({min(wins):.3f}-{max(wins):.3f}) | {approx_text} |"
    )
  print(f"\n# load average {os.getloadavg()[0]:.2f} at the end; runs in {root}")


def _split_games(text: str) -> list[str]:
  """Comma-separated game strings, commas inside parentheses kept."""
  games, depth, current = [], 0, ""
  for char in text:
    depth += {"(": 1, ")": -1}.get(char, 0)
    if char == "," and depth == 0:
      games.append(current)
      current = ""
    else:
      current += char
  return games + [current] if current else games


def _slug(game: str) -> str:
  return "".join(c if c.isalnum() else "_" for c in game).strip("_")


if __name__ == "__main__":
  main()
