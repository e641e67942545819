"""Continuous-action policies: the diagonal Gaussian, the tanh-squashed Gaussian and the Beta policy.

Chapter 11 (:doc:`/book/ch11_continuous_actions`). Equations implemented:

* ``eq-cont-gauss-logpdf`` — the log-density of ``N(mean, diag sigma^2)``, ``sigma = exp(log_std)``:
  ``sum_i [-(a_i - mean_i)^2 / (2 sigma_i^2) - log_std_i - log(2 pi) / 2]``;
* ``eq-cont-gauss-score`` — its score: ``(a - mean) / sigma^2`` in the mean and
  ``(a - mean)^2 / sigma^2 - 1`` in the log standard deviation;
* ``eq-cont-gauss-entropy`` — its entropy ``sum_i [log_std_i + (1 + log 2 pi) / 2]``;
* ``eq-cont-tanh-logpdf`` — the density of ``a = tanh(u)``, ``u ~ N(mean, diag sigma^2)``:
  ``log N(u) - sum_i log(1 - tanh(u_i)^2)``, with the log-determinant in the stable form
  ``2 (log 2 - u - softplus(-2 u))``; the entropy of ``a``, which has no closed form, by quadrature;
* ``eq-cont-beta-logpdf`` — the Beta policy on ``[low, high]`` (Chou et al., 2017): the log-density
  of ``a = low + (high - low) x``, ``x ~ Beta(alpha, beta)``, and its score in ``alpha`` and ``beta``.

Arrays broadcast against each other; the last axis is the action dimension, over which the
log-densities and entropies sum. Everything is float64 numpy; ``torch.distributions`` (``Normal``,
``TransformedDistribution`` with ``TanhTransform``, ``Beta``) is the independent reference the tests
and the chapter compare with.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ._validate import as_float_array, check_positive_int, check_real

__all__ = [
    "LOG_STD_RANGE",
    "diag_gaussian_log_prob",
    "diag_gaussian_score",
    "diag_gaussian_entropy",
    "tanh_log_det_jacobian",
    "squashed_log_prob",
    "squashed_entropy",
    "beta_log_prob",
    "beta_score",
    "gaussian_symbolic",
]

#: ``log_std`` must lie in this closed interval: ``sigma = exp(log_std)`` and ``1/sigma^2`` are then
#: positive, finite float64 numbers (``exp(-2 * 300)`` is about 1e-261).
LOG_STD_RANGE = (-300.0, 300.0)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _log_std(log_std, name: str = "log_std") -> np.ndarray:
    ls = as_float_array(log_std, name)
    lo, hi = LOG_STD_RANGE
    if np.any(ls < lo) or np.any(ls > hi):
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}] (sigma = exp({name}) a positive finite float), got {ls}")
    return ls


def _broadcast(**arrays) -> list[np.ndarray]:
    try:
        out = np.broadcast_arrays(*arrays.values())
    except ValueError as exc:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise ValueError(f"{next(iter(arrays))} does not broadcast with the other arguments ({shapes})") from exc
    if out[0].ndim == 0:
        raise ValueError(f"{next(iter(arrays))} must have at least one dimension (the action dimension), got a scalar")
    if out[0].shape[-1] == 0:
        raise ValueError(f"{next(iter(arrays))} has an empty action dimension")
    return [np.array(x, dtype=np.float64) for x in out]


def _standardised(a, mean, log_std, name: str = "a"):
    """``(a - mean) / sigma`` and ``log_std``, broadcast; overflow to +-inf is the correct limit."""
    a = as_float_array(a, name)
    mean = as_float_array(mean, "mean")
    ls = _log_std(log_std)
    a, mean, ls = _broadcast(**{name: a}, mean=mean, log_std=ls)
    with np.errstate(over="ignore"):
        z = (a - mean) * np.exp(-ls)
    return z, ls


def diag_gaussian_log_prob(a, mean, log_std) -> np.ndarray:
    """``log N(a; mean, diag exp(log_std)^2)``, summed over the last axis (eq. ``eq-cont-gauss-logpdf``).

    ``a``, ``mean``, ``log_std``: arrays broadcasting to ``(..., d)``; returns shape ``(...)``. An
    action many standard deviations away gives a large negative log-density (``-inf`` once
    ``(a - mean)^2 / sigma^2`` exceeds the float64 range), never NaN.
    """
    z, ls = _standardised(a, mean, log_std)
    with np.errstate(over="ignore"):
        return np.sum(-0.5 * z * z - ls - _HALF_LOG_2PI, axis=-1)


def diag_gaussian_score(a, mean, log_std) -> tuple[np.ndarray, np.ndarray]:
    """The score of the diagonal Gaussian (eq. ``eq-cont-gauss-score``).

    Returns ``(d/d mean, d/d log_std)`` of :func:`diag_gaussian_log_prob`, each of the broadcast shape
    ``(..., d)``: ``(a - mean) / sigma^2`` and ``(a - mean)^2 / sigma^2 - 1``.
    """
    z, ls = _standardised(a, mean, log_std)
    with np.errstate(over="ignore", invalid="ignore"):
        d_mean = z * np.exp(-ls)
        d_log_std = z * z - 1.0
    return d_mean, d_log_std


def diag_gaussian_entropy(log_std) -> np.ndarray:
    """Differential entropy of ``N(mean, diag exp(log_std)^2)``: ``sum_i log_std_i + d (1 + log 2 pi) / 2``.

    Eq. ``eq-cont-gauss-entropy``; it does not depend on the mean. ``log_std``: array ``(..., d)``;
    returns shape ``(...)``.
    """
    ls = _log_std(log_std)
    (ls,) = _broadcast(log_std=ls)
    return np.sum(ls + 0.5 + _HALF_LOG_2PI, axis=-1)


def tanh_log_det_jacobian(u) -> np.ndarray:
    """``log(d tanh(u) / du) = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2 u))``, elementwise.

    The right-hand form (eq. ``eq-cont-tanh-logpdf``) is exact algebra and stays accurate for large
    ``|u|``, where ``1 - tanh(u)^2`` rounds to 0 (``|u| > 19``) and the left-hand form gives ``-inf``.
    """
    u = as_float_array(u, "u")
    return 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))


def squashed_log_prob(u, mean, log_std) -> np.ndarray:
    """Log-density of the action ``a = tanh(u)`` at the pre-squash value ``u ~ N(mean, diag sigma^2)``.

    Eq. ``eq-cont-tanh-logpdf``: ``log N(u; mean, sigma) - sum_i log(1 - tanh(u_i)^2)``, the change of
    variables with the Jacobian of ``tanh``. It takes ``u``, not ``a``: ``atanh(a)`` loses all accuracy
    as ``|a| -> 1`` (a float32 or float64 ``a`` rounds to ``+-1`` for ``|u|`` beyond 9 or 19), so the
    agents store ``u``. Returns shape ``(...)`` of the broadcast ``(..., d)``.
    """
    z, ls = _standardised(u, mean, log_std, "u")
    u_b = np.broadcast_to(as_float_array(u, "u"), z.shape)
    with np.errstate(over="ignore"):
        log_n = np.sum(-0.5 * z * z - ls - _HALF_LOG_2PI, axis=-1)
    return log_n - np.sum(tanh_log_det_jacobian(u_b), axis=-1)


def squashed_entropy(mean, log_std, n_nodes: int = 200) -> np.ndarray:
    """Entropy of ``a = tanh(u)``, ``u ~ N(mean, diag sigma^2)``, by Gauss–Hermite quadrature.

    ``h(a) = h(u) + E[log(1 - tanh(u)^2)]`` (eq. ``eq-cont-tanh-entropy``); the expectation of the
    log-Jacobian has no closed form and is integrated per dimension with an ``n_nodes``-point
    probabilists' Gauss–Hermite rule (the integrand is smooth and grows only linearly in ``u``, so the
    rule converges fast; the tests compare with adaptive quadrature). Returns shape ``(...)``.
    """
    mean = as_float_array(mean, "mean")
    ls = _log_std(log_std)
    n_nodes = check_positive_int(n_nodes, "n_nodes")
    if n_nodes > 2000:
        raise ValueError(f"n_nodes must be at most 2000, got {n_nodes}")
    mean, ls = _broadcast(mean=mean, log_std=ls)
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    with np.errstate(over="ignore", invalid="ignore"):
        u = mean[..., None] + np.exp(ls)[..., None] * x  # (..., d, n)
    u = np.nan_to_num(u, nan=0.0)  # 0 * inf for an infinite sigma cannot occur: log_std <= 300
    u = np.clip(u, -1e300, 1e300)
    jac = 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))
    return np.sum(ls + 0.5 + _HALF_LOG_2PI + jac @ w, axis=-1)


def _beta_args(a, alpha, beta, low, high):
    low = check_real(low, "low")
    high = check_real(high, "high")
    if not high > low:
        raise ValueError(f"high must be greater than low, got low={low!r}, high={high!r}")
    if not math.isfinite(high - low):
        raise ValueError(f"high - low must be a finite float, got low={low!r}, high={high!r}")
    a = as_float_array(a, "a")
    alpha = as_float_array(alpha, "alpha")
    beta = as_float_array(beta, "beta")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if np.any(v <= 0):
            raise ValueError(f"{name} must be positive, got {v}")
    if np.any(a <= low) or np.any(a >= high):
        raise ValueError(f"a must lie strictly inside (low, high) = ({low:g}, {high:g}), got {a}")
    a, alpha, beta = _broadcast(a=a, alpha=alpha, beta=beta)
    width = high - low
    x = (a - low) / width
    # log x and log(1 - x) from the distances to the bounds, accurate near both ends
    log_x = np.log(a - low) - math.log(width)
    log_1mx = np.log(high - a) - math.log(width)
    return x, log_x, log_1mx, alpha, beta, width


def beta_log_prob(a, alpha, beta, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Log-density of ``a = low + (high - low) x``, ``x ~ Beta(alpha, beta)``, summed over the last axis.

    Eq. ``eq-cont-beta-logpdf``: ``(alpha - 1) log x + (beta - 1) log(1 - x) - log B(alpha, beta)
    - log(high - low)``. ``a`` must lie strictly inside ``(low, high)``; ``alpha, beta > 0``.
    """
    x, log_x, log_1mx, alpha, beta, width = _beta_args(a, alpha, beta, low, high)
    with np.errstate(over="ignore"):
        terms = (alpha - 1.0) * log_x + (beta - 1.0) * log_1mx - special.betaln(alpha, beta) - math.log(width)
    return np.sum(terms, axis=-1)


