"""The notes' PPO code (阶段1：数据收集, 阶段3：PPO更新), run as printed.

The notes' `compute_advantages` (阶段2) is dissected in chapter 8 (tests/test_gae.py) and their
PPO loss in chapter 7 (tests/test_clipping.py). This file runs `collect_experience` against
gymnasium, and the pipeline collect_experience -> compute_advantages -> `ppo_update` with small
stand-ins for what the notes leave to the reader (the network, the optimizer, the environment and
the module globals `ppo_epochs`, `batch_size`, `max_steps`).
"""

from __future__ import annotations

import copy
import inspect
import sys

import gymnasium as gym
import pytest
import torch
from test_gae import compute_advantages  # the notes' 阶段2, verbatim there


# ---- verbatim from the notes (阶段1：数据收集) -------------------------------------------
def collect_experience():
    states, actions, rewards, values, dones = [], [], [], [], []

    state = env.reset()
    for t in range(max_steps):
        # 使用当前策略选择动作
        action, log_prob, entropy = policy_network.get_action(state)
        value = value_network.get_value(state)

        # 执行动作
        next_state, reward, done, _ = env.step(action)

        # 存储经验
        states.append(state)
        actions.append(action)
        rewards.append(reward)
        values.append(value)
        dones.append(done)

        state = next_state
        if done: break

    return states, actions, rewards, values, dones
# ---- end of the notes' code ----------------------------------------------------------------


# ---- verbatim from the notes (阶段3：PPO更新) ----------------------------------------------
# The last four lines (optimizer.zero_grad() ... optimizer.step()) are printed in a separate code
# block after the function, at column 0; they belong at the end of the minibatch loop, after the
# comment "# 梯度更新", which is where they are put here (indented into the loop, nothing else changed).
def ppo_update(states, actions, old_log_probs, advantages, returns, clip_epsilon=0.2):
    # 转换为tensor
    states = torch.tensor(states)
    actions = torch.tensor(actions)
    old_log_probs = torch.tensor(old_log_probs)
    advantages = torch.tensor(advantages)
    returns = torch.tensor(returns)

    # 多轮更新
    for epoch in range(ppo_epochs):
        # 随机打乱
        indices = torch.randperm(len(states))

        # 小批量更新
        for start in range(0, len(indices), batch_size):
            end = start + batch_size
            batch_indices = indices[start:end]

            batch_states = states[batch_indices]
            batch_actions = actions[batch_indices]
            batch_old_log_probs = old_log_probs[batch_indices]
            batch_advantages = advantages[batch_indices]
            batch_returns = returns[batch_indices]

            # 计算新策略的概率
            new_log_probs, entropy, values = policy_network.evaluate_actions(
                batch_states, batch_actions)

            # 概率比
            ratios = torch.exp(new_log_probs - batch_old_log_probs)

            # PPO-Clip 目标
            surr1 = ratios * batch_advantages
            surr2 = torch.clamp(ratios, 1-clip_epsilon, 1+clip_epsilon) * batch_advantages
            actor_loss = -torch.min(surr1, surr2).mean()

            # Critic损失
            critic_loss = 0.5 * (values.squeeze() - batch_returns).pow(2).mean()

            # 熵奖励
            entropy_bonus = -entropy.mean()

            # 总损失
            total_loss = actor_loss + 0.5 * critic_loss + 0.01 * entropy_bonus

            # 梯度更新
            optimizer.zero_grad()
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(policy_network.parameters(), 0.5)
            optimizer.step()
# ---- end of the notes' code ----------------------------------------------------------------


class _Policy:
    """A stand-in for the notes' networks: always action 0, records the log-probs it hands out."""

    def __init__(self):
        self.log_probs = []

    def get_action(self, state):
        self.log_probs.append(-0.6931)
        return 0, -0.6931, 0.6931

    def get_value(self, state):
        return 0.0


