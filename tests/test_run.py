"""End-to-end tests of `python -m openspiel_psro_ext.run`."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from openspiel_psro_ext.records.summary import RunSummary
from openspiel_psro_ext.runs import checkpoints


def _run(*args, timeout=240):
  return subprocess.run(
    [sys.executable, "-m", "openspiel_psro_ext.run", *args],
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.mark.slow
def test_kuhn_with_compare_stock(tmp_path):
  out = str(tmp_path / "kuhn")
  proc = _run(
    "--game=kuhn_poker",
    "--oracle=exact",
    "--iterations=15",
    "--target_nash_conv=0",
    f"--output_dir={out}",
    "--compare_stock",
    "--time_budget_s=60",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = checkpoints.read_metrics(out)
  assert len(records) == 15
  assert records[-1]["nash_conv"] < 1e-6
  for key in (
    "iteration",
    "population_size",
    "nash_conv",
    "exploitability_per_player",
    "meta_strategy",
    "wall_time_s",
  ):
    assert key in records[-1]
  summary = json.load(open(os.path.join(out, "summary.json")))
  assert summary["verified"] and abs(summary["nash_conv_openspiel"] - summary["nash_conv"]) < 1e-6
  comparison = json.load(open(os.path.join(out, "comparison.json")))
  assert comparison["stock"][0]["nash_conv"] == pytest.approx(11 / 12, abs=1e-9)
  assert len(comparison["stock"]) >= 2
  assert "verified with OpenSpiel" in proc.stderr
  assert "stock NashConv" in proc.stderr
  payoffs = np.load(os.path.join(out, "payoffs.npy"))
  assert payoffs.shape[0] == 2 and payoffs.shape[1] == payoffs.shape[2]


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(tmp_path):
  args = [
    "--game=leduc_poker",
    "--oracle=exact",
    "--iterations=40",
    "--target_nash_conv=0",
    "--time_budget_s=0",
    "--metrics_every=0",
  ]
  reference = str(tmp_path / "reference")
  assert _run(*args, f"--output_dir={reference}").returncode == 0
  out = str(tmp_path / "killed")
  proc = subprocess.Popen(
    [sys.executable, "-m", "openspiel_psro_ext.run", *args, f"--output_dir={out}"],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  deadline = time.time() + 120
  while time.time() < deadline and proc.poll() is None:
    if len(checkpoints.read_metrics(out)) >= 5:
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  done = len(checkpoints.read_metrics(out))
  assert 0 < done < 40, "the run was not killed part-way; make it longer"
  resumed = _run(*args, f"--output_dir={out}", "--resume")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  ours = [r["nash_conv"] for r in checkpoints.read_metrics(out)]
  theirs = [r["nash_conv"] for r in checkpoints.read_metrics(reference)]
  assert ours == theirs


@pytest.mark.parametrize(
  "args,message",
  [
    (["--game=no_such_game"], "unknown or malformed --game"),
    (["--game=kuhn_poker(players=3)", "--meta_solver=nash"], "does not support 3-player games"),
    (["--game=kuhn_poker", "--oracle=nope"], "unknown oracle"),
    (["--game=kuhn_poker", "--meta_solver=nope"], "unknown meta-solver"),
    (
      ["--game=leduc_poker", "--evaluation=exact", "--max_histories=100"],
      "more than 100 histories",
    ),
    (["--game=kuhn_poker", "--oracle_config={bad"], "--oracle_config is not valid JSON"),
    (["--game=kuhn_poker", "--best_responses_per_player=2,x"], "takes integers"),
    (["--game=kuhn_poker", "--best_responses_per_player=2"], "one count of at least 1"),
    (
      ["--game=kuhn_poker", "--backend=embedded", "--ray_address=auto"],
      "--ray_address needs --backend=ray",
    ),
    (["--game=kuhn_poker", "--device=tpu"], "device 'tpu'"),
    (["--game=kuhn_poker", "--oracle=exact", "--device=tpu"], "device 'tpu'"),
    (
      ["--game=kuhn_poker", "--meta_solver=alpharank", '--meta_solver_kwargs={"alphaa": 3}'],
      "no parameter 'alphaa'",
    ),
    (["--game=kuhn_poker", "--sims_per_entry=-5"], "sims_per_entry must be"),
    (["--game=kuhn_poker", "--time_budget_s=-1"], "time_budget_s must be"),
    (["--game=kuhn_poker", "--resume"], "does not exist; drop --resume"),
  ],
)
def test_bad_input_is_one_clear_line(tmp_path, args, message):
  out = tmp_path / "x"
  proc = _run(*args, f"--output_dir={out}", timeout=60)
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and message in last, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not out.exists()  # nothing written


def test_internal_errors_keep_their_traceback(monkeypatch):
  from openspiel_psro_ext import run as run_lib  # pylint: disable=g-import-not-at-top
  from openspiel_psro_ext.evaluation import verification  # pylint: disable=g-import-not-at-top

  def bug(argv):
    raise ValueError("a bug deep in numpy")

  monkeypatch.setattr(run_lib, "main", bug)
  monkeypatch.setattr(sys, "argv", ["run"])
  # Not turned into a one-line usage error: it propagates with its traceback.
  with pytest.raises(ValueError, match="a bug deep in numpy"):
    run_lib.entry_point()

  def mismatch(argv):
    raise verification.VerificationError("ours 0.1 vs OpenSpiel's 0.2")

  monkeypatch.setattr(run_lib, "main", mismatch)
  with pytest.raises(SystemExit) as exit_info:
    run_lib.entry_point()
  assert exit_info.value.code == 3


def test_non_empty_output_dir_is_refused_and_kept(tmp_path):
  out = tmp_path / "taken"
  out.mkdir()
  (out / "notes.txt").write_text("mine")
  proc = _run("--game=kuhn_poker", f"--output_dir={out}", timeout=60)
  assert proc.returncode == 2 and "not empty" in proc.stderr
  assert (out / "notes.txt").read_text() == "mine"
  assert sorted(os.listdir(out)) == ["notes.txt"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_a_signal_finishes_the_iteration_and_exits_cleanly(tmp_path, sig):
  out = str(tmp_path / "interrupted")
  # Run metrics on: the final record gets them after the signal, quickly.
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "openspiel_psro_ext.run",
      "--game=leduc_poker",
      "--oracle=exact",
      "--iterations=400",
      "--target_nash_conv=0",
      "--time_budget_s=0",
      "--metrics_every=50",
      f"--output_dir={out}",
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  deadline = time.time() + 120
  while time.time() < deadline and len(checkpoints.read_metrics(out)) < 60:
    time.sleep(0.05)
  proc.send_signal(sig)
  signalled = time.time()
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 0, stderr[-3000:]
  # It answers at once with what it still does, and is done within seconds
  # (plots included; generous for a loaded CI machine).
  assert "finishing this iteration's writes, then the final metrics" in stderr
  assert time.time() - signalled < 60
  summary = json.load(open(os.path.join(out, "summary.json")))
  assert summary["stopped_by"] == "interrupted" and summary["verified"]
  state = json.load(open(os.path.join(out, "state.json")))
  records = checkpoints.read_metrics(out)
  assert state["iterations_done"] == len(records) == summary["iterations"]
  assert "run_metrics" in records[-1]  # the last record has its metrics
  assert "--resume" in stderr


@pytest.mark.slow
def test_rl_oracle_from_the_command_line(tmp_path):
  pytest.importorskip("torch")
  out = str(tmp_path / "ppo")
  proc = _run(
    "--game=kuhn_poker",
    "--oracle=ppo",
    "--iterations=2",
    "--metrics_every=0",
    '--oracle_config={"total_episodes": 4000, "time_budget_s": 0}',
    f"--output_dir={out}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = checkpoints.read_metrics(out)
  # Each best response's statistics survive, per player and per member; each
  # follows its greedy form (Anytime PSRO's output candidate, the default).
  per_player = records[0]["oracle"]
  assert [[m.get("greedy_form_of") for m in members] for members in per_player] == [[2, None]] * 2
  trained = [members[1] for members in per_player]
  assert all(m["episodes"] >= 4000 and m["seconds"] > 0 for m in trained)
  assert os.path.exists(checkpoints.member_path(out, 0, 1, ".pt"))
  assert json.load(open(os.path.join(out, "summary.json")))["verified"]
  try:
    import ray  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import

    # --backend=auto trains the players in parallel where it can.
    expected = "(ray backend)" if (os.cpu_count() or 1) > 1 else "(embedded backend)"
  except ImportError:
    expected = "(embedded backend)"
  assert expected in proc.stderr


@pytest.fixture
def parsed_flags():
  from openspiel_psro_ext import run  # pylint: disable=g-import-not-at-top

  def parse(*args):
    from openspiel_psro_ext.psro import config as psro_config  # pylint: disable=g-import-not-at-top

    run.FLAGS.unparse_flags()
    run.FLAGS(["run", *args])
    config = run.config_from_flags()
    return psro_config.resolve(
      dataclasses.replace(config, game=psro_config.game_string(config.game))
    )

  yield parse
  run.FLAGS.unparse_flags()


def test_rl_oracles_default_to_a_ramped_budget(parsed_flags):
  from openspiel_psro_ext import oracles, psro  # pylint: disable=g-import-not-at-top
  from openspiel_psro_ext.psro import config as psro_config  # pylint: disable=g-import-not-at-top

  default = parsed_flags()
  assert default.oracle == "ppo" and default.time_budget_s == psro_config.RL_TIME_BUDGET_S
  # The API and the command line share one set of defaults.
  # (The command line writes the game string as pyspiel prints it.)
  assert default.game == "leduc_poker()"
  assert dataclasses.replace(default, game="leduc_poker") == psro_config.resolve(psro.PSROConfig())
  exact = parsed_flags("--oracle=exact")
  assert exact.time_budget_s == psro_config.EXACT_TIME_BUDGET_S
  assert parsed_flags("--oracle=exact", "--time_budget_s=7").time_budget_s == 7
  config = parsed_flags("--oracle=ppo")
  ppo = oracles.get("ppo")
  assert config.oracle_budget_final_s == ppo.psro_budget_final_s
  # An oracle without a ramp end of its own ramps to PSRO's.
  assert oracles.get("mpo").psro_budget_final_s is None
  assert parsed_flags("--oracle=mpo").oracle_budget_final_s == psro_config.RL_BUDGET_FINAL_S
  assert (
    config.oracle_budget_ramp_iterations
    == psro_config.default("oracle_budget_ramp_iterations")
    == 200
  )
  run = psro.PSRO(config)
  assert run.oracle_time_budget(0) == ppo.psro_defaults["time_budget_s"]
  assert run.oracle_time_budget(200) == ppo.psro_budget_final_s
  # A budget the user sets is kept constant unless a ramp is asked for too.
  config = parsed_flags("--oracle=ppo", '--oracle_config={"time_budget_s": 3}')
  assert config.oracle_budget_final_s == 0 and config.oracle_config["time_budget_s"] == 3
  config = parsed_flags(
    "--oracle=ppo", '--oracle_config={"time_budget_s": 3}', "--oracle_budget_final_s=5"
  )
  assert config.oracle_budget_final_s == 5
  assert parsed_flags("--oracle=exact").oracle_budget_final_s == 0


@pytest.mark.slow
def test_simulated_mode_from_the_command_line(tmp_path):
  pytest.importorskip("torch")
  out = str(tmp_path / "sim")
  # leduc_poker over 100 histories does not compile: auto runs it simulated.
  proc = _run(
    "--game=leduc_poker",
    "--max_histories=100",
    "--iterations=2",
    "--verify_every=0",
    "--approx_episodes=3000",
    "--approx_eval_games=2000",
    "--backend=embedded",
    '--oracle_config={"total_episodes": 3000, "time_budget_s": 0, "num_envs": 256}',
    f"--output_dir={out}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "simulated mode" in proc.stderr
  records = checkpoints.read_metrics(out)
  assert len(records) == 2
  # Never stored as nash_conv: the estimate is a lower bound, and says so.
  assert all(r["nash_conv"] is None for r in records)
  last = records[-1]
  # (A 3000-episode best response is weak: the estimate may even be negative.)
  approx = last["approx_nash_conv"]
  assert np.isfinite(approx["value"]) and approx["ci95"] > 0
  summary = RunSummary.from_json(json.load(open(os.path.join(out, "summary.json"))))
  assert summary.evaluation == "simulated" and not summary.verified
  assert summary.approx_nash_conv is not None and summary.approx_nash_conv.value == approx["value"]
  assert "lower bound" in proc.stderr


def test_exact_evaluation_refuses_a_large_game_quickly(tmp_path):
  start = time.time()
  proc = _run(
    "--game=chess",
    "--evaluation=exact",
    "--oracle=exact",
    f"--output_dir={tmp_path / 'x'}",
    timeout=60,
  )
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert "simulated mode (--evaluation=simulated)" in last, proc.stderr[-2000:]
  assert time.time() - start < 30  # 5 s of counting, plus start-up on a loaded CI


def test_every_flag_is_a_field_with_its_default(parsed_flags):
  from openspiel_psro_ext import psro, run  # pylint: disable=g-import-not-at-top

  parsed_flags()
  for cls in (psro.PSROConfig, run.RunOptions):
    for field in dataclasses.fields(cls):
      flag = run.FLAGS[field.name]
      default = field.default
      if default is dataclasses.MISSING:
        default = field.default_factory()
      if field.metadata.get("json_object"):
        default = json.dumps(default or {})
      elif isinstance(default, tuple):
        default = list(default)
      assert flag.default == default, field.name
      assert field.metadata["help"] in flag.help, field.name


def test_sampled_is_an_alias_of_simulated(parsed_flags, caplog):
  from openspiel_psro_ext import psro  # pylint: disable=g-import-not-at-top
  from openspiel_psro_ext.psro import config as psro_config  # pylint: disable=g-import-not-at-top

  assert parsed_flags("--evaluation=sampled").evaluation == "simulated"
  assert parsed_flags("--evaluation=simulated").evaluation == "simulated"
  with caplog.at_level("INFO"):  # (flag parsing may set the log level)
    psro_config.resolve(psro.PSROConfig(oracle="exact", evaluation="sampled"))
  assert "alias of evaluation=simulated" in caplog.text
  # A run written before the rename reads, and resumes, as simulated.
  saved = psro_config.resolve(psro.PSROConfig(evaluation="simulated")).to_dict()
  old = {**saved, "evaluation": "sampled"}
  assert psro.PSROConfig.from_dict(old).evaluation == "simulated"
  psro_config.check_resumable(old, psro.PSROConfig.from_dict(saved), "old_run")


def test_summary_round_trips():
  from openspiel_psro_ext.records import metrics  # pylint: disable=g-import-not-at-top

  summary = RunSummary(
    game="kuhn_poker()",
    evaluation="simulated",
    stopped_by="iterations",
    iterations=3,
    population_size=[3, 3],
    nash_conv=None,
    exploitability_per_player=None,
    wall_time_s=1.0,
    psro_time_s=0.5,
    evaluation_time_s=0.25,
    write_time_s=0.25,
    approx_nash_conv=metrics.ApproxNashConv(0.1, 0.02, [0.05, 0.05], [0.01, 0.01]),
  )
  data = json.loads(json.dumps(summary.to_json()))
  assert not data["verified"] and data["nash_conv_openspiel"] is None
  assert RunSummary.from_json(data) == summary


def _refused_in_one_line(proc: subprocess.CompletedProcess, out) -> str:
  """The one error line of a refused command that wrote nothing."""
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]), proc.stderr[-3000:]
  assert not os.path.exists(out) or os.path.isfile(out)  # nothing written
  return errors[0]


@pytest.mark.parametrize(
  "args,message",
  [
    (["--oracle=ppo", '--oracle_config={"hidden": "big"}'], "hidden must be a list of integers"),
    (['--oracle_config={"learning_rate": "fast"}'], "learning_rate must be a number"),
    (["--oracle=dqn", '--oracle_config={"batch_size": -4}'], "batch_size must be an integer >= 1"),
    (['--oracle_config={"hidden": [100000, 100000]}'], "memory"),
    (["--meta_solver=alpharank", '--meta_solver_kwargs={"alpha": -1}'], "alpha must be a number"),
    (["--seed=-1"], "--seed must be an integer in [0, "),
    (["--backend=ray", "--ray_address=127.0.0.1:1"], "nothing answers at 127.0.0.1:1"),
    (["--metrics_every=-3"], "--metrics_every must be an integer >= 0"),
    (["--verify_every=-2"], "--verify_every must be an integer >= 0"),
    (["--iterations=many"], "--iterations"),
  ],
)
def test_the_issues_table_is_refused_in_one_line(tmp_path, args, message):
  """Issue 26's table: exit 2, one line, nothing written (the Ray row within
  30 s: one bounded connect)."""
  out = tmp_path / "x"
  start = time.monotonic()
  proc = _run("--game=kuhn_poker", *args, f"--output_dir={out}", timeout=60)
  assert message in _refused_in_one_line(proc, out)
  assert time.monotonic() - start < 30


def test_an_output_dir_naming_a_file_is_refused(tmp_path):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  for out in (a_file, a_file / "run"):
    proc = _run("--game=kuhn_poker", "--oracle=exact", f"--output_dir={out}", timeout=60)
    assert "is a file, not a directory" in _refused_in_one_line(proc, out)
  assert a_file.read_text() == "mine"


def test_resume_refuses_an_explicit_flag_that_differs_and_takes_the_saved_rest(tmp_path):
  out = tmp_path / "kuhn"
  args = ["--oracle=exact", "--metrics_every=0", "--target_nash_conv=0", f"--output_dir={out}"]
  assert _run("--game=kuhn_poker", "--iterations=2", "--seed=3", *args).returncode == 0
  proc = _run("--resume", "--game=leduc_poker", *args, timeout=60)
  line = _refused_in_one_line(proc, tmp_path / "none")
  assert "--game='leduc_poker'" in line and "kuhn_poker()" in line
  proc = _run("--resume", "--seed=4", "--iterations=3", *args, timeout=60)
  assert "--seed=4" in _refused_in_one_line(proc, tmp_path / "none")
  assert len(checkpoints.read_metrics(str(out))) == 2  # untouched
  # Unset flags (the game, the seed) take the saved values, and the log says
  # so; a stopping rule may change.
  proc = _run("--resume", "--iterations=4", *args, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "the saved run's settings where no flag is given" in proc.stderr
  assert "game='kuhn_poker()'" in proc.stderr and "seed=3" in proc.stderr
  assert len(checkpoints.read_metrics(str(out))) == 4


@pytest.mark.parametrize(
  "game",
  [
    "chess",
    "go",
    "hex",
    "universal_poker(betting=limit,numPlayers=2,numRounds=4,blind=10 5,"
    "firstPlayer=2 1 1 1,numSuits=4,numRanks=13,numHoleCards=2,"
    "numBoardCards=0 3 1 1,raiseSize=10 10 20 20,maxRaises=3 4 4 4)",
  ],
)
def test_a_game_too_large_is_refused_within_a_second_and_a_half(tmp_path, game):
  """The whole command, default oracle (PPO) included: the refusal comes
  before torch, Ray and scipy are imported."""
  out = tmp_path / "x"
  start = time.monotonic()
  proc = subprocess.run(
    ["/usr/bin/time", "-f", "peak_rss_kb=%M", sys.executable, "-m", "openspiel_psro_ext.run"]
    + [f"--game={game}", "--evaluation=exact", f"--output_dir={out}"],
    capture_output=True,
    text=True,
    timeout=60,
  )
  elapsed = time.monotonic() - start
  peak_kb = int(proc.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0])
  stderr = proc.stderr.rsplit("peak_rss_kb=", 1)[0]
  assert proc.returncode == 2 and "simulated mode" in stderr, stderr[-2000:]
  assert not out.exists()
  assert peak_kb < 300_000, peak_kb
  # 1.5 s on an idle machine; a loaded CI gets a margin.
  assert elapsed < 6, elapsed
