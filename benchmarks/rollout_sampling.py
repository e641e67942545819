"""Why :meth:`pgbook.heads.DiagGaussianHead.sample` writes the Gaussian draw out (chapter 11).

The rollout samples one action per environment step, for a batch of ``n_envs`` states. This script
times, for a few batch shapes, the draw through ``torch.distributions.Normal`` (what the rollout
used to call: ``Normal(mu, exp(log sigma)).sample()``) and the head's ``mu + sigma * randn_like(mu)``,
which returns the same numbers (tests/test_continuous_agent.py), with one torch thread; best of 5
repeats of 5,000 calls each, microseconds per call.

Usage::

    python benchmarks/rollout_sampling.py
"""

from __future__ import annotations

import timeit

import torch

from pgbook import heads


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'batch x action_dim':>18s} {'Normal(...).sample()':>21s} {'head.sample':>12s} {'ratio':>6s}")
    for n, d in ((1, 1), (1, 6), (8, 6), (64, 17)):
        head = heads.DiagGaussianHead(d)
        params = torch.zeros(n, 2 * d)
        times = []
        def through_normal():  # what the rollout used to call
            mean, log_std = params.chunk(2, dim=-1)
            return torch.distributions.Normal(mean, log_std.exp(), validate_args=False).sample()

        for fn in (through_normal, lambda: head.sample(params)):
            times.append(min(timeit.repeat(fn, number=5000, repeat=5)) / 5000 * 1e6)
        print(f"{f'{n} x {d}':>18s} {times[0]:19.1f} us {times[1]:9.1f} us {times[0] / times[1]:6.1f}")


if __name__ == "__main__":
    main()
