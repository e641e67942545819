"""PPO on Pendulum and MuJoCo tasks: the book's agent against Stable-Baselines3 and CleanRL (chapter 11).

Four arms by default (two more on request), two pairs with matched hyper-parameters, trained on the
same machine and scored by one evaluation protocol:

``ours`` and ``sb3``
    ``PPOConfig(**CONTINUOUS_DEFAULTS, **ZOO_SETTINGS[env_id])`` (RL Baselines3 Zoo's tuned entries
    in this book's field names) against Stable-Baselines3's PPO with the same entries of the zoo's
    ``hyperparams/ppo.yml`` (DLR-RM/rl-baselines3-zoo at 22e3ff2: ``Pendulum-v1``; ``HalfCheetah-v4``
    and ``Hopper-v4``, tuned on the v3 tasks, applied here to v5, with ``VecNormalize(gamma=gamma)``);
    see :data:`SB3_ZOO`. The zoo's Pendulum entry explores with gSDE, which SB3 runs and this book's
    agent does not have (its log-std is state-independent): the one difference in that pair.
``ours_cleanrl`` and ``cleanrl``
    ``PPOConfig(**CONTINUOUS_DEFAULTS)`` (CleanRL's setting) against CleanRL's
    ``ppo_continuous_action.py`` run unmodified: the file at commit 7c2660b of vwxyzjn/cleanrl (its
    Gymnasium 1.x version; get it with
    ``curl -O https://raw.githubusercontent.com/vwxyzjn/cleanrl/7c2660bf8a065bf85bace01040a82a06ce14f5ff/cleanrl/ppo_continuous_action.py``
    and pass ``--cleanrl-script``; it needs ``tyro``). The harness executes the script as
    ``__main__`` with ``--env-id --seed --total-timesteps --no-cuda``, and replaces
    ``torch.utils.tensorboard.SummaryWriter`` by a stub (no tensorboard needed) whose per-iteration
    ``add_scalar("charts/learning_rate", ...)`` call is the hook where it evaluates.

``ours_cleanrl_timeout`` (not run by default)
    ``ours_cleanrl`` with ``bootstrap_truncated=False``: a time limit treated as termination, as
    CleanRL's script treats it -- one of the differences within the CleanRL pair, isolated in this
    book's agent (on Pendulum-v1, where every episode ends at the time limit, it alone stops the
    swing-up in these runs).

``sb3_nosde`` (not run by default)
    ``sb3`` without gSDE (``use_sde`` and ``sde_sample_freq`` dropped from the zoo's entry, so SB3's
    state-independent log-std, as this book's agent has): on Pendulum-v1 the like-for-like partner
    of ``ours``.

Within a pair the hyper-parameters agree; the implementations still differ in details listed in
:data:`pgbook.ppo.CONTINUOUS_DEFAULTS` (CleanRL: value-loss clipping, observation and reward
clipping, a time limit treated as termination) and here (SB3's ``VecNormalize`` clips normalised
observations and rewards to [-10, 10]).

The protocol, the same for all: after each PPO iteration (rollout + update) the harness stops the
training clocks; at the first iteration at or past every multiple of ``--eval-every`` steps, and
after the last iteration, it plays ``--eval-episodes`` episodes with the deterministic policy (the
Gaussian's mean, clipped to the action bounds) on fresh ``gym.make(env_id)`` environments without
the training wrappers, episode ``i`` from ``reset(seed=10_000 + 100 * seed + i)``, observations
normalised with the run's statistics at that moment (frozen; SB3's and CleanRL's clipping of
normalised observations to [-10, 10] included), and records the mean and standard deviation of
the undiscounted returns. The clocks -- wall-clock and the process's CPU time -- exclude
construction, the first iteration (warm-up: imports, first optimiser step) and every evaluation;
steps per second = steps after the first iteration / that time. CPU time is the fairer measure
on a shared machine (a run that waits for a core is not charged for it).

Each run is a fresh subprocess with ``--threads`` torch threads; ``--jobs`` runs go side by side.
Rows are appended to ``--out`` (default ``src/pgbook/data/continuous_runs.csv``, read by chapter 11
through :func:`pgbook.results.read_rows`); a run already complete there is skipped, so an
interrupted benchmark resumes. Columns: ``impl, env_id, seed, step, train_seconds, cpu_seconds,
eval_mean, eval_std, eval_episodes, batch, threads, jobs, version`` (``batch``: steps per
iteration, so the clocks start at ``step = batch``; ``cpu_seconds`` is empty in the first runs,
recorded before it was added; ``version``: the implementation's version, for this book's agent
with the git commit of its code in runs made after the column learnt it -- none of the committed
returns runs records one: they drew their actions with ``torch.distributions.Normal.sample``,
except ``ours_cleanrl_timeout``, which ran commit 2661435's faster draw of the same numbers, and
computed log-densities with ``Normal`` (not :class:`pgbook.heads.LogStdNormal`)).

The speed (``--speed ROUNDS``) is measured separately from the returns, in short runs without
evaluations: every round trains each arm of ``--impl`` once on each task, one run at a time, all with
the round's number as seed and in an order rotated from round to round; a pair's speed ratio is
taken round by round (two runs of the same round, made minutes apart, so a drift of the machine's
speed between rounds largely cancels) and summarised by its median and range (:func:`pgbook.results.paired_speed`). Rows go to
``--speed-out`` (default ``src/pgbook/data/continuous_speed.csv``): ``impl, env_id, round, seed,
steps, timed_steps, train_seconds, cpu_seconds, threads, version`` (``timed_steps``: the steps after
the first iteration, which the clocks exclude).

Usage::

    pip install -r requirements-bench.txt
    python benchmarks/continuous_vs_peers.py --env HalfCheetah-v5 Hopper-v5 \\
        --impl ours sb3 ours_cleanrl cleanrl --seeds 0 1 2 --steps 1000000 --jobs 2 \\
        --cleanrl-script ppo_continuous_action.py
    python benchmarks/continuous_vs_peers.py --env Pendulum-v1 --seeds 0 1 2 --steps 204800 \\
        --impl ours sb3 ours_cleanrl cleanrl ours_cleanrl_timeout sb3_nosde \\
        --eval-every 10240 --jobs 1 --cleanrl-script ppo_continuous_action.py
    python benchmarks/continuous_vs_peers.py --report          # the README's table
    python benchmarks/continuous_vs_peers.py --speed 5 --env HalfCheetah-v5 Hopper-v5 --impl ours sb3 --steps 61440
    python benchmarks/continuous_vs_peers.py --speed 5 --env Pendulum-v1 --impl ours sb3_nosde sb3 --steps 61440
    python benchmarks/continuous_vs_peers.py --speed 3 --env Pendulum-v1 HalfCheetah-v5 Hopper-v5 \\
        --impl ours_cleanrl cleanrl --steps 61440 --cleanrl-script ppo_continuous_action.py
    python benchmarks/continuous_vs_peers.py --speed-report    # the README's speed table

Pendulum-v1 runs 204,800 steps (twice the zoo's budget for it, 50 iterations of 4 x 1024 and 100 of
2048), evaluated every 10,240; the MuJoCo tasks 1M steps, evaluated every 51,200.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import os
import runpy
import subprocess
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "pgbook" / "data" / "continuous_runs.csv"
COLUMNS = [
    "impl", "env_id", "seed", "step", "train_seconds", "cpu_seconds", "eval_mean", "eval_std", "eval_episodes", "batch",
    "threads", "jobs", "version",
]
DEFAULT_SPEED_OUT = ROOT / "src" / "pgbook" / "data" / "continuous_speed.csv"
SPEED_COLUMNS = ["impl", "env_id", "round", "seed", "steps", "timed_steps", "train_seconds", "cpu_seconds", "threads", "version"]
IMPLS = ("ours", "sb3", "ours_cleanrl", "cleanrl", "ours_cleanrl_timeout", "sb3_nosde")
DEFAULT_IMPLS = IMPLS[:4]
CLEANRL_COMMIT = "7c2660bf8a065bf85bace01040a82a06ce14f5ff"

_ZOO_MUJOCO_POLICY = {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu", "net_arch": {"pi": [256, 256], "vf": [256, 256]}}
#: RL Baselines3 Zoo's PPO hyper-parameters (hyperparams/ppo.yml at 22e3ff2), keyed by our task id.
SB3_ZOO: dict[str, dict] = {
    "Pendulum-v1": {
        "normalize": False, "n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10,
        "ent_coef": 0.0, "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True, "sde_sample_freq": 4,
    },
    "HalfCheetah-v5": {  # the zoo's HalfCheetah-v4
        "normalize": True, "n_envs": 1, "batch_size": 64, "n_steps": 512, "gamma": 0.98, "learning_rate": 2.0633e-05,
        "ent_coef": 0.000401762, "clip_range": 0.1, "n_epochs": 20, "gae_lambda": 0.92, "max_grad_norm": 0.8,
        "vf_coef": 0.58096, "policy_kwargs": _ZOO_MUJOCO_POLICY,
    },
    "Hopper-v5": {  # the zoo's Hopper-v4
        "normalize": True, "n_envs": 1, "batch_size": 32, "n_steps": 512, "gamma": 0.999, "learning_rate": 9.80828e-05,
        "ent_coef": 0.00229519, "clip_range": 0.2, "n_epochs": 5, "gae_lambda": 0.99, "max_grad_norm": 0.7,
        "vf_coef": 0.835671, "policy_kwargs": _ZOO_MUJOCO_POLICY,
    },
}


# ----------------------------------------------------------------------------------------------
# The shared evaluation protocol and the training clock
# ----------------------------------------------------------------------------------------------


def evaluate_policy(env_id: str, act, n_episodes: int, seed: int) -> np.ndarray:
    """Undiscounted returns of ``n_episodes`` episodes of ``act`` (a batch of raw observations ->
    a batch of actions) on fresh ``gym.make(env_id)`` environments; actions are clipped to the
    bounds; episode ``i`` starts from ``reset(seed=seed + i)``."""
    import gymnasium as gym

    envs = [gym.make(env_id) for _ in range(n_episodes)]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    returns = np.zeros(n_episodes)
    alive = np.ones(n_episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        actions = np.clip(np.asarray(act(obs[idx]), dtype=np.float64), low, high)
        for i, a in zip(idx, actions):
            o, r, term, trunc, _ = envs[i].step(a.astype(envs[i].action_space.dtype))
            returns[i] += r
            obs[i] = o
            alive[i] = not (term or trunc)
    for env in envs:
        env.close()
    return returns


class Clock:
    """The training clocks (wall-clock and this process's CPU time) without the first iteration and
    without evaluations, and the evaluation points (none when ``evaluate`` is False)."""

    def __init__(self, env_id: str, seed: int, eval_every: int, eval_episodes: int, total: int, evaluate: bool = True):
        self.env_id, self.seed, self.eval_every, self.eval_episodes, self.total = env_id, seed, eval_every, eval_episodes, total
        self.evaluate = evaluate
        self.t0 = self.c0 = None  # wall-clock and CPU time at the end of the first iteration
        self.paused = self.cpu_paused = 0.0  # spent evaluating since then
        self.last_step = 0
        self.marks: list[tuple[int, float, float]] = []  # (step, wall seconds, CPU seconds) at every tick
        self.rows: list[dict] = []

    def tick(self, step: int, act_factory, last: bool = False) -> None:
        """Called at the end of every iteration (``step`` = environment steps so far)."""
        now, cpu = time.perf_counter(), time.process_time()
        if self.t0 is None:
            self.t0, self.c0 = now, cpu
        wall_s, cpu_s = now - self.t0 - self.paused, cpu - self.c0 - self.cpu_paused
        self.marks.append((step, wall_s, cpu_s))
        crossed = step // self.eval_every > self.last_step // self.eval_every
        self.last_step = step
        if self.evaluate and (crossed or last or step >= self.total):
            returns = evaluate_policy(self.env_id, act_factory(), self.eval_episodes, 10_000 + 100 * self.seed)
            self.rows.append({
                "step": step, "train_seconds": round(wall_s, 2), "cpu_seconds": round(cpu_s, 2),
                "eval_mean": round(float(returns.mean()), 2), "eval_std": round(float(returns.std()), 2),
                "eval_episodes": self.eval_episodes,
            })
            print(json.dumps({"progress": self.rows[-1]}), file=sys.stderr, flush=True)
            self.paused += time.perf_counter() - now
            self.cpu_paused += time.process_time() - cpu


# ----------------------------------------------------------------------------------------------
# The four arms: three implementations, ours in two settings (each run in its own subprocess)
# ----------------------------------------------------------------------------------------------


def ours_config(impl: str, env_id: str, seed: int, steps: int, threads: int):
    """The :class:`pgbook.ppo.PPOConfig` of one of this book's arms (``ours``, ``ours_cleanrl``,
    ``ours_cleanrl_timeout``)."""
    from pgbook import ppo

    common = {"env_id": env_id, "seed": seed, "total_steps": steps, "device": "cpu", "torch_threads": threads}
    if impl == "ours":  # the zoo's entry, SB3's configuration
        return ppo.PPOConfig(**{**ppo.CONTINUOUS_DEFAULTS, **ppo.ZOO_SETTINGS[env_id]}, **common)
    if impl == "ours_cleanrl":
        return ppo.PPOConfig(**ppo.CONTINUOUS_DEFAULTS, **common)
    if impl == "ours_cleanrl_timeout":  # a time limit treated as termination, as CleanRL treats it
        return ppo.PPOConfig(**ppo.CONTINUOUS_DEFAULTS, **common, bootstrap_truncated=False)
    raise ValueError(f"impl must be one of this book's arms, got {impl!r}")


def run_ours(impl: str, env_id: str, seed: int, steps: int, threads: int, clock: Clock) -> tuple[str, int]:
    import torch

    import pgbook
    from pgbook import ppo

    cfg = ours_config(impl, env_id, seed, steps, threads)
    batch = cfg.n_envs * cfg.n_steps
    final = (steps // batch) * batch
    state = {}

    def capture(model, env_id_, n, seed_, max_steps, obs_rms):  # replaces the agent's own evaluation
        state["model"], state["obs_rms"] = model, obs_rms
        return np.zeros(1)

    def act_factory():
        model, rms = state["model"], state["obs_rms"]

        @torch.no_grad()
        def act(obs):
            if rms is not None:  # gymnasium's NormalizeObservation, frozen
                obs = (obs - rms.mean) / np.sqrt(rms.var + 1e-8)
            x = torch.as_tensor(obs, dtype=torch.float32)
            return model.head.mode(model.policy_params(x)).numpy()

        return act

    ppo.common.evaluate = capture
    cfg.eval_every, cfg.eval_episodes = batch, 1  # capture the model after every iteration
    ppo.train(cfg, progress=lambda step, info: clock.tick(step, act_factory, last=step >= final))
    return f"pgbook {pgbook.__version__}{_commit()}", batch


def _commit() -> str:
    """`` @ <commit>`` of the checkout pgbook was imported from (``-dirty`` with uncommitted changes),
    or "" outside a git checkout: runs of different code are told apart in the ``version`` column."""
    import pgbook

    src = Path(pgbook.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), "describe", "--always", "--dirty", "--abbrev=7"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f" @ {out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else ""


def sb3_hyperparameters(env_id: str, sde: bool = True) -> dict:
    """The SB3 arms' entry for ``env_id`` (a copy): the zoo's (:data:`SB3_ZOO`) for ``sb3``; for
    ``sb3_nosde`` (``sde=False``) the same without ``use_sde`` and ``sde_sample_freq``. ``normalize``
    and ``n_envs`` are the harness's to apply, the rest are keyword arguments of SB3's ``PPO``."""
    hp = copy.deepcopy(SB3_ZOO[env_id])
    if not sde:
        hp.pop("use_sde", None), hp.pop("sde_sample_freq", None)
    return hp


def run_sb3(env_id: str, seed: int, steps: int, threads: int, clock: Clock, sde: bool = True) -> tuple[str, int]:
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(threads)
    hp = sb3_hyperparameters(env_id, sde)
    normalize, n_envs = hp.pop("normalize"), hp.pop("n_envs")
    if "policy_kwargs" in hp:
        pk = dict(hp["policy_kwargs"])
        pk["activation_fn"] = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[pk["activation_fn"]]
        hp["policy_kwargs"] = pk
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=hp["gamma"])
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hp)
    batch = n_envs * hp["n_steps"]
    final = -(-steps // batch) * batch  # learn() finishes the rollout that crosses total_timesteps

    def act_factory():
        vec = model.get_vec_normalize_env()
        obs_rms = None if vec is None else (vec.obs_rms.mean.copy(), vec.obs_rms.var.copy(), vec.epsilon, vec.clip_obs)

        def act(obs):
            if obs_rms is not None:  # VecNormalize.normalize_obs, frozen
                mean, var, eps, clip = obs_rms
                obs = np.clip((obs - mean) / np.sqrt(var + eps), -clip, clip)
            return model.predict(obs.astype(np.float32), deterministic=True)[0]

        return act

    class Hook(BaseCallback):
        def _on_rollout_start(self) -> None:  # right after the previous iteration's update
            if self.model.num_timesteps > 0:
                clock.tick(self.model.num_timesteps, act_factory)

        def _on_step(self) -> bool:
            return True

        def _on_training_end(self) -> None:
            clock.tick(self.model.num_timesteps, act_factory, last=True)

    model.learn(total_timesteps=steps, callback=Hook())
    assert model.num_timesteps == final, (model.num_timesteps, final)
    return f"stable-baselines3 {stable_baselines3.__version__}", batch


def run_cleanrl(env_id: str, seed: int, steps: int, threads: int, clock: Clock, script: str) -> tuple[str, int]:
    import torch

    torch.set_num_threads(threads)

    class Recorder:  # a stub for torch.utils.tensorboard.SummaryWriter
        def __init__(self, *args, **kwargs):
            pass

        def add_text(self, *args, **kwargs):
            pass

        def close(self):
            pass

        def add_scalar(self, tag, value, step):
            if tag != "charts/learning_rate":  # logged once per iteration, after the update
                return
            g = sys._getframe(1).f_globals  # the script's module namespace
            agent, envs, args, iteration = g["agent"], g["envs"], g["args"], g["iteration"]

            def act_factory():
                wrapper = envs.envs[0]
                while not isinstance(wrapper, gym.wrappers.NormalizeObservation):
                    wrapper = wrapper.env
                mean, var, eps = wrapper.obs_rms.mean.copy(), wrapper.obs_rms.var.copy(), wrapper.epsilon

                @torch.no_grad()
                def act(obs):
                    x = np.clip((obs - mean) / np.sqrt(var + eps), -10, 10)  # the script's TransformObservation
                    return agent.actor_mean(torch.as_tensor(x, dtype=torch.float32)).numpy()

                return act

            clock.tick(int(step), act_factory, last=iteration == args.num_iterations)

    import gymnasium as gym

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = Recorder
    sys.modules["torch.utils.tensorboard"] = fake
    sys.argv = [script, "--env-id", env_id, "--seed", str(seed), "--total-timesteps", str(steps), "--no-cuda"]
    cwd = os.getcwd()
    with contextlib.redirect_stdout(io.StringIO()):  # the script prints every episode's return
        os.chdir(os.environ.get("TMPDIR", "/tmp"))
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            os.chdir(cwd)
    return f"cleanrl {CLEANRL_COMMIT[:7]}", 2048  # the script's num_envs x num_steps


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------


def _worker(args) -> int:
    clock = Clock(args.env[0], args.seeds[0], args.eval_every, args.eval_episodes, args.steps, evaluate=not args.no_eval)
    impl = args.worker
    if impl.startswith("ours"):
        version, batch = run_ours(impl, args.env[0], args.seeds[0], args.steps, args.threads, clock)
    elif impl in ("sb3", "sb3_nosde"):
        version, batch = run_sb3(args.env[0], args.seeds[0], args.steps, args.threads, clock, sde=impl == "sb3")
    else:
        version, batch = run_cleanrl(args.env[0], args.seeds[0], args.steps, args.threads, clock, args.cleanrl_script)
    step, wall_s, cpu_s = clock.marks[-1]  # the clocks at the end of the last iteration
    timing = {"step": step, "timed_steps": step - clock.marks[0][0], "train_seconds": round(wall_s, 3), "cpu_seconds": round(cpu_s, 3)}
    print(json.dumps({"version": version, "batch": batch, "rows": clock.rows, "timing": timing}))
    return 0


def _read(out: Path) -> list[dict]:
    if not out.exists():
        return []
    with out.open(newline="") as f:
        return list(csv.DictReader(f))


def _complete(rows: list[dict], impl: str, env_id: str, seed: int, steps: int) -> bool:
    done = [r for r in rows if (r["impl"], r["env_id"], int(r["seed"])) == (impl, env_id, seed)]
    return bool(done) and max(int(r["step"]) for r in done) >= 0.99 * steps


def _launch(impl, env_id, seed, args, evaluate: bool = True) -> dict:
    cmd = [
        sys.executable, __file__, "--worker", impl, "--env", env_id, "--seeds", str(seed), "--steps", str(args.steps),
        "--threads", str(args.threads), "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
    ]
    if not evaluate:
        cmd.append("--no-eval")
    if args.cleanrl_script:
        cmd += ["--cleanrl-script", str(Path(args.cleanrl_script).resolve())]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{impl} {env_id} seed {seed} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def run_all(args) -> int:
    out = Path(args.out)
    if "cleanrl" in args.impl and not args.cleanrl_script:
        sys.exit("--cleanrl-script PATH is needed for cleanrl (see this file's docstring)")
    have = _read(out)
    todo = [
        (impl, env_id, seed)
        for seed in args.seeds for env_id in args.env for impl in args.impl  # whole seeds first
        if not _complete(have, impl, env_id, seed, args.steps)
    ]
    print(f"{len(todo)} runs to do ({args.jobs} at a time, {args.threads} torch thread(s) each)", flush=True)

    def one(job):
        impl, env_id, seed = job
        result = _launch(impl, env_id, seed, args)
        rows = [
            {"impl": impl, "env_id": env_id, "seed": seed, **row, "batch": result["batch"], "threads": args.threads,
             "jobs": args.jobs, "version": result["version"]}
            for row in result["rows"]
        ]
        last = rows[-1]
        sps = (last["step"] - last["batch"]) / last["train_seconds"]
        print(f"{impl:8s} {env_id:15s} seed {seed}: {last['step']} steps, eval {last['eval_mean']:.1f} "
              f"+- {last['eval_std']:.1f}, {sps:.0f} steps/s ({result['wall']:.0f} s wall)", flush=True)
        return rows

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(one, job) for job in todo]):  # written by this thread only
            try:
                rows = future.result()
            except RuntimeError as err:  # one failed run does not stop the others
                print(err, file=sys.stderr, flush=True)
                continue
            current = [r for r in _read(out) if (r["impl"], r["env_id"], str(r["seed"])) != (rows[0]["impl"], rows[0]["env_id"], str(rows[0]["seed"]))]
            _write(out, current + rows)
    return 0


def _write(out: Path, rows: list[dict], columns: list[str] = COLUMNS) -> None:
    """Replace ``out`` by ``rows`` (sorted by task, implementation, then seed and step, or round), atomically."""
    if columns == COLUMNS:
        rows = sorted(rows, key=lambda r: (r["env_id"], r["impl"], int(r["seed"]), int(r["step"])))
    else:
        rows = sorted(rows, key=lambda r: (r["env_id"], int(r["round"]), r["impl"]))
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)


def report(out: Path) -> int:
    """A Markdown table of the runs in ``out``: final greedy return (median and range over seeds).
    (Their clocks are in the file too; the speed comparison is :func:`speed_report`'s, measured
    separately.)"""
    from pgbook.results import summarize_runs

    rows = _read(out)
    if not rows:
        print(f"no results in {out}")
        return 1
    print("| task | implementation | seeds | steps | final greedy return: median [min, max] |")
    print("|---|---|---|---|---|")
    order = {impl: i for i, impl in enumerate(IMPLS)}  # the pairs side by side
    for run in sorted(summarize_runs(rows), key=lambda r: (r["env_id"], order.get(r["impl"], len(order)))):
        print(
            f"| {run['env_id']} | {run['impl']} | {len(run['seeds'])} | {run['steps']:,} | {run['median']:.0f} "
            f"[{min(run['finals']):.0f}, {max(run['finals']):.0f}] |"
        )
    return 0


def run_speed(args) -> int:
    """``--speed ROUNDS``: the speed measurement. Every round runs each arm of ``--impl`` once on each
    task of ``--env``, one run at a time, without evaluations, all arms of a round with the same seed
    (the round's number) and in an order rotated from round to round, so that a slow stretch of the
    machine does not always fall on the same arm (with two arms and an odd number of rounds, the
    first arm of ``--impl`` goes first once more often). Rows go to ``--speed-out``; runs already
    there are skipped, and a file holding runs of another length or thread count is refused."""
    out = Path(args.speed_out)
    if "cleanrl" in args.impl and not args.cleanrl_script:
        sys.exit("--cleanrl-script PATH is needed for cleanrl (see this file's docstring)")
    have = {(r["impl"], r["env_id"], int(r["round"])): r for r in _read(out)}
    for (impl, env_id, rnd), r in have.items():  # a resumed measurement must be the same measurement
        if impl in args.impl and env_id in args.env and (int(r["threads"]) != args.threads or abs(int(r["steps"]) - args.steps) > 0.1 * args.steps):
            sys.exit(f"{out} holds a run of {impl} on {env_id} in round {rnd} with {r['steps']} steps and {r['threads']} "
                     f"thread(s); this measurement asks for {args.steps} and {args.threads}: use another --speed-out")
    for rnd in range(args.speed):
        for env_id in args.env:
            k = rnd % len(args.impl)
            for impl in args.impl[k:] + args.impl[:k]:
                if (impl, env_id, rnd) in have:
                    continue
                try:
                    result = _launch(impl, env_id, rnd, args, evaluate=False)
                except RuntimeError as err:  # one failed run does not stop the others
                    print(err, file=sys.stderr, flush=True)
                    continue
                t = result["timing"]
                row = {"impl": impl, "env_id": env_id, "round": rnd, "seed": rnd, "steps": t["step"],
                       "timed_steps": t["timed_steps"], "train_seconds": t["train_seconds"], "cpu_seconds": t["cpu_seconds"],
                       "threads": args.threads, "version": result["version"]}
                _write(out, _read(out) + [row], SPEED_COLUMNS)
                print(f"round {rnd} {impl:12s} {env_id:15s}: {t['timed_steps']} steps in {t['cpu_seconds']} CPU-seconds "
                      f"({t['train_seconds']} s)", flush=True)
    return 0


#: the pairs at matched hyper-parameters: (this book's arm, the peer)
PAIRS = (("ours", "sb3"), ("ours", "sb3_nosde"), ("ours_cleanrl", "cleanrl"))


def speed_report(out: Path) -> int:
    """A Markdown table of the speed runs in ``out``: per task and pair, the median steps per
    CPU-second of each arm and the ratio (this book's agent over the peer), round by round: its
    median and range over the rounds (:func:`pgbook.results.paired_speed`)."""
    from pgbook.results import paired_speed

    rows = _read(out)
    if not rows:
        print(f"no results in {out}")
        return 1
    print("| task | pair | rounds | steps/CPU-s, ours (median) | steps/CPU-s, peer (median) | ratio per round: median [min, max] |")
    print("|---|---|---|---|---|---|")
    measured = {(r["env_id"], r["impl"]) for r in rows}
    for env_id in sorted({r["env_id"] for r in rows}, key=lambda t: (t != "Pendulum-v1", t)):
        for ours, peer in PAIRS:
            if not {(env_id, ours), (env_id, peer)} <= measured:  # the pair was not measured on this task
                continue
            p = paired_speed(rows, env_id, ours, peer)
            print(f"| {env_id} | {ours} / {peer} | {len(p['rounds'])} | {p['median_a']:.0f} | {p['median_b']:.0f} | "
                  f"{p['median']:.2f} [{min(p['ratios']):.2f}, {max(p['ratios']):.2f}] |")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=["HalfCheetah-v5", "Hopper-v5"])
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(DEFAULT_IMPLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=51_200)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--cleanrl-script", default=None)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--report", action="store_true", help="print the table of the results in --out")
    parser.add_argument("--speed", type=int, metavar="ROUNDS", help="measure the speed: ROUNDS rounds of every arm, no evaluation")
    parser.add_argument("--speed-out", default=str(DEFAULT_SPEED_OUT))
    parser.add_argument("--speed-report", action="store_true", help="print the table of the speed runs in --speed-out")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--no-eval", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(args)
    if args.report:
        return report(Path(args.out))
    if args.speed_report:
        return speed_report(Path(args.speed_out))
    if args.speed is not None:
        if args.speed < 1:
            parser.error(f"--speed needs at least 1 round, got {args.speed}")
        return run_speed(args)
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
