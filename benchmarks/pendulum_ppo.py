"""PPO with the diagonal Gaussian policy on Pendulum-v1 (chapter 11): does the preset learn?

Trains :meth:`pgbook.ppo.PPOConfig.for_env` ``("Pendulum-v1")`` (the continuous defaults with the
Pendulum tuning of :data:`pgbook.ppo.ENV_PRESETS`) for each seed and prints, per seed, the steps,
the wall-clock seconds, the mean return of the last 20 training episodes and the mean return of 20
deterministic (mean-action) evaluation episodes with the run's frozen observation statistics.

Usage::

    python benchmarks/pendulum_ppo.py [--seeds 0 1 2] [--steps 200000] [--set FIELD=VALUE ...]

Pendulum-v1's return lies in about [-1700, 0] (200 steps of cost <= 16.3); a swung-up,
balanced pendulum scores around -150 to -200, a policy that does not swing up around -1200.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from pgbook import agents_common, ppo
from pgbook.train import _field_kind, _optional, _parse_value


def run(seed: int, steps: int, overrides: dict) -> dict:
    cfg = ppo.PPOConfig.for_env("Pendulum-v1", seed=seed, total_steps=steps, device="cpu", **overrides)
    result = ppo.train(cfg)
    returns = agents_common.evaluate(result.model, cfg.env_id, 20, 10_000 + seed, None, result.obs_rms)
    last = [r for _, r, _ in result.episodes[-20:]]
    return {
        "seed": seed,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "train_return_last20": round(float(np.mean(last)), 1),
        "eval_mean": round(float(returns.mean()), 1),
        "eval_std": round(float(returns.std()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    overrides = {}
    for item in args.overrides:
        key, raw = item.split("=", 1)
        overrides[key] = _parse_value(raw, _field_kind(ppo.PPOConfig, key), _optional(ppo.PPOConfig, key))
    for seed in args.seeds:
        print(json.dumps({**run(seed, args.steps, overrides), "overrides": args.overrides}), flush=True)


if __name__ == "__main__":
    main()
