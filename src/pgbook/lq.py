"""One-dimensional continuous-action problems whose objective and gradient are known in closed form.

Chapter 11 (:doc:`/book/ch11_continuous_actions`). Equations implemented:

* ``eq-cont-lq-objective`` — the quadratic bandit: reward ``r(a) = -(a - a_star)^2``, policy
  ``N(mean, sigma^2)``, ``sigma = exp(log_std)``: ``J = -((mean - a_star)^2 + sigma^2)`` and
  ``grad J = (-2 (mean - a_star), -2 sigma^2)`` in ``(mean, log_std)``;
* ``prop-cont-optimal-baseline`` — the exact mean and variance (trace of the covariance) of the
  score-function estimator ``score(a) (r(a) - b)`` and its variance-minimising constant baseline
  ``b* = E[|score|^2 r] / E[|score|^2] = -d^2 - sigma^2 (3 + 10 sigma^2) / (1 + 2 sigma^2)``,
  ``d = mean - a_star``;
* ``eq-cont-contextual`` — the contextual version: state ``s ~ N(0, 1)``, mean ``w s + c``, log-std
  ``l0 + l1 s`` (``l1 = 0``: a state-independent log-std), reward ``-(a - k s)^2``:
  ``J = -((w - k)^2 + c^2) - exp(2 l0 + 2 l1^2)``;
* ``eq-cont-clip-objective`` — actions clipped to ``[low, high]`` by the environment:
  ``J_clip = E[r(clip(a, low, high))]`` and its gradient, in closed form from truncated-normal moments;
* ``prop-cont-clip-unbiased`` — the bias of the estimator that scores the *clipped* action,
  ``B = sum_{e in {low, high}} r(e) [P_e grad log N(e) - grad P_e]`` (:func:`clipped_score_bias`).

Expectations of other functions of a Gaussian action come from :func:`gaussian_expectation`
(Gauss–Hermite: exact for polynomials) and :func:`expectation_quad` (adaptive quadrature, split at
kinks). The tests check the closed forms against both, against central differences, sympy and autograd.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

from ._validate import as_float_array, check_callable, check_positive_int, check_real

__all__ = [
    "bandit_objective",
    "bandit_gradient",
    "gaussian_expectation",
    "expectation_quad",
    "estimator_moments",
    "optimal_baseline",
    "contextual_objective",
    "contextual_gradient",
    "clipped_objective",
    "clipped_gradient",
    "clipped_score_bias",
]

_LOG_STD_MAX = 300.0


def _params(mean, log_std, a_star):
    mean = check_real(mean, "mean")
    log_std = check_real(log_std, "log_std", -_LOG_STD_MAX, _LOG_STD_MAX)
    a_star = check_real(a_star, "a_star")
    return mean, log_std, a_star


def bandit_objective(mean, log_std, a_star) -> float:
    """``J = E_{a ~ N(mean, sigma^2)}[-(a - a_star)^2] = -((mean - a_star)^2 + sigma^2)`` (eq. ``eq-cont-lq-objective``)."""
    mean, log_std, a_star = _params(mean, log_std, a_star)
    with np.errstate(over="ignore"):
        d = np.float64(mean) - a_star
        return float(-(d * d + np.exp(2.0 * np.float64(log_std))))


def bandit_gradient(mean, log_std, a_star) -> np.ndarray:
    """``grad J`` in ``(mean, log_std)``: ``(-2 (mean - a_star), -2 sigma^2)`` (eq. ``eq-cont-lq-objective``)."""
    mean, log_std, a_star = _params(mean, log_std, a_star)
    with np.errstate(over="ignore"):
        return np.array([-2.0 * (np.float64(mean) - a_star), -2.0 * np.exp(2.0 * np.float64(log_std))])


def gaussian_expectation(f, mean, log_std, n_nodes: int = 16):
    """``E_{a ~ N(mean, sigma^2)}[f(a)]`` by an ``n_nodes``-point probabilists' Gauss–Hermite rule.

    ``f`` maps an array of actions ``(n,)`` to an array ``(n, ...)``; the result has shape ``(...)``.
    Exact (to rounding) when ``f`` is a polynomial of degree ``<= 2 n_nodes - 1``, as the score times
    a quadratic reward is; for smooth non-polynomial ``f`` it converges as ``n_nodes`` grows.
    """
    f = check_callable(f, "f")
    mean = check_real(mean, "mean")
    log_std = check_real(log_std, "log_std", -_LOG_STD_MAX, _LOG_STD_MAX)
    n_nodes = check_positive_int(n_nodes, "n_nodes")
    if n_nodes > 2000:
        raise ValueError(f"n_nodes must be at most 2000, got {n_nodes}")
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    with np.errstate(over="ignore"):
        nodes = mean + math.exp(log_std) * x
    values = np.asarray(f(nodes), dtype=np.float64)
    if values.ndim == 0 or values.shape[0] != n_nodes:
        raise ValueError(f"f must return an array whose first axis has one entry per action ({n_nodes}), got shape {values.shape}")
    return np.tensordot(w, values, axes=(0, 0))


def expectation_quad(f, mean, log_std, breakpoints=()) -> float:
    """``E_{a ~ N(mean, sigma^2)}[f(a)]`` for a scalar ``f`` by adaptive quadrature (``scipy.integrate.quad``).

    The integral is taken over the standard normal variable ``z = (a - mean) / sigma`` and split at
    the ``breakpoints`` (actions where ``f`` has a kink or a jump, e.g. the bounds of a clip), so each
    piece is smooth. Independent of :func:`gaussian_expectation`; accurate to about 1e-10.
    """
    f = check_callable(f, "f")
    mean = check_real(mean, "mean")
    log_std = check_real(log_std, "log_std", -_LOG_STD_MAX, _LOG_STD_MAX)
    bps = as_float_array(breakpoints, "breakpoints")
    if bps.ndim != 1:
        raise ValueError(f"breakpoints must be a 1-d sequence, got shape {bps.shape}")
    sigma = math.exp(log_std)
    with np.errstate(over="ignore"):
        zs = sorted({float(np.clip((b - mean) / sigma, -40.0, 40.0)) for b in bps})
    edges = [-math.inf, *zs, math.inf]
    phi = 1.0 / math.sqrt(2.0 * math.pi)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        val, _ = integrate.quad(
            lambda z: float(f(mean + sigma * z)) * phi * math.exp(-0.5 * z * z), lo, hi, epsabs=1e-13, epsrel=1e-12, limit=200
        )
        total += val
    return total


def _score_and_reward(mean, log_std, a_star):
    sigma2 = math.exp(2.0 * log_std)

    def fn(a):
        u = a - mean
        return np.stack([u / sigma2, u * u / sigma2 - 1.0], axis=-1), -((a - a_star) ** 2)

    return fn


def estimator_moments(mean, log_std, a_star, baseline=0.0) -> tuple[np.ndarray, float]:
    """Exact mean and variance of ``g = score(a) (r(a) - baseline)``, ``a ~ N(mean, sigma^2)``, on the bandit.

    The score is in ``(mean, log_std)`` (eq. ``eq-cont-gauss-score``). Returns ``(E[g], tr Cov[g])``.
    The integrands are polynomials of degree at most 8 in ``a``: the 8-node Gauss–Hermite rule of
    :func:`gaussian_expectation` computes them exactly (up to rounding).
    """
    mean, log_std, a_star = _params(mean, log_std, a_star)
    baseline = check_real(baseline, "baseline")
    for name, v in (("mean", mean), ("a_star", a_star), ("baseline", baseline)):
        if abs(v) > 1e50:  # the estimator's second moment grows like (mean - a_star)^8: beyond float64
            raise ValueError(f"{name} must have magnitude at most 1e50 (the variance would overflow float64), got {v!r}")
    if log_std > 50.0:
        raise ValueError(f"log_std must be at most 50 (the variance grows like sigma^8 and would overflow float64), got {log_std!r}")
    fn = _score_and_reward(mean, log_std, a_star)

    def g(a):
        score, r = fn(a)
        est = score * (r - baseline)[:, None]
        return np.concatenate([est, np.sum(est * est, axis=1, keepdims=True)], axis=1)

    with np.errstate(over="ignore", invalid="ignore"):
        m = gaussian_expectation(g, mean, log_std, n_nodes=8)
        mean_vec = m[:2]
        return mean_vec, float(m[2] - mean_vec @ mean_vec)


def optimal_baseline(mean, log_std, a_star) -> float:
    """The constant baseline minimising ``tr Cov[score (r - b)]`` on the bandit (prop. ``prop-cont-optimal-baseline``).

    ``b* = E[|score|^2 r] / E[|score|^2] = -d^2 - sigma^2 (3 + 10 sigma^2) / (1 + 2 sigma^2)``, ``d = mean - a_star``.
    """
    mean, log_std, a_star = _params(mean, log_std, a_star)
    with np.errstate(over="ignore", invalid="ignore"):
        d = np.float64(mean) - a_star
        s2 = np.exp(2.0 * np.float64(log_std))
        # sigma^2 (3 + 10 sigma^2) / (1 + 2 sigma^2), written to stay finite for huge sigma
        tail = s2 * (3.0 + 10.0 * s2) / (1.0 + 2.0 * s2) if s2 < 1e150 else 5.0 * s2
        return float(-(d * d) - tail)


def _contextual_params(w, c, l0, l1, k):
    w, c, k = check_real(w, "w"), check_real(c, "c"), check_real(k, "k")
    l0 = check_real(l0, "l0", -_LOG_STD_MAX, _LOG_STD_MAX)
    l1 = check_real(l1, "l1", -10.0, 10.0)
    return w, c, l0, l1, k


def contextual_objective(w, c, l0, l1, k) -> float:
    """``J`` of the contextual problem (eq. ``eq-cont-contextual``): ``-((w - k)^2 + c^2) - exp(2 l0 + 2 l1^2)``.

    State ``s ~ N(0, 1)``, action ``a ~ N(w s + c, exp(l0 + l1 s)^2)``, reward ``-(a - k s)^2``.
    ``l1 = 0`` is the state-independent log-std; ``|l1| <= 10``.
    """
    w, c, l0, l1, k = _contextual_params(w, c, l0, l1, k)
    with np.errstate(over="ignore"):
        dw = np.float64(w) - k
        return float(-(dw * dw + np.float64(c) ** 2) - np.exp(2.0 * l0 + 2.0 * l1 * l1))


def contextual_gradient(w, c, l0, l1, k) -> np.ndarray:
    """``grad J`` of :func:`contextual_objective` in ``(w, c, l0, l1)``:
    ``(-2 (w - k), -2 c, -2 e^{2 l0 + 2 l1^2}, -4 l1 e^{2 l0 + 2 l1^2})``."""
    w, c, l0, l1, k = _contextual_params(w, c, l0, l1, k)
    with np.errstate(over="ignore"):
        v = np.exp(2.0 * l0 + 2.0 * l1 * l1)
        return np.array([-2.0 * (np.float64(w) - k), -2.0 * np.float64(c), -2.0 * v, -4.0 * l1 * v])


#: Bounds and targets beyond this magnitude are rejected: squared distances between them must be finite.
_MAX_LOCATION = 1e100


def _clip_args(mean, log_std, a_star, low, high):
    mean, log_std, a_star = _params(mean, log_std, a_star)
    low, high = check_real(low, "low"), check_real(high, "high")
    for name, v in (("a_star", a_star), ("low", low), ("high", high)):
        if abs(v) > _MAX_LOCATION:
            raise ValueError(f"{name} must have magnitude at most {_MAX_LOCATION:g}, got {v!r}")
    if not high > low:
        raise ValueError(f"high must be greater than low, got low={low!r}, high={high!r}")
    sigma = math.exp(log_std)
    with np.errstate(over="ignore", divide="ignore"):
        alpha = np.clip((np.float64(low) - mean) / sigma, -1e10, 1e10)
        beta = np.clip((np.float64(high) - mean) / sigma, -1e10, 1e10)
    return mean, sigma, a_star, low, high, float(alpha), float(beta)


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) if abs(z) < 40 else 0.0


def _clip_pieces(mean, sigma, a_star, low, high, alpha, beta):
    """Probabilities below/inside/above the bounds and the truncated moments of z inside."""
    p_low = special.ndtr(alpha)
    p_high = special.ndtr(-beta)
    p_in = special.ndtr(beta) - special.ndtr(alpha) if beta < 0 else special.ndtr(-alpha) - special.ndtr(-beta)
    m1 = _phi(alpha) - _phi(beta)  # int_alpha^beta z phi(z) dz
    m2 = p_in - (beta * _phi(beta) - alpha * _phi(alpha))  # int_alpha^beta z^2 phi(z) dz
    return float(p_low), float(p_in), float(p_high), m1, m2


def clipped_objective(mean, log_std, a_star, low, high) -> float:
    """``J_clip = E_{a ~ N(mean, sigma^2)}[-(clip(a, low, high) - a_star)^2]`` in closed form (eq. ``eq-cont-clip-objective``).

    With ``alpha = (low - mean)/sigma``, ``beta = (high - mean)/sigma``, ``d = mean - a_star``:
    ``-Phi(alpha)(low - a_star)^2 - (1 - Phi(beta))(high - a_star)^2
    - [sigma^2 M2 + 2 sigma d M1 + d^2 (Phi(beta) - Phi(alpha))]``, with ``M1``, ``M2`` the first and
    second moments of the standard normal over ``[alpha, beta]``.
    """
    mean, sigma, a_star, low, high, alpha, beta = _clip_args(mean, log_std, a_star, low, high)
    p_low, p_in, p_high, m1, m2 = _clip_pieces(mean, sigma, a_star, low, high, alpha, beta)
    d = mean - a_star
    inside = sigma * sigma * m2 + 2.0 * sigma * d * m1 + d * d * p_in if p_in > 0 else 0.0
    return float(-p_low * (low - a_star) ** 2 - p_high * (high - a_star) ** 2 - inside)


def clipped_gradient(mean, log_std, a_star, low, high) -> np.ndarray:
    """``grad J_clip`` in ``(mean, log_std)`` (eq. ``eq-cont-clip-objective``).

    ``r(clip(a))`` is Lipschitz in ``a``, so ``J_clip`` may be differentiated through the sample
    ``a = mean + sigma z``: only actions inside the bounds contribute, ``r'(a) = -2 (a - a_star)``:
    ``d/d mean = -2 [sigma M1 + d P_in]`` and ``d/d log_std = -2 sigma [sigma M2 + d M1]``.
    """
    mean, sigma, a_star, low, high, alpha, beta = _clip_args(mean, log_std, a_star, low, high)
    p_low, p_in, p_high, m1, m2 = _clip_pieces(mean, sigma, a_star, low, high, alpha, beta)
    d = mean - a_star
    if p_in == 0.0:
        return np.zeros(2)
    return np.array([-2.0 * (sigma * m1 + d * p_in), -2.0 * sigma * (sigma * m2 + d * m1)])


def clipped_score_bias(mean, log_std, a_star, low, high) -> np.ndarray:
    """Bias of ``score(clip(a)) r(clip(a))`` as an estimator of ``grad J_clip`` (prop. ``prop-cont-clip-unbiased``).

    The estimator agrees with the unbiased ``score(a) r(clip(a))`` inside the box; on the mass
    ``P_e`` clipped to an edge ``e`` it gives ``P_e r(e) grad log N(e; mean, sigma^2)`` where the
    unbiased one gives ``r(e) grad P_e``. So, in ``(mean, log_std)``,
    ``B = sum_{e in {low, high}} r(e) [P_e grad log N(e) - grad P_e]`` with ``P_low = Phi(alpha)``,
    ``P_high = 1 - Phi(beta)``, ``grad log N(e) = (z_e / sigma, z_e^2 - 1)``,
    ``grad P_low = -phi(alpha) (1/sigma, alpha)`` and ``grad P_high = phi(beta) (1/sigma, beta)``.
    It vanishes when ``r(low) = r(high) = 0``.
    """
    mean, sigma, a_star, low, high, alpha, beta = _clip_args(mean, log_std, a_star, low, high)
    p_low, p_in, p_high, m1, m2 = _clip_pieces(mean, sigma, a_star, low, high, alpha, beta)
    total = np.zeros(2)
    for edge, z, p_edge, grad_p in (
        (low, alpha, p_low, -_phi(alpha) * np.array([1.0 / sigma, alpha])),
        (high, beta, p_high, _phi(beta) * np.array([1.0 / sigma, beta])),
    ):
        r_edge = -((edge - a_star) ** 2)
        score = np.array([z / sigma, z * z - 1.0]) if p_edge > 0 else np.zeros(2)
        total += r_edge * (p_edge * score - grad_p)
    return total
