"""The notes' PPO code (阶段1：数据收集, 阶段3：PPO更新), run as printed.

The notes' `compute_advantages` (阶段2) is dissected in chapter 8 (tests/test_gae.py) and their
PPO loss in chapter 7 (tests/test_clipping.py). This file runs `collect_experience` against
gymnasium, and the pipeline collect_experience -> compute_advantages -> `ppo_update` with small
stand-ins for what the notes leave to the reader (the network, the optimizer, the environment and
the module globals `ppo_epochs`, `batch_size`, `max_steps`): the missing old log-probabilities
(err-old-log-probs), the missing bootstrap value (err-collect-next-value) and the two critics
(err-ppo-code-critic). These checks run the notes' own code, which tools/mutants.py cannot edit (it
mutates src/pgbook only); instead, the tests run a repaired version next to the printed one and show
that the check tells them apart.
"""

from __future__ import annotations

import copy
import inspect
import sys

import gymnasium as gym
import numpy as np
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


# ---- err-ppo-code-critic: value_network records the values, policy_network's values are trained -------------


class _ActorWithBorrowedCritic(_TinyActorCritic):
    """The separate-networks reading of the notes' code: `policy_network.evaluate_actions` returns the values of
    a critic that is not one of its own parameters (`value_network`), so only the critic gets their gradient."""

    def __init__(self, seed: int, critic: _TinyActorCritic):
        super().__init__(seed)
        self.__dict__["critic"] = critic  # not a submodule: policy_network.parameters() does not include it

    def evaluate_actions(self, states, actions):
        dist = self._dist(states)
        return dist.log_prob(actions), dist.entropy(), self.critic.value(self.critic.body(states))


class _GradNormOptimizer(_RecordingOptimizer):
    """Also records, at every step, the gradient norm of two parameter groups (after the notes' clip_grad_norm_)."""

    def __init__(self, groups, lr):
        super().__init__([p for group in groups for p in group], lr)
        self.groups, self.norms = groups, []

    def step(self):  # the parent's step, inlined: its frame check needs ppo_update as the direct caller
        self.norms.append(tuple(float(torch.norm(torch.stack([p.grad.norm() for p in group if p.grad is not None])))
                                if any(p.grad is not None for p in group) else None for group in self.groups))
        caller = sys._getframe(1)
        assert caller.f_code.co_name == "ppo_update"
        self.ratios.append((caller.f_locals["epoch"], caller.f_locals["ratios"].detach().clone()))
        self.inner.step()


def _notes_iteration_with(policy_net, value_net, seed=0, episodes=2):
    """Collect with the notes' collect_experience, compute_advantages (each episode ends with done:
    next_value = 0) and run the notes' ppo_update, with log pi_old stored at collection (the repair of
    err-old-log-probs) and one Adam optimiser holding BOTH networks' parameters (the most generous reading).
    Returns the collected data (states, actions, recorded values, advantages, returns) and the optimizer."""
    env = _OldGymAPI(gym.make("CartPole-v1"))
    env.reset(seed=seed)
    own = {id(p) for p in policy_net.parameters()}
    critic_only = [p for p in value_net.parameters() if id(p) not in own]
    optimizer = _GradNormOptimizer([list(policy_net.parameters()), critic_only], PIPELINE["lr"])
    cleanup = _notes_globals(env=env, max_steps=PIPELINE["max_steps"], policy_network=policy_net,
                             value_network=value_net, optimizer=optimizer, ppo_epochs=4,
                             batch_size=PIPELINE["batch_size"])
    try:
        data = {key: [] for key in ("states", "actions", "values", "advantages", "returns")}
        for _ in range(episodes):
            states, actions, rewards, values, dones = collect_experience()
            advantages, returns = compute_advantages(rewards, values, dones, next_value=0.0)
            for key, part in zip(data, (states, actions, values, advantages, returns)):
                data[key] += list(part)
        torch.manual_seed(1)
        ppo_update(data["states"], data["actions"], list(policy_net.handed_out), data["advantages"], data["returns"])
    finally:
        cleanup()
    return data, optimizer


def _critic_values(net, states):
    with torch.no_grad():
        return net.value(net.body(torch.tensor(np.array(states)))).squeeze(-1)


