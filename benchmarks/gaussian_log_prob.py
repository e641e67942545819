"""Why :class:`pgbook.heads.LogStdNormal` computes the Gaussian's log-density from log sigma (chapter 11).

A PPO update evaluates ``log pi_theta(a|s)`` and the entropy of a minibatch at every gradient step.
This script times one gradient step of :func:`pgbook.ppo.ppo_update`'s loop -- forward pass, PPO loss,
backward pass, gradient clipping and fused Adam -- at the zoo's HalfCheetah setting (17 observations,
6 actions, 256 x 256 ReLU networks, minibatches of 64), once with the head's ``LogStdNormal`` and once
with ``torch.distributions.Normal(mu, exp(log sigma))`` (what the head built before), in turns,
with one torch thread, in an order that alternates: the median of 8 repeats of 2,000 steps each,
microseconds of CPU time per step, the ratio of the two repeat by repeat, and the difference
between the two losses at the same parameters (float32 rounding).

Usage::

    python benchmarks/gaussian_log_prob.py
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.distributions import Normal

from pgbook import networks, ppo
from pgbook.heads import DiagGaussianHead


class NormalHead(DiagGaussianHead):
    """The Gaussian head as it was: the distribution built by ``torch.distributions.Normal``."""

    @staticmethod
    def distribution(params):
        mean, log_std = params.chunk(2, dim=-1)
        return Normal(mean, log_std.exp(), validate_args=False)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    obs_dim, action_dim, batch = 17, 6, 64
    model = networks.ActorCritic(obs_dim, hidden=(256, 256), orthogonal_init=False, action_dim=action_dim, activation="relu")
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-6, fused=True)
    obs, actions = torch.randn(batch, obs_dim), torch.randn(batch, action_dim)
    old_log_probs, advantages, returns = torch.randn(batch) - 5, torch.randn(batch), torch.randn(batch)
    heads = {"torch Normal": NormalHead(action_dim), "LogStdNormal": model.head}

    def loss(head):
        logits, values = model(obs)
        return ppo._loss_terms(head, logits, values, actions, old_log_probs, advantages, returns, 0.1, 0.58, 4e-4)[0]

    def step(head):
        total = loss(head)
        for p in params:
            p.grad = None
        total.backward()
        networks.clip_grad_norm(params, 0.8)
        optimizer.step()

    with torch.no_grad():
        diff = float((loss(heads["torch Normal"]) - loss(heads["LogStdNormal"])).abs())
    times = {name: [] for name in heads}
    names = list(heads)
    for repeat in range(8):
        for name in names[repeat % 2:] + names[: repeat % 2]:  # the order alternates
            for _ in range(200):
                step(heads[name])
            start = time.process_time()
            for _ in range(2000):
                step(heads[name])
            times[name].append((time.process_time() - start) / 2000 * 1e6)
    ratios = [a / b for a, b in zip(times["LogStdNormal"], times["torch Normal"])]
    print("one PPO gradient step, HalfCheetah zoo setting, microseconds of CPU time (median [min, max] of 8 x 2,000):")
    for name, ts in times.items():
        print(f"  {name:13s} {statistics.median(ts):7.1f}  [{min(ts):.1f}, {max(ts):.1f}]")
    print(f"  LogStdNormal / torch Normal, repeat by repeat: {statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]")
    print(f"  (the two losses at the same parameters differ by {diff:.1e})")


if __name__ == "__main__":
    main()
