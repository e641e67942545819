"""The policy's action distributions ("heads"): categorical and diagonal Gaussian, behind one interface.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) use a categorical policy over a
Discrete action space; chapter 11 (continuous actions) a diagonal Gaussian over a Box. The actor
network outputs the *policy parameters* of a batch of states, one row per state; a head turns them
into a :class:`torch.distributions.Distribution` and says how to read it:

* :class:`PolicyHead` — the interface: ``distribution(params)``, ``log_prob(dist, actions)`` and
  ``entropy(dist)`` (one number per state, summed over the action's dimensions), ``sample(params)``,
  one action per row drawn as ``distribution(params).sample()`` draws it (the rollout's call), and
  ``mode(params)``, the deterministic action of evaluation.
* :class:`CategoricalHead` — ``params`` are the logits ``z`` (B, A):
  ``pi_theta(a|s) = softmax(z)_a`` (a :class:`NormalizedCategorical`); ``mode`` is ``argmax_a z_a``.
* :class:`DiagGaussianHead` — ``params`` are ``[mu_theta(s), log sigma]`` (B, 2d): the mean from
  the actor network and a state-independent log standard deviation (a learnt parameter, initial
  value 0: the PPO paper's and CleanRL's choice), and
  ``pi_theta(a|s) = prod_i N(a_i; mu_i(s), sigma_i^2)`` (a :class:`LogStdNormal`, the
  :class:`torch.distributions.Normal` that keeps ``log sigma``), so

  ``log pi_theta(a|s) = sum_i [ -(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log(2 pi) / 2 ]``
  and ``H = sum_i [ log sigma_i + (1 + log 2 pi) / 2 ]``;

  ``mode`` is the mean ``mu_theta(s)``.

The score ``grad log pi_theta(a|s)`` of the Gaussian is what chapter 3's score-function identity
differentiates in the continuous case; the ratio ``r_t`` of chapter 7 is the ratio of densities.
"""

from __future__ import annotations

import math
import numbers
from typing import Protocol, runtime_checkable

import torch
from torch.distributions import Categorical, Distribution, Normal, constraints

from ._validate import check_tensor as _check_tensor

