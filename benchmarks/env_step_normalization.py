"""Why :class:`pgbook.envs.FastRunningMeanStd` skips two reductions (chapter 11).

gymnasium's normalisation wrappers update their running statistics at every environment step; with
one environment each update is a batch of one row, whose ``np.mean`` and ``np.var`` (the row itself
and zeros) the parent class computes anyway. This script steps the vector environment of the
zoo's MuJoCo settings (:func:`pgbook.envs.make_vec_env` with one environment, observation
normalisation and reward scaling) with fixed random actions, once with gymnasium's
``RunningMeanStd`` in both wrappers and once with ``FastRunningMeanStd``, in an order that rotates;
one process, the median of 6 repeats of 20,000 steps each, microseconds of CPU time per step, and
the ratio of the two repeat by repeat. Without the
normalisation the same environment is timed too, for scale. Needs MuJoCo (requirements-bench.txt)
for the default task; ``--env Pendulum-v1`` runs without it.

Usage::

    python benchmarks/env_step_normalization.py [--env HalfCheetah-v5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

from pgbook import envs


def _time(env_id: str, rms_class, steps: int, actions: np.ndarray) -> float:
    obs_dim = envs.env_spaces(env_id).obs_dim
    if rms_class is None:
        vec = envs.make_vec_env(env_id, 1)
    else:
        vec = envs.make_vec_env(env_id, 1, obs_rms=rms_class(shape=(obs_dim,)), reward_gamma=0.99)
        vec.return_rms = rms_class(shape=())  # make_vec_env installs FastRunningMeanStd here; time the class asked for
    vec.reset(seed=0)
    start = time.process_time()
    for i in range(steps):
        vec.step(actions[i])
    seconds = time.process_time() - start
    vec.close()
    return seconds / steps * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)
    spaces = envs.env_spaces(args.env)
    rng = np.random.default_rng(0)
    actions = rng.uniform(spaces.action_low, spaces.action_high, (args.steps, 1, spaces.action_dim)).astype(np.float32)
    arms = {"no normalisation": None, "gymnasium RunningMeanStd": RunningMeanStd, "FastRunningMeanStd": envs.FastRunningMeanStd}
    times = {name: [] for name in arms}
    names = list(arms)
    for repeat in range(args.repeats):
        k = repeat % len(names)
        for name in names[k:] + names[:k]:  # the order rotates
            times[name].append(_time(args.env, arms[name], args.steps, actions))
    print(f"{args.env}, one environment, microseconds of CPU time per step (median [min, max] of {args.repeats} x {args.steps:,} steps):")
    for name, ts in times.items():
        print(f"  {name:26s} {statistics.median(ts):6.1f}   [{min(ts):.1f}, {max(ts):.1f}]")
    ratios = [a / b for a, b in zip(times["FastRunningMeanStd"], times["gymnasium RunningMeanStd"])]
    print(f"  FastRunningMeanStd / gymnasium's, repeat by repeat: {statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]")


if __name__ == "__main__":
    main()
