"""The shared validation layer (pgbook._validate.as_float_array), through public functions.

Issue 13 in part: complex input must not lose its imaginary part silently; booleans and strings are
not numbers; a torch tensor that requires gradients is accepted (its values are used).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pgbook import clipping, importance, policies
from pgbook import mdp as M

pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)

THETA = np.array([[0.5, -1.0], [2.0, 0.0]])
P_, Q_ = np.array([0.2, 0.8]), np.array([0.5, 0.5])


def _calls():
    mdp = M.random_mdp(2, 2, 0.9, 0)
    pi = policies.probs(THETA)
    return [
        ("theta", lambda v: policies.probs(v), THETA),
        ("P", lambda v: M.MDP(v, mdp.R, mdp.p0, 0.9), mdp.P),
        ("pi", lambda v: M.state_values(mdp, v), pi),
        ("p", lambda v: importance.importance_weights(v, Q_), P_),
        ("ratio", lambda v: clipping.clip_objective(v, np.array([1.0, -1.0]), 0.2), np.array([0.9, 1.3])),
    ]


@pytest.mark.parametrize("i", range(5))
def test_complex_input_is_rejected_naming_the_argument(i):
    name, call, good = _calls()[i]
    with pytest.raises(ValueError, match=rf"{name}.*complex"):
        call(good + 0.3j)


@pytest.mark.parametrize("i", range(5))
@pytest.mark.parametrize("bad", ["strings", "bools", "none"])
def test_non_numbers_are_rejected_naming_the_argument(i, bad):
    name, call, good = _calls()[i]
    value = {"strings": np.asarray(good).astype(str), "bools": np.asarray(good) > 0.5, "none": None}[bad]
    with pytest.raises(ValueError, match=name):
        call(value)


@pytest.mark.parametrize("i", range(5))
def test_tensors_with_gradients_and_float32_give_the_float64_result(i):
    """A requires_grad tensor and a float32 array give the result of the float64 array (to float32 rounding)."""
    name, call, good = _calls()[i]
    want = call(good)
    if name != "ratio":  # clip_objective has a torch path of its own (both arguments tensors, for autograd)
        got_tensor = call(torch.tensor(good, dtype=torch.float64, requires_grad=True))
        np.testing.assert_allclose(np.asarray(_values(got_tensor)), np.asarray(_values(want)), rtol=0, atol=0)
    if name != "P" and name != "pi" and name != "p":  # probability tables in float32 do not sum to 1 within 1e-9
        got32 = call(np.asarray(good, dtype=np.float32))
        np.testing.assert_allclose(np.asarray(_values(got32)), np.asarray(_values(want)), rtol=1e-6, atol=1e-7)


def _values(result):
    return result.P if isinstance(result, M.MDP) else result


# ---- the agents' losses and configuration (issue 13)
from pgbook import a2c, ppo  # noqa: E402


def _batch(B=6, A=3):
    g = torch.Generator().manual_seed(0)
    return dict(logits=torch.randn(B, A, generator=g), values=torch.randn(B, generator=g),
                actions=torch.tensor([0, 1, 2, 0, 1, 2]), advantages=torch.randn(B, generator=g),
                returns=torch.randn(B, generator=g))


@pytest.mark.parametrize("which", ["ppo", "a2c"])
@pytest.mark.parametrize(
    "change,name",
    [
        (lambda b: b.update(logits=b["logits"].clone().index_fill_(0, torch.tensor([1]), float("nan"))), "logits"),
        (lambda b: b.update(advantages=b["advantages"].clone().index_fill_(0, torch.tensor([2]), float("inf"))), "advantages"),
        (lambda b: b.update(actions=torch.tensor([0, 1, 3, 0, 1, 2])), "actions"),
        (lambda b: b.update(actions=torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])), "actions"),
        (lambda b: b.update(actions=torch.tensor([0, -1, 2, 0, 1, 2])), "actions"),
    ],
)
def test_losses_reject_non_finite_values_and_bad_actions(which, change, name):
    """NaN logits or infinite advantages gave nan/-inf losses; out-of-range or float actions an IndexError or truncation."""
    b = _batch()
    change(b)
    with pytest.raises(ValueError, match=name):
        if which == "ppo":
            ppo.ppo_losses(b["logits"], b["values"], b["actions"], torch.zeros(6), b["advantages"], b["returns"])
        else:
            a2c.a2c_losses(b["logits"], b["values"], b["actions"], b["advantages"], b["returns"])


def test_ppo_config_rejects_one_sample_minibatches_with_normalised_advantages():
    """minibatch_size = 1 with per-minibatch normalisation would make every parameter NaN (std of one sample)."""
    with pytest.raises(ValueError, match="minibatch_size"):
        ppo.PPOConfig(n_envs=1, n_steps=4, minibatch_size=1)
    ppo.PPOConfig(n_envs=1, n_steps=4, minibatch_size=1, normalize_advantages=False)  # allowed: nothing to normalise


def test_linear_policy_rejects_integer_parameters():
    """An integer w used to cast the features to integers (logits all 0)."""
    pol = clipping.LinearSoftmaxPolicy(np.array([[0.5], [0.25]]), 2)
    with pytest.raises(ValueError, match="w must be a floating-point"):
        pol.logits(torch.tensor([[1, 2]]))
    assert torch.allclose(pol.logits(torch.tensor([[1.0, 2.0]])), torch.tensor([[0.5, 1.0], [0.25, 0.5]]))


# ---- seeds, extreme magnitudes (issue 13)
from pgbook import score_function as F  # noqa: E402
from pgbook.gradients import reinforce_gradients  # noqa: E402


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_every_sampler_names_a_bad_seed(seed):
    """numpy's message did not name the argument (and int('3') was accepted by one sampler)."""
    mdp = M.random_mdp(2, 2, 0.9, 0)
    pi = policies.probs(THETA)
    calls = [
        lambda: M.random_mdp(2, 2, 0.9, seed),
        lambda: M.sample_trajectories(mdp, pi, 3, 4, seed),
        lambda: policies.sample_actions(THETA, np.array([0, 1]), seed),
        lambda: importance.is_samples(np.ones(2), P_, Q_, 5, seed),
        lambda: reinforce_gradients(mdp, THETA, 3, 4, seed),
        lambda: F.sample_scores(THETA, 0, 5, seed),
        lambda: F.sample_gaussian_scores(0.0, 0.0, 5, seed),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="seed"):
            call()


