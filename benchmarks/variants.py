"""PSRO variants on leduc_poker with exact best responses, beside plain PSRO.

  python benchmarks/variants.py [--quick] [--game=leduc_poker]

Every run goes through the command line (`python -m openspiel_psro_ext.run`,
exact oracle, default run metrics every 10 iterations, checkpoints in a
temporary directory), so the seconds are the run's whole clock
(`wall_time_s`: PSRO, metrics and writes), read from its `metrics.jsonl`.

XDO vs PSRO: the first iteration (and its `wall_time_s`) at which NashConv
is at most 0.002 and at most 1e-6 (target: 0.002 within 30 iterations and
5 s).

Anytime PSRO vs PSRO: NashConv at a few iterations, and the largest rise of
NashConv from one iteration to the next (target for Anytime: at most 1e-3).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run(
  game: str, algorithm: str, iterations: int, target: float, time_budget_s: float, out: str
) -> list[dict]:
  """The records of one command-line run."""
  command = [
    sys.executable,
    "-m",
    "openspiel_psro_ext.run",
    f"--game={game}",
    f"--algorithm={algorithm}",
    "--oracle=exact",
    f"--iterations={iterations}",
    f"--target_nash_conv={target}",
    f"--time_budget_s={time_budget_s}",
    f"--output_dir={out}",
  ]
  proc = subprocess.run(command, capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
  with open(os.path.join(out, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def first_below(records: list[dict], level: float) -> str:
  for r in records:
    if r["nash_conv"] <= level:
      return f"iteration {r['iteration']} ({r['wall_time_s']:.2f} s)"
  last = records[-1]
  return (
    f"not within {len(records)} iterations ({last['wall_time_s']:.1f} s; last"
    f" {last['nash_conv']:.3g})"
  )


def largest_rise(records: list[dict]) -> float:
  values = [r["nash_conv"] for r in records]
  return max([b - a for a, b in zip(values, values[1:])] + [0.0])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--game", default="leduc_poker")
  parser.add_argument(
    "--quick", action="store_true", help="targets 0.002 only; Anytime and PSRO for 40 iterations"
  )
  args = parser.parse_args()
  target = 0.002 if args.quick else 1e-6
  anytime_iterations = 40 if args.quick else 120
  with tempfile.TemporaryDirectory() as tmp:
    xdo = run(args.game, "xdo", 200, target, 600, os.path.join(tmp, "xdo"))
    psro = run(args.game, "psro", 2000, target, 600, os.path.join(tmp, "psro"))
    for level in (0.002, target) if target < 0.002 else (0.002,):
      print(
        f"NashConv <= {level:g} on {args.game}: XDO at {first_below(xdo, level)};"
        f" PSRO at {first_below(psro, level)}"
      )
    anytime = run(
      args.game, "anytime_psro", anytime_iterations, 0.0, 600, os.path.join(tmp, "anytime")
    )
    plain = psro[:anytime_iterations]
    marks = [i for i in (0, 5, 10, 20, 40, 80, 119) if i < len(anytime)]
    for name, records in (("Anytime PSRO", anytime), ("PSRO", plain)):
      print(
        f"{name}: largest rise {largest_rise(records):.3g} over {len(records)} iterations;"
        " NashConv "
        + ", ".join(f"it {i}: {records[i]['nash_conv']:.4g}" for i in marks if i < len(records))
        + f"; {records[-1]['wall_time_s']:.1f} s"
      )


if __name__ == "__main__":
  main()
