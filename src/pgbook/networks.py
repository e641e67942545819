"""The agents' networks: an MLP (tanh or ReLU) and the actor-critic pair, with its policy head.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions).

* :class:`MLP` — a multilayer perceptron (tanh, or ReLU as in RL Baselines3 Zoo's MuJoCo settings)
  with the orthogonal initialisation of the PPO paper's code (:cite:`huang2022`).
* :class:`ActorCritic` — the notes' two networks, the actor ``pi_theta(a|s)`` and the critic
  ``V_phi(s)`` (no shared layers), for a Discrete action space (categorical head: the actor
  outputs logits) or a Box one (diagonal Gaussian head: the actor outputs the mean ``mu_theta(s)``
  and the network holds a state-independent ``log sigma``); see :mod:`pgbook.heads`.
* :func:`clip_grad_norm` — the global gradient-norm clipping of both agents' updates.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.distributions import Distribution
from torch.nn import functional as F

from ._validate import check_bool as _check_bool
from ._validate import check_positive_int as _check_positive_int
from ._validate import check_real as _check_real_number
from .agent_config import _check_activation, _check_hidden, _check_int, _check_real
from .heads import CategoricalHead, DiagGaussianHead

__all__ = ["MLP", "ActorCritic", "clip_grad_norm"]


class MLP(nn.Module):
    """A multilayer perceptron; ``mlp[i]`` is its i-th :class:`torch.nn.Linear` layer.

    ``activation``: ``"tanh"`` (the PPO paper's) or ``"relu"``, after every hidden layer. The
    forward pass calls ``F.linear`` and ``torch.tanh`` (or ``torch.relu``) directly (the same
    computation as an ``nn.Sequential`` of ``Linear`` and activation modules, without the
    per-module call overhead, which dominates for batches of a few rows).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, out_gain: float, orthogonal: bool, activation: str = "tanh"):
        super().__init__()
        self.activation = _check_activation(activation)
        self._act = torch.tanh if self.activation == "tanh" else torch.relu
        n_in, n_out = _check_positive_int(n_in, "n_in"), _check_positive_int(n_out, "n_out")
        hidden = _check_hidden(hidden, allow_empty=True)
        out_gain = _check_real_number(out_gain, "out_gain")
        orthogonal = _check_bool(orthogonal, "orthogonal")
        sizes = [n_in, *hidden, n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if orthogonal:
            for i, lin in enumerate(self.layers):
                nn.init.orthogonal_(lin.weight, gain=out_gain if i == len(self.layers) - 1 else math.sqrt(2.0))
                nn.init.zeros_(lin.bias)

    def __getitem__(self, i: int) -> nn.Linear:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = self._act(F.linear(x, layer.weight, layer.bias))
        return F.linear(x, last.weight, last.bias)


class ActorCritic(nn.Module):
    """The notes' two networks: actor ``pi_theta(a|s)`` and critic ``V_phi(s)`` (no shared layers).

    ``theta`` = ``actor.parameters()`` (and ``log_std`` for a Box action space), ``phi`` =
    ``critic.parameters()``. Separate networks make the split of the total loss exact: the policy
    and entropy terms depend on ``theta`` only, the value term on ``phi`` only (chapter 9,
    ``eq-a2c-policy-grad-phi``).

    Give ``n_actions`` (a Discrete action space: :class:`~pgbook.heads.CategoricalHead`, the actor
    outputs ``n_actions`` logits) or ``action_dim`` (a Box: :class:`~pgbook.heads.DiagGaussianHead`,
    the actor outputs the mean and ``log_std``, a parameter of shape ``(action_dim,)`` that starts at
    ``log_std_init``, is the log standard deviation in every state).

    ``activation`` (``"tanh"`` or ``"relu"``) is that of both networks' hidden layers.
    Orthogonal initialisation (as in the PPO paper's code and :cite:`huang2022`): hidden layers
    with gain ``sqrt 2``, the policy head with gain 0.01 (initial policy almost uniform, or a mean
    near 0), the value head with gain 1; biases 0.
    """

    def __init__(
        self,
        obs_dim: int,
        n_actions: int | None = None,
        hidden: Sequence[int] = (64, 64),
        orthogonal_init: bool = True,
        *,
        action_dim: int | None = None,
        log_std_init: float = 0.0,
        activation: str = "tanh",
    ):
        super().__init__()
        _check_int(obs_dim, "obs_dim", 1)
        if (n_actions is None) == (action_dim is None):
            raise ValueError(
                f"give exactly one of n_actions (Discrete actions) and action_dim (Box actions), got "
                f"n_actions={n_actions!r}, action_dim={action_dim!r}"
            )
        if n_actions is not None:
            _check_int(n_actions, "n_actions", 2)
        else:
            _check_int(action_dim, "action_dim", 1)
        hidden = _check_hidden(hidden, allow_empty=True)
        _check_bool(orthogonal_init, "orthogonal_init")
        log_std_init = _check_real_number(log_std_init, "log_std_init", -20.0, 20.0)
        self.obs_dim = int(obs_dim)
        self.n_actions = None if n_actions is None else int(n_actions)
        self.action_dim = None if action_dim is None else int(action_dim)
        #: True for a Box action space (Gaussian policy).
        self.continuous = action_dim is not None
        n_out = self.action_dim if self.continuous else self.n_actions
        self.actor = MLP(obs_dim, hidden, n_out, 0.01, orthogonal_init, activation)
        self.critic = MLP(obs_dim, hidden, 1, 1.0, orthogonal_init, activation)
        if self.continuous:
            #: the policy head: how the actor's output becomes pi_theta(.|s).
            self.head = DiagGaussianHead(self.action_dim)
            #: log sigma, state-independent (PPO paper, CleanRL); created after the networks, so the
            #: networks' initial weights do not depend on the action space's type.
            self.log_std = nn.Parameter(torch.full((self.action_dim,), log_std_init))
        else:
            self.head = CategoricalHead(self.n_actions)

    def policy_params(self, obs: torch.Tensor) -> torch.Tensor:
        """The parameters of ``pi_theta(.|s)``: the logits (B, A), or ``[mu_theta(s), log sigma]`` (B, 2d)."""
        out = self.actor(obs)
        if self.continuous:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One combined forward pass: ``(policy parameters, V_phi(s) (B,))``."""
        return self.policy_params(obs), self.critic(obs).squeeze(-1)

    def distribution(self, params: torch.Tensor) -> Distribution:
        """``pi_theta(.|s)`` of policy parameters (the head's :meth:`~pgbook.heads.PolicyHead.distribution`)."""
        return self.head.distribution(params)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V_phi(s)``, shape (B,)."""
        return self.critic(obs).squeeze(-1)


def clip_grad_norm(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; return the norm.

    The same operations as :func:`torch.nn.utils.clip_grad_norm_` (per-tensor norms with one
    ``_foreach_norm``, their norm, the coefficient ``max_norm / (norm + 1e-6)`` clamped at 1, one
    ``_foreach_mul_``) and the same result bit for bit, without its per-call grouping of the
    tensors by device and dtype — a measurable share of a 256-sample update step.
    """
    _check_real(max_norm, "max_norm", 0.0, math.inf, lo_open=True, hi_open=True)
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    elif isinstance(parameters, (str, bytes)) or not hasattr(parameters, "__iter__"):
        raise ValueError(f"parameters must be a sequence of tensors, got {type(parameters).__name__}")
    grads = []
    for p in parameters:
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"parameters must be a sequence of tensors, got an item of type {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
