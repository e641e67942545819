"""Steps to solve CartPole-v1 with the book's A2C and PPO over 5 seeds, and the chapters' ablations.

"Solved" means: the mean return of 20 greedy (deterministic) evaluation episodes reaches 475.
The policy is evaluated every ``eval_every`` environment steps; steps-to-solve is the first
evaluation that reaches the threshold. Targets (issue 6): PPO within 100k steps in at least 4 of 5
seeds, A2C within 500k in at least 4 of 5.

Usage::

    python benchmarks/solve_cartpole.py                      # everything (tens of minutes on 2 cores)
    python benchmarks/solve_cartpole.py --agents ppo --variants default --seeds 0
    python benchmarks/solve_cartpole.py --agents ppo --variants default no-clip lam=0 --seeds 5 6 7 8 9

The benchmark is seeds 0–4 (:data:`SEEDS`). The CSV files also hold seeds 5–9 of three PPO variants,
run afterwards with the second command above: chapter 10 uses them to check its explanations of
the two failed runs. A run rewrites only the rows of the (agent, variant, seed) it re-runs.

Writes two small CSV files (committed package data: chapters 9 and 10 read them with
:func:`pgbook.results.read_rows`):

* ``src/pgbook/data/cartpole_solve.csv`` — one row per (agent, variant, seed):
  budget, steps to solve (empty if never), evaluation mean at that point;
* ``src/pgbook/data/cartpole_curves.csv`` — every evaluation of every run (step, mean, std of
  the 20 greedy returns, mean return of the training episodes that ended since the previous
  evaluation), plus a final evaluation row (``kind = final``). Each evaluation row also says how
  random the policy still is where the greedy policy goes: ``eval_entropy`` is the mean of
  ``H(pi_theta(.|s))`` (nats; log 2 = 0.693 is uniform over CartPole's two actions) over every
  state at which one of the 20 greedy episodes chose an action (each state counted once, so long
  episodes weigh more), and ``eval_frac_pmax_above_099`` the fraction of those states where
  ``max_a pi_theta(a|s) > 0.99``. Both are computed with :func:`pgbook.agents_common.policy_entropy`
  and :func:`pgbook.agents_common.greedy_probability`, the same way for every agent and variant.

Each solve row also records the environment the run was measured in
(:func:`pgbook.reproducibility.environment`: torch, numpy and gymnasium versions, torch's CPU
capability, thread count, CPU model). A run is deterministic in one such environment, so
``tests/test_agents.py`` re-runs every default seed 0–4 of both agents (stopping when it is solved) and,
where the environment matches, checks that it reproduces its rows exactly; elsewhere the
floating-point kernels differ, the run takes another trajectory, and the test checks what does not
depend on them: the seed solves within the budget. Wall-clock seconds are printed only.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from pgbook import a2c, agents_common, ppo, reproducibility

THRESHOLD = 475.0
# package data (pgbook.results reads them, so the chapters find them outside a checkout too)
RESULTS = Path(__file__).resolve().parents[1] / "src" / "pgbook" / "data"
SOLVE_CSV = RESULTS / "cartpole_solve.csv"
CURVES_CSV = RESULTS / "cartpole_curves.csv"
SEEDS = (0, 1, 2, 3, 4)

#: agent -> (config class, train function, step budget, evaluation interval)
AGENTS = {
    "ppo": (ppo.PPOConfig, ppo.train, 100_000, 4096),
    "a2c": (a2c.A2CConfig, a2c.train, 500_000, 10_000),
}
#: agent -> variant -> config overrides (the default configuration, then the ablations)
VARIANTS = {
    "ppo": {
        "default": {},
        "no-clip": {"clip_eps": math.inf},  # chapter 10: the unclipped surrogate L^CPI, 20 epochs
        "lam=0": {"lam": 0.0},  # chapter 8's bias end: one-step TD advantages
        "lam=1": {"lam": 1.0},  # chapter 8's low-bias end: returns to the rollout cut, bootstrapped there (not Monte Carlo)
    },
    "a2c": {
        "default": {},
        "truncation-as-termination": {"bootstrap_truncated": False},  # the notes' single `done` flag
    },
}
RUN_FIELDS = ["agent", "variant", "seed", "budget", "eval_every", "steps_to_solve", "eval_mean_at_solve"]
SOLVE_FIELDS = RUN_FIELDS + list(reproducibility.ENVIRONMENT_FIELDS)
CURVE_FIELDS = ["agent", "variant", "seed", "kind", "step", "eval_mean", "eval_std", "train_return"]
CURVE_FIELDS += ["eval_entropy", "eval_frac_pmax_above_099"]


def _fmt(x) -> str:
    """Numbers as written to the CSV (6 decimals; empty for None/NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.6f}"


