"""How the exact policy gradient scales with the number of states S (issue 16).

Three ways to compute the exact ``grad J`` of a tabular softmax policy:

* ``policy_gradient`` -- the theorem's sum contracted by the block structure of the softmax score,
  ``eta`` and ``Q`` from one LU factorisation of ``I - gamma P_pi`` (sparse LU for a sparse ``P``);
* ``autograd``        -- ``gradients.autograd_policy_gradient``: torch autograd through the dense solve;
* ``dense reference`` -- ``gradients.policy_gradient_dense``: the literal contraction with the
  ``(S, A, S, A)`` score array (the pre-issue-16 ``policy_gradient``).

Two families of MDPs:

* ``random``: ``pgbook.mdp.random_mdp(S, 8, 0.99)``, every transition positive (dense ``P``);
* ``gridworld``: a ``n x n`` grid (``S = n^2``, A = 4), goal in the far corner, slip 0.1,
  gamma 0.99, with ``P`` stored sparse (``policy_gradient`` only) and dense (all three methods).

Every measurement runs in a fresh subprocess: the MDP and ``theta`` are built, the method is run
once on a tiny MDP of the same family (imports, first-call costs), then timed on the real one
(best of 3 runs, or of 1 when a run takes more than 20 s; wall-clock and process CPU time, which
on a shared machine is the steadier of the two). Peak memory is the rise of the
process's peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``) over its
resident size just before the timed runs: the memory the method itself needs, not the MDP.
A method is skipped at a size when its arrays would exceed ``--max-gb`` or when the time fitted
on the smaller sizes predicts more than ``--max-seconds``. The last column is the largest
relative difference ``max|g - g_pg| / max|g_pg|`` from ``policy_gradient`` on the same MDP and
``theta``; the fitted exponent is the least-squares slope of log CPU time against log S over the
sizes ``S >= --fit-from``. BLAS and torch use ``--threads`` threads (default 1).

Usage::

    python benchmarks/exact_scaling.py [--quick] [--threads 1] [--max-gb 2.5] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

A_RANDOM, GAMMA, SLIP = 8, 0.99, 0.1
SIZES = {
    "random": [10, 30, 100, 300, 500, 1000, 2000, 4000],
    "gridworld": [4, 10, 22, 32, 45, 71, 100, 224, 316],  # side n, S = n^2
}
QUICK = {"random": [10, 30, 100, 300], "gridworld": [4, 10, 22]}
METHODS = {  # family -> (method, storage) pairs
    "random": [("policy_gradient", "dense"), ("autograd", "dense"), ("dense reference", "dense")],
    "gridworld": [("policy_gradient", "sparse"), ("policy_gradient", "dense"), ("autograd", "dense"), ("dense reference", "dense")],
}


def n_states(family: str, size: int) -> int:
    return size if family == "random" else size * size


def n_actions(family: str) -> int:
    return A_RANDOM if family == "random" else 4


def array_bytes(family: str, size: int, method: str, storage: str) -> float:
    """The largest arrays a method holds: P (S^2 A), P_pi and its factors (S^2), the score (S^2 A^2)."""
    S, A = n_states(family, size), n_actions(family)
    if storage == "sparse":
        return 8.0 * 20 * S * A  # a handful of successors per (s, a), and the sparse LU's factors
    base = 8.0 * (S * S * A + 3 * S * S)
    if method == "autograd":
        base += 8.0 * S * S * A  # torch's copy of P
    if method == "dense reference":
        base += 8.0 * S * S * A * A
    return base


def build(family: str, size: int, storage: str):
    from pgbook import gridworld, mdp

    if family == "random":
        m = mdp.random_mdp(size, A_RANDOM, GAMMA, seed=size)
    else:
        m = gridworld.gridworld(size, size, goals=[(size - 1, size - 1)], slip=SLIP, gamma=GAMMA, sparse=storage == "sparse").mdp
    theta = np.random.default_rng(size).standard_normal((m.n_states, m.n_actions))
    return m, theta


def method_function(method: str):
    from pgbook import gradients

    return {
        "policy_gradient": gradients.policy_gradient,
        "autograd": gradients.autograd_policy_gradient,
        "dense reference": gradients.policy_gradient_dense,
    }[method]


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def job(family: str, size: int, method: str, storage: str, threads: int, out: str) -> dict:
    """One measurement (runs in its own process)."""
    import torch

    torch.set_num_threads(threads)
    f = method_function(method)
    f(*build(family, QUICK[family][0], storage))  # warm-up: imports and first-call costs
    mdp, theta = build(family, size, storage)
    gc.collect()
    rss = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    times, cpu = [], []
    while True:
        start, start_cpu = time.perf_counter(), time.process_time()
        grad = f(mdp, theta)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if len(times) == 3 or times[0] > 20.0:
            break
    peak = _status("VmHWM") - rss
    np.save(out, grad)
    return {"seconds": min(times), "cpu_seconds": min(cpu), "peak_mb": max(peak, 0) / 2**20, "runs": len(times)}


def run_job(family, size, method, storage, threads, tmp) -> dict:
    out = os.path.join(tmp, f"{family}-{size}-{method.replace(' ', '_')}-{storage}.npy")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--job", family, str(size), method, storage, str(threads), out]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{family} {size} {method} {storage} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["grad"] = out
    return result


def fitted_exponent(points: list[tuple[int, float]], fit_from: int) -> float | None:
    pts = [(S, t) for S, t in points if S >= fit_from]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (default 1)")
    parser.add_argument("--max-gb", type=float, default=2.5, help="skip a method whose arrays exceed this (GB)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip a method predicted to take longer")
    parser.add_argument("--fit-from", type=int, default=300, help="fit the exponent on sizes S >= this")
    parser.add_argument("--job", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        family, size, method, storage, threads, out = args.job
        print(json.dumps(job(family, int(size), method, storage, int(threads), out)))
        return 0

    sizes = QUICK if args.quick else SIZES
    print(f"# exact_scaling: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}, threads {args.threads}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows, series = [], {}
    with tempfile.TemporaryDirectory(prefix="exact-scaling-") as tmp:
        for family in sizes:
            for size in sizes[family]:
                S = n_states(family, size)
                reference = None
                for method, storage in METHODS[family]:
                    key = (family, method, storage)
                    pts = series.setdefault(key, [])
                    label = f"{method} ({storage})"
                    if array_bytes(family, size, method, storage) > args.max_gb * 1e9:
                        rows.append((family, S, label, None, None, None, f"arrays > {args.max_gb:g} GB"))
                        continue
                    if pts:  # extrapolate the last time with the local slope, clipped to [1, 3]
                        slope = fitted_exponent(pts[-2:], 0) if len(pts) >= 2 else 3.0
                        slope = min(max(slope or 3.0, 1.0), 3.0)
                        predicted = pts[-1][1] * (S / pts[-1][0]) ** slope
                        if predicted > args.max_seconds:
                            rows.append((family, S, label, None, None, None, f"predicted {predicted:.0f} s"))
                            continue
                    r = run_job(family, size, method, storage, args.threads, tmp)
                    g = np.load(r["grad"])
                    if reference is None:
                        reference, diff = g, None  # the first method of the family is policy_gradient
                    else:
                        diff = float(np.max(np.abs(g - reference)) / np.max(np.abs(reference)))
                    pts.append((S, r["cpu_seconds"]))
                    rows.append((family, S, label, (r["seconds"], r["cpu_seconds"]), r["peak_mb"], diff, ""))
                    print(f"  {family:9s} S={S:6d} {label:26s} {r['seconds']:9.4f} s (cpu {r['cpu_seconds']:8.4f} s) {r['peak_mb']:9.1f} MB"
                          + (f"  rel. diff {diff:.1e}" if diff is not None else ""), flush=True)

    for family in sizes:
        labels = [f"{m} ({st})" for m, st in METHODS[family]]
        name = f"random MDP, A = {A_RANDOM}" if family == "random" else "gridworld n x n, A = 4, sparse and dense P"
        print(f"\n{name}, gamma = {GAMMA}: wall-clock s / CPU s / peak memory MB; last column: largest rel. diff to policy_gradient")
        print("| S | " + " | ".join(labels) + " | rel. diff |")
        print("|---:|" + "---:|" * len(labels) + "---:|")
        for S in dict.fromkeys(r[1] for r in rows if r[0] == family):
            cells, diffs = [], []
            for label in labels:
                (_, _, _, sec, mb, diff, note), = [r for r in rows if r[0] == family and r[1] == S and r[2] == label]
                cells.append(f"skipped ({note})" if sec is None else f"{sec[0]:.3g} / {sec[1]:.3g} / {mb:.0f}")
                if diff is not None:
                    diffs.append(diff)
            tail = f"{max(diffs):.0e}" if diffs else ""
            print(f"| {S} | " + " | ".join(cells) + f" | {tail} |")
    print()
    fit_from = {"random": args.fit_from, "gridworld": max(args.fit_from, 1000)}
    for (family, method, storage), pts in series.items():
        k = fitted_exponent(pts, fit_from[family])
        sizes_used = [S for S, _ in pts if S >= fit_from[family]]
        if k is not None:
            print(f"fitted exponent, {family}, {method} ({storage}): CPU time ~ S^{k:.2f} "
                  f"(S = {sizes_used[0]}..{sizes_used[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
