"""Our PSRO loop from Python, then a check with OpenSpiel's own code.

  python examples/psro_from_python.py

Runs exact PSRO (exact best responses, Nash LP) on Leduc poker until NashConv
is below 0.05, then re-checks the final meta-strategy with OpenSpiel's
exploitability.nash_conv (see `verification`).
"""

from openspiel_psro_ext import psro


def main():
  config = psro.PSROConfig(
    game="leduc_poker",
    iterations=400,
    meta_solver="nash",
    oracle="exact",
    target_nash_conv=0.05,
    seed=0,
  )
  run = psro.PSRO(config)  # pass output_dir=... to keep checkpoints
  stopped_by = run.run(
    on_iteration=lambda r: (
      print(
        f"it {r.iteration:3d}  pop {r.population_size[0]:3d}"
        f"  NashConv {r.nash_conv:.5f}  ({r.wall_time_s:.2f}s)"
      )
      if r.iteration % 10 == 0
      else None
    )
  )
  final = run.records[-1]
  print(f"stopped by {stopped_by} at iteration {final.iteration}: NashConv {final.nash_conv:.6f}")
  print(f"OpenSpiel's own NashConv of the same meta-strategy: {run.verify():.6f}")


if __name__ == "__main__":
  main()