class _OldGymAPI(gym.Wrapper):
    """The pre-2022 Gym interface the notes assume: reset() -> obs, step() -> 4-tuple with one done."""

    def reset(self, **kwargs):
        obs, _ = self.env.reset(**kwargs)
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or truncated, info


def _run(environment, steps=50):
    policy = _Policy()
    globals().update(env=environment, max_steps=steps, policy_network=policy, value_network=policy)
    try:
        return collect_experience(), policy
    finally:
        for name in ("env", "max_steps", "policy_network", "value_network"):
            globals().pop(name, None)


@pytest.mark.claim("err-gym-api", how="reproduction")
def test_notes_rollout_fails_on_gymnasium():
    """With gymnasium's API (5-tuple step), the notes' `next_state, reward, done, _ = env.step(a)` raises."""
    with pytest.raises(ValueError, match="too many values to unpack"):
        _run(gym.make("CartPole-v1"))
    # the same code runs under the old API it was written for: the failure is the API, not the stubs
    (states, *_), _ = _run(_OldGymAPI(gym.make("CartPole-v1")))
    assert len(states) > 0


@pytest.mark.claim("err-old-log-probs", how="reproduction")
def test_notes_rollout_discards_the_log_probs_ppo_needs():
    """collect_experience obtains log_prob at every step but returns no log-probs; the notes' ppo_update needs them."""
    result, policy = _run(_OldGymAPI(gym.make("CartPole-v1")))
    states, actions, rewards, values, dones = result
    assert len(policy.log_probs) == len(states) > 0  # computed at every step ...
    assert len(result) == 5  # states, actions, rewards, values, dones ...
    for part in (actions, rewards, values, dones):  # ... none of which is the log-probs
        assert list(part) != policy.log_probs
    assert list(inspect.signature(ppo_update).parameters)[:5] == ["states", "actions", "old_log_probs", "advantages", "returns"]


@pytest.mark.claim("err-gym-api", how="reproduction")
def test_one_done_flag_hides_truncation():
    """Under the old API a time-limit end and a failure both give done=True: the flag cannot tell them apart."""
    env = _OldGymAPI(gym.make("CartPole-v1", max_episode_steps=5))
    env.reset(seed=0)
    done_at_limit = [env.step(0 if t % 2 else 1)[2] for t in range(5)][-1]
    raw = gym.make("CartPole-v1", max_episode_steps=5)
    raw.reset(seed=0)
    *_, terminated, truncated, _ = [raw.step(0 if t % 2 else 1) for t in range(5)][-1]
    assert done_at_limit and truncated and not terminated


# ---- the notes' pipeline: collect_experience -> compute_advantages -> ppo_update -------------------------


class _TinyActorCritic(torch.nn.Module):
    """A stand-in for the notes' policy_network (and value_network): CartPole observation -> 2 logits, 1 value.

    `get_action` returns `(action, log_prob, entropy)` as collect_experience expects, and keeps
    every log-prob it hands out in `handed_out` — that is what storing log pi_old at collection
    would keep. `evaluate_actions(states, actions) -> (log_probs, entropy, values)` as ppo_update expects.
    """

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh())
        self.logits = torch.nn.Linear(16, 2)
        self.value = torch.nn.Linear(16, 1)
        self.handed_out = []

    def _dist(self, states):
        return torch.distributions.Categorical(logits=self.logits(self.body(states)))

    def get_action(self, state):
        with torch.no_grad():
            dist = self._dist(torch.as_tensor(state))
            action = dist.sample()
            log_prob = dist.log_prob(action).item()
        self.handed_out.append(log_prob)
        return int(action), log_prob, dist.entropy().item()

    def get_value(self, state):
        with torch.no_grad():
            return self.value(self.body(torch.as_tensor(state))).item()

    def evaluate_actions(self, states, actions):
        dist = self._dist(states)
        return dist.log_prob(actions), dist.entropy(), self.value(self.body(states))