def test_effective_sample_size_of_huge_and_tiny_weights():
    """ESS([1e200, 1e200]) was NaN and ESS([1e-200] * 2) 'all zero'; the answer is 2 (scale-free)."""
    assert importance.effective_sample_size([1e200, 1e200]) == pytest.approx(2.0)
    assert importance.effective_sample_size([1e-200, 1e-200]) == pytest.approx(2.0)
    assert importance.effective_sample_size([1e200, 0.0, 1e200, 1e199]) == pytest.approx((2.1**2) / 2.01)


def test_gaussian_scores_reject_an_overflowing_log_std():
    """sample_gaussian_scores(0., 1000., 5, 0) returned NaN: sigma = exp(1000) overflows."""
    with pytest.raises(ValueError, match="log_std"):
        F.sample_gaussian_scores(0.0, 1000.0, 5, 0)
    assert np.isfinite(F.sample_gaussian_scores(0.0, 20.0, 5, 0)).all()


def test_a_float32_probability_table_gets_a_message_that_says_what_to_do():
    """A torch.softmax table in float32 (rows off by ~1e-7) is rejected at 1e-9 with a hint; renormalised in float64 it is accepted."""
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    pi32 = torch.softmax(logits * 7.3, -1)  # float32
    mdp = M.random_mdp(3, 4, 0.9, 1)
    sums_off = float((pi32.double().sum(-1) - 1).abs().max())
    if sums_off > 1e-9:  # the usual case (the exact float32 rounding depends on the row)
        with pytest.raises(ValueError, match="float32"):
            M.state_values(mdp, pi32)
    pi64 = pi32.double() / pi32.double().sum(-1, keepdim=True)
    assert np.isfinite(M.state_values(mdp, pi64)).all()
