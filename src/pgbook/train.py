"""Command line: train A2C or PPO on a gymnasium environment (chapters 9–10; 11 for continuous actions).

Usage::

    python -m pgbook.train {a2c,ppo} --env CartPole-v1 --seed 0 --steps 100000 [--out DIR] [--overwrite]
                                     [--set FIELD=VALUE ...] [--eval-episodes 20] [--no-progress]

Shows a progress bar (environment steps, mean return of the last 20 training episodes, steps
per second), trains whole updates of ``n_envs * n_steps`` steps (the banner says how many), then
evaluates the final policy greedily and writes, atomically, ``DIR/log.csv`` (one row per
update), ``DIR/episodes.csv``, a PNG learning curve ``DIR/learning_curve.png`` and
``DIR/run.json`` (command, configuration, versions and CPU kernel, steps, evaluation, status).
Runs on CUDA when available, on the CPU otherwise (``--set device=cpu`` forces the CPU). Any
field of :class:`pgbook.a2c.A2CConfig` / :class:`pgbook.ppo.PPOConfig` can be set with ``--set``
(e.g. ``--set lam=0.95 --set max_episode_steps=200``). Exit status 2 with a one-line message for
a bad configuration, environment or output folder (before any training; a folder holding a
previous run needs ``--overwrite``); 130 on Ctrl-C, after saving the log so far. ``--help``
lists the fields, the outputs and the exit statuses.

Continuous actions (chapter 11): PPO also trains environments with a Box action space (a
diagonal Gaussian policy), e.g. ``python -m pgbook.train ppo --env Pendulum-v1``; its defaults are
then :data:`pgbook.ppo.CONTINUOUS_DEFAULTS` with the tuning of :data:`pgbook.ppo.ENV_PRESETS` for
the environment (``--set`` still overrides any field). A2C needs a Discrete action space.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import signal
import sys
import tempfile
import textwrap
import threading
import typing
from pathlib import Path
from typing import Callable

import numpy as np

from . import a2c, agents_common, ppo

AGENTS = {"a2c": (a2c.A2CConfig, a2c.train), "ppo": (ppo.PPOConfig, ppo.train)}


def _field_kind(cls, name: str):
    """The base type of a config field: ``int`` for ``int | None``, ``tuple`` for ``tuple[int, ...]``."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is tuple or hint is tuple:
        return tuple
    if args and origin is not tuple:  # Optional[X] / X | None
        return args[0]
    return hint


def _parse_value(raw: str, kind, optional: bool):
    """Convert ``raw`` to a field of type ``kind`` (``None``/``null`` allowed when ``optional``)."""
    low = raw.strip().lower()
    if low in ("none", "null"):
        if optional:
            return None
        raise ValueError(f"expected a {kind.__name__}, got {raw!r} (this field cannot be None)")
    if kind is bool:
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(f"expected true/false, got {raw!r}")
    if kind is tuple:
        try:
            return tuple(int(x) for x in raw.split(",") if x.strip())
        except ValueError:
            raise ValueError(f"expected comma-separated integers such as 64,64, got {raw!r}") from None
    if kind is int:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {raw!r}")
        return int(value)
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    return raw


def _optional(cls, name: str) -> bool:
    return type(None) in typing.get_args(typing.get_type_hints(cls)[name])


def build_config(agent: str, env_id: str, seed: int, steps: int, overrides: list[str]):
    """The agent's config from the command line; ``ValueError`` with a clear message if bad."""
    if agent not in AGENTS:
        raise ValueError(f"agent must be one of {sorted(AGENTS)}, got {agent!r}")
    cls = AGENTS[agent][0]
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {"env_id": env_id, "seed": seed, "total_steps": steps}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            raise ValueError(f"{cls.__name__} has no field {key!r}; fields: {', '.join(sorted(fields))}")
        try:
            kwargs[key] = _parse_value(raw, _field_kind(cls, key), _optional(cls, key))
        except ValueError as exc:
            raise ValueError(f"--set {key}: {exc}") from None
    if agent == "ppo":  # a Box action space selects the continuous defaults (fields set here win)
        return cls.for_env(kwargs.pop("env_id"), **kwargs)
    cfg = cls(**kwargs)
    agents_common.check_env(cfg.env_id)  # an unknown id, a missing dependency or a continuous-action env fails here
    return cfg