class _RecordingOptimizer:
    """The notes' global `optimizer` (Adam). At every `step()` it copies the `ratios` tensor that the
    notes' ppo_update has just computed for this minibatch, read from ppo_update's own frame: the
    record is the notes' variable, not a recomputation."""

    def __init__(self, params, lr):
        self.inner = torch.optim.Adam(params, lr=lr)
        self.ratios = []  # (epoch, ratios of one minibatch)

    def zero_grad(self):
        self.inner.zero_grad()

    def step(self):
        caller = sys._getframe(1)
        assert caller.f_code.co_name == "ppo_update"
        self.ratios.append((caller.f_locals["epoch"], caller.f_locals["ratios"].detach().clone()))
        self.inner.step()

    def clip_fractions(self, clip_epsilon=0.2):
        """Per epoch: the fraction of samples whose ratio lies outside [1 - eps, 1 + eps] (where the clip binds)."""
        out = {}
        for epoch, r in self.ratios:
            outside, total = out.get(epoch, (0, 0))
            out[epoch] = (outside + int(((r - 1).abs() > clip_epsilon).sum()), total + r.numel())
        return [outside / total for _, (outside, total) in sorted(out.items())]


PIPELINE = dict(ppo_epochs=10, batch_size=32, max_steps=500, lr=3e-3, episodes=4, seed=0)


def _notes_globals(**names):
    """Set the module globals the notes' functions read; returns a function that removes them again."""
    globals().update(names)
    return lambda: [globals().pop(name, None) for name in names]


def _collect(seed=PIPELINE["seed"], episodes=PIPELINE["episodes"]):
    """The notes' data collection for a few episodes (their pseudo-code: for episode = 1..N), and
    their compute_advantages per episode (each ends with done, so next_value = 0)."""
    env = _OldGymAPI(gym.make("CartPole-v1"))
    env.reset(seed=seed)
    net = _TinyActorCritic(seed)
    cleanup = _notes_globals(env=env, max_steps=PIPELINE["max_steps"], policy_network=net, value_network=net)
    try:
        data = {key: [] for key in ("states", "actions", "advantages", "returns")}
        for _ in range(episodes):
            states, actions, rewards, values, dones = collect_experience()
            assert dones[-1]
            advantages, returns = compute_advantages(rewards, values, dones, next_value=0.0)
            for key, part in zip(data, (states, actions, advantages, returns)):
                data[key] += list(part)
    finally:
        cleanup()
    return net, data


def _update(net, data, old_log_probs, update=None):
    """Run (a copy of) the notes' ppo_update on a copy of `net`; returns the recording optimizer and the updated copy."""
    net = copy.deepcopy(net)
    optimizer = _RecordingOptimizer(net.parameters(), PIPELINE["lr"])
    cleanup = _notes_globals(policy_network=net, optimizer=optimizer, ppo_epochs=PIPELINE["ppo_epochs"],
                             batch_size=PIPELINE["batch_size"])
    try:
        torch.manual_seed(1)  # the same minibatches (torch.randperm) for every variant
        (update or ppo_update)(data["states"], data["actions"], old_log_probs, data["advantages"], data["returns"])
    finally:
        cleanup()
    return optimizer, net


def _ppo_update_recomputing_per_minibatch():
    """The notes' ppo_update with the one tempting repair: the old log-probs recomputed from the current
    network inside each minibatch (one line changed; the `old_log_probs` argument is then unused)."""
    source = inspect.getsource(ppo_update)
    line = "batch_old_log_probs = old_log_probs[batch_indices]"
    assert source.count(line) == 1
    source = source.replace(line, "batch_old_log_probs = policy_network.evaluate_actions(batch_states, batch_actions)[0].detach()")
    namespace = {}
    exec(compile(source, "<ppo_update recomputing old_log_probs per minibatch>", "exec"), globals(), namespace)
    return namespace["ppo_update"]


