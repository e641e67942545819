"""The command line `python -m pgbook.train`: parsing, --help, the output folder, run.json, Ctrl-C.

Training-quality checks of the CLI live in tests/test_agents.py; this file checks that every bad
input fails at once with exit status 2 and one line, and that nothing is lost: outputs are written
atomically, a previous run is not overwritten silently, and an interrupted run keeps its log.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import pytest

from pgbook import a2c, ppo
from pgbook import agents_common as common
from pgbook import train as cli

pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)

FAST = ["--env", "CartPole-v1", "--no-progress", "--eval-episodes", "2"]


def _fail(argv, capsys, monkeypatch) -> str:
    """Run the CLI, require exit status 2 before training, return the one-line message."""
    monkeypatch.setattr(common, "make_vec_env", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_set_parses_optional_fields_by_their_type():
    """None-default fields parse as their declared type: max_episode_steps=200 is the int 200."""
    cfg = cli.build_config("ppo", "CartPole-v1", 0, 2048, ["max_episode_steps=200", "stop_at_return=475", "hidden=32"])
    assert cfg.max_episode_steps == 200 and type(cfg.max_episode_steps) is int
    assert cfg.stop_at_return == 475.0 and type(cfg.stop_at_return) is float
    assert cfg.hidden == (32,)
    cfg = cli.build_config("a2c", "CartPole-v1", 0, 2048, ["max_episode_steps=none", "max_grad_norm=null"])
    assert cfg.max_episode_steps is None and cfg.max_grad_norm is None


@pytest.mark.parametrize(
    "setting,message",
    [
        ("max_episode_steps=200.5", "expected an integer"),
        ("n_epochs=four", "expected an integer"),
        ("lam=high", "expected a number"),
        ("hidden=64,wide", "comma-separated integers"),
        ("clip_eps=none", "cannot be None"),
        ("n_epochs", "FIELD=VALUE"),
    ],
)
def test_set_rejects_values_of_the_wrong_type(setting, message, capsys, monkeypatch):
    """A --set value that is not of the field's type: exit 2, naming the field and the expected type."""
    line = _fail(["ppo", "--set", setting, *FAST], capsys, monkeypatch)
    assert message in line
    if "=" in setting:
        assert setting.split("=")[0] in line


def test_help_documents_agents_fields_outputs_and_exit_statuses(capsys):
    """--help names the agents, --seed, every --set field with its default, the output files and exit codes."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in ("a2c", "ppo", "--seed", "--overwrite", "log.csv", "episodes.csv", "learning_curve.png", "run.json",
                   "Exit status", "130", "max_episode_steps=none", "clip_eps=0.2", "optimizer=rmsprop", "rounded down"):
        assert needle in text, needle
    for cls in (ppo.PPOConfig, a2c.A2CConfig):
        for field in cls.__dataclass_fields__:
            if field not in ("env_id", "seed", "total_steps"):
                assert f"{field}=" in text, field


def test_missing_dependency_is_one_line(capsys, monkeypatch):
    """An environment whose package is missing (box2d for LunarLander) fails at start with exit 2."""
    def make(env_id, **kwargs):
        raise gym.error.DependencyNotInstalled("Box2D is not installed")

    monkeypatch.setattr(gym, "make", make)
    line = _fail(["ppo", *FAST, "--env", "CartPole-v1"], capsys, monkeypatch)
    assert "needs a package that is not installed" in line and "CartPole-v1" in line


def test_out_that_cannot_hold_the_run_is_rejected_before_training(tmp_path, capsys, monkeypatch):
    """--out a file, a folder with log.csv as a directory, or a folder holding a previous run: exit 2."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "not a directory" in _fail(["ppo", *FAST, "--out", str(a_file)], capsys, monkeypatch)
    blocked = tmp_path / "blocked"
    (blocked / "log.csv").mkdir(parents=True)
    assert "log.csv is a directory" in _fail(["ppo", *FAST, "--out", str(blocked)], capsys, monkeypatch)
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "run.json").write_text("{}")
    line = _fail(["ppo", *FAST, "--out", str(previous)], capsys, monkeypatch)
    assert "previous run" in line and "--overwrite" in line
    assert (previous / "run.json").read_text() == "{}"


