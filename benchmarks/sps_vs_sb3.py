"""Throughput of the book's PPO against Stable-Baselines3's PPO, same hyper-parameters, same machine.

Both train PPO on CartPole-v1 with 8 environments x 32 steps, 20 epochs, minibatch 256,
gamma 0.98, lambda 0.8, linearly annealed learning rate 1e-3 and clip range 0.2, no entropy
bonus, value coefficient 0.5, gradient-norm clip 0.5, separate 64-64 tanh actor and critic with
orthogonal init, Adam eps 1e-5 (RL Baselines3 Zoo's tuned CartPole configuration). Each run is a
fresh subprocess (so neither pays for the other's imports or threads); the two alternate,
``--repeats`` times each, and both use ``--threads`` torch threads (1 is the faster setting for
both on small MLPs). The score is environment steps per second of wall-clock training time
(construction of environments, networks and optimiser excluded for both -- creating the first
torch optimiser of a process imports ``torch._dynamo``, about a second here: SB3's ``learn`` call
against the training loop of our ``train``, timed inside it), median over the repeats.

Usage::

    pip install -r requirements-bench.txt      # stable-baselines3 (benchmark only)
    python benchmarks/sps_vs_sb3.py [--steps 50000] [--repeats 3] [--threads 1]

Target (issue 6): the book's PPO at least 1.5x SB3's steps per second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

N_ENVS, N_STEPS, EPOCHS, BATCH, GAMMA, LAM, LR, CLIP = 8, 32, 20, 256, 0.98, 0.8, 1e-3, 0.2


def run_ours(steps: int, threads: int, seed: int) -> dict:
    from pgbook import ppo

    cfg = ppo.PPOConfig(
        env_id="CartPole-v1", total_steps=steps, n_envs=N_ENVS, n_steps=N_STEPS, n_epochs=EPOCHS,
        minibatch_size=BATCH, gamma=GAMMA, lam=LAM, lr=LR, anneal_lr=True, clip_eps=CLIP, anneal_clip=True,
        ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantages=True, seed=seed, device="cpu",
        torch_threads=threads,
    )
    result = ppo.train(cfg)
    return {"steps": result.steps, "seconds": result.seconds}  # the training loop only


def run_sb3(steps: int, threads: int, seed: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_util import make_vec_env
    except ImportError:
        sys.exit("stable-baselines3 is not installed: pip install -r requirements-bench.txt")

    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=seed)
    model = PPO(
        "MlpPolicy", env, n_steps=N_STEPS, batch_size=BATCH, n_epochs=EPOCHS, gamma=GAMMA, gae_lambda=LAM,
        learning_rate=lambda progress: progress * LR, clip_range=lambda progress: progress * CLIP,
        ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True, seed=seed, device="cpu", verbose=0,
    )
    steps = (steps // (N_ENVS * N_STEPS)) * N_ENVS * N_STEPS  # whole rollouts, like ours
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    return {"steps": int(model.num_timesteps), "seconds": seconds}


def _worker(which: str, steps: int, threads: int, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--steps", str(steps), "--threads", str(threads), "--seed", str(seed)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{which} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=["ours", "sb3"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run = run_ours if args.worker == "ours" else run_sb3
        print(json.dumps(run(args.steps, args.threads, args.seed)))
        return 0

    try:
        import stable_baselines3
    except ImportError:
        print("stable-baselines3 is not installed: pip install -r requirements-bench.txt", file=sys.stderr)
        return 1
    import torch

    print(
        f"PPO on CartPole-v1, {args.steps} steps per run, {N_ENVS} envs x {N_STEPS} steps, {EPOCHS} epochs, "
        f"minibatch {BATCH}, torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"{args.threads} torch thread(s)"
    )
    sps = {"ours": [], "sb3": []}
    for rep in range(args.repeats):
        for which in ("ours", "sb3"):
            res = _worker(which, args.steps, args.threads, args.seed)
            rate = res["steps"] / res["seconds"]
            sps[which].append(rate)
            print(f"  run {rep + 1}: {which:4s} {res['steps']} steps in {res['seconds']:.1f} s = {rate:.0f} steps/s", flush=True)
    ours, sb3 = statistics.median(sps["ours"]), statistics.median(sps["sb3"])
    print()
    print(f"{'implementation':26s} {'median steps/s':>15s}")
    print(f"{'pgbook.ppo':26s} {ours:15.0f}")
    print(f"{'stable-baselines3 PPO':26s} {sb3:15.0f}")
    print(f"ratio (pgbook / SB3): {ours / sb3:.2f}x  (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
