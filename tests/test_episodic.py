"""Chapter 9: episodic MDPs with gamma = 1, and the direction the agents follow (:mod:`pgbook.episodic`)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_power
from pgbook import episodic as E
from pgbook import mdp as M
from pgbook import policies
from pgbook.gradients import finite_difference_gradient, policy_gradient
from pgbook.montecarlo import mean_ci

#: (n non-terminal states, actions, seed) of the random episodic MDPs.
RANDOM_CASES = [(2, 2, 0), (3, 3, 1), (5, 2, 2), (6, 4, 3), (4, 3, 4)]


def grid_theta():
    return np.random.default_rng(0).standard_normal((16, 4))


def random_case(n, nA, seed, gamma=1.0):
    mdp = E.random_episodic_mdp(n, nA, seed, gamma)
    theta = 1.5 * np.random.default_rng(100 + seed).standard_normal((n + 1, nA))
    return mdp, theta


def cases(gamma=1.0):
    yield E.gridworld_4x4(gamma), grid_theta()
    for n, nA, seed in RANDOM_CASES:
        yield random_case(n, nA, seed, gamma)


# ------------------------------------------------------------------------------------------------
# The engine: gamma = 1 with terminal states
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("rem-gridworld-random-values", how="exact")
def test_gridworld_random_policy_values():
    """Sutton & Barto Example 4.1: V of the random policy is 0, -14, -20, -22, ... (linear solve at gamma = 1)."""
    mdp = E.gridworld_4x4()
    V = M.state_values(mdp, np.full((16, 4), 0.25))
    np.testing.assert_allclose(V.reshape(4, 4), E.GRIDWORLD_RANDOM_POLICY_VALUES, rtol=0, atol=1e-12)
    # wrong versions: no terminal block (gamma < 1 instead), or terminal corners that keep paying -1
    assert np.abs(M.state_values(mdp.with_gamma(0.99), np.full((16, 4), 0.25)).reshape(4, 4) - E.GRIDWORLD_RANDOM_POLICY_VALUES).max() > 1
    # Bellman check, independent of the solve: V = r_pi + P_pi V on non-terminal states
    P_pi = M.policy_transition_matrix(mdp, np.full((16, 4), 0.25))
    live = ~mdp.terminal
    np.testing.assert_allclose(V[live], (-1.0 + P_pi @ V)[live], rtol=0, atol=1e-12)


def test_gamma_one_needs_terminal_states_and_a_valid_mask():
    base = E.gridworld_4x4()
    with pytest.raises(ValueError, match="gamma must lie in"):
        M.MDP(base.P, base.R, base.p0, 1.0)
    with pytest.raises(ValueError, match="terminal must be a boolean"):
        M.MDP(base.P, base.R, base.p0, 1.0, base.terminal.astype(int))
    with pytest.raises(ValueError, match="terminal must have shape"):
        M.MDP(base.P, base.R, base.p0, 1.0, np.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="at least one non-terminal"):
        M.MDP(base.P, base.R, base.p0, 1.0, np.ones(16, dtype=bool))
    bad = base.terminal.copy()
    bad[5] = True  # state 5 is not absorbing
    with pytest.raises(ValueError, match="terminal state 5 must be absorbing"):
        M.MDP(base.P, base.R, base.p0, 1.0, bad)
    R = base.R.copy()
    R[0, 2] = 1.0
    with pytest.raises(ValueError, match="terminal state 0 must have zero reward"):
        M.MDP(base.P, R, base.p0, 1.0, base.terminal)
    with pytest.raises(ValueError, match="gamma must lie in"):
        M.MDP(base.P, base.R, base.p0, 1.5, base.terminal)
    with pytest.raises(ValueError, match="episodic"):
        M.discounted_state_distribution(base.with_gamma(0.9), np.full((16, 4), 0.25))
    with pytest.raises(ValueError, match="mdp must be episodic"):
        E.agent_direction(M.random_mdp(3, 2, 0.9, 0), np.zeros((3, 2)))


def test_improper_policy_is_rejected_at_gamma_one_only():
    """A policy that never reaches a terminal state makes I - P_pi singular: a clear ValueError, not a LinAlgError."""
    mdp = E.gridworld_4x4()
    pi = np.zeros((16, 4))
    pi[:, 3] = 1.0  # always "left": the first column reaches state 0; the others end up stuck at col 0
    pi[[4, 8, 12], 0] = 1.0  # ... and in column 0 go "up" — proper
    pi[[4, 8, 12], 3] = 0.0
    M.state_values(mdp, pi)  # proper: fine
    pi[12] = [0, 1, 0, 0]  # state 12 moves "down" into the wall forever; 13 and 14 walk left into it
    with pytest.raises(ValueError, match=r"pi is improper: from states \[12, 13, 14\]"):
        M.state_values(mdp, pi)
    with pytest.raises(ValueError, match="pi is improper"):
        E.episode_visits(mdp, pi)
    assert np.all(np.isfinite(M.state_values(mdp.with_gamma(0.9), pi)))  # gamma < 1: well posed


def test_gamma_below_one_unchanged_by_the_terminal_mask():
    """With gamma < 1 the block solve equals the full solve of the same MDP without a mask."""
    for mdp, theta in cases(0.9):
        pi = policies.probs(theta)
        plain = M.MDP(mdp.P, mdp.R, mdp.p0, mdp.gamma)
        np.testing.assert_allclose(M.state_values(mdp, pi), M.state_values(plain, pi), rtol=0, atol=1e-12)
        np.testing.assert_allclose(policy_gradient(mdp, theta), policy_gradient(plain, theta), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# eq-episodic-pg: the undiscounted policy gradient
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-episodic-pg", how="finite difference")
def test_undiscounted_gradient_finite_differences():
    """grad J_1 = sum_s eta_1 sum_a pi grad log pi A_1 against central differences of the exact J_1 (rel. 1e-7)."""
    for mdp, theta in cases():
        g1 = E.undiscounted_gradient(mdp, theta)
        fd = finite_difference_gradient(lambda x: E.undiscounted_return(mdp, x), theta)
        scale = np.abs(fd).max()
        assert np.abs(g1 - fd).max() < 1e-7 * scale
        # J_1 and grad J_1 do not depend on the MDP's own gamma
        assert np.abs(E.undiscounted_gradient(mdp.with_gamma(0.9), theta) - fd).max() < 1e-7 * scale
        # wrong versions fail: discounted visits or discounted advantages in place of eta_1 and A_1
        pi = policies.probs(theta)
        m9 = mdp.with_gamma(0.9)
        eta9, A1, A9 = M.discounted_visits(m9, pi), M.advantage_values(mdp, pi), M.advantage_values(m9, pi)
        rho = E.episode_visits(mdp, pi)
        for w, A in ((eta9, A1), (rho, A9)):
            wrong = np.einsum("s,sa,saxy,sa->xy", w, pi, policies.score(theta), A)
            assert np.abs(wrong - fd).max() > 1e-3 * scale


@pytest.mark.claim("eq-episodic-pg", how="autograd")
def test_undiscounted_gradient_autograd():
    """grad J_1 against torch autograd through the differentiable block solve; also gamma < 1 against grad J_gamma."""
    for mdp, theta in cases():
        g1 = E.undiscounted_gradient(mdp, theta)
        np.testing.assert_allclose(E.autograd_gradient(mdp, theta), g1, rtol=0, atol=1e-10 * np.abs(g1).max())
        m9 = mdp.with_gamma(0.9)
        gg = E.discounted_gradient(m9, theta)
        np.testing.assert_allclose(E.autograd_gradient(m9, theta), gg, rtol=0, atol=1e-10 * np.abs(gg).max())


# ------------------------------------------------------------------------------------------------
# eq-agent-direction: what the agents' per-step average estimates
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-agent-direction", how="Monte Carlo")
def test_agent_direction_is_what_a2c_losses_estimates():
    """The per-episode sum of a2c_losses' per-step terms has mean g_agent, not grad J_gamma, grad J_1 or g_agent / E[T_ep].

    Gridworld, gamma = 0.9, theta ~ N(0, 1) (seed 0); n = 20000 whole episodes, seed 1; exact
    advantages A_gamma (a perfect critic); Bonferroni-corrected 99 % intervals over the 56
    non-terminal entries.
    """
    mdp, theta = E.gridworld_4x4(0.9), grid_theta()
    n = 20_000
    live = np.repeat(~mdp.terminal, 4)
    level = 1 - 0.01 / live.sum()
    ci = mean_ci(E.agent_direction_samples(mdp, theta, n, seed=1).reshape(n, -1)[:, live], level)
    g = E.agent_direction(mdp, theta).ravel()[live]
    assert ci.contains(g).all()
    assert_power(ci, np.abs(g).max(), rel=0.1)
    # wrong versions: discounted visits (grad J_gamma), undiscounted advantages (grad J_1), per-step normalised
    pi = policies.probs(theta)
    length = E.episode_visits(mdp, pi).sum()
    for wrong in (E.discounted_gradient(mdp, theta), E.undiscounted_gradient(mdp, theta), E.agent_direction(mdp, theta) / length):
        assert not ci.contains(wrong.ravel()[live]).all()


@pytest.mark.claim("eq-agent-direction", how="exact")
def test_episode_visits_by_series():
    """eta_1 from the linear solve equals sum_t Pr(s_t = s, t < T_ep) pushed forward in time; it sums to E[T_ep]."""
    for mdp, theta in cases():
        pi = policies.probs(theta)
        rho = E.episode_visits(mdp, pi)
        np.testing.assert_allclose(rho, E.episode_visits_by_series(mdp, pi), rtol=1e-12, atol=1e-12)
        assert np.all(rho[mdp.terminal] == 0)
    # random policy on the gridworld: E[T_ep] from state s is -V(s), so E[T_ep] = mean of -V over the 14 states
    grid = E.gridworld_4x4()
    L = E.episode_visits(grid, np.full((16, 4), 0.25)).sum()
    assert abs(L - (-E.GRIDWORLD_RANDOM_POLICY_VALUES.sum() / 14)) < 1e-12


def test_sample_episodes_lengths_and_validation():
    grid = E.gridworld_4x4()
    pi = np.full((16, 4), 0.25)
    ep = E.sample_episodes(grid, pi, 4000, seed=0)
    assert np.array_equal(np.bincount(ep.episode, minlength=4000), ep.lengths)
    ci = mean_ci(ep.lengths.astype(float), 0.999)
    assert ci.contains(E.episode_visits(grid, pi).sum())
    assert np.all(ep.rewards == -1.0) and not grid.terminal[ep.states].any()
    with pytest.raises(ValueError, match="max_steps"):
        E.sample_episodes(grid, pi, 100, seed=0, max_steps=2)
    with pytest.raises(ValueError, match="seed"):
        E.sample_episodes(grid, pi, 10, seed=0.5)
    with pytest.raises(ValueError, match="theta must have shape"):
        E.agent_direction(grid, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="delay"):
        E.delayed_reward_mdp(0, 1.0, 2.0, 0.9)
    with pytest.raises(ValueError, match="now_reward"):
        E.delayed_reward_mdp(3, float("nan"), 2.0, 0.9)
    with pytest.raises(ValueError, match="n_states"):
        E.random_episodic_mdp(0, 2, 0)


# ------------------------------------------------------------------------------------------------
# prop-agent-direction
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("prop-agent-direction", how="finite difference")
def test_agent_direction_at_gamma_one_is_grad_J1():
    """Part 1: with gamma = 1 the agents' direction is the gradient of the undiscounted return."""
    for mdp, theta in cases():
        fd = finite_difference_gradient(lambda x: E.undiscounted_return(mdp, x), theta)
        assert np.abs(E.agent_direction(mdp, theta) - fd).max() < 1e-7 * np.abs(fd).max()


