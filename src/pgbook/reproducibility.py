"""What a result's exact digits depend on, and how the book prints numbers that do not.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`, remark ``rem-agents-deterministic``)
and every chapter's checks.

A computation is a deterministic function of its inputs *and of the floating-point kernels that
run it*. Those are chosen at run time: OpenBLAS picks a kernel per CPU (``OPENBLAS_CORETYPE``
switches it), torch picks AVX-512, AVX2 or generic code (``ATEN_CPU_CAPABILITY``), MKL dispatches
per CPU model, ARM differs again. Round-off digits therefore differ between machines, and a chaotic
computation — a training run — follows another trajectory after a few updates. Two consequences:

* :func:`environment` names what a training run's exact numbers depend on; the benchmarks record
  it next to their results, and a re-run must reproduce a result bit for bit only where
  :func:`same_environment` holds.
* :func:`bound` prints a round-off-level error as the bound it is checked against (``"< 1e-12"``)
  instead of its machine-dependent digits, and fails if the bound does not hold.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import platform
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENVIRONMENT_FIELDS", "environment", "same_environment", "bound"]

#: The fields of :func:`environment`, in the order the benchmark CSV files store them.
ENVIRONMENT_FIELDS = ("torch", "numpy", "gymnasium", "cpu_capability", "torch_threads", "cpu")


def _cpu_model() -> str:
    """The CPU's model name and a digest of its feature flags (``/proc/cpuinfo`` on Linux), else
    what :mod:`platform` reports. Virtual machines often report a generic name ("AMD EPYC") for
    several CPU generations; the flags (AVX-512 subsets, VNNI, ...) are what kernels dispatch on."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model, flags = None, None
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key == "model name" and model is None:
                model = " ".join(line.split(":", 1)[1].split())
            elif key in ("flags", "features") and flags is None:
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
        if model or flags:
            digest = hashlib.sha256(flags.encode()).hexdigest()[:12] if flags else "none"
            return f"{model or 'unknown'} (flags {digest})"
    return platform.processor() or platform.machine() or "unknown"


def environment(torch_threads: int = 1) -> dict[str, str]:
    """What the exact numbers of a training run depend on, as strings.

    The versions of torch, numpy and gymnasium; torch's CPU capability (the vector instructions its
    kernels use: ``AVX512``, ``AVX2``, ``DEFAULT`` ...); the intra-op thread count the run uses
    (``torch_threads``, the agents' ``AgentConfig.torch_threads``: a reduction split over threads
    adds in another order); and the CPU model with a digest of its feature flags, because MKL,
    which torch uses for matrix products on x86, chooses its kernels per CPU even at one capability.
    """
    if isinstance(torch_threads, bool) or not isinstance(torch_threads, numbers.Integral) or torch_threads < 1:
        raise ValueError(f"torch_threads must be a positive int, got {torch_threads!r}")
    torch_threads = int(torch_threads)
    import gymnasium
    import numpy
    import torch

    return {
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": str(torch_threads),
        "cpu": f"{platform.machine()} {_cpu_model()}",
    }


def same_environment(recorded: dict, current: dict) -> bool:
    """Whether every field of :data:`ENVIRONMENT_FIELDS` is recorded and equal in both."""
    for name, value in (("recorded", recorded), ("current", current)):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict of environment fields, got {type(value).__name__}")
    return all(recorded.get(k) not in (None, "") and recorded.get(k) == current.get(k) for k in ENVIRONMENT_FIELDS)


def bound(error, tol: float) -> str:
    """``"< tol"`` for an error whose magnitude must be below ``tol``; raise ``AssertionError`` otherwise.

    For round-off-level errors, whose digits depend on the machine: the printed text is the same
    on every machine on which the check passes, and the check itself is in the same call.
    ``error`` may be a float or anything with ``.item()``/``float()``; NaN fails.
    """
    if not (isinstance(tol, numbers.Real) and not isinstance(tol, bool) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    tol = float(tol)
    if float(f"{tol:.0e}") != tol:  # the printed bound must be the checked one: 2.5e-7 would print as 2e-7
        raise ValueError(f"tol must have one significant digit (like 1e-12 or 5e-8), got {tol!r}")
    try:
        raw = error.item() if hasattr(error, "item") and callable(error.item) else error
    except (ValueError, RuntimeError) as exc:  # an array or tensor of more than one element
        raise ValueError(f"error must be a real number (or a one-element array or tensor), got {error!r}") from exc
    if isinstance(raw, (bool, str, bytes, complex)) or (isinstance(raw, numbers.Complex) and not isinstance(raw, numbers.Real)):
        raise ValueError(f"error must be a real number (or a one-element array or tensor), got {error!r}")
    try:
        value = abs(float(raw))  # also mpmath / sympy numbers
    except (TypeError, ValueError) as exc:
        raise ValueError(f"error must be a real number (or a one-element array or tensor), got {error!r}") from exc
    if not value < tol:  # also fails for NaN
        raise AssertionError(f"error {value:.3e} is not below {tol:g}")
    mantissa, exponent = f"{tol:.0e}".split("e")
    return f"< {mantissa}e{int(exponent)}"  # "< 1e-5", not "< 1e-05"