@pytest.mark.skipif(os.name != "posix", reason="permissions")
def test_unwritable_out_is_rejected(tmp_path, capsys, monkeypatch):
    """A folder the run cannot write into: exit 2 (checked by trying, so it also holds for root)."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "NamedTemporaryFile", refuse)
    assert "not writable (Permission denied)" in _fail(["ppo", *FAST, "--out", str(tmp_path / "ro")], capsys, monkeypatch)


def test_run_writes_run_json_and_banner_says_steps_trained(tmp_path, capsys):
    """--steps 1000 trains 768 steps (3 updates of 8 x 32) and says so; run.json records the run; --overwrite."""
    out = tmp_path / "run"
    assert cli.main(["ppo", *FAST, "--seed", "1", "--steps", "1000", "--out", str(out), "--set", "max_episode_steps=200"]) == 0
    printed = capsys.readouterr().out
    assert "768 steps = 3 updates of 8 envs x 32 steps; --steps 1000 rounded down to whole updates" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["steps_trained"] == 768 and record["steps_requested"] == 1000
    assert record["config"]["seed"] == 1 and record["config"]["max_episode_steps"] == 200
    assert record["config"]["clip_eps"] == 0.2 and record["config"]["hidden"] == [64, 64]
    env = record["environment"]
    assert {"torch", "numpy", "gymnasium", "cpu_capability", "torch_threads", "cpu"} <= set(env)
    assert record["final_evaluation"]["episodes"] == 2
    assert record["command"][:3] == ["python", "-m", "pgbook.train"] and "--steps" in record["command"]
    assert sorted(p.name for p in out.iterdir()) == sorted(cli.OUTPUTS)  # no temporary files left
    # a second run into the same folder needs --overwrite, and then replaces every file
    with pytest.raises(SystemExit):
        cli.main(["ppo", *FAST, "--steps", "256", "--out", str(out)])
    assert cli.main(["ppo", *FAST, "--steps", "256", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "run.json").read_text())["steps_trained"] == 256
    assert [int(r["step"]) for r in csv.DictReader((out / "log.csv").open())] == [256]


def test_interrupt_keeps_the_log_so_far(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the third update of a real run: exit 130, the two finished updates logged, status interrupted."""
    real, calls = ppo.ppo_update, []

    def update(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ppo, "ppo_update", update)
    out = tmp_path / "run"
    assert cli.main(["ppo", *FAST, "--steps", "2048", "--out", str(out)]) == 130
    assert "interrupted after 512 steps" in capsys.readouterr().err
    assert [int(r["step"]) for r in csv.DictReader((out / "log.csv").open())] == [256, 512]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["steps_trained"] == 512 and "final_evaluation" not in record
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(os.name != "posix", reason="SIGINT")
def test_sigint_to_a_real_process_exits_130_and_saves(tmp_path):
    """SIGINT to `python -m pgbook.train` mid-run: exit status 130, run.json says interrupted, log.csv kept."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgbook.train", "ppo", "--steps", "10000000", "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below prints every thread's stack
    )
    banner = proc.stdout.readline()  # printed after the checks, just before training starts
    assert "writing to" in banner, banner + proc.stderr.read()
    time.sleep(1.5)  # usually a few updates (about 0.1 s each); none is fine too
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)  # seconds normally; generous for a loaded CI machine
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # a hang: fail with where the process was
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"no exit 120 s after SIGINT; the process's stacks:\n{err[-6000:]}")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted after" in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and "final_evaluation" not in record
    steps = [int(r["step"]) for r in csv.DictReader((out / "log.csv").open())]
    assert steps == [256 * (i + 1) for i in range(len(steps))] and record["steps_trained"] == (steps[-1] if steps else 0)
