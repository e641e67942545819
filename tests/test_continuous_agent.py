"""PPO on a Box action space (issue 15): the diagonal Gaussian head, the rollout, the CLI on Pendulum-v1.

Independent references: the Gaussian's log-density and entropy in closed form (numpy, float64) and
torch.distributions.Normal; the actions that reach ``env.step`` recorded by a wrapper; the true
final observation of a truncated episode recomputed by replaying the recorded actions in a fresh
environment.
"""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd

from pgbook import envs as E
from pgbook import evaluation, heads, networks, ppo, rollout
from pgbook import train as cli


class Spy(gym.vector.VectorWrapper):
    """Records the actions passed to ``step`` and the infos returned."""

    def __init__(self, env):
        super().__init__(env)
        self.actions, self.infos = [], []

    def step(self, actions):
        self.actions.append(np.array(actions, copy=True))
        out = self.env.step(actions)
        self.infos.append(out[-1])
        return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (7, 6), (64, 17)])
def test_head_sample_draws_the_distributions_numbers(shape):
    """The rollout's ``head.sample(params)`` returns exactly what ``distribution(params).sample()``
    returns from the same generator state (torch.distributions is the reference), for the Gaussian
    (the sampled values, not just their law) and the categorical head; it leaves the generator where
    the reference leaves it."""
    g = torch.Generator().manual_seed(sum(shape))
    params = torch.randn(shape[0], 2 * shape[1], generator=g)
    params[:, shape[1]:] *= 2  # log sigma in about [-6, 6]
    params.requires_grad_()  # a sample carries no gradient, whatever its parameters do
    for head in (heads.DiagGaussianHead(shape[1]), heads.CategoricalHead(2 * shape[1])):
        torch.manual_seed(11)
        ref, ref_next = head.distribution(params).sample(), torch.rand(3)
        torch.manual_seed(11)
        ours, ours_next = head.sample(params), torch.rand(3)
        assert ours.shape == ref.shape and ours.dtype == ref.dtype and torch.equal(ours, ref) and torch.equal(ours_next, ref_next)
        assert not ours.requires_grad and not ref.requires_grad


def _gaussian_model(log_std_init=0.0, seed=0):
    torch.manual_seed(seed)
    return networks.ActorCritic(3, hidden=(8,), action_dim=1, log_std_init=log_std_init)


@pytest.mark.claim("eq-cont-gauss-logpdf", "eq-cont-gauss-entropy", how="exact")
def test_gaussian_head_matches_closed_form_and_normal():
    """log pi = sum_i log N(a_i; mu_i, sigma_i^2) and H = sum_i (log sigma_i + (1 + log 2 pi)/2), d = 3:
    the agent's own formulas (heads.LogStdNormal) against numpy's closed form and torch's Normal."""
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_std = torch.randn(5, 3, generator=g, dtype=torch.float64)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64) * 2
    head = heads.DiagGaussianHead(3)
    dist = head.distribution(torch.cat([mu, log_std], -1))
    m, s, x = mu.numpy(), np.exp(log_std.numpy()), a.numpy()
    closed_lp = (-((x - m) ** 2) / (2 * s**2) - np.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)
    closed_h = (np.log(s) + 0.5 * (1 + math.log(2 * math.pi))).sum(1)
    np.testing.assert_allclose(head.log_prob(dist, a).numpy(), closed_lp, rtol=1e-12)
    np.testing.assert_allclose(head.entropy(dist).numpy(), closed_h, rtol=1e-12)
    ref = torch.distributions.Independent(torch.distributions.Normal(mu, log_std.exp()), 1)
    np.testing.assert_allclose(head.log_prob(dist, a).numpy(), ref.log_prob(a).numpy(), rtol=1e-12)
    np.testing.assert_allclose(head.entropy(dist).numpy(), ref.entropy().numpy(), rtol=1e-12)
    assert torch.equal(head.mode(torch.cat([mu, log_std], -1)), mu)
    assert isinstance(head, heads.PolicyHead) and isinstance(heads.CategoricalHead(2), heads.PolicyHead)


