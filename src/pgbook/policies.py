"""The tabular softmax policy ``pi_theta(a|s) = exp(theta[s, a]) / sum_b exp(theta[s, b])``.

Chapters 1–2 (:doc:`/book/ch01_trajectories`, :doc:`/book/ch02_policy_gradient_theorem`).
Its score has the closed form (eq. ``eq-softmax-score``)

    d log pi_theta(a|s) / d theta[s', b] = 1[s = s'] (1[a = b] - pi_theta(b|s)),

which :func:`score` returns as an array ``(S, A, S, A)``. Log-probabilities are computed with
``logsumexp`` so that large logits neither overflow nor lose precision.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_float_array, check_seed

__all__ = ["check_theta", "log_probs", "probs", "score", "weighted_score_sum", "sample_actions"]


def check_theta(theta, name: str = "theta") -> np.ndarray:
    """Return ``theta`` as a finite float array of shape ``(S, A)``; ``name`` labels the messages."""
    if not isinstance(name, str):
        raise ValueError(f"name must be a string (the argument's name in messages), got {name!r}")
    theta = as_float_array(theta, name, ndim=2)
    if theta.shape[0] == 0 or theta.shape[1] == 0:
        raise ValueError(f"{name} must have shape (S, A) with S, A >= 1, got {theta.shape}")
    return theta


def log_probs(theta) -> np.ndarray:
    """``log pi_theta(a|s)`` for every ``(s, a)``, via a stable log-sum-exp; shape ``(S, A)``."""
    theta = check_theta(theta)
    m = theta.max(axis=1, keepdims=True)
    return theta - m - np.log(np.exp(theta - m).sum(axis=1, keepdims=True))


def probs(theta) -> np.ndarray:
    """``pi_theta(a|s)``; shape ``(S, A)``, rows sum to one."""
    return np.exp(log_probs(theta))


def score(theta) -> np.ndarray:
    """The analytic score ``grad_theta log pi_theta(a|s)``, shape ``(S, A, S, A)``.

    ``score(theta)[s, a]`` is the gradient of ``log pi_theta(a|s)`` with respect to the whole
    parameter table ``theta`` (eq. ``eq-softmax-score``).
    """
    pi = probs(theta)
    S, A = pi.shape
    out = np.zeros((S, A, S, A))
    idx = np.arange(S)
    # out[s, a, s, b] = 1[a = b] - pi(b|s); zero for the other states s' != s.
    out[idx, :, idx, :] = np.eye(A)[None, :, :] - pi[:, None, :]
    return out


def weighted_score_sum(theta, states, actions, weights=None) -> np.ndarray:
    """``sum_t w_t grad_theta log pi_theta(a_t|s_t)`` for each row of ``states``/``actions``.

    ``states``, ``actions`` (and ``weights``, default all ones) have shape ``(N, T)``; the result
    has shape ``(N, S, A)``. With unit weights this is ``grad_theta log p(tau; theta)`` of each
    trajectory (eq. ``eq-grad-log-traj``); with weights ``gamma^t G_t`` it is a REINFORCE sample.
    Uses the closed form of :func:`score` without materialising the ``(S, A, S, A)`` array.
    """
    pi = probs(theta)
    S, A = pi.shape
    states, actions = np.asarray(states), np.asarray(actions)
    if states.ndim != 2 or states.shape != actions.shape:
        raise ValueError(f"states and actions must have the same shape (N, T), got {states.shape} and {actions.shape}")
    for name, arr, n in (("states", states, S), ("actions", actions, A)):
        if arr.dtype.kind not in "iu" or np.any(arr < 0) or np.any(arr >= n):
            raise ValueError(f"{name} must be integers in [0, {n})")
    if weights is None:
        weights = np.ones(states.shape)
    weights = as_float_array(weights, "weights", ndim=2)
    if weights.shape != states.shape:
        raise ValueError(f"weights must have shape {states.shape}, got {weights.shape}")
    N, T = states.shape
    # score(s_t, a_t)[s, b] = 1[s = s_t] (1[a_t = b] - pi(b|s_t))
    contrib = -weights[..., None] * pi[states]
    contrib[np.arange(N)[:, None], np.arange(T)[None, :], actions] += weights
    out = np.zeros((N, S, A))
    np.add.at(out, (np.repeat(np.arange(N), T), states.ravel()), contrib.reshape(N * T, A))
    return out


def sample_actions(theta, states, seed: int) -> np.ndarray:
    """One action ``a ~ pi_theta(.|s)`` for each entry of the integer array ``states``."""
    pi = probs(theta)
    states = np.asarray(states)
    if states.dtype.kind not in "iu" or np.any(states < 0) or np.any(states >= pi.shape[0]):
        raise ValueError(f"states must be integers in [0, {pi.shape[0]}), got {states!r}")
    rng = np.random.default_rng(check_seed(seed))
    u = rng.random(states.shape)
    a = (u[..., None] >= np.cumsum(pi, axis=1)[states]).sum(axis=-1)
    return np.minimum(a, pi.shape[1] - 1)


