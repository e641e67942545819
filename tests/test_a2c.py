"""Tests of chapter 9's claims about A2C (:doc:`/book/ch09_a2c`, :mod:`pgbook.a2c`).

The n-step advantage (exactly, on tabular MDPs, and as implemented on real rollouts), the
losses and their gradients (torch autograd against analytic formulas), the stop-gradient on the
advantage, and the direction of a descent step on the total loss.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import random_theta
from pgbook import a2c, agents_common as common, policies
from pgbook import mdp as M

# ---------------------------------------------------------------------------------------------
# eq-a2c-nstep-advantage
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("prop-a2c-nstep-bias", "err-a2c-nstep-derivation", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", [(3, 2, 0.9, 0), (5, 3, 0.99, 1), (6, 4, 0.5, 2), (4, 2, 0.95, 3)])
def test_nstep_target_is_unbiased_for_q_with_true_values(S, A, gamma, seed):
    """With V = V^pi the n-step target's conditional mean is Q^pi(s,a) for every n; with V != V^pi it is biased by gamma^n."""
    mdp = M.random_mdp(S, A, gamma, seed)
    pi = policies.probs(random_theta(S, A, seed))
    V, Q = M.state_values(mdp, pi), M.action_values(mdp, pi)
    for n in (1, 2, 3, 5, 10):
        assert np.allclose(a2c.nstep_target_mean(mdp, pi, V, n), Q, rtol=0, atol=1e-10)
        # hence the n-step advantage has mean A^pi(s, a)
        assert np.allclose(a2c.nstep_target_mean(mdp, pi, V, n) - V[:, None], M.advantage_values(mdp, pi), atol=1e-10)
    # a wrong critic: the bias is gamma^n * E[(V_phi - V^pi)(s_{t+n}) | s, a], not zero
    err = np.random.default_rng(seed).standard_normal(S)
    P_pi = M.policy_transition_matrix(mdp, pi)
    for n in (1, 3):
        bias = a2c.nstep_target_mean(mdp, pi, V + err, n) - Q
        predicted = gamma**n * mdp.P @ np.linalg.matrix_power(P_pi, n - 1) @ err
        assert np.allclose(bias, predicted, atol=1e-10)
        assert np.abs(bias).max() > 1e-3


def _rollout(T=30, N=4, seed=0, max_steps=14):
    torch.manual_seed(seed)
    envs = common.make_vec_env("CartPole-v1", N, max_episode_steps=max_steps)
    model = common.ActorCritic(4, 2, orthogonal_init=False)
    storage = common.RolloutStorage(T, N, 4)
    obs, _ = envs.reset(seed=seed)
    common.collect_rollout(envs, model, storage, obs, common.EpisodeTracker(N))
    return model, storage