@pytest.mark.claim("eq-cont-gauss-score", how="autograd")
def test_log_std_normal_score_is_the_closed_form():
    """Autograd through the agent's log-density (heads.LogStdNormal) gives the score of
    eq-cont-gauss-score, (a - mu)/sigma^2 in the mean and (a - mu)^2/sigma^2 - 1 in log sigma
    (pgbook.gaussian.diag_gaussian_score, numpy float64), for sigma from e^-4 to e^3."""
    from pgbook import gaussian

    g = torch.Generator().manual_seed(5)
    mu = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    log_std = torch.linspace(-4.0, 3.0, 24, dtype=torch.float64).reshape(6, 4).requires_grad_()
    a = mu.detach() + torch.randn(6, 4, generator=g, dtype=torch.float64) * log_std.detach().exp() * 1.5
    heads.LogStdNormal(mu, log_std).log_prob(a).sum().backward()
    d_mean, d_log_std = gaussian.diag_gaussian_score(a.numpy(), mu.detach().numpy(), log_std.detach().numpy())
    np.testing.assert_allclose(mu.grad.numpy(), d_mean, rtol=1e-12)
    np.testing.assert_allclose(log_std.grad.numpy(), d_log_std, rtol=1e-12, atol=1e-12)


def test_log_std_normal_is_torchs_normal_elsewhere():
    """heads.LogStdNormal is torch's Normal(mu, exp(log sigma)) in everything it does not override:
    the same samples from the same generator state (sample and rsample), mean, stddev, cdf, zero KL
    divergence to that Normal -- the parent's code on the same exp(log sigma), so these check the
    wiring (scale, loc, batch shape), not formulas; expand and broadcasting (a log sigma of shape (d,)
    for a batch of means) keep the class. In float32 at near-deterministic and very wide policies its
    log-density stays finite and matches float64 to float32 precision. Bad arguments: ValueError."""
    g = torch.Generator().manual_seed(2)
    mu, log_std = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ours, ref = heads.LogStdNormal(mu, log_std), torch.distributions.Normal(mu, log_std.exp())
    for draw in ("sample", "rsample"):
        torch.manual_seed(3)
        x = getattr(ours, draw)((2,))
        torch.manual_seed(3)
        assert torch.equal(x, getattr(ref, draw)((2,)))
    assert torch.equal(ours.mean, ref.mean) and torch.equal(ours.stddev, ref.stddev)
    x = torch.randn(5, 3, generator=g)
    torch.testing.assert_close(ours.cdf(x), ref.cdf(x))
    torch.testing.assert_close(ours.log_prob(x), ref.log_prob(x))
    wide = ours.expand((4, 5, 3))
    assert isinstance(wide, heads.LogStdNormal) and wide.batch_shape == (4, 5, 3)
    torch.testing.assert_close(wide.log_prob(x), ref.log_prob(x).expand(4, 5, 3))
    assert float(torch.distributions.kl_divergence(ours, ref).abs().max()) < 1e-6
    shared = heads.LogStdNormal(mu, log_std[0])  # one log sigma for every row, as the agent's
    assert shared.batch_shape == (5, 3) and torch.equal(shared.log_std, log_std[0].expand(5, 3))
    torch.testing.assert_close(shared.log_prob(x), torch.distributions.Normal(mu, log_std[0].exp()).log_prob(x))
    # extremes in float32: sigma = e^-20 (an action 1e-9 away is 2 sigma off) and sigma = e^20
    loc = torch.zeros(2, 1)
    extreme = heads.LogStdNormal(loc, torch.tensor([[-20.0], [20.0]]))
    a = torch.tensor([[2 * math.exp(-20.0)], [3.0e8]])
    lp = extreme.log_prob(a)
    ref64 = torch.distributions.Normal(loc.double(), torch.tensor([[-20.0], [20.0]], dtype=torch.float64).exp()).log_prob(a.double())
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.double(), ref64, rtol=1e-6, atol=1e-5)
    for bad, name in (
        (lambda: heads.LogStdNormal(mu, log_std[:, :2]), "broadcast"),
        (lambda: heads.LogStdNormal(mu, log_std.double()), "dtype"),
        (lambda: heads.LogStdNormal(mu, torch.full((5, 3), float("nan"))), "log_std"),
        (lambda: heads.LogStdNormal([0.0], log_std), "loc"),
    ):
        with pytest.raises(ValueError, match=name):
            bad()


