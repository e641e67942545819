"""pgbook — the package behind *Policy Gradients, Verified*.

One module per topic, each naming the chapter and equations it implements:

* :mod:`pgbook.mdp` — finite MDPs, exact V, Q, A, J, visitation; trajectory enumeration.
* :mod:`pgbook.policies` — the tabular softmax policy and its score.
* :mod:`pgbook.gradients` — the exact policy gradient, finite differences, autograd, REINFORCE.
* :mod:`pgbook.montecarlo` — Monte Carlo means with confidence intervals.
"""

from .mdp import MDP, random_mdp
from .gradients import policy_gradient

__all__ = ["MDP", "random_mdp", "policy_gradient"]
__version__ = "0.1.0"