def _notes_iteration():
    """One iteration of the notes' 算法完整流程 with their three functions, as a reader would write it."""
    states, actions, rewards, values, dones = collect_experience()
    advantages, returns = compute_advantages(rewards, values, dones, next_value=0.0)
    ppo_update(states, actions, old_log_probs, advantages, returns)  # noqa: F821 -- nothing defines it


def _notes_iteration_unpacking_six():
    """The other reading: expect collect_experience to hand the old log-probs back."""
    states, actions, old_log_probs, rewards, values, dones = collect_experience()


@pytest.mark.claim("err-old-log-probs", how="reproduction")
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_notes_pipeline_cannot_supply_old_log_probs():
    """Run as printed, the pipeline stops: NameError for old_log_probs (or ValueError unpacking six of five lists)."""
    env = _OldGymAPI(gym.make("CartPole-v1"))
    env.reset(seed=0)
    net = _TinyActorCritic(0)
    cleanup = _notes_globals(env=env, max_steps=500, policy_network=net, value_network=net,
                             optimizer=_RecordingOptimizer(net.parameters(), 3e-3), ppo_epochs=1, batch_size=32)
    try:
        with pytest.raises(NameError, match="name 'old_log_probs' is not defined"):
            _notes_iteration()
        assert len(net.handed_out) > 0  # the log-probs were computed, and dropped
        with pytest.raises(ValueError, match=r"not enough values to unpack \(expected 6, got 5\)"):
            _notes_iteration_unpacking_six()
    finally:
        cleanup()


@pytest.mark.claim("err-old-log-probs", how="reproduction")
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_old_log_probs_stored_recomputed_once_or_per_minibatch():
    """The notes' ppo_update with log pi_old stored at collection (or recomputed once before the update, the same
    numbers) clips after a few epochs; recomputed from the current network in each minibatch, every ratio is
    exactly 1 and the clip never binds, although the policy leaves the clip range."""
    eps = 0.2
    net, data = _collect()
    assert len(data["states"]) > PIPELINE["batch_size"]  # at least two minibatches per epoch
    stored, _ = _update(net, data, list(net.handed_out))  # log pi_old kept at collection
    once_values = net.evaluate_actions(torch.tensor(data["states"]), torch.tensor(data["actions"]))[0].detach().tolist()
    once, _ = _update(net, data, once_values)  # recomputed once, before the first epoch
    per_batch, moved = _update(net, data, [0.0] * len(data["states"]), _ppo_update_recomputing_per_minibatch())

    n_minibatches = -(-len(data["states"]) // PIPELINE["batch_size"]) * PIPELINE["ppo_epochs"]
    assert len(stored.ratios) == len(once.ratios) == len(per_batch.ratios) == n_minibatches

    # stored: the first minibatch sees the collecting policy (ratio 1 up to float32 round-off), later ones do not
    assert (stored.ratios[0][1] - 1).abs().max() < 1e-5
    assert max((r - 1).abs().max().item() for _, r in stored.ratios) > eps
    fractions = stored.clip_fractions(eps)
    assert fractions[0] == 0.0 and fractions[-1] > 0.0
    # recomputed once from the unchanged network: the same ratios (float32 round-off) and the same clipping
    for (_, a), (_, b) in zip(stored.ratios, once.ratios):
        assert (a - b).abs().max() < 1e-5
    assert once.clip_fractions(eps) == fractions

    # recomputed per minibatch: new_log_probs - batch_old_log_probs == 0 exactly, in every minibatch of every epoch
    assert all(torch.equal(r, torch.ones_like(r)) for _, r in per_batch.ratios)
    assert per_batch.clip_fractions(eps) == [0.0] * PIPELINE["ppo_epochs"] == [0.0] * 10  # "all ten epochs"
    # ... yet the updated policy has left the clip range relative to the policy that collected the data
    log_pi = moved.evaluate_actions(torch.tensor(data["states"]), torch.tensor(data["actions"]))[0].detach()
    true_ratio = torch.exp(log_pi - torch.tensor(net.handed_out))
    assert ((true_ratio - 1).abs() > eps).any()
