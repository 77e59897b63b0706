"""Pipeline PSRO (P2SRO) scaling on leduc_poker with PPO chunks.

  python benchmarks/p2sro.py project --workers=1,2,4,8,16 --out=DIR
  python benchmarks/p2sro.py measure --workers=1,2 --out=DIR
  python benchmarks/p2sro.py report --out=DIR

A worker is one level of the pipeline (K = workers active policies per
player): each step it trains that level's two chunks (both players), one
PPO chunk of `--chunk_episodes` episodes each (an episode budget: the run is
deterministic whatever the load).

`project` runs the pipeline with K = W in this process (embedded backend) and
keeps a virtual clock per worker: worker w's share of a step is its level's
work, the measured seconds of its two chunks (whole oracle calls) and of its
level's target LP and gains (as in P2SRO's distributed form, where each
worker solves its own level's restricted game; see `p2sro`'s doc); the step
lasts as long as the slowest worker plus the driver's own seconds (the fixed
population's meta-Nash, NashConv, the table: the step's PSRO seconds less
all workers'), so the projected time to NashConv `--target` is what W
machines of this machine's speed would take, data transfers aside.

`measure` runs K = W on a local Ray pinned to W cores (one task per chunk; 2W
tasks share the W cores) and reads the run's own clock (`wall_time_s`) at the first
record at or below the target. Run it on an otherwise idle machine for a
clean figure; on a shared machine the load is part of the number.

Each run writes `DIR/<mode>_<W>.json` (its records' step figures); `report`
prints the table from them, with a second, load-free clock: every worker's
step at one worker's median (from the 1-worker run) plus the driver's
measured seconds. The defaults are the settings of BUILD_NOTES' figures
(time to NashConv 0.2 on Leduc: 1-16 workers projected, 1 and 2 measured).
"""

import argparse
import json
import os
import sys
import time

import config_overrides
import numpy as np

from openspiel_psro_ext import backends, psro
from openspiel_psro_ext.psro.variants import p2sro
from openspiel_psro_ext.runs import checkpoints


def _config(args: argparse.Namespace) -> psro.PSROConfig:
  # A step budget instead (--chunk_steps): every chunk is the same number of
  # PPO updates, so the workers of a step take the same time.
  budget = (
    dict(total_steps=args.chunk_steps)
    if args.chunk_steps
    else dict(total_episodes=args.chunk_episodes)
  )
  oracle_config = dict(
    time_budget_s=0.0, **budget, num_envs=args.num_envs, progress=False, num_threads=1
  )
  oracle_config.update(config_overrides.parse(args.set))
  return psro.PSROConfig(
    game=args.game,
    iterations=args.max_steps,
    meta_solver="nash",
    oracle="ppo",
    oracle_config=oracle_config,
    seed=args.seed,
    target_nash_conv=args.target,
    time_budget_s=args.time_limit_s,
    algorithm="p2sro",
  )


def _options(args: argparse.Namespace, workers: int) -> p2sro.PipelineOptions:
  return p2sro.PipelineOptions(
    num_active=workers, max_chunks=args.max_chunks, plateau_improvement=args.plateau_improvement
  )


def _steps(run: psro.PSRO) -> list[dict]:
  steps = []
  for r in run.records:
    state = r.variant
    worker_s = [
      sum(chunks) + level for chunks, level in zip(state.chunk_seconds, state.level_seconds)
    ]
    steps.append(
      dict(
        step=r.iteration,
        nash_conv=r.nash_conv,
        population=r.population_size[0],
        wall_time_s=r.wall_time_s,
        psro_time_s=r.psro_time_s,
        worker_s=worker_s,
        level_s=state.level_seconds,
        worker_episodes=[sum(level) for level in state.chunk_episodes],
        driver_s=max(r.psro_time_s - sum(worker_s), 0.0),
        episodes=sum(sum(level) for level in state.chunk_episodes),
      )
    )
  return steps


def _save(
  args: argparse.Namespace, mode: str, workers: int, steps: list[dict], extra: dict
) -> None:
  os.makedirs(args.out, exist_ok=True)
  # Atomic, and not synced: rewritten after every step, read while it runs.
  checkpoints.write_json(
    os.path.join(args.out, f"{mode}_{workers}.json"),
    dict(mode=mode, workers=workers, args=vars(args), load=os.getloadavg(), steps=steps, **extra),
    durable=False,
  )


def _warm_up_torch() -> None:
  """Pays torch's one-time imports (the first Adam loads its compiler
  package: seconds, tens on a loaded machine) before any clock starts."""
  import torch  # pylint: disable=g-import-not-at-top

  torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def project(args: argparse.Namespace, workers: int) -> None:
  _warm_up_torch()
  run = psro.PSRO(_config(args), variant=p2sro.P2SRO(_options(args, workers)))
  start = time.perf_counter()
  # Saved after every step: a run cut short still reports its steps.
  run.run(
    lambda _: _save(
      args, "project", workers, _steps(run), dict(seconds=time.perf_counter() - start)
    )
  )