@contextlib.contextmanager
def _recording_greedy_states():
    """While active, every call of :func:`pgbook.agents_common.evaluate` also measures the policy.

    Both ``train`` functions evaluate through ``agents_common.evaluate``, which does not return
    the states it visits; for the duration of one run it is wrapped so that a forward hook on the
    actor records every observation at which a greedy episode chooses an action, and
    :func:`pgbook.agents_common.policy_entropy` and :func:`~pgbook.agents_common.greedy_probability`
    are computed there with the network *at that evaluation*. The hook reads, it does not change:
    no random numbers are drawn and no parameter is touched, so the run is the same as without it.
    Yields the list of ``(returns, entropies, greedy probabilities)``, one entry per evaluation.
    """
    original = agents_common.evaluate
    calls = []

    def evaluate(model, *args, **kwargs):
        seen = []
        handle = model.actor.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach().clone()))
        try:
            returns = original(model, *args, **kwargs)
        finally:
            handle.remove()
        states = torch.cat(seen)
        # CartPole pays 1 per step: the greedy episodes chose exactly sum(returns) actions
        assert len(states) == int(returns.sum()), (len(states), returns.sum())
        calls.append((returns, agents_common.policy_entropy(model, states), agents_common.greedy_probability(model, states)))
        return returns

    agents_common.evaluate = evaluate
    try:
        yield calls
    finally:
        agents_common.evaluate = original


def _policy_columns(entropy: np.ndarray, p_max: np.ndarray) -> dict:
    return {"eval_entropy": _fmt(float(entropy.mean())), "eval_frac_pmax_above_099": _fmt(float(np.mean(p_max > 0.99)))}


