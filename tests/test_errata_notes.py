"""Checks of errata entries (:doc:`/book/errata`) about the notes' formulas, not about their code.

* ``err-a2c-actor-update``: the notes' actor update drops the entropy coefficient c2 (torch autograd
  on random logits and on a small actor network).
* ``err-finite-horizon-value``: with a fixed horizon, E[R_t | s_t] depends on t (exact backward
  induction against enumeration of every trajectory and against a closed form built from the
  stationary V^pi by a linear solve).

The notes' code (阶段1-3) is run in tests/test_notes_code.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import random_theta
from pgbook import a2c, policies
from pgbook import agents_common as common
from pgbook import baselines as B
from pgbook import gradients as G
from pgbook import mdp as M

# ---------------------------------------------------------------------------------------------
# err-a2c-actor-update: theta <- theta - eta (grad L_policy + grad L_entropy)   (notes L156-162)
# ---------------------------------------------------------------------------------------------

C1, C2 = 0.5, 0.01  # the notes' "通常 c1 = 0.5, c2 = 0.01" (L154)


def _notes_losses(logits, actions, advantages):
    """The notes' L_{theta,policy} = -E[log pi(a|s) A] (L121) and L_{theta,entropy} = E[sum_a pi log pi] (L145),
    written out from the softmax (independent of pgbook)."""
    log_pi = torch.log_softmax(logits, dim=-1)
    policy = -(log_pi[torch.arange(len(actions)), actions] * advantages).mean()
    entropy_loss = (log_pi.exp() * log_pi).sum(-1).mean()  # = -mean H[pi(.|s)]
    return policy, entropy_loss


def _best_scale_residual(u, v):
    """min over kappa of ||kappa u - v|| / ||v||: zero iff a step size can turn the update u into v."""
    kappa = (u * v).sum() / (u * u).sum()
    return float(kappa), float((kappa * u - v).norm() / v.norm())


@pytest.mark.claim("err-a2c-actor-update", how="autograd")
@pytest.mark.parametrize("seed", range(4))
def test_notes_actor_update_is_not_the_gradient_of_the_total_loss(seed):
    """The notes' actor step minus grad_theta L_total is exactly (1 - c2) grad L_entropy, and no step size absorbs it.

    Random 5x3 logits, torch autograd; the best rescaling of the notes' step leaves more than 5% of grad L_total.
    """
    torch.manual_seed(seed)
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    actions = torch.randint(0, 3, (5,))
    advantages = torch.randn(5, dtype=torch.float64)  # a constant (detached) advantage estimate
    values, returns = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)

    # the total loss of L152, L_policy + c1 L_value + c2 L_entropy, as pgbook computes it (-c2 H = +c2 L_entropy)
    total = a2c.a2c_losses(logits, values, actions, advantages, returns, C1, C2).total
    policy, entropy_loss = _notes_losses(logits, actions, advantages)
    value = (returns - values).pow(2).mean()
    assert abs((total - (policy + C1 * value + C2 * entropy_loss)).item()) < 1e-12  # the same loss

    g_total, g_policy, g_entropy = (torch.autograd.grad(x, logits, retain_graph=True)[0]
                                    for x in (total, policy, entropy_loss))
    g_notes = g_policy + g_entropy  # L162: "即: theta = theta - eta (grad L_policy + grad L_entropy)"

    # L158 -> L162 is not an identity: the difference is exactly (1 - c2) grad L_entropy ...
    assert torch.allclose(g_notes - g_total, (1 - C2) * g_entropy, rtol=0, atol=1e-12)
    assert (g_notes - g_total).abs().max() > 1e-2
    # ... i.e. the entropy part of the step is 1/c2 = 100 times the intended one
    assert torch.allclose(g_notes - g_policy, (g_total - g_policy) / C2, rtol=0, atol=1e-12)
    # both terms share eta: no learning rate turns the notes' step into the total loss's step
    _, residual = _best_scale_residual(g_notes, g_total)
    assert residual > 0.05


@pytest.mark.claim("err-a2c-actor-update", "err-a2c-critic-update", how="autograd")
def test_dropped_c1_is_a_step_size_but_dropped_c2_is_not():
    """The notes' critic step is exactly 1/c1 times the total loss's; their actor step is no multiple of it.

    A small actor-critic network with separate actor and critic: a rescaled alpha_critic absorbs the dropped c1
    exactly, no rescaled eta absorbs the dropped c2.
    """
    torch.manual_seed(0)
    model = common.ActorCritic(5, 3, (16, 16), orthogonal_init=False)
    obs = torch.randn(16, 5)
    actions = torch.randint(0, 3, (16,))
    logits, values = model(obs)
    returns = torch.randn(16)
    advantages = (returns - values).detach()
    total = a2c.a2c_losses(logits, values, actions, advantages, returns, C1, C2).total
    policy, entropy_loss = _notes_losses(logits, actions, advantages)
    value = (returns - values).pow(2).mean()
    actor, critic = list(model.actor.parameters()), list(model.critic.parameters())

    def flat(loss, params):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])

    # critic (L166-170): grad_phi L_total = c1 grad_phi L_value, parallel: alpha_critic -> c1 alpha_critic absorbs it
    kappa, residual = _best_scale_residual(flat(value, critic), flat(total, critic))
    assert abs(kappa - C1) < 1e-6 and residual < 1e-6
    # actor (L158-162): no rescaling of eta gives the total loss's step
    _, residual = _best_scale_residual(flat(policy, actor) + flat(entropy_loss, actor), flat(total, actor))
    assert residual > 0.05


# ---------------------------------------------------------------------------------------------
# err-finite-horizon-value: V^pi(s_t) = E[R_t | s_t] with R_t = sum_{l=t}^T gamma^(l-t) r_l, T fixed
# ---------------------------------------------------------------------------------------------

FINITE_CASES = [(3, 2, 0.9, 0, 4), (2, 3, 0.5, 4, 4), (4, 2, 0.99, 2, 3), (3, 3, 0.9, 5, 3)]  # (S, A, gamma, seed, H)


def _conditional_on_state(traj, x, t, S):
    """E[x | s_t = s] over enumerated trajectories (x: one number per trajectory)."""
    mass, total = np.zeros(S), np.zeros(S)
    np.add.at(mass, traj.states[:, t], traj.prob)
    np.add.at(total, traj.states[:, t], traj.prob * x)
    return total / mass


@pytest.mark.claim("err-finite-horizon-value", how="enumeration")
@pytest.mark.parametrize("S,A,gamma,seed,H", FINITE_CASES)
def test_finite_horizon_value_depends_on_t(S, A, gamma, seed, H):
    """E[R_t | s_t] = V^pi - gamma^(H-t) P_pi^(H-t) V^pi (enumeration, backward induction): it changes with t.

    Also E[R_t - V^pi(s_t) | s_t, a_t] is Q_t - V^pi, not A^pi.
    """
    mdp = M.random_mdp(S, A, gamma, seed)
    pi = policies.probs(random_theta(S, A, seed))
    V_t, Q_t = B.finite_horizon_values(mdp, pi, H)  # backward induction
    V, Q = M.state_values(mdp, pi), M.action_values(mdp, pi)  # stationary, linear solve
    P_pi = M.policy_transition_matrix(mdp, pi)
    traj = M.enumerate_trajectories(mdp, pi, H)
    R = B.reward_to_go(traj.rewards, gamma)  # R_t of L414, with T = H - 1
    for t in range(H):
        cond_v = _conditional_on_state(traj, R[:, t], t, S)
        cond_q = B.conditional_expectation(traj, R[:, t], t, S, A)
        # three independent computations agree: enumeration, backward induction, closed form from V^pi
        assert np.allclose(cond_v, V_t[t], rtol=0, atol=1e-12)
        assert np.allclose(cond_q, Q_t[t], rtol=0, atol=1e-12)
        k = H - t
        assert np.allclose(V_t[t], V - gamma**k * np.linalg.matrix_power(P_pi, k) @ V, rtol=0, atol=1e-12)
        # the notes' V^{pi_theta}(s_t) read as the stationary V^pi is a different function ...
        assert np.abs(cond_v - V).max() > 1e-2
        # ... and the conditional mean of the notes' R_t - V^pi(s_t) is Q_t - V^pi, not A^pi = Q^pi - V^pi
        assert np.abs((cond_q - V[:, None]) - (Q - V[:, None])).max() > 1e-2
    # and it depends on t (the remaining horizon), so no single function of s is "the" value
    assert np.abs(np.diff(V_t, axis=0)).max() > 1e-2


@pytest.mark.claim("err-finite-horizon-value", "eq-advantage-form", how="finite difference")
@pytest.mark.parametrize("S,A,gamma,seed,H", FINITE_CASES)
def test_fixed_horizon_gradient_needs_the_time_dependent_advantage(S, A, gamma, seed, H):
    """sum_t gamma^t E[score_t A_t] equals finite differences of the exact J_H; with the stationary A^pi it does not.

    (The notes' boxed formula, with the missing gamma^t restored, uses A^pi.)
    """
    mdp = M.random_mdp(S, A, gamma, seed)
    theta = random_theta(S, A, seed)
    pi = policies.probs(theta)
    V_t, Q_t = B.finite_horizon_values(mdp, pi, H)
    A_t = Q_t - V_t[:, :, None]
    A_pi = M.advantage_values(mdp, pi)
    traj = M.enumerate_trajectories(mdp, pi, H)
    discount = gamma ** np.arange(H)
    t_idx = np.arange(H)[None, :]

    def expected_score_sum(weights):
        return np.einsum("n,nsa->sa", traj.prob, policies.weighted_score_sum(theta, traj.states, traj.actions, weights))

    grad_fd = G.finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)
    with_A_t = expected_score_sum(discount * A_t[t_idx, traj.states, traj.actions])
    with_A_pi = expected_score_sum(discount * A_pi[traj.states, traj.actions])
    scale = np.abs(grad_fd).max()
    assert np.abs(with_A_t - grad_fd).max() < 1e-8 * max(scale, 1.0)
    assert np.abs(with_A_pi - grad_fd).max() > 1e-3 * scale  # 0.2% to 15% of the gradient on these cases


# ---------------------------------------------------------------------------------------------
# err-variance-reduction: "a baseline reduces the variance" -- per state, and over whole trajectories
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("err-variance-reduction", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", [(3, 2, 0.9, 0), (4, 3, 0.5, 1), (2, 4, 0.99, 2)])
def test_baseline_hurts_a_state_iff_further_from_optimum_than_zero(S, A, gamma, seed):
    """Per state, a baseline b raises the one-step estimator's variance above that of b = 0 iff |b - b*(s)| > |b*(s)|.

    Estimator score(s, a) (Q(s, a) - b), a ~ pi(.|s); variance = trace of the covariance, computed directly from
    the centred vectors; 200 random baselines per state.
    """
    mdp = M.random_mdp(S, A, gamma, seed)
    theta = random_theta(S, A, seed)
    pi, Q = policies.probs(theta), M.action_values(mdp, policies.probs(theta))
    score = policies.score(theta)  # (S, A, S, A): score[s, a] = grad_theta log pi(a|s)
    b_star = B.optimal_baseline(mdp, theta)

    def variance(s, b):
        v = score[s] * (Q[s] - b)[:, None, None]  # one vector per action
        centred = v - np.einsum("a,axy->xy", pi[s], v)
        return float(np.einsum("a,axy->", pi[s], centred**2))

    rng = np.random.default_rng(seed)
    checked = 0
    for s in range(S):
        for b in b_star[s] + 3 * abs(b_star[s]) * rng.standard_normal(200):
            margin = abs(b - b_star[s]) - abs(b_star[s])
            if abs(margin) < 1e-6 * (1 + abs(b_star[s])):
                continue
            assert (variance(s, b) > variance(s, 0.0)) == (margin > 0)
            checked += 1
        assert variance(s, b_star[s]) <= min(variance(s, b_star[s] + d) for d in (-1e-3, 1e-3))
    assert checked > 0.99 * 200 * S


@pytest.mark.claim("err-variance-reduction", "rem-trajectory-baseline", how="enumeration")
def test_per_state_rule_does_not_carry_over_to_whole_trajectories():
    """Over whole trajectories a baseline closer than zero to b*_t(s) at every step and state can raise the variance.

    Reward-to-go estimator, every trajectory enumerated (H = 3): the variance is symmetric about the least-squares
    baseline b_opt (so the rule holds in that quadratic norm), and the counterexample's variance is > 1.02 times
    that of no baseline.
    """
    S, A, gamma, seed, H = 3, 2, 0.9, 4, 3
    mdp = M.random_mdp(S, A, gamma, seed)
    theta = random_theta(S, A, seed)
    _, Q_t = B.finite_horizon_values(mdp, policies.probs(theta), H)
    b_star = np.stack([B.optimal_baseline(mdp, theta, Q=Q_t[t]) for t in range(H)])  # per step and state
    b_opt = B.trajectory_optimal_baseline(mdp, theta, H)

    def var(b):
        return B.estimator_moments(mdp, theta, H, "reward_to_go", b).variance

    rng = np.random.default_rng(seed)
    for _ in range(5):
        d = rng.standard_normal((H, S))
        assert var(b_opt + d) == pytest.approx(var(b_opt - d), rel=1e-10)
        assert var(b_opt + d) > var(b_opt)
    b = rng.uniform(0.0, 2.0, (H, S)) * b_star  # |b - b*| = |1 - u| |b*| < |b*| in every (t, s)
    assert np.all(np.abs(b - b_star) < np.abs(b_star))
    assert var(b) > 1.02 * var(None)