@pytest.mark.claim("eq-a2c-nstep-advantage", how="exact")
def test_a2c_advantage_is_the_notes_nstep_advantage():
    """On a real rollout, GAE with lambda=1 equals the notes' backward loop R = r + gamma R, A = R - V(s)."""
    gamma = 0.99
    _, st = _rollout()
    adv, ret = common.compute_advantages(st, gamma, 1.0)
    T, N = st.rewards.shape
    r, v, nv = st.rewards.double(), st.values.double(), st.next_values.double()
    term, end = st.terminated.bool(), st.episode_end.bool()
    expected = torch.zeros(T, N, dtype=torch.float64)
    for i in range(N):  # the notes' pseudocode, with its "R = 0 if terminal else V(s')" per episode
        R = None
        for t in reversed(range(T)):
            if R is None or end[t, i]:
                R = 0.0 if term[t, i] else float(nv[t, i])
            R = float(r[t, i]) + gamma * R
            expected[t, i] = R - float(v[t, i])
    assert bool(term.any()) and bool((end & ~term).any())  # the rollout has both kinds of episode end
    assert torch.allclose(adv.double(), expected, atol=1e-5)
    assert torch.allclose(ret.double(), expected + v, atol=1e-5)
    # lambda < 1 gives something else: the check can fail
    adv_95, _ = common.compute_advantages(st, gamma, 0.95)
    assert not torch.allclose(adv_95.double(), expected, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# The losses: eq-a2c-policy-loss, eq-a2c-policy-grad-phi, eq-a2c-value-loss, eq-a2c-total-loss
# ---------------------------------------------------------------------------------------------


def _batch(B=16, A=3, seed=0, init=False):
    torch.manual_seed(seed)
    model = common.ActorCritic(5, A, (16, 16), orthogonal_init=init)
    obs = torch.randn(B, 5)
    next_obs = torch.randn(B, 5)
    actions = torch.randint(0, A, (B,))
    rewards = torch.randn(B)
    return model, obs, next_obs, actions, rewards


@pytest.mark.claim("eq-a2c-policy-loss", "err-a2c-loss-is-gradient", how="autograd")
def test_policy_loss_gradient_is_minus_the_policy_gradient_estimate():
    """grad_logits L_policy = -(onehot(a) - pi) A / B: minus the per-step average of the score times the advantage."""
    model, obs, _, actions, _ = _batch()
    adv = torch.randn(16)
    logits = model.actor(obs).detach().requires_grad_(True)
    losses = a2c.a2c_losses(logits, torch.zeros(16), actions, adv, torch.zeros(16))
    (g,) = torch.autograd.grad(losses.policy, logits)
    pi = torch.softmax(logits.detach(), -1)
    onehot = torch.nn.functional.one_hot(actions, 3).float()
    assert torch.allclose(g, -(onehot - pi) * adv[:, None] / 16, atol=1e-7)
    # the sign matters: the gradient of +mean(log pi A) is the opposite, not equal
    assert not torch.allclose(g, (onehot - pi) * adv[:, None] / 16, atol=1e-7)


@pytest.mark.claim("eq-a2c-policy-grad-phi", "err-a2c-grad-phi", how="autograd")
def test_policy_loss_has_exactly_zero_gradient_wrt_critic():
    """With the advantage detached, grad_phi L_policy is exactly 0; without, it is -mean(log pi * grad_phi A)."""
    model, obs, next_obs, actions, rewards = _batch()
    gamma = 0.9
    logits, values = model(obs)
    advantages = rewards + gamma * model.value(next_obs) - values  # A depends on phi through V_phi
    critic = list(model.critic.parameters())
    actor = list(model.actor.parameters())

    detached = a2c.a2c_losses(logits, values, actions, advantages, advantages + values)
    g_phi = torch.autograd.grad(detached.policy, critic, allow_unused=True, retain_graph=True)
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in g_phi)  # exactly zero
    g_theta = torch.autograd.grad(detached.policy, actor, retain_graph=True)
    assert max(g.abs().max().item() for g in g_theta) > 1e-4  # the actor does get a gradient

    # without the stop-gradient the critic receives -mean(log pi(a|s) * grad_phi A)
    coupled = a2c.a2c_losses(logits, values, actions, advantages, advantages + values, detach_advantages=False)
    g_coupled = torch.autograd.grad(coupled.policy, critic, retain_graph=True)
    log_pi = torch.distributions.Categorical(logits=logits).log_prob(actions).detach()
    g_formula = torch.autograd.grad(advantages, critic, grad_outputs=-log_pi / 16, retain_graph=True)
    for a, b in zip(g_coupled, g_formula):
        assert torch.allclose(a, b, atol=1e-7)
    assert max(g.abs().max().item() for g in g_coupled) > 1e-3

    # the notes' formula -E[A grad_phi log pi_theta] is identically zero: log pi_theta has no phi
    log_pi_graph = torch.distributions.Categorical(logits=logits).log_prob(actions)
    g_notes = torch.autograd.grad(log_pi_graph.sum(), critic, allow_unused=True)
    assert all(g is None for g in g_notes)


@pytest.mark.claim("eq-a2c-value-loss", "err-a2c-value-target", how="autograd")
def test_value_loss_is_a_semi_gradient():
    """grad_phi L_value = -2 mean((G - V) grad V) with the target G held fixed; the residual gradient differs."""
    model, obs, next_obs, actions, rewards = _batch(seed=1)
    gamma = 0.9
    logits, values = model(obs)
    target = rewards + gamma * model.value(next_obs)  # built from V_phi: carries a graph
    critic = list(model.critic.parameters())
    losses = a2c.a2c_losses(logits, values, actions, target - values, target)
    g = torch.autograd.grad(losses.value, critic, retain_graph=True)
    g_formula = torch.autograd.grad(values, critic, grad_outputs=-2 * (target - values).detach() / 16, retain_graph=True)
    for a, b in zip(g, g_formula):
        assert torch.allclose(a, b, atol=1e-7)
    # the residual gradient (differentiating through the target too) is a different vector
    residual = torch.autograd.grad((target - values).pow(2).mean(), critic)
    assert max((a - b).abs().max().item() for a, b in zip(g, residual)) > 1e-3


@pytest.mark.claim("eq-a2c-total-loss", "err-a2c-critic-update", how="autograd")
def test_total_loss_splits_into_actor_and_critic_parts():
    """grad_theta L = grad_theta(L_policy - c2 S) and grad_phi L = c1 grad_phi L_value (the updates the notes intend)."""
    model, obs, next_obs, actions, rewards = _batch(seed=2)
    c1, c2 = 0.5, 0.01
    logits, values = model(obs)
    adv = rewards + 0.9 * model.value(next_obs) - values
    L = a2c.a2c_losses(logits, values, actions, adv, adv + values, c1, c2)
    actor, critic = list(model.actor.parameters()), list(model.critic.parameters())
    gt = torch.autograd.grad(L.total, actor, retain_graph=True)
    gt_ref = torch.autograd.grad(L.policy - c2 * L.entropy, actor, retain_graph=True)
    gp = torch.autograd.grad(L.total, critic, retain_graph=True)
    gp_ref = torch.autograd.grad(c1 * L.value, critic, retain_graph=True)
    for a, b in zip(gt + gp, gt_ref + gp_ref):
        assert torch.allclose(a, b, atol=1e-8)