@pytest.mark.claim("err-ppo-code-critic", how="reproduction")
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_notes_ppo_code_trains_a_critic_it_does_not_use():
    """Run as printed with two networks, the advantages come from value_network, which is never trained.

    value_network gets no gradient and its parameters are bit-identical after ppo_update; the values that are
    trained are policy_network's. With one network in both roles the recording critic does change.
    """
    policy_net, value_net = _TinyActorCritic(0), _TinyActorCritic(1)
    value_before = copy.deepcopy(value_net.state_dict())
    policy_value_head = copy.deepcopy(policy_net.value.state_dict())
    data, optimizer = _notes_iteration_with(policy_net, value_net)

    # the recorded values (hence the advantages and targets) are value_network's ...
    recorded = torch.tensor(data["values"], dtype=torch.float32)
    assert torch.allclose(recorded, _critic_values(value_net, data["states"]), atol=1e-6)
    # ... and value_network is never trained: no gradient, parameters bit-identical after all epochs
    assert all(p.grad is None for p in value_net.parameters())
    assert all(torch.equal(value_before[k], v) for k, v in value_net.state_dict().items())
    assert all(norms[1] is None for norms in optimizer.norms)
    # what is trained is policy_network's value head, towards the returns computed from value_network's values
    assert any(not torch.equal(policy_value_head[k], v) for k, v in policy_net.value.state_dict().items())

    # the check can fail: with one shared network (value_network is policy_network) the critic that records
    # the values is the one that is trained
    shared = _TinyActorCritic(0)
    shared_before = copy.deepcopy(shared.value.state_dict())
    _notes_iteration_with(shared, shared)
    assert any(not torch.equal(shared_before[k], v) for k, v in shared.value.state_dict().items())


@pytest.mark.claim("err-ppo-code-critic", how="reproduction")
@pytest.mark.filterwarnings("ignore:Creating a tensor from a list of numpy.ndarrays")
def test_notes_ppo_code_does_not_clip_a_separate_critic():
    """Read as separate networks, the notes' update trains the critic but clips only the actor's gradient.

    policy_network.evaluate_actions returns value_network's values; clip_grad_norm_(policy_network.parameters(),
    0.5) leaves the critic's gradient norm above 1 at every step.
    """
    value_net = _TinyActorCritic(1)
    policy_net = _ActorWithBorrowedCritic(0, value_net)
    value_before = copy.deepcopy(value_net.state_dict())
    _, optimizer = _notes_iteration_with(policy_net, value_net)
    assert any(not torch.equal(value_before[k], v) for k, v in value_net.state_dict().items())  # trained
    actor_norms = [a for a, _ in optimizer.norms]
    critic_norms = [c for _, c in optimizer.norms]
    assert max(actor_norms) <= 0.5 + 1e-5  # the actor's gradient is clipped to norm 0.5 ...
    assert min(critic_norms) > 1.0  # ... the critic's is not, at any step


# ---- err-collect-next-value: collect_experience returns no bootstrap value for compute_advantages ------------


class _FinalObservation(_OldGymAPI):
    """The old-API wrapper that also remembers the last observation it returned (for the test only)."""

    def step(self, action):
        out = super().step(action)
        self.last_obs = out[0]
        return out


def _collect_experience_returning_next_value():
    """What the reader must add to the notes' collect_experience (one line changed): the bootstrap value of the
    state after the last step, 0 after a termination. (With one `done` flag a time-limit end still reads as a
    termination: err-gae-code-done-flag.)"""
    source = inspect.getsource(collect_experience)
    line = "    return states, actions, rewards, values, dones"
    assert source.count(line) == 1
    source = source.replace(line, "    next_value = 0.0 if done else value_network.get_value(state)\n"
                                  "    return states, actions, rewards, values, dones, next_value")
    namespace = {}
    exec(compile(source, "<collect_experience returning next_value>", "exec"), globals(), namespace)
    return namespace["collect_experience"]


def _compute_advantages_fixed_precedence(rewards, values, dones, next_value, gamma=0.99, lambda_=0.95):
    """The notes' compute_advantages with the bootstrap inside the parentheses (err-gae-code-precedence);
    the recursion is not masked, which does not matter for the one episode collect_experience returns."""
    advantages, deltas = [], []
    for t in range(len(rewards)):
        td_target = rewards[t] + gamma * (1 - dones[t]) * (values[t+1] if t < len(rewards)-1 else next_value)
        deltas.append(td_target - values[t])
    advantage = 0
    for t in reversed(range(len(deltas))):
        advantage = deltas[t] + gamma * lambda_ * advantage
        advantages.insert(0, advantage)
    return advantages


