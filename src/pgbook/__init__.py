"""pgbook — the package behind *Policy Gradients, Verified*.

One module per topic, each naming the chapter and equations it implements:

* :mod:`pgbook.mdp` — finite MDPs (dense or sparse P), exact V, Q, A, J, visitation; trajectory enumeration (ch. 1–2).
* :mod:`pgbook.gridworld` — gridworld MDPs with walls, goals and slip, dense or sparse (ch. 2–9 examples).
* :mod:`pgbook.policies` — the tabular softmax policy and its score (ch. 1–2).
* :mod:`pgbook.gradients` — the exact policy gradient, finite differences, autograd, REINFORCE (ch. 2).
* :mod:`pgbook.symbolic` — the sympy derivation of the policy gradient theorem (ch. 2).
* :mod:`pgbook.montecarlo` — Monte Carlo means with confidence intervals (all chapters).
* :mod:`pgbook.score_function` — the score-function identity, symbolically and sampled (ch. 3).
* :mod:`pgbook.baselines` — reward-to-go, baselines and the optimal baseline, exactly (ch. 4).
* :mod:`pgbook.importance` — importance sampling and the importance-weighted gradient (ch. 5).
* :mod:`pgbook.surrogate` — the L^CPI surrogate, the performance difference lemma, TRPO's bound (ch. 6).
* :mod:`pgbook.clipping` — the clipped objective and what it does and does not do (ch. 7).
* :mod:`pgbook.gae` — generalized advantage estimation with termination and truncation (ch. 8).
* :mod:`pgbook.a2c`, :mod:`pgbook.ppo`, :mod:`pgbook.train` — the A2C and PPO agents on gymnasium
  and their command line (ch. 9–10; PPO on Box action spaces, ch. 11), built from
  :mod:`pgbook.agent_config` (hyper-parameters, seeding), :mod:`pgbook.envs` (checks, vector env,
  normalisation), :mod:`pgbook.heads` (categorical and diagonal Gaussian policies),
  :mod:`pgbook.networks` (actor-critic), :mod:`pgbook.rollout` (rollouts, GAE) and
  :mod:`pgbook.evaluation`; :mod:`pgbook.agents_common` re-exports them.
* :mod:`pgbook.gaussian`, :mod:`pgbook.lq`, :mod:`pgbook.normalization` — continuous-action policies
  (diagonal Gaussian, tanh-squashed, Beta), one-dimensional problems with closed-form J and gradient,
  reward scaling and gymnasium's normalisation wrappers, exactly (ch. 11).
* :mod:`pgbook.value_learning` — where the critic converges: the semi-gradient (TD) fixed point
  versus the minimiser of the notes' value loss differentiated as written (ch. 9, errata).
* :mod:`pgbook.results` — the committed benchmark results chapters 9–10 plot, shipped as package data.
* :mod:`pgbook.reproducibility` — what a run's exact digits depend on, and round-off printed as
  a checked bound (all chapters; ch. 9–10's remark on determinism).

The public API used across chapters: :func:`random_mdp`, :func:`policy_gradient`,
:func:`pgbook.baselines.optimal_baseline`, :func:`pgbook.surrogate.cpi_objective`,
:func:`pgbook.clipping.clip_objective`, :func:`pgbook.gae.gae`.
"""

from .gradients import policy_gradient
from .mdp import MDP, random_mdp

__all__ = ["MDP", "random_mdp", "policy_gradient"]
__version__ = "0.1.0"
