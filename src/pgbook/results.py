"""The committed benchmark results that chapters 9, 10 and 11 plot, shipped inside the package.

``benchmarks/solve_cartpole.py`` and ``benchmarks/continuous_vs_peers.py`` write small CSV files
into ``src/pgbook/data/``; they are
package data (read with :mod:`importlib.resources`), so a chapter finds them wherever ``pgbook`` is
installed — in a clone, in Colab or Binder, or from a wheel — not only in a checkout of the
repository. The columns are documented in the benchmark scripts:

* ``cartpole_solve.csv`` — one row per (agent, variant, seed): steps to solve CartPole-v1
  (ch. 9, Table 9.1; ch. 10, the ablation table);
* ``cartpole_curves.csv`` — every greedy evaluation of every run, and a final one per run
  (ch. 9–10's learning curves; ch. 10's entropy diagnostics);
* ``continuous_runs.csv`` — every greedy evaluation of every PPO run of the book's agent,
  Stable-Baselines3 and CleanRL on Pendulum and the MuJoCo tasks, with the training time so far (ch. 11);
* ``continuous_speed.csv`` — the speed measurement: short runs without evaluation, the arms of a
  pair in turn, one run at a time, with their training time (ch. 11).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from importlib import resources

__all__ = ["RESULT_FILES", "read_rows", "summarize_runs", "paired_speed"]

#: the result files shipped with the package
RESULT_FILES = ("cartpole_solve.csv", "cartpole_curves.csv", "continuous_runs.csv", "continuous_speed.csv")


def read_rows(name: str) -> list[dict[str, str]]:
    """The rows of the committed result file ``name`` (one of :data:`RESULT_FILES`), as strings.

    Every value is a string, exactly as stored (an empty string for "never", e.g. a run that did
    not solve): the chapters convert what they use.
    """
    if not isinstance(name, str) or name not in RESULT_FILES:
        raise ValueError(f"name must be one of {', '.join(RESULT_FILES)}, got {name!r}")
    text = resources.files("pgbook").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


#: the columns :func:`summarize_runs` reads (``benchmarks/continuous_vs_peers.py`` writes them)
_RUN_COLUMNS = ("impl", "env_id", "seed", "step", "train_seconds", "eval_mean", "batch")


def summarize_runs(rows: list[dict[str, str]]) -> list[dict]:
    """One entry per (task, implementation) of benchmark rows like ``continuous_runs.csv``'s.

    For every run (``impl``, ``env_id``, ``seed``) its row with the largest ``step`` gives the final
    greedy return (``eval_mean``) and the training speed ``(step - batch) / seconds`` (the clocks
    start after the first iteration, ``batch`` steps), by wall-clock (``train_seconds``) and, where
    the row has one, by CPU time (``cpu_seconds``; empty in runs recorded before it existed).
    Returns, sorted by task and implementation, dicts with ``env_id``, ``impl``, ``seeds`` (sorted),
    ``steps`` (the fewest final steps of a run), per seed in the order of ``seeds``: ``finals``,
    ``sps`` and ``cpu_sps`` (None where not recorded); and ``median`` (of ``finals``),
    ``median_sps`` and ``median_cpu_sps`` (over the seeds that have it; None if none).
    ``ValueError`` if ``rows`` is not a list of dicts with those columns holding numbers.
    """
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"rows must be a list of dicts (read_rows), got {type(rows).__name__}")
    runs: dict = {}
    for i, row in enumerate(rows):
        missing = [c for c in _RUN_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"rows[{i}] must have the columns {', '.join(_RUN_COLUMNS)}; missing {', '.join(missing)}")
        try:
            step, seconds, final, batch = int(row["step"]), float(row["train_seconds"]), float(row["eval_mean"]), int(row["batch"])
            seed = int(row["seed"])
            cpu = row.get("cpu_seconds")
            cpu = None if cpu in (None, "") else float(cpu)
        except (TypeError, ValueError):
            raise ValueError(f"rows[{i}] must hold numbers in step, train_seconds, cpu_seconds, eval_mean, batch and seed") from None
        key = (str(row["env_id"]), str(row["impl"]))
        last = runs.setdefault(key, {}).get(seed)
        if last is None or step > last[0]:
            runs[key][seed] = (step, seconds, final, batch, cpu)

    def rate(steps, seconds):
        return None if seconds is None else (steps / seconds if seconds > 0 else float("nan"))

    out = []
    for (env_id, impl), by_seed in sorted(runs.items()):
        seeds = sorted(by_seed)
        finals = [by_seed[s][2] for s in seeds]
        sps = [rate(by_seed[s][0] - by_seed[s][3], by_seed[s][1]) for s in seeds]
        cpu_sps = [rate(by_seed[s][0] - by_seed[s][3], by_seed[s][4]) for s in seeds]
        known = [x for x in cpu_sps if x is not None]
        out.append({
            "env_id": env_id, "impl": impl, "seeds": seeds, "steps": min(by_seed[s][0] for s in seeds),
            "finals": finals, "sps": sps, "cpu_sps": cpu_sps, "median": statistics.median(finals),
            "median_sps": statistics.median(sps), "median_cpu_sps": statistics.median(known) if known else None,
        })
    return out


#: the columns :func:`paired_speed` reads (``benchmarks/continuous_vs_peers.py --speed`` writes them)
_SPEED_COLUMNS = ("impl", "env_id", "round", "timed_steps", "cpu_seconds")


def paired_speed(rows: list[dict[str, str]], env_id: str, impl_a: str, impl_b: str) -> dict:
    """Speed of ``impl_a`` over ``impl_b`` on ``env_id``, round by round, from rows like
    ``continuous_speed.csv``'s.

    A run's speed is ``timed_steps / cpu_seconds`` (steps per CPU-second, the first iteration not
    timed); in each round that has a run of both, the ratio is ``a``'s speed over ``b``'s -- two runs
    of the same round, so a change of the machine's speed between rounds cancels. Returns a dict
    with ``rounds`` (sorted), per round ``ratios``, ``sps_a`` and ``sps_b``; ``median`` (of the
    ratios), ``median_a`` and ``median_b`` (of the speeds). ``ValueError`` if ``rows`` is not a list
    of dicts with those columns, if a row of ``env_id`` and one of the two arms does not hold
    positive finite numbers there or repeats a round, if a round ran the two with different
    ``threads`` (where the rows have that column), or if no round has both.
    """
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"rows must be a list of dicts (read_rows), got {type(rows).__name__}")
    for name, value in (("env_id", env_id), ("impl_a", impl_a), ("impl_b", impl_b)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if impl_a == impl_b:
        raise ValueError(f"impl_a and impl_b must differ, got {impl_a!r} twice")
    speed: dict = {}
    threads: dict = {}
    for i, row in enumerate(rows):
        missing = [c for c in _SPEED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"rows[{i}] must have the columns {', '.join(_SPEED_COLUMNS)}; missing {', '.join(missing)}")
        if row["env_id"] != env_id or row["impl"] not in (impl_a, impl_b):
            continue
        try:
            rnd, steps, cpu = int(row["round"]), int(row["timed_steps"]), float(row["cpu_seconds"])
        except (TypeError, ValueError):
            raise ValueError(f"rows[{i}] must hold numbers in round, timed_steps and cpu_seconds") from None
        if steps <= 0 or not (0 < cpu < math.inf):
            raise ValueError(f"rows[{i}] must have positive, finite timed_steps and cpu_seconds, got {steps} and {cpu}")
        if (row["impl"], rnd) in speed:
            raise ValueError(f"rows[{i}] is a second run of {row['impl']!r} in round {rnd} on {env_id!r}")
        speed[row["impl"], rnd] = steps / cpu
        threads[row["impl"], rnd] = row.get("threads")
    rounds = sorted(r for (impl, r) in speed if impl == impl_a and (impl_b, r) in speed)
    if not rounds:
        raise ValueError(f"rows have no round with runs of both impl_a={impl_a!r} and impl_b={impl_b!r} on env_id={env_id!r}")
    for r in rounds:
        if threads[impl_a, r] != threads[impl_b, r]:
            raise ValueError(f"rows: round {r} on {env_id!r} ran {impl_a!r} and {impl_b!r} with different thread counts")
    sps_a, sps_b = [speed[impl_a, r] for r in rounds], [speed[impl_b, r] for r in rounds]
    ratios = [a / b for a, b in zip(sps_a, sps_b)]
    return {
        "rounds": rounds, "ratios": ratios, "sps_a": sps_a, "sps_b": sps_b, "median": statistics.median(ratios),
        "median_a": statistics.median(sps_a), "median_b": statistics.median(sps_b),
    }
