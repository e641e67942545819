"""Input validation shared by every :mod:`pgbook` module.

Every public function of the package checks its arguments with these helpers, so that a
wrong shape, a probability table that does not sum to one, a discount factor outside its
range or a NaN fails at once with a :class:`ValueError` that names the argument.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Tolerance for "sums to one" checks of probability tables.
PROB_ATOL = 1e-9


def as_float_array(x, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a float64 array, checking its rank and that it is finite.

    Accepts real numbers in any numeric dtype (int, float16/32/64, numpy scalars) and torch
    tensors, also ones that require gradients (their values are used, detached). Rejects, naming
    the argument: complex values (their imaginary part would be dropped silently), booleans,
    strings and other non-numeric objects, and NaN or infinite entries.
    """
    if x is None:
        raise ValueError(f"{name} must be an array of numbers, got None")
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor, possibly with requires_grad
        x = x.detach().cpu()
        if x.is_complex():
            raise ValueError(f"{name} must be real, got a complex tensor")
        x = x.double().numpy()
    probe = np.asarray(x)
    kind = probe.dtype.kind
    if kind == "c":
        raise ValueError(f"{name} must be real, got complex values (dtype {probe.dtype})")
    if kind == "b":
        raise ValueError(f"{name} must be an array of numbers, got booleans")
    if kind not in "iuf":
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__} of dtype {probe.dtype}")
    try:
        arr = np.asarray(probe, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_shape(arr: np.ndarray, shape: tuple, name: str) -> None:
    """Raise unless ``arr.shape == shape``."""
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")


def check_distribution(arr: np.ndarray, name: str, axis: int = -1) -> None:
    """Raise unless ``arr`` is non-negative and sums to 1 (within 1e-9) along ``axis``."""
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative probabilities (min {arr.min():.3g})")
    sums = arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=PROB_ATOL):
        worst = float(np.max(np.abs(sums - 1.0)))
        hint = (
            " (a float32 table, e.g. a torch.softmax output, is off by about 1e-7: compute it in float64, "
            "or renormalise it in float64 before passing it)"
            if worst < 1e-5
            else ""
        )
        raise ValueError(
            f"{name} must sum to 1 along axis {axis} (within {PROB_ATOL:g}); "
            f"the worst row is off by {worst:.3g}{hint}"
        )


def check_gamma(gamma, name: str = "gamma", allow_one: bool = False) -> float:
    """Return ``gamma`` as a float, raising unless it lies in [0, 1) (or [0, 1])."""
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {type(gamma).__name__}")
    g = float(gamma)
    upper_ok = g <= 1.0 if allow_one else g < 1.0
    if not (np.isfinite(g) and g >= 0.0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {gamma!r}")
    return g


def check_positive_int(n, name: str, minimum: int = 1) -> int:
    """Return ``n`` as an int, raising unless it is an integer ``>= minimum``."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def check_seed(seed, name: str = "seed") -> int:
    """Return ``seed`` as an int, raising unless it is a non-negative integer (numpy's and torch's seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


# ---- additions (issue 13): scalars of every numeric type, flags, callables, tensors, MDPs ----


def check_real(
    x,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """Return ``x`` as a float, raising unless it is a real number (``int``, ``float``, any numpy
    integer or floating scalar; not ``bool``, complex, strings, arrays) that is not NaN, finite
    unless ``allow_inf``, and inside the given bounds (closed unless ``low_open``/``high_open``)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {x!r}")
    v = float(x)
    if math.isnan(v) or (not allow_inf and math.isinf(v)):
        raise ValueError(f"{name} must be a finite real number, got {x!r}")
    if low is not None and not (v > low if low_open else v >= low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {x!r}")
    if high is not None and not (v < high if high_open else v <= high):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {x!r}")
    return v


def check_bool(x, name: str) -> bool:
    """Return ``x`` as a bool, raising unless it is ``True`` or ``False`` (or a numpy bool)."""
    if not isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {x!r}")
    return bool(x)


def check_callable(f, name: str):
    """Return ``f``, raising unless it is callable."""
    if not callable(f):
        raise ValueError(f"{name} must be callable, got {type(f).__name__}")
    return f


def check_tensor(x, name: str, *, floating: bool = True, ndim: int | None = None, finite: bool = True):
    """Return ``x``, raising unless it is a torch tensor of real floating-point (``floating=True``)
    or integer (``floating=False``) dtype, of rank ``ndim`` if given, and (floating) finite."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not floating and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if floating and finite and not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_mdp(mdp, name: str = "mdp"):
    """Return ``mdp``, raising unless it is a :class:`pgbook.mdp.MDP`."""
    from .mdp import MDP

    if not isinstance(mdp, MDP):
        raise ValueError(f"{name} must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    return mdp


def check_torch_seed(seed, name: str = "seed") -> int:
    """:func:`check_seed`, and below ``2**64`` (torch's generators take an unsigned 64-bit seed)."""
    seed = check_seed(seed, name)
    if seed >= 2**64:
        raise ValueError(f"{name} must be below 2**64 (a torch seed is an unsigned 64-bit integer), got {seed!r}")
    return seed