def beta_score(a, alpha, beta, low: float = 0.0, high: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The score of :func:`beta_log_prob` in ``alpha`` and in ``beta`` (eq. ``eq-cont-beta-logpdf``).

    ``(log x - psi(alpha) + psi(alpha + beta), log(1 - x) - psi(beta) + psi(alpha + beta))`` with
    ``psi`` the digamma function, each of the broadcast shape ``(..., d)``.
    """
    x, log_x, log_1mx, alpha, beta, width = _beta_args(a, alpha, beta, low, high)
    psi_sum = special.digamma(alpha + beta)
    return log_x - special.digamma(alpha) + psi_sum, log_1mx - special.digamma(beta) + psi_sum


def gaussian_symbolic() -> dict:
    """The one-dimensional Gaussian policy derived by sympy (eqs. ``eq-cont-gauss-score``, ``eq-cont-gauss-entropy``).

    sympy differentiates ``log N(a; mu, exp(s)^2)`` written from the density (not from the closed
    forms) and integrates over the real line. Returns a dict of sympy expressions in the symbols
    ``a, mu, s``: ``logpdf``, ``score_mu``, ``score_log_std``, ``mean_score_mu``,
    ``mean_score_log_std`` (the expected scores), ``entropy`` (``-E[log N]``) and ``total_mass``.
    """
    import sympy as sp

    a, mu, s = sp.symbols("a mu s", real=True)
    sigma = sp.exp(s)
    density = sp.exp(-((a - mu) ** 2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
    logpdf = sp.expand_log(sp.log(density), force=True)
    score_mu = sp.simplify(sp.diff(logpdf, mu))
    score_ls = sp.simplify(sp.diff(logpdf, s))

    def expect(f):
        return sp.simplify(sp.integrate(sp.expand(f * density), (a, -sp.oo, sp.oo), conds="none"))

    return {
        "a": a,
        "mu": mu,
        "s": s,
        "logpdf": logpdf,
        "score_mu": score_mu,
        "score_log_std": score_ls,
        "mean_score_mu": expect(score_mu),
        "mean_score_log_std": expect(score_ls),
        "entropy": expect(-logpdf),
        "total_mass": expect(sp.Integer(1)),
    }