def _reference(rewards, values, next_value, terminated, gamma=0.99, lam=0.95):
    """GAE by its definition (pgbook.gae.gae_definition) for one rollout with its end flags at the last step."""
    from pgbook.gae import gae_definition

    T = len(rewards)
    next_values = np.append(np.array(values[1:], dtype=float), next_value)
    end = np.zeros(T, bool)
    end[-1] = True  # the sum stops at the end of the rollout either way
    term = np.zeros(T, bool)
    term[-1] = terminated
    return gae_definition(np.array(rewards, float), np.array(values, float), next_values, term, end, gamma, lam)


@pytest.mark.claim("err-collect-next-value", how="reproduction")
def test_collect_experience_cannot_feed_compute_advantages():
    """collect_experience returns no next_value, so compute_advantages(*rollout[2:]) raises TypeError.

    A rollout cut by max_steps needs V(s_T), and s_T is not among the outputs. With next_value returned (one added
    line) and the precedence fixed, the advantages equal the definition of GAE.
    """
    env = _FinalObservation(gym.make("CartPole-v1"))
    env.reset(seed=0)
    net = _TinyActorCritic(0)
    cleanup = _notes_globals(env=env, max_steps=5, policy_network=net, value_network=net)
    try:
        torch.manual_seed(5)  # the actions are sampled: the same ones in both rollouts below
        rollout = collect_experience()
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'next_value'"):
            compute_advantages(*rollout[2:])  # rewards, values, dones: everything collect_experience returns
        states, actions, rewards, values, dones = rollout
        assert len(states) == 5 and not any(dones)  # cut by max_steps: the return must bootstrap from V(s_5)
        assert not any(np.array_equal(s, env.last_obs) for s in states)  # s_5 is not among the outputs

        # the check can fail: the amended rollout carries V(s_5) and the same call runs
        env.reset(seed=0)
        torch.manual_seed(5)
        amended = _collect_experience_returning_next_value()()
        assert amended[1:5] == rollout[1:5] and all(np.array_equal(a, b) for a, b in zip(amended[0], states))
        next_value = amended[5]
        assert next_value == net.get_value(env.last_obs) != 0.0
        notes = compute_advantages(*amended[2:])[0]  # runs, but the precedence slip makes the last target V(s_5)
        fixed = _compute_advantages_fixed_precedence(*amended[2:])
        reference = _reference(rewards, values, next_value, terminated=False)
        assert np.allclose(fixed, reference, rtol=0, atol=1e-12)
        # ... off by exactly (1 - gamma) V(s_5) - r_4 (err-gae-code-precedence), here about -1
        assert notes[-1] - reference[-1] == pytest.approx((1 - 0.99) * next_value - rewards[-1], abs=1e-12)
        assert abs(notes[-1] - reference[-1]) > 0.5
    finally:
        cleanup()


@pytest.mark.claim("err-collect-next-value", how="reproduction")
def test_terminated_rollout_loses_its_last_reward():
    """After a termination (next_value = 0) the notes' last advantage is -V(s_{T-1}), not r_{T-1} - V(s_{T-1}).

    collect_experience stops at the first done, so a rollout that ends with the pole falling needs next_value = 0.
    """
    env = _OldGymAPI(gym.make("CartPole-v1"))
    env.reset(seed=0)
    net = _TinyActorCritic(0)
    cleanup = _notes_globals(env=env, max_steps=500, policy_network=net, value_network=net)
    try:
        states, actions, rewards, values, dones = collect_experience()
    finally:
        cleanup()
    assert dones[-1] and not any(dones[:-1]) and len(states) < 500  # one episode, ended by the pole falling
    notes, _ = compute_advantages(rewards, values, dones, next_value=0.0)
    reference = _reference(rewards, values, 0.0, terminated=True)
    assert notes[-1] == -values[-1]  # delta_{T-1} = next_value - V(s_{T-1}) = -V(s_{T-1})
    assert reference[-1] == pytest.approx(rewards[-1] - values[-1], abs=1e-12)  # the correct r_{T-1} - V(s_{T-1})
    assert np.allclose(_compute_advantages_fixed_precedence(rewards, values, dones, 0.0), reference, rtol=0, atol=1e-12)
