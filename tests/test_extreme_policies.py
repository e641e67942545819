"""Near-deterministic policies are valid input: the exact surrogates stay finite and right.

A softmax policy with a logit gap above ~745 has a probability that underflows to 0 in float64.
The quantities of chapters 5–7 (the importance-weighted gradient, L^CLIP, the KL-penalty objective,
the average and maximal KL) are still finite; computed naively they become ``0 * inf = nan`` or an
infinite KL. Each is checked here against a direct evaluation of its definition in 50-digit
arithmetic (mpmath), which does not underflow: an independent computation, not the package's own.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

from pgbook import clipping as C
from pgbook import importance as I
from pgbook import mdp as M
from pgbook import policies
from pgbook import surrogate as S

mpmath.mp.dps = 50
MDP_ = M.random_mdp(3, 2, 0.9, 0)
ZERO = np.zeros((3, 2))
EXTREME = [np.array([[1e4, 0.0], [0.0, 0.0], [0.0, 0.0]]), np.array([[800.0, 0.0], [0.0, -3.0], [1.0, 0.0]])]


def _mp_probs(theta):
    """pi(a|s) in 50 digits, from the logits (no underflow)."""
    out = []
    for row in theta:
        e = [mpmath.exp(mpmath.mpf(float(x))) for x in row]
        z = mpmath.fsum(e)
        out.append([x / z for x in e])
    return out


def _mp_kl(theta_old, theta):
    p, q = _mp_probs(theta_old), _mp_probs(theta)
    return [mpmath.fsum(pa * (mpmath.log(pa) - mpmath.log(qa)) for pa, qa in zip(ps, qs)) for ps, qs in zip(p, q)]


def _old(theta_old):
    pi_old = policies.probs(theta_old)  # float64: only eta_old and A_old come from it, as in the package
    return M.discounted_visits(MDP_, pi_old), M.advantage_values(MDP_, pi_old)


def _pairs():
    for big in EXTREME:
        yield ZERO, big  # theta near-deterministic, theta_old uniform
        yield big, ZERO  # theta_old near-deterministic: its probabilities underflow, ratios overflow
    yield np.array([[0.3, -0.2], [1.0, 0.5], [-1.0, 2.0]]), np.array([[0.1, 0.4], [0.2, -0.3], [0.0, 1.5]])


@pytest.mark.parametrize("theta_old,theta", list(_pairs()))
@pytest.mark.claim("eq-clip-cases", how="exact")
def test_expected_clip_objective_matches_50_digit_definition(theta_old, theta):
    """sum_s eta_old sum_a pi_old min(r A, clip(r) A), with r = pi/pi_old in 50 digits; eps = 0.2."""
    eta, A = _old(theta_old)
    p_old, p = _mp_probs(theta_old), _mp_probs(theta)
    per_state = []
    for s in range(3):
        terms = []
        for a in range(2):
            r = p[s][a] / p_old[s][a]
            clipped = min(max(r, mpmath.mpf("0.8")), mpmath.mpf("1.2"))
            terms.append(p_old[s][a] * min(r * A[s, a], clipped * A[s, a]))
        per_state.append(mpmath.fsum(terms))
    expected = float(mpmath.fsum(eta[s] * per_state[s] for s in range(3)))
    got = C.expected_clip_objective(MDP_, theta, theta_old, 0.2)
    assert np.isfinite(got) and abs(got - expected) <= 1e-12 * max(1.0, abs(expected))
    states = C.state_clip_objectives(MDP_, theta, theta_old, 0.2)
    assert np.abs(states - np.array([float(x) for x in per_state])).max() <= 1e-12
    # differentiable and finite there too
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    C.expected_clip_objective(MDP_, th, theta_old, 0.2).backward()
    assert torch.isfinite(th.grad).all()


@pytest.mark.parametrize("theta_old,theta", list(_pairs()))
@pytest.mark.claim("eq-clip-klpen", how="exact")
def test_kl_quantities_match_50_digit_definition(theta_old, theta):
    """Per-state KL, its d_old average, TRPO's bound and the KL-penalty objective: finite and right."""
    kl = _mp_kl(theta_old, theta)
    got = S.softmax_policy_kl(theta_old, theta)
    assert np.all(np.isfinite(got))
    assert np.abs(got - np.array([float(x) for x in kl])).max() <= 1e-12 * max(1.0, max(abs(float(x)) for x in kl))
    eta, A = _old(theta_old)
    d_old = M.discounted_state_distribution(MDP_, policies.probs(theta_old))
    mean = float(mpmath.fsum(d_old[s] * kl[s] for s in range(3)))
    assert abs(S.mean_policy_kl(MDP_, theta, theta_old) - mean) <= 1e-12 * max(1.0, mean)
    assert np.isfinite(S.trpo_lower_bound(MDP_, theta, theta_old))
    p = _mp_probs(theta)
    pen = float(mpmath.fsum(eta[s] * (mpmath.fsum(p[s][a] * A[s, a] for a in range(2)) - 0.5 * kl[s]) for s in range(3)))
    got = C.expected_kl_penalty_objective(MDP_, theta, theta_old, 0.5)
    assert np.isfinite(got) and abs(got - pen) <= 1e-12 * max(1.0, abs(pen))


@pytest.mark.parametrize("theta_old,theta", list(_pairs()))
@pytest.mark.claim("eq-is-pg-notes", how="exact")
def test_is_policy_gradient_matches_50_digit_definition(theta_old, theta):
    """sum_s eta_old sum_a pi_old r grad log pi_theta A_old, with pi_old r in 50 digits: finite and right."""
    eta, A = _old(theta_old)
    p_old, p = _mp_probs(theta_old), _mp_probs(theta)
    score = policies.score(theta)
    weight = np.array([[float(p_old[s][a] * (p[s][a] / p_old[s][a])) for a in range(2)] for s in range(3)])
    expected = np.einsum("s,sa,saxy,sa->xy", eta, weight, score, A)
    got = I.is_policy_gradient(MDP_, theta, theta_old)
    assert np.all(np.isfinite(got)) and np.abs(got - expected).max() <= 1e-12 * max(1.0, np.abs(expected).max())


def test_torch_categorical_kl_is_infinite_where_ours_is_finite():
    """The measured reason for not using torch.distributions.kl_divergence (clipping.py)."""
    p = torch.distributions.Categorical(logits=torch.tensor([0.0, 0.0], dtype=torch.float64))
    q = torch.distributions.Categorical(logits=torch.tensor([800.0, 0.0], dtype=torch.float64))
    assert torch.isinf(torch.distributions.kl_divergence(p, q))
    ours = S.softmax_policy_kl(np.zeros((1, 2)), np.array([[800.0, 0.0]]))[0]
    assert abs(ours - (400.0 - np.log(2.0))) < 1e-12 * 400