def test_fast_running_mean_std_is_gymnasiums_bit_for_bit(monkeypatch):
    """envs.FastRunningMeanStd skips np.mean/np.var for a batch of one row: after any sequence of
    one-row and several-row batches (float64 observations, float32 accumulators, scalar and vector
    statistics) its mean, variance and count are gymnasium's RunningMeanStd's exactly, with the same
    types (except the documented case of an infinite entry, unusable both ways); the agents and the
    reward-scaling wrapper use it, and a one-row update takes the shortcut (it does not call np.var)."""
    rng = np.random.default_rng(4)
    for shape, dtype in (((), np.float32), ((3,), np.float64), ((17,), np.float64)):
        ours, ref = E.FastRunningMeanStd(shape=shape), RunningMeanStd(shape=shape)
        for _ in range(200):
            k = 1 if rng.random() < 0.8 else int(rng.integers(2, 5))
            x = (rng.normal(size=(k, *shape)) * rng.uniform(0.1, 100)).astype(dtype)
            ours.update(x)
            ref.update(x)
            for name in ("mean", "var", "count"):
                got, want = getattr(ours, name), getattr(ref, name)
                assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
                assert np.array_equal(got, want)
        with np.errstate(invalid="ignore"):  # inf - inf in np.var and in the update
            ours.update(np.full((1, *shape), np.inf, dtype=dtype))  # the documented exception: unusable both ways
            ref.update(np.full((1, *shape), np.inf, dtype=dtype))
        assert np.isinf(ours.mean).all() and np.isinf(ref.mean).all() and np.isnan(ref.var).all() and not np.isfinite(ours.var).all()
    with monkeypatch.context() as m:
        m.setattr(np, "var", lambda *a, **k: pytest.fail("np.var called for a one-row batch"))
        E.FastRunningMeanStd(shape=(3,)).update(np.ones((1, 3)))
    envs = E.make_vec_env("Pendulum-v1", 1, max_episode_steps=4, obs_rms=E.FastRunningMeanStd(shape=(3,)), reward_gamma=0.9)
    fresh = RunningMeanStd(shape=())
    rms = envs.return_rms
    assert type(rms) is E.FastRunningMeanStd and (rms.mean, rms.var, rms.count) == (fresh.mean, fresh.var, fresh.count)
    result = ppo.train(_tiny_pendulum_cfg())
    assert type(result.obs_rms) is E.FastRunningMeanStd


def test_gaussian_score_of_log_std_by_autograd():
    """The network's log sigma gets the score d log pi / d log sigma_i = (a_i - mu_i)^2 / sigma_i^2 - 1."""
    model = _gaussian_model(log_std_init=0.3)
    obs = torch.tensor([[0.2, -0.5, 1.0], [1.0, 0.0, -2.0]])
    a = torch.tensor([[1.5], [-0.7]])
    params = model.policy_params(obs)
    assert params.shape == (2, 2) and torch.all(params[:, 1] == 0.3)
    model.head.log_prob(model.distribution(params), a).sum().backward()
    mu = model.actor(obs).detach()
    expected = (((a - mu) ** 2) / math.exp(0.6) - 1).sum(0)
    torch.testing.assert_close(model.log_std.grad, expected, rtol=1e-5, atol=1e-6)