@pytest.mark.claim("prop-agent-direction", how="exact")
def test_agent_direction_neither_gradient_but_tends_to_grad_J1():
    """Parts 2-3: for gamma < 1, g_agent is not parallel to grad J_gamma or grad J_1; |g_agent - grad J_1| = O(1 - gamma)."""
    for mdp, theta in cases():
        c = E.compare_directions(mdp.with_gamma(0.9), theta)
        assert c.angle_gamma > 0.1 and c.angle_one > 0.1  # degrees; round-off is ~1e-6
        g1 = E.undiscounted_gradient(mdp, theta)
        dist = [np.linalg.norm(E.agent_direction(mdp.with_gamma(1 - h), theta) - g1) / h for h in (1e-3, 1e-4, 1e-5)]
        assert dist[2] > 0 and abs(dist[1] / dist[2] - 1) < 0.01 and abs(dist[0] / dist[2] - 1) < 0.1
        # the discounted gradient also tends to grad J_1, but is a different vector at every gamma < 1
        assert np.linalg.norm(E.discounted_gradient(mdp.with_gamma(1 - 1e-3), theta) - E.agent_direction(mdp.with_gamma(1 - 1e-3), theta)) > 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), nA=st.integers(2, 4), gamma=st.sampled_from([0.0, 0.3, 0.9, 0.99, 1.0]),
       scale=st.sampled_from([0.5, 2.0, 4.0]), seed=st.integers(0, 10_000))