def measure(args: argparse.Namespace, workers: int) -> None:
  # W cores for W workers: the driver and the Ray it starts (whose processes
  # inherit the affinity) run on the first W of this machine's cores. Ray
  # gets one logical CPU per chunk (2W): with W it runs 2W tasks at half a
  # CPU each and keeps only W worker processes alive between steps, so the
  # others start again, importing torch, every step (~4 s a step, measured).
  allowed = os.sched_getaffinity(0)
  os.sched_setaffinity(0, sorted(allowed)[:workers])
  backend = backends.RayBackend(num_cpus=2 * workers)
  try:
    run = psro.PSRO(_config(args), variant=p2sro.P2SRO(_options(args, workers)), backend=backend)
    run.run(lambda _: _save(args, "measure", workers, _steps(run), {}))
  finally:
    backend.close()
    os.sched_setaffinity(0, allowed)


def first_at_target(
  steps: list[dict], target: float, clock: list[float]
) -> tuple[int, float] | None:
  for step, time_s in zip(steps, clock):
    if step["nash_conv"] <= target:
      return step["step"], time_s
  return None


def virtual_clock(steps: list[dict], worker_step_s: float | None = None) -> list[float]:
  """Per step, the projected seconds at its end (see the module doc): a
  worker's share is its chunks' measured seconds, or `worker_step_s` (the
  load-free clock: a chunk is one PPO update of a fixed number of games and
  decisions, so its cost does not depend on the level)."""
  clock, total = [], 0.0
  for step in steps:
    total += max(step["worker_s"]) if worker_step_s is None else worker_step_s
    total += step["driver_s"]
    clock.append(total)
  return clock


def report(args: argparse.Namespace) -> None:
  runs = {}
  for name in sorted(os.listdir(args.out)):
    if name.endswith(".json"):
      with open(os.path.join(args.out, name)) as f:
        data = json.load(f)
      runs[(data["mode"], data["workers"])] = data
  one = runs.get(("project", 1))
  rate = None
  if one:  # one worker's median seconds for its two chunks of a step
    rate = float(np.median([s["worker_s"][0] for s in one["steps"]]))
  levels = [float(x) for x in args.levels.split(",")]
  ran = next(iter(runs.values()))["args"] if runs else vars(args)
  size = (
    f"{ran['chunk_steps']} learner decisions"
    if ran.get("chunk_steps")
    else f"{ran['chunk_episodes']} episodes"
  )
  print(
    f"P2SRO on {ran['game']}, PPO chunks of {size}"
    f" ({ran['num_envs']} games at once), at most {ran['max_chunks']} per policy;"
    f" {' '.join(ran.get('set') or [])} first step"
    " at or below each NashConv: step, projected seconds with each worker's"
    " chunks at their measured seconds / at one worker's median"
    f" ({rate or 0:.2f} s a step), speed-up over 1 worker (the second clock)"
  )
  print(
    "| workers | "
    + " | ".join(f"NashConv <= {lv:g}" for lv in levels)
    + " | steps run, last NashConv, fixed | load (1/5/15 min) at the end |"
  )
  print("|---|" + "---|" * (len(levels) + 2))
  base: dict[float, float] = {}
  for mode in ("project", "measure"):
    for workers in sorted(w for m, w in runs if m == mode):
      data = runs[(mode, workers)]
      steps = data["steps"]
      if mode == "project":
        clocks = [virtual_clock(steps), virtual_clock(steps, rate)]
      else:
        clocks = [[s["wall_time_s"] for s in steps]]
      cells = [f"{workers}" + (" (measured, Ray)" if mode == "measure" else "")]
      for lv in levels:
        hits = [first_at_target(steps, lv, clock) for clock in clocks]
        if hits[0] is None:
          cells.append("-")
          continue
        text = f"{hits[0][0]}: " + " / ".join(f"{h[1]:.0f} s" for h in hits)
        if mode == "project":
          if workers == 1:
            base[lv] = hits[-1][1]
          if lv in base:
            text += f", {base[lv] / hits[-1][1]:.1f}x"
        cells.append(text)
      last = steps[-1]
      cells.append(f"{len(steps)}, {last['nash_conv']:.3f}, {last['population'] - 1}")
      cells.append("/".join(f"{x:.0f}" for x in data["load"]))
      print("| " + " | ".join(cells) + " |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("mode", choices=["project", "measure", "report"])
  parser.add_argument("--workers", default="1,2,4,8,16")
  parser.add_argument("--out", default="p2sro_bench")
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument("--target", type=float, default=0.2)
  parser.add_argument(
    "--levels", default="1.0,0.6,0.4,0.3,0.2", help="report: NashConv levels to time"
  )
  parser.add_argument("--chunk_episodes", type=int, default=32768)
  parser.add_argument(
    "--chunk_steps",
    type=int,
    default=0,
    help="a chunk's budget in learner decisions instead (0: episodes)",
  )
  parser.add_argument("--num_envs", type=int, default=16384)
  parser.add_argument("--max_chunks", type=int, default=24)
  parser.add_argument("--plateau_improvement", type=float, default=0.002)
  parser.add_argument("--max_steps", type=int, default=6000)
  parser.add_argument("--time_limit_s", type=float, default=1200.0)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="FIELD=VALUE",
    help="a PPO setting for the chunks (repeatable)",
  )
  args = parser.parse_args()
  if args.mode == "report":
    report(args)
    return
  for workers in [int(w) for w in args.workers.split(",")]:
    (project if args.mode == "project" else measure)(args, workers)
    print(f"{args.mode} {workers} done", file=sys.stderr, flush=True)


if __name__ == "__main__":
  main()
