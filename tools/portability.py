"""The portability pass of `make test`: unit tests and nbval again, under other floating-point kernels.

Usage: python tools/portability.py            (from the repository root; `make portability`)

Stored notebook outputs and test tolerances must hold on every machine, whatever kernels its CPU
selects. Two environment variables switch the kernels on *this* machine, so a machine-dependent
output fails here rather than on a reader's laptop:

* ``OPENBLAS_CORETYPE`` — the CPU model OpenBLAS (numpy's BLAS and LAPACK) tunes its kernels for;
* ``ATEN_CPU_CAPABILITY`` — the vector instructions torch's kernels use (``default``, ``avx2``,
  ``avx512``).

For each combination in :data:`COMBINATIONS` this script first proves that the switch happened —
threadpoolctl reports OpenBLAS's core type, torch its capability, both different from the
default run's — then runs ``make unit nbval`` with the variables set. The combinations run in
parallel (one per core); each run's log is in ``_build/portability/``. The variables are set
only for these sub-runs: the package, the notebooks and CI never set them.

What this emulates: other x86-64 CPUs' BLAS kernel choices and torch's code paths for CPUs with
AVX-512, AVX2 or neither. What it cannot: MKL's per-CPU dispatch (torch's matrix products on x86
use MKL, which picks kernels by CPU model), other compilers' and libraries' builds, and ARM
(Apple silicon, Graviton), whose kernels differ again. On a machine that is not x86-64 the pass
is skipped with a message.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
LOGS = ROOT / "_build" / "portability"

#: (OPENBLAS_CORETYPE, ATEN_CPU_CAPABILITY) pairs, each unlike this machine's default choice.
COMBINATIONS = [("Sandybridge", "default"), ("Prescott", "avx2")]

PROBE = """
import json, numpy, threadpoolctl, torch
numpy.ones((64, 64)) @ numpy.ones((64, 64))  # load OpenBLAS
info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
print(json.dumps({"openblas": info[0].get("architecture") if info else None,
                  "torch": torch.backends.cpu.get_cpu_capability()}))
"""


def _env(coretype: str | None = None, capability: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "ATEN_CPU_CAPABILITY")}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    return env


def kernels(env: dict[str, str]) -> dict:
    """What OpenBLAS and torch report they use in a fresh interpreter with ``env``."""
    out = subprocess.run([PY, "-c", PROBE], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        print(f"portability: skipped — {platform.machine()} is not x86-64, and the kernel switches used here are x86's")
        return 0
    base = kernels(_env())
    print(f"portability: default kernels here: OpenBLAS {base['openblas']}, torch {base['torch']}")
    problems = []
    for coretype, capability in COMBINATIONS:
        got = kernels(_env(coretype, capability))
        switched = got["openblas"] != base["openblas"] and got["torch"] == capability.upper() != base["torch"]
        print(
            f"portability: OPENBLAS_CORETYPE={coretype} ATEN_CPU_CAPABILITY={capability} -> "
            f"OpenBLAS {got['openblas']}, torch {got['torch']}: {'switched' if switched else 'NOT switched'}"
        )
        if not switched:
            problems.append(f"{coretype}/{capability} did not switch both kernels")
    if problems:
        print("portability: FAILED — " + "; ".join(problems))
        return 1

    LOGS.mkdir(parents=True, exist_ok=True)
    runs = []
    start = time.perf_counter()
    for coretype, capability in COMBINATIONS:
        env = _env(coretype, capability)
        env["PYTEST_ADDOPTS"] = (env.get("PYTEST_ADDOPTS", "") + " -p no:cacheprovider").strip()
        env["JOBS"] = "1"  # the two combinations already share the cores
        env["PGBOOK_PORTABILITY_PASS"] = "1"  # skips the tests marked kernel_independent
        log = LOGS / f"{coretype}-{capability}.log"
        fh = log.open("w")
        cmd = ["make", "--no-print-directory", "--keep-going", "unit", "nbval"]
        runs.append((coretype, capability, log, fh, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)))
    failed = False
    for coretype, capability, log, fh, proc in runs:
        code = proc.wait()
        fh.close()
        lines = log.read_text(errors="replace").splitlines()
        summaries = [ln for ln in lines if " passed" in ln or " failed" in ln or ln.startswith(("FAILED", "ERROR"))]
        print(f"portability: {coretype}/{capability}: exit status {code}; log {log.relative_to(ROOT)}")
        for ln in summaries:
            print("    " + ln)
        failed |= code != 0
    print(f"portability: {'FAILED' if failed else 'passed'} in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