@pytest.mark.claim("prop-agent-direction", how="property")
def test_agent_direction_ascends_J_gamma_tabular(n, nA, gamma, scale, seed):
    """Part 4: for the tabular softmax, <g_agent, grad J_gamma> = sum_s eta_1 eta_gamma |h_s|^2 > 0 (random episodic MDPs)."""
    mdp = E.random_episodic_mdp(n, nA, seed, gamma)
    theta = scale * np.random.default_rng(seed + 1).standard_normal((n + 1, nA))
    g, gg = E.agent_direction(mdp, theta), E.discounted_gradient(mdp, theta)
    pi = policies.probs(theta)
    rho, eta = E.episode_visits(mdp, pi), M.discounted_visits(mdp, pi)
    h = np.einsum("sa,saxy,sa->sxy", pi, policies.score(theta), M.advantage_values(mdp, pi))
    predicted = np.sum(rho * eta * (h**2).sum(axis=(1, 2)))
    assert abs(np.sum(g * gg) - predicted) <= 1e-10 * max(1.0, predicted)
    if np.abs(gg).max() > 1e-12:
        assert np.sum(g * gg) > 0


@pytest.mark.claim("prop-agent-direction", how="exact")
def test_agent_direction_can_descend_J1():
    """Part 4: on the delayed-reward MDP with gamma^10 * 2 < 1 the agents' direction is exactly opposite to grad J_1."""
    theta = np.zeros((12, 2))
    for gamma, angle in ((0.9, 180.0), (0.99, 0.0)):
        c = E.compare_directions(E.delayed_reward_mdp(10, 1.0, 2.0, gamma), theta)
        assert abs(c.angle_one - angle) < 1e-6
    mdp = E.delayed_reward_mdp(10, 1.0, 2.0, 0.9)
    g = E.agent_direction(mdp, theta)
    # independent of the gradient formulas: a small step along g_agent lowers the exactly computed J_1
    assert E.undiscounted_return(mdp, theta + 1e-2 * g) < E.undiscounted_return(mdp, theta) - 1e-6