OUTPUTS = ("log.csv", "episodes.csv", "learning_curve.png", "run.json")


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Create ``out`` and make sure the run's files can be written there — before any training.

    ``ValueError`` if ``out`` is a file, cannot be created or written, holds a directory where an
    output file goes, or holds a previous run's outputs (unless ``overwrite``).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out} is not writable ({exc.strerror or exc})") from None
    blocked = [name for name in OUTPUTS if (out / name).is_dir()]
    if blocked:
        raise ValueError(f"--out {out}: {', '.join(blocked)} is a directory; the run writes a file there")
    previous = [name for name in OUTPUTS if (out / name).exists()]
    if previous and not overwrite:
        raise ValueError(
            f"--out {out} holds a previous run ({', '.join(previous)}); choose another --out or pass --overwrite"
        )
    return out


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in the same folder and rename it (never a half-written file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dict rows (the union of their keys as the header)."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    _atomic(path, write)


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
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def _show(value) -> str:
    """A default as it is written after --set FIELD= (tuples comma-separated, None as none)."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fields_help() -> str:
    lines = []
    for name, (cls, _) in sorted(AGENTS.items()):
        items = [f"{f.name}={_show(f.default)}" for f in dataclasses.fields(cls) if f.name not in ("env_id", "seed", "total_steps")]
        lines.append(textwrap.fill(", ".join(items), width=92, initial_indent=f"  {name} ({cls.__name__}): ", subsequent_indent="    "))
    items = [f"{k}={_show(v)}" for k, v in ppo.CONTINUOUS_DEFAULTS.items()]
    lines.append(textwrap.fill(", ".join(items), width=92, initial_indent="  ppo, Box action space: ", subsequent_indent="    "))
    for env_id, preset in sorted(ppo.ENV_PRESETS.items()):
        items = [f"{k}={_show(v)}" for k, v in preset.items()]
        lines.append(textwrap.fill(", ".join(items), width=92, initial_indent=f"  ppo, {env_id}: ", subsequent_indent="    "))
    return "\n".join(lines)


EPILOG = """\
--set FIELD=VALUE sets any field of the agent's configuration (repeatable); the fields and
their defaults:
{fields}
VALUE is parsed as the field's type: numbers, true/false, none for optional fields
(e.g. --set max_episode_steps=200, --set stop_at_return=none), comma-separated integers for
hidden (--set hidden=64,64).

The run trains whole updates of n_envs * n_steps environment steps: --steps is rounded down to
a multiple of it (the banner says how many steps will be trained).

Outputs, in --out (default runs/AGENT-ENV-sSEED; a folder holding a previous run is refused
unless --overwrite), each written atomically:
  log.csv             one row per update: step, losses, diagnostics, learning rate, ...
  episodes.csv        one row per finished training episode: step, return, length
  learning_curve.png  training returns and evaluations against environment steps
  run.json            the command, the full configuration, the seed, the versions, thread count
                      and CPU kernel (pgbook.reproducibility.environment()), steps trained,
                      wall-clock time, the final greedy evaluation, and the status

Exit status: 0 trained and evaluated; 2 bad arguments or configuration, an unknown or
unsupported environment, or an unusable --out (one line, nothing trained); 130 interrupted
(Ctrl-C): the log of the updates done so far and run.json (status "interrupted") are saved;
1 any other error.
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pgbook.train",
        description="Train A2C (chapter 9) or PPO (chapter 10) on a gymnasium environment with a "
        "Discrete action space (PPO also: a Box action space, chapter 11), then evaluate the greedy "
        "(Gaussian: mean) policy.",
        epilog=EPILOG.format(fields=_fields_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("agent", choices=sorted(AGENTS), help="the agent: a2c (pgbook.a2c) or ppo (pgbook.ppo)")
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id with a Discrete action space (ppo also: a Box one) (default CartPole-v1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds torch, the environments and the evaluation (default 0)")
    parser.add_argument("--steps", type=int, default=100_000, help="total environment steps (default 100000)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/AGENT-ENV-sSEED)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run's outputs in --out")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="set a configuration field (repeatable; see below)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="greedy evaluation episodes at the end (default 20)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _write_outputs(out: Path, agent: str, cfg, log_rows, episodes, evals, record: dict) -> None:
    rows = [{k: v for k, v in row.items() if k != "epochs"} for row in log_rows]
    write_csv(out / "log.csv", rows)
    write_csv(out / "episodes.csv", [{"step": s, "return": r, "length": n} for s, r, n in episodes])
    plot_learning_curve(out / "learning_curve.png", episodes, evals, f"{agent.upper()} on {cfg.env_id}, seed {cfg.seed}")
    _atomic(out / "run.json", lambda tmp: tmp.write_text(json.dumps(record, indent=2, default=str) + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)

    try:
        cfg = build_config(args.agent, args.env, args.seed, args.steps, args.overrides)
        if args.eval_episodes < 1:
            raise ValueError(f"--eval-episodes must be >= 1, got {args.eval_episodes}")
        out = prepare_out(args.out or Path("runs") / f"{args.agent}-{cfg.env_id}-s{cfg.seed}", args.overwrite)
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2, before any training

    from . import reproducibility

    device = agents_common.resolve_device(cfg.device)
    per_update = cfg.n_envs * cfg.n_steps
    n_updates = cfg.total_steps // per_update
    planned = n_updates * per_update
    # Ctrl-C sets a flag that the next progress call (after each update) turns into KeyboardInterrupt.
    # A KeyboardInterrupt raised wherever the signal happens to land can be lost (one raised inside a
    # finalizer, __del__ or weakref callback is only printed as "Exception ignored"): CI once saw
    # training go on for minutes after SIGINT. A second Ctrl-C interrupts at once.
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(signum)

    previous_handler = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None

    rounded = "" if planned == cfg.total_steps else f"; --steps {cfg.total_steps} rounded down to whole updates"
    print(
        f"{args.agent.upper()} on {cfg.env_id}, seed {cfg.seed}: {planned} steps = {n_updates} updates of "
        f"{cfg.n_envs} envs x {cfg.n_steps} steps{rounded}; device {device}; writing to {out}",
        flush=True,
    )
    record = {
        "agent": args.agent,
        "command": ["python", "-m", "pgbook.train", *(sys.argv[1:] if argv is None else argv)],
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": dataclasses.asdict(cfg),
        "steps_requested": cfg.total_steps,
        "steps_planned": planned,
        "device": device,
        "environment": reproducibility.environment(),
    }

    from tqdm import tqdm

    bar = tqdm(total=planned, unit="step", disable=args.no_progress, dynamic_ncols=True)
    seen = {"log": [], "episodes": [], "evals": [], "steps": 0}

    def progress(steps: int, info: dict) -> None:
        seen["log"].append({k: v for k, v in info.items() if k not in ("episodes", "evals")})
        seen["episodes"], seen["evals"], seen["steps"] = info["episodes"], info["evals"], steps
        bar.update(steps - bar.n)
        recent = [e[1] for e in info["episodes"][-20:]]
        ret = f"{np.mean(recent):.1f}" if recent else "n/a"
        rate = bar.format_dict.get("rate")
        bar.set_postfix_str(f"return {ret}, SPS {rate:.0f}" if rate else f"return {ret}", refresh=False)
        if interrupted:  # after recording this update: the saved log ends with it
            raise KeyboardInterrupt

    train = AGENTS[args.agent][1]
    try:
        result = train(cfg, progress=progress)
        if interrupted:  # Ctrl-C after the last update
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        record.update(status="interrupted", steps_trained=seen["steps"])
        _write_outputs(out, args.agent, cfg, seen["log"], list(seen["episodes"]), list(seen["evals"]), record)
        print(f"interrupted after {seen['steps']} steps; saved the log so far and run.json in {out}", file=sys.stderr)
        return 130
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    bar.close()

    returns = agents_common.evaluate(
        result.model, cfg.env_id, args.eval_episodes, 10_000 + cfg.seed, cfg.max_episode_steps, result.obs_rms
    )
    record.update(
        status="completed",
        steps_trained=result.steps,
        seconds=round(result.seconds, 3),
        steps_per_second=round(result.sps, 1),
        final_evaluation={
            "episodes": args.eval_episodes,
            "seed": 10_000 + cfg.seed,
            "mean": float(returns.mean()),
            "std": float(returns.std()),
            "min": float(returns.min()),
            "max": float(returns.max()),
        },
    )
    _write_outputs(out, args.agent, cfg, result.log, result.episodes, result.evals, record)
    print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.sps:.0f} steps/s)")
    print(
        f"final evaluation (greedy, {args.eval_episodes} episodes): mean return {returns.mean():.1f} "
        f"(std {returns.std():.1f}, min {returns.min():.0f}, max {returns.max():.0f})"
    )
    print(f"wrote {', '.join(str(out / name) for name in OUTPUTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