__all__ = ["PolicyHead", "NormalizedCategorical", "LogStdNormal", "CategoricalHead", "DiagGaussianHead"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@runtime_checkable
class PolicyHead(Protocol):
    """How policy parameters (the actor's output, one row per state) become ``pi_theta(.|s)``."""

    def distribution(self, params: torch.Tensor) -> Distribution:
        """``pi_theta(.|s)`` for each row of ``params``."""

    def log_prob(self, dist: Distribution, actions: torch.Tensor) -> torch.Tensor:
        """``log pi_theta(a|s)`` per state, shape (B,) (summed over an action vector's entries)."""

    def entropy(self, dist: Distribution) -> torch.Tensor:
        """``H(pi_theta(.|s))`` in nats per state, shape (B,)."""

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """One action per row, ``a ~ pi_theta(.|s)``: the values of ``distribution(params).sample()``."""

    def mode(self, params: torch.Tensor) -> torch.Tensor:
        """The deterministic action of each row: the most probable action, or the mean."""


class NormalizedCategorical(Categorical):
    """A :class:`torch.distributions.Categorical` built from logits with one ``log_softmax``.

    ``Categorical(logits=z)`` normalises with ``z - z.logsumexp(-1)``, a composite of about six
    kernels; ``log_softmax`` is one fused kernel with the same result (to rounding). Everything else
    — ``sample``, ``log_prob``, ``entropy``, ``probs`` — is the parent class's. On CartPole the
    parent's constructor costs about a tenth of a PPO run on this machine, because a distribution is
    built at every environment step and every gradient step. torch's argument validation is off;
    the constructor checks ``logits`` (a finite floating-point tensor with at least one dimension and
    at least one event: ``ValueError`` otherwise). The agents build their distributions through
    :meth:`CategoricalHead.distribution`, which skips that check (its logits come from the network).
    """

    def __init__(self, logits: torch.Tensor):
        _check_tensor(logits, "logits")
        if logits.ndim < 1 or logits.shape[-1] < 1:
            raise ValueError(f"logits must have at least one dimension and one event, got shape {tuple(logits.shape)}")
        self._set_logits(logits)

    def _set_logits(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)
        self._param = self.logits
        self._num_events = self._param.size(-1)
        Distribution.__init__(self, self._param.size()[:-1], validate_args=False)

    @classmethod
    def _unchecked(cls, logits: torch.Tensor) -> "NormalizedCategorical":
        """The distribution of ``logits`` without the argument check (the agents' per-step path)."""
        dist = cls.__new__(cls)
        dist._set_logits(logits)
        return dist


class LogStdNormal(Normal):
    """A :class:`torch.distributions.Normal` parametrised by its mean and its *log* standard deviation.

    The Gaussian policy's network outputs ``log sigma`` (:class:`DiagGaussianHead`), and the
    log-density and the entropy are simplest in it (chapter 11, ``eq-cont-gauss-logpdf`` and
    ``eq-cont-gauss-entropy``, per coordinate):

    ``log N(a; mu, sigma^2) = -z^2 / 2 - log sigma - log(2 pi) / 2`` with ``z = (a - mu) exp(-log sigma)``,
    ``H = log sigma + (1 + log 2 pi) / 2``.

    ``Normal(mu, log_std.exp())`` computes the same from ``sigma``: its constructor broadcasts the
    two arguments, and ``log_prob`` squares ``sigma``, takes its logarithm (undoing the ``exp``) and
    divides. A PPO update evaluates the log-density of a minibatch at every gradient step; with the
    formulas above that step took about 4% less time at the zoo's HalfCheetah setting
    (``benchmarks/gaussian_log_prob.py``). Everything else -- ``sample``, ``rsample``, ``mean``,
    ``stddev`` (``scale = exp(log_std)``, a read-only property), ``cdf``, KL divergences -- is the
    parent class's; torch's argument validation is off. The constructor checks its arguments (finite
    floating-point tensors of one dtype and device, whose shapes broadcast: ``ValueError`` otherwise)
    and broadcasts them, as ``Normal`` does; :meth:`DiagGaussianHead.distribution` skips that. In
    float32, ``|log_std|`` must stay below about 88 (``exp(88.7)`` overflows); so must ``Normal``'s.
    """

    arg_constraints = {"loc": constraints.real, "log_std": constraints.real}

    def __init__(self, loc: torch.Tensor, log_std: torch.Tensor):
        _check_tensor(loc, "loc")
        _check_tensor(log_std, "log_std")
        if loc.dtype != log_std.dtype or loc.device != log_std.device:
            raise ValueError(f"loc and log_std must share a dtype and a device, got {loc.dtype} on {loc.device} and {log_std.dtype} on {log_std.device}")
        try:
            loc, log_std = torch.broadcast_tensors(loc, log_std)
        except RuntimeError:
            raise ValueError(f"loc and log_std must have shapes that broadcast, got {tuple(loc.shape)} and {tuple(log_std.shape)}") from None
        self._set(loc, log_std)

    def _set(self, loc: torch.Tensor, log_std: torch.Tensor) -> None:
        self.loc, self.log_std = loc, log_std
        Distribution.__init__(self, loc.size(), validate_args=False)

    @classmethod
    def _unchecked(cls, loc: torch.Tensor, log_std: torch.Tensor) -> "LogStdNormal":
        """The distribution without the argument check (the agents' per-step path)."""
        dist = cls.__new__(cls)
        dist._set(loc, log_std)
        return dist

    @property
    def scale(self) -> torch.Tensor:
        """The standard deviation ``sigma = exp(log_std)``."""
        return self.log_std.exp()

    def expand(self, batch_shape, _instance=None) -> "LogStdNormal":
        new = self._get_checked_instance(LogStdNormal, _instance)
        shape = torch.Size(batch_shape)
        new._set(self.loc.expand(shape), self.log_std.expand(shape))
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``-z^2 / 2 - log sigma - log(2 pi) / 2`` per coordinate, ``z = (value - mu) exp(-log sigma)``."""
        z = (value - self.loc) * torch.exp(-self.log_std)
        return -0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI

    def entropy(self) -> torch.Tensor:
        """``log sigma + (1 + log 2 pi) / 2`` per coordinate."""
        return self.log_std + (0.5 + _HALF_LOG_2PI)


def _check_count(n, name: str, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


class CategoricalHead:
    """The categorical policy of chapters 9–10: ``params`` are the logits, shape (B, n_actions).

    Stateless: its methods are static, so ``CategoricalHead.distribution(logits)`` is the policy of
    a batch of logits wherever they come from (the agents' loss functions take logits).
    """

    def __init__(self, n_actions: int):
        #: number of actions (>= 2); the actor's output width and the width of ``params``.
        self.n_actions = _check_count(n_actions, "n_actions", 2)
        self.n_params = self.n_actions

    @staticmethod
    def distribution(params: torch.Tensor) -> Categorical:
        """``pi_theta(.|s)`` as a :class:`NormalizedCategorical` of the logits.

        Called at every environment step and every gradient step, on the network's own logits: the
        argument check of :class:`NormalizedCategorical` is skipped."""
        return NormalizedCategorical._unchecked(params)

    @staticmethod
    def log_prob(dist: Categorical, actions: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(actions)

    @staticmethod
    def entropy(dist: Categorical) -> torch.Tensor:
        return dist.entropy()

    @staticmethod
    def sample(params: torch.Tensor) -> torch.Tensor:
        """``a ~ softmax(z)``, shape (B,): the distribution's own sampler."""
        return NormalizedCategorical._unchecked(params).sample()

    @staticmethod
    def mode(params: torch.Tensor) -> torch.Tensor:
        """``argmax_a pi_theta(a|s)`` (the greedy action), shape (B,)."""
        return params.argmax(dim=-1)


class DiagGaussianHead:
    """The diagonal Gaussian policy of chapter 11: ``params = [mu, log sigma]``, shape (B, 2 action_dim).

    ``log_prob`` and ``entropy`` sum the per-coordinate values of a :class:`LogStdNormal` (a
    :class:`torch.distributions.Normal`) over the action's ``action_dim`` entries (independent
    coordinates). Stateless like
    :class:`CategoricalHead`: the log standard deviation is a parameter of the network
    (:class:`pgbook.networks.ActorCritic`), which appends it to the actor's mean.
    """

    def __init__(self, action_dim: int):
        #: length d of the action vector; the actor's output width (the mean).
        self.action_dim = _check_count(action_dim, "action_dim", 1)
        self.n_params = 2 * self.action_dim

    @staticmethod
    def distribution(params: torch.Tensor) -> LogStdNormal:
        """``N(mu, diag(sigma^2))`` as a batch of independent normals (a :class:`LogStdNormal`, a
        :class:`~torch.distributions.Normal` that keeps ``log sigma``). Called at every gradient
        step on the network's own output: the argument check is skipped."""
        mean, log_std = params.chunk(2, dim=-1)
        return LogStdNormal._unchecked(mean, log_std)

    @staticmethod
    def log_prob(dist: Normal, actions: torch.Tensor) -> torch.Tensor:
        """``log pi_theta(a|s) = sum_i log N(a_i; mu_i, sigma_i^2)``, shape (B,)."""
        return dist.log_prob(actions).sum(-1)

    @staticmethod
    def entropy(dist: Normal) -> torch.Tensor:
        """``sum_i (log sigma_i + (1 + log 2 pi) / 2)``, shape (B,)."""
        return dist.entropy().sum(-1)

    @staticmethod
    def sample(params: torch.Tensor) -> torch.Tensor:
        """``a = mu + sigma * z`` with ``z ~ N(0, I)`` drawn by ``torch.randn_like``, shape (B, action_dim),
        without gradient (like ``Normal.sample``, unlike ``rsample``).

        The same numbers as ``distribution(params).sample()``: ``Normal.sample`` calls
        ``torch.normal(mu, sigma)``, which fills its output with ``N(0, 1)`` draws from the same
        generator and then multiplies by ``sigma`` and adds ``mu`` (tests/test_continuous_agent.py
        checks equality bit for bit). Written out because the rollout samples once per environment
        step, for a handful of states, where building the ``Normal`` (argument broadcasting, expanded
        views) costs more than the draw: for one state the ``Normal`` route took about 3 times as long
        (benchmarks/rollout_sampling.py)."""
        mean, log_std = params.chunk(2, dim=-1)
        return (mean + log_std.exp() * torch.randn_like(mean)).detach()  # a sample, not a reparametrisation

    @staticmethod
    def mode(params: torch.Tensor) -> torch.Tensor:
        """The mean action ``mu_theta(s)`` (deterministic evaluation), shape (B, action_dim)."""
        return params.chunk(2, dim=-1)[0]


def check_loss_batch(logits: torch.Tensor, actions: torch.Tensor, **tensors: torch.Tensor) -> None:
    """For the agents' public loss functions: finite floating-point ``logits`` and ``tensors`` (by
    name), and integer ``actions`` in ``[0, n_actions)``; ``ValueError`` naming the argument otherwise.
    (The training loops call the unchecked internals: their inputs come from the agent itself.)"""
    for name, x in (("logits", logits), *tensors.items()):
        if not x.is_floating_point() or not torch.isfinite(x.detach()).all():
            raise ValueError(f"{name} must be a finite floating-point tensor")
    if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor, got dtype {actions.dtype}")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= logits.shape[1]):
        raise ValueError(
            f"actions must lie in [0, {logits.shape[1]}), got values in [{int(actions.min())}, {int(actions.max())}]"
        )