def test_actions_are_clipped_only_at_env_step_and_log_prob_is_of_the_unclipped_action():
    """sigma = e^2 makes most samples leave [-2, 2]: the env gets clip(a), the rollout keeps a and log pi(a)."""
    model = _gaussian_model(log_std_init=2.0)
    envs = Spy(E.make_vec_env("Pendulum-v1", 2))
    storage = rollout.RolloutStorage(16, 2, 3, action_dim=1)
    tracker = rollout.EpisodeTracker(2)
    obs, _ = envs.reset(seed=0)
    torch.manual_seed(0)
    rollout.collect_rollout(envs, model, storage, obs, tracker)
    stored = storage.actions.numpy()
    sent = np.stack(envs.actions)
    assert np.abs(stored).max() > 2.0  # the samples do leave the bounds
    np.testing.assert_array_equal(sent, np.clip(stored, -2.0, 2.0))
    with torch.no_grad():
        mu = model.actor(storage.obs).numpy()
    sigma = math.exp(2.0)
    closed = (-((stored - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    np.testing.assert_allclose(storage.log_probs.numpy(), closed, rtol=1e-5, atol=1e-5)
    of_clipped = (-((sent - mu) ** 2) / (2 * sigma**2) - math.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert np.abs(storage.log_probs.numpy() - of_clipped).max() > 0.01


@pytest.mark.parametrize("bootstrap", [True, False])
def test_truncation_bootstraps_from_the_true_final_observation(bootstrap):
    """Pendulum truncated after 5 steps: next_values[4] = V(s_5) recomputed by replaying the actions (0 in the ablation)."""
    model = _gaussian_model()
    envs = Spy(E.make_vec_env("Pendulum-v1", 1, max_episode_steps=5))
    storage = rollout.RolloutStorage(8, 1, 3, action_dim=1)
    obs, _ = envs.reset(seed=3)
    torch.manual_seed(0)
    rollout.collect_rollout(envs, model, storage, obs, rollout.EpisodeTracker(1), bootstrap)
    assert storage.episode_end[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert storage.terminated[:, 0].tolist() == [0, 0, 0, 0, 0 if bootstrap else 1, 0, 0, 0]
    replay = gym.make("Pendulum-v1", max_episode_steps=5)
    s, _ = replay.reset(seed=3)
    for a in envs.actions[:5]:
        s, *_ = replay.step(a[0])
    with torch.no_grad():
        v_final = float(model.value(torch.tensor(s[None], dtype=torch.float32)))
        v_reset = float(model.value(storage.obs[5]))
    expected = v_final if bootstrap else 0.0
    assert float(storage.next_values[4, 0]) == pytest.approx(expected, abs=1e-6)
    assert abs(v_final - v_reset) > 1e-3  # the reset observation would give another number
    assert float(storage.next_values[3, 0]) == pytest.approx(float(storage.values[4, 0]), abs=0)


def test_reward_scaling_keeps_raw_returns_and_obs_statistics_are_shared():
    """NormalizeReward scales the learning rewards; the tracker sums the environment's; one RunningMeanStd for all envs."""
    rms = RunningMeanStd(shape=(3,))
    envs = E.make_vec_env("Pendulum-v1", 2, max_episode_steps=4, obs_rms=rms, reward_gamma=0.9)
    model = _gaussian_model()
    storage = rollout.RolloutStorage(4, 2, 3, action_dim=1)
    tracker = rollout.EpisodeTracker(2)
    obs, _ = envs.reset(seed=0)
    torch.manual_seed(0)
    rollout.collect_rollout(envs, model, storage, obs, tracker)
    assert rms.count == pytest.approx(1e-4 + 2 + 2 * 4 + 2)  # 2 resets, 8 steps, 2 autoresets: one shared count
    assert len(tracker.finished) == 2
    # an unwrapped Pendulum's cost is in [-16.3, 0]; the raw episode return is a sum of 4 of them
    assert all(-4 * 16.3 <= r <= 0 for _, r, _ in tracker.finished)
    assert not np.allclose(storage.rewards.sum(0).numpy(), [r for _, r, _ in tracker.finished])


def _tiny_pendulum_cfg(**kw):
    return ppo.PPOConfig.for_env(
        "Pendulum-v1", normalize_obs=True, normalize_reward=True, total_steps=512, n_envs=2, n_steps=128, minibatch_size=64, n_epochs=2, hidden=(16,),
        device="cpu", seed=7, **kw,
    )


def test_short_pendulum_run_is_deterministic_and_finite():
    """Two PPO runs with the same seed: identical logs and parameters; every number finite."""
    runs = [ppo.train(_tiny_pendulum_cfg(eval_every=256, eval_episodes=2)) for _ in range(2)]
    a, b = runs
    assert a.model.continuous and a.obs_rms is not None and len(a.log) == 2 and len(a.evals) == 2
    assert [{k: v for k, v in r.items()} for r in a.log] == [{k: v for k, v in r.items()} for r in b.log]
    for (k, p), (_, q) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(p, q), k
    assert np.array_equal(a.obs_rms.mean, b.obs_rms.mean) and a.episodes == b.episodes and a.evals == b.evals
    numbers = [v for r in a.log for k, v in r.items() if k != "epochs"] + [m for _, m, _ in a.evals]
    assert np.all(np.isfinite(numbers))
    assert all(np.isfinite(list(a.model.parameters())[i].detach().numpy()).all() for i in range(len(list(a.model.parameters()))))


def test_pendulum_preset_and_cli_writes_outputs(tmp_path, capsys):
    """`python -m pgbook.train ppo --env Pendulum-v1` picks the continuous preset and writes the four outputs."""
    cfg = ppo.PPOConfig.for_env("Pendulum-v1")
    assert (cfg.gamma, cfg.n_envs, cfg.normalize_obs, cfg.normalize_reward, cfg.anneal_clip) == (0.9, 4, False, False, False)
    generic = ppo.PPOConfig.for_env("MountainCarContinuous-v0")  # Box, no tuning: CleanRL's defaults
    assert (generic.n_envs, generic.n_steps, generic.normalize_obs, generic.normalize_reward) == (1, 2048, True, True)
    assert ppo.PPOConfig.for_env("CartPole-v1") == ppo.PPOConfig()  # discrete: the class defaults
    out = tmp_path / "run"
    argv = ["ppo", "--env", "Pendulum-v1", "--steps", "512", "--no-progress", "--eval-episodes", "2", "--out", str(out),
            "--set", "n_envs=1", "--set", "n_steps=256", "--set", "n_epochs=1", "--set", "hidden=16"]
    assert cli.main(argv) == 0
    for name in cli.OUTPUTS:
        assert (out / name).exists(), name
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "completed" and record["steps_trained"] == 512
    assert record["config"]["gamma"] == 0.9 and record["config"]["n_envs"] == 1
    assert math.isfinite(record["final_evaluation"]["mean"]) and record["final_evaluation"]["mean"] <= 0
    assert "a Box one" in cli.make_parser().format_help() or "Box action space" in cli.make_parser().format_help()


@pytest.mark.kernel_independent
def test_new_building_blocks_reject_bad_arguments():
    """ValueError naming the argument."""
    cases = [
        (lambda: networks.ActorCritic(3), "n_actions"),
        (lambda: networks.ActorCritic(3, 2, action_dim=1), "action_dim"),
        (lambda: networks.ActorCritic(3, action_dim=0), "action_dim"),
        (lambda: networks.ActorCritic(3, action_dim=1, log_std_init=float("nan")), "log_std_init"),
        (lambda: heads.DiagGaussianHead(0), "action_dim"),
        (lambda: heads.CategoricalHead(1), "n_actions"),
        (lambda: rollout.RolloutStorage(2, 1, 3, action_dim=0), "action_dim"),
        (lambda: E.env_spaces("NoSuchEnv-v0"), "not a registered"),
        (lambda: E.make_vec_env("Pendulum-v1", 1, obs_rms="x"), "obs_rms"),
        (lambda: E.make_vec_env("Pendulum-v1", 1, obs_rms=RunningMeanStd(shape=(4,))), "obs_rms"),
        (lambda: E.make_vec_env("Pendulum-v1", 1, reward_gamma=1.5), "reward_gamma"),
        (lambda: evaluation.evaluate(_gaussian_model(), "CartPole-v1", 1), "env_id"),
        (lambda: evaluation.evaluate(_gaussian_model(), "Pendulum-v1", 1, obs_rms=RunningMeanStd(shape=(2,))), "obs_rms"),
        (lambda: evaluation.greedy_probability(_gaussian_model(), np.zeros((1, 3))), "model"),
        (lambda: ppo.PPOConfig.for_env("NoSuchEnv-v0"), "not a registered"),
        (lambda: ppo.PPOConfig.for_env("Pendulum-v1", n_epochs=0), "n_epochs"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()
    envs = E.make_vec_env("CartPole-v1", 1)
    obs, _ = envs.reset(seed=0)
    with pytest.raises(ValueError, match="envs"):
        rollout.collect_rollout(envs, _gaussian_model(), rollout.RolloutStorage(2, 1, 3, action_dim=1),
                                np.zeros((1, 3)), rollout.EpisodeTracker(1))
    with pytest.raises(ValueError, match="storage"):
        rollout.collect_rollout(envs, networks.ActorCritic(4, 2), rollout.RolloutStorage(2, 1, 4, action_dim=1),
                                obs, rollout.EpisodeTracker(1))


def test_mlp_activation_is_the_named_one():
    """relu and tanh hidden layers against an nn.Sequential with the same weights (an MLP that
    ignored ``activation`` would fail one of the two)."""
    torch.manual_seed(0)
    x = torch.randn(5, 3)
    for name, module in (("relu", torch.nn.ReLU()), ("tanh", torch.nn.Tanh())):
        mlp = networks.MLP(3, (6, 4), 2, 1.0, False, activation=name)
        seq = torch.nn.Sequential(mlp[0], module, mlp[1], module, mlp[2])
        assert torch.allclose(mlp(x), seq(x), atol=0, rtol=0)
    with pytest.raises(ValueError, match="activation"):
        networks.MLP(3, (6,), 2, 1.0, False, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        ppo.PPOConfig(activation="sigmoid")


def test_training_uses_the_configured_network():
    """``activation``, ``hidden``, ``orthogonal_init`` and ``log_std_init`` reach the trained model:
    after one gradient step of size <= lr the log-std is still within 1e-3 of its start."""
    cfg = ppo.PPOConfig(
        env_id="Pendulum-v1", total_steps=64, n_envs=1, n_steps=64, minibatch_size=64, n_epochs=1, hidden=(16, 8),
        activation="relu", orthogonal_init=False, log_std_init=-2.0, lr=3e-4, device="cpu",
    )
    model = ppo.train(cfg).model
    assert model.actor.activation == model.critic.activation == "relu"
    assert [layer.out_features for layer in model.actor.layers] == [16, 8, 1]
    assert abs(model.log_std.item() + 2.0) < 1e-3


@pytest.mark.claim("eq-ppo-loss", how="autograd")
def test_ppo_losses_with_the_gaussian_head():
    """ppo_losses(..., head=DiagGaussianHead(d)) == -(mean L^CLIP - c1 mean L^VF + c2 mean S) with
    log pi and S from torch.distributions.Independent(Normal) in float64 (the reference), d = 2,
    ratios away from 1 so that both branches of the clip are exercised; argument checks of the
    Gaussian case."""
    g = torch.Generator().manual_seed(4)
    B, d, eps, c1, c2 = 32, 2, 0.2, 0.5, 0.01
    params = torch.randn(B, 2 * d, generator=g) * 0.5
    actions = torch.randn(B, d, generator=g)
    values, adv, ret = (torch.randn(B, generator=g) for _ in range(3))
    ref_dist = torch.distributions.Independent(torch.distributions.Normal(params[:, :d].double(), params[:, d:].double().exp()), 1)
    old_lp = (ref_dist.log_prob(actions.double()) + 0.3 * torch.randn(B, generator=g, dtype=torch.float64)).float()
    head = heads.DiagGaussianHead(d)
    L = ppo.ppo_losses(params, values, actions, old_lp, adv, ret, eps, c1, c2, head=head)
    r = torch.exp(ref_dist.log_prob(actions.double()) - old_lp.double())
    a = adv.double()
    clip_term = torch.where(a >= 0, torch.minimum(r, torch.full_like(r, 1 + eps)), torch.maximum(r, torch.full_like(r, 1 - eps))) * a
    L_total = clip_term.mean() - c1 * (values.double() - ret.double()).pow(2).mean() + c2 * ref_dist.entropy().mean()
    assert L.total.item() == pytest.approx(-L_total.item(), rel=1e-5)
    assert L.entropy.item() == pytest.approx(ref_dist.entropy().mean().item(), rel=1e-6)
    assert 0 < L.clip_frac.item() < 1
    with pytest.raises(ValueError, match="actions must have shape"):
        ppo.ppo_losses(params, values, actions[:, 0], old_lp, adv, ret, head=head)
    with pytest.raises(ValueError, match="actions must be a floating-point"):
        ppo.ppo_losses(params, values, actions.long(), old_lp, adv, ret, head=head)
    with pytest.raises(ValueError, match="logits must be"):
        ppo.ppo_losses(params[:, :3], values, actions, old_lp, adv, ret, head=head)
    with pytest.raises(ValueError, match="actions contains NaN"):
        ppo.ppo_losses(params, values, actions.clone().fill_(float("nan")), old_lp, adv, ret, head=head)
    with pytest.raises(ValueError, match="head must be"):
        ppo.ppo_losses(params, values, actions, old_lp, adv, ret, head="gaussian")
    with pytest.raises(ValueError, match="logits must have 3 columns"):
        ppo.ppo_losses(torch.zeros(B, 2), values, torch.zeros(B, dtype=torch.long), old_lp, adv, ret, head=heads.CategoricalHead(3))
