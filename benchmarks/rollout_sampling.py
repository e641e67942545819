"""Why :meth:`pgbook.heads.DiagGaussianHead.sample` writes the Gaussian draw out (chapter 11).

The rollout samples one action per environment step, for a batch of ``n_envs`` states. This script
times, for a few batch shapes, the draw through ``torch.distributions.Normal`` (what the rollout
used to call: ``Normal(mu, exp(log sigma)).sample()``) and the head's ``mu + sigma * randn_like(mu)``,
which returns the same numbers (tests/test_continuous_agent.py), with one torch thread, in an order
that alternates: the median of 6 repeats of 5,000 calls each, microseconds of CPU time per call, and
the median of the two's ratio repeat by repeat.

Usage::

    python benchmarks/rollout_sampling.py
"""

from __future__ import annotations

import statistics
import time

import torch

from pgbook import heads


def _per_call(fn, calls: int = 5000) -> float:
    for _ in range(500):
        fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'batch x action_dim':>18s} {'Normal(...).sample()':>21s} {'head.sample':>12s} {'ratio':>6s}")
    for n, d in ((1, 1), (1, 6), (8, 6), (64, 17)):
        head = heads.DiagGaussianHead(d)
        params = torch.zeros(n, 2 * d)

        def through_normal():  # what the rollout used to call
            mean, log_std = params.chunk(2, dim=-1)
            return torch.distributions.Normal(mean, log_std.exp(), validate_args=False).sample()

        arms = {"normal": through_normal, "head": lambda: head.sample(params)}
        times = {name: [] for name in arms}
        for repeat in range(6):
            for name in (["normal", "head"] if repeat % 2 == 0 else ["head", "normal"]):
                times[name].append(_per_call(arms[name]))
        ratio = statistics.median(a / b for a, b in zip(times["normal"], times["head"]))
        normal, head_t = statistics.median(times["normal"]), statistics.median(times["head"])
        print(f"{f'{n} x {d}':>18s} {normal:19.1f} us {head_t:9.1f} us {ratio:6.1f}")


if __name__ == "__main__":
    main()
