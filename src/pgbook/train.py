"""Command line: train A2C or PPO on a gymnasium environment (chapters 9–10).

Usage::

    python -m pgbook.train {a2c,ppo} --env CartPole-v1 --seed 0 --steps 100000 [--out DIR]
                                     [--set FIELD=VALUE ...] [--eval-episodes 20] [--no-progress]

Shows a progress bar (environment steps, mean return of the last 20 training episodes, steps
per second), writes ``DIR/log.csv`` (one row per update) and ``DIR/episodes.csv`` and a PNG learning
curve ``DIR/learning_curve.png``, then evaluates the final policy greedily over 20 episodes and
prints the mean return. Runs on CUDA when available, on the CPU otherwise (``--set device=cpu``
forces the CPU). Any field of :class:`pgbook.a2c.A2CConfig` / :class:`pgbook.ppo.PPOConfig` can be
set with ``--set`` (e.g. ``--set lam=0.95 --set clip_eps=0.1``). A bad configuration fails at once
with a one-line message and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

from . import a2c, agents_common, ppo

AGENTS = {"a2c": (a2c.A2CConfig, a2c.train), "ppo": (ppo.PPOConfig, ppo.train)}


def _parse_value(raw: str, current):
    """Convert ``raw`` to the type of the field's default (``current``)."""
    low = raw.strip().lower()
    if low in ("none", "null"):
        return None
    if isinstance(current, bool):
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if isinstance(current, tuple):
        return tuple(int(x) for x in raw.split(",") if x.strip())
    if isinstance(current, int) and not isinstance(current, bool):
        return int(float(raw)) if float(raw).is_integer() else float(raw)
    if isinstance(current, float) or current is None:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def build_config(agent: str, env_id: str, seed: int, steps: int, overrides: list[str]):
    """The agent's config from the command line; ``ValueError`` with a clear message if bad."""
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {sorted(AGENTS)}, got {agent!r}")
    cls = AGENTS[agent][0]
    defaults = cls.__dataclass_fields__
    kwargs = {"env_id": env_id, "seed": seed, "total_steps": steps}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"{cls.__name__} has no field {key!r}; fields: {', '.join(defaults)}")
        field = defaults[key]
        default = field.default if field.default is not dataclasses.MISSING else None
        try:
            kwargs[key] = _parse_value(raw, default)
        except ValueError as exc:
            raise ValueError(f"--set {key}: {exc}") from None
    cfg = cls(**kwargs)
    agents_common.check_env(cfg.env_id)  # an unknown id or a continuous-action env fails here
    return cfg


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dict rows (the union of their keys as the header)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot_learning_curve(path: Path, episodes, evals, title: str) -> None:
    """Training episode returns (and their running mean) and evaluations against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if episodes:
        steps = np.array([e[0] for e in episodes])
        rets = np.array([e[1] for e in episodes])
        ax.plot(steps, rets, ".", ms=2, alpha=0.3, color="C0", label="training episodes")
        k = min(20, len(rets))
        running = np.convolve(rets, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], running, color="C0", label=f"running mean of {k}")
    if evals:
        ax.plot([e[0] for e in evals], [e[1] for e in evals], "o-", color="C1", label="greedy evaluation")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgbook.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("agent", choices=sorted(AGENTS))
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id with a Discrete action space")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000, help="total environment steps")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/AGENT-ENV-sSEED)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    try:
        cfg = build_config(args.agent, args.env, args.seed, args.steps, args.overrides)
        if args.eval_episodes < 1:
            raise ValueError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2, before any training

    device = agents_common.resolve_device(cfg.device)
    out = args.out or Path("runs") / f"{args.agent}-{cfg.env_id}-s{cfg.seed}"
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.agent.upper()} on {cfg.env_id}, seed {cfg.seed}, {cfg.total_steps} steps, device {device}")

    from tqdm import tqdm

    per_update = cfg.n_envs * cfg.n_steps
    bar = tqdm(total=(cfg.total_steps // per_update) * per_update, unit="step", disable=args.no_progress, dynamic_ncols=True)

    def progress(steps: int, info: dict) -> None:
        bar.update(steps - bar.n)
        recent = [e[1] for e in info["episodes"][-20:]]
        ret = f"{np.mean(recent):.1f}" if recent else "n/a"
        rate = bar.format_dict.get("rate")
        bar.set_postfix_str(f"return {ret}, SPS {rate:.0f}" if rate else f"return {ret}", refresh=False)

    train = AGENTS[args.agent][1]
    result = train(cfg, progress=progress)
    bar.close()

    rows = [{k: v for k, v in row.items() if k != "epochs"} for row in result.log]
    write_csv(out / "log.csv", rows)
    write_csv(out / "episodes.csv", [{"step": s, "return": r, "length": n} for s, r, n in result.episodes])
    plot_learning_curve(out / "learning_curve.png", result.episodes, result.evals, f"{args.agent.upper()} on {cfg.env_id}, seed {cfg.seed}")

    returns = agents_common.evaluate(result.model, cfg.env_id, args.eval_episodes, 10_000 + cfg.seed, cfg.max_episode_steps)
    print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.sps:.0f} steps/s)")
    print(
        f"final evaluation (greedy, {args.eval_episodes} episodes): mean return {returns.mean():.1f} "
        f"(std {returns.std():.1f}, min {returns.min():.0f}, max {returns.max():.0f})"
    )
    print(f"wrote {out / 'log.csv'}, {out / 'episodes.csv'}, {out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