def run_one(agent: str, variant: str, seed: int, stop_when_solved: bool = False):
    """Train one configuration; return ``(solve_row, curve_rows, result)`` with CSV-formatted values.

    ``solve_row`` has the :data:`RUN_FIELDS` and the :func:`pgbook.reproducibility.environment` of
    the run (the :data:`SOLVE_FIELDS`).

    With ``stop_when_solved`` training stops at the first evaluation that reaches the threshold
    (the rows up to that point are identical to those of the full run; the final row is omitted).
    """
    cls, train, budget, eval_every = AGENTS[agent]
    overrides = VARIANTS[agent][variant]
    cfg = cls(
        seed=seed,
        total_steps=budget,
        eval_every=eval_every,
        eval_episodes=20,
        stop_at_return=THRESHOLD if stop_when_solved else None,
        device="cpu",
        **overrides,
    )
    with _recording_greedy_states() as measured:
        result = train(cfg)
    # the wrapper saw exactly the run's evaluations, in order
    assert [float(r.mean()) for r, _, _ in measured] == [m for _, m, _ in result.evals]
    solved = result.steps_to_reach(THRESHOLD)
    at_solve = next((m for s, m, _ in result.evals if s == solved), None)
    solve_row = {
        "agent": agent,
        "variant": variant,
        "seed": str(seed),
        "budget": str(budget),
        "eval_every": str(eval_every),
        "steps_to_solve": _fmt(solved),
        "eval_mean_at_solve": _fmt(at_solve),
        **reproducibility.environment(cfg.torch_threads),
    }
    curve_rows = []
    previous = 0
    for (step, mean, std), (_, entropy, p_max) in zip(result.evals, measured):
        recent = [r for s, r, _ in result.episodes if previous < s <= step]
        curve_rows.append(
            {
                "agent": agent,
                "variant": variant,
                "seed": str(seed),
                "kind": "eval",
                "step": str(step),
                "eval_mean": _fmt(mean),
                "eval_std": _fmt(std),
                "train_return": _fmt(float(np.mean(recent)) if recent else None),
                **_policy_columns(entropy, p_max),
            }
        )
        previous = step
    if not stop_when_solved:
        with _recording_greedy_states() as measured:
            final = agents_common.evaluate(result.model, cfg.env_id, 20, 10_000 + seed)
        recent = [r for s, r, _ in result.episodes if s > previous]
        curve_rows.append(
            {
                "agent": agent,
                "variant": variant,
                "seed": str(seed),
                "kind": "final",
                "step": str(result.steps),
                "eval_mean": _fmt(float(final.mean())),
                "eval_std": _fmt(float(final.std())),
                "train_return": _fmt(float(np.mean(recent)) if recent else None),
                **_policy_columns(measured[0][1], measured[0][2]),
            }
        )
    return solve_row, curve_rows, result


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, fields: list[str], rows: list[dict], replace_keys: set) -> None:
    """Write ``rows``, keeping existing rows of (agent, variant, seed) keys not re-run now."""
    old = read_csv(path) if path.exists() else []
    kept = [r for r in old if (r["agent"], r["variant"], r["seed"]) not in replace_keys]
    order = {(a, v): i for i, (a, v) in enumerate((a, v) for a in AGENTS for v in VARIANTS[a])}
    rows = sorted(kept + rows, key=lambda r: (order[(r["agent"], r["variant"])], int(r["seed"])))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def print_table(solve_rows: list[dict]) -> None:
    """The solve table: one line per (agent, variant), one column per seed."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for r in solve_rows:
        groups.setdefault((r["agent"], r["variant"]), {})[r["seed"]] = r["steps_to_solve"]
    seeds = sorted({r["seed"] for r in solve_rows}, key=int)
    head = f"{'agent':5s} {'variant':26s} {'budget':>8s} " + " ".join(f"{'seed ' + s:>9s}" for s in seeds) + "   solved"
    print(head)
    print("-" * len(head))
    for (agent, variant), by_seed in groups.items():
        budget = AGENTS[agent][2]
        cells = [by_seed.get(s, "?") or "-" for s in seeds]
        n_solved = sum(1 for c in cells if c not in ("-", "?"))
        print(f"{agent:5s} {variant:26s} {budget:8d} " + " ".join(f"{c:>9s}" for c in cells) + f"   {n_solved}/{len(seeds)}")
    print(f"(steps to the first greedy evaluation with mean return >= {THRESHOLD:g} over 20 episodes; '-' = not within the budget)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--variants", nargs="+", default=None, help="default: all variants of each agent")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave the CSV files alone")
    args = parser.parse_args(argv)

    solve_rows, curve_rows, keys = [], [], set()
    for agent in args.agents:
        variants = [v for v in VARIANTS[agent] if args.variants is None or v in args.variants]
        for variant in variants:
            for seed in args.seeds:
                start = time.perf_counter()
                row, curves, result = run_one(agent, variant, seed)
                final = curves[-1]["eval_mean"]
                print(
                    f"{agent} {variant} seed {seed}: solved at {row['steps_to_solve'] or '-'} steps, "
                    f"final greedy mean {final}, {result.sps:.0f} steps/s, {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
                solve_rows.append(row)
                curve_rows += curves
                keys.add((agent, variant, str(seed)))
    print()
    print_table(solve_rows)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        _write(SOLVE_CSV, SOLVE_FIELDS, solve_rows, keys)
        _write(CURVES_CSV, CURVE_FIELDS, curve_rows, keys)
        print(f"wrote {SOLVE_CSV} and {CURVES_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