def _descent_step(loss_fn, model, lr=1e-2):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    opt.zero_grad()
    loss_fn().backward()
    opt.step()


@pytest.mark.claim("eq-a2c-total-loss", how="autograd")
@pytest.mark.parametrize("seed", range(5))
def test_descent_step_raises_logprob_of_good_actions_and_entropy(seed):
    """A small SGD step on L = L_policy + c1 L_value - c2 S raises log pi of an A>0 action and S; the flipped signs lower both."""
    torch.manual_seed(seed)
    model = common.ActorCritic(5, 3, (16, 16), orthogonal_init=False)
    with torch.no_grad():
        model.actor[-1].weight.mul_(5.0)  # a clearly non-uniform policy
    obs = torch.randn(1, 5)
    with torch.no_grad():
        logits0 = model.actor(obs)
    a = logits0.argmin(-1)  # the least likely action, advantage +1
    adv, ret = torch.ones(1), torch.zeros(1)

    def stats(m):
        with torch.no_grad():
            d = torch.distributions.Categorical(logits=m.actor(obs))
            return d.log_prob(a).item(), d.entropy().item()

    lp0, h0 = stats(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def book_loss():
        logits, values = model(obs)
        return a2c.a2c_losses(logits, values, a, adv, ret, 0.5, 0.01).total

    _descent_step(book_loss, model)
    lp1, h1 = stats(model)
    assert lp1 > lp0 and h1 > h0

    # entropy alone (all advantages 0): descent raises H
    model.load_state_dict(state)

    def entropy_only():
        logits, values = model(obs)
        return a2c.a2c_losses(logits, values, a, torch.zeros(1), ret, 0.5, 0.01).total

    _descent_step(entropy_only, model)
    assert stats(model)[1] > h0

    # the wrong signs (+log pi A, +c2 H) move both the other way: the check can fail
    model.load_state_dict(state)

    def flipped():
        logits, values = model(obs)
        L = a2c.a2c_losses(logits, values, a, adv, ret, 0.5, 0.01)
        return -L.policy + 0.5 * L.value + 0.01 * L.entropy

    _descent_step(flipped, model)
    lp2, h2 = stats(model)
    assert lp2 < lp0 and h2 < h0


def test_nstep_target_mean_rejects_bad_input():
    """nstep_target_mean checks the policy table, the critic's shape and n."""
    mdp = M.random_mdp(3, 2, 0.9, 0)
    pi = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="values"):
        a2c.nstep_target_mean(mdp, pi, np.zeros(4), 2)
    with pytest.raises(ValueError, match="n must be"):
        a2c.nstep_target_mean(mdp, pi, np.zeros(3), 0)
    with pytest.raises(ValueError, match="pi"):
        a2c.nstep_target_mean(mdp, np.full((3, 2), 0.7), np.zeros(3), 2)


def test_a2c_losses_reject_bad_input():
    """a2c_losses checks shapes and coefficients."""
    logits = torch.zeros(4, 2)
    z = torch.zeros(4)
    with pytest.raises(ValueError, match="logits"):
        a2c.a2c_losses(torch.zeros(4), z, z.long(), z, z)
    with pytest.raises(ValueError, match="advantages"):
        a2c.a2c_losses(logits, z, z.long(), torch.zeros(3), z)
    with pytest.raises(ValueError, match="ent_coef"):
        a2c.a2c_losses(logits, z, z.long(), z, z, 0.5, -1.0)


def test_a2c_learns_something_quickly():
    """A2C's mean training return rises above the random policy's (~22) within 20k steps (seed 0)."""
    result = a2c.train(a2c.A2CConfig(total_steps=20_000, seed=0, device="cpu"))
    first = np.mean([r for _, r, _ in result.episodes[:50]])
    last = np.mean([r for _, r, _ in result.episodes[-20:]])
    assert first < 40 < last


def test_exercise_nstep_variance():
    """Exercise ex-ch09-nstep-variance: with V = V^pi the one-step target has less variance than the Monte Carlo return."""
    from pgbook.gae import tabular_gae_moments

    mdp = M.random_mdp(4, 2, 0.9, 0)
    pi = np.full((4, 2), 0.5)
    V = M.state_values(mdp, pi)
    var_td = tabular_gae_moments(mdp, pi, V, 0.0)[1].mean()
    var_mc = tabular_gae_moments(mdp, pi, V, 1.0)[1].mean()
    assert 0 < var_td < var_mc / 5
