"""The mutation suite: plausible wrong formulas, each of which the tests of the claim it breaks must reject.

Usage: python tools/mutants.py [--list] [NAME ...]     (`make mutants`; default: every mutant)

A claim is verified only if a wrong version of it fails its tests. Each :class:`Mutant` below is
one such wrong version — a missing discount or ``1/(1-gamma)``, a transposed matrix, a flipped
sign, ``min`` for ``max``, a truncation treated as a termination, a 5% biased estimator — written
as a one-place edit of the package source. For each mutant this script copies ``src/pgbook`` to
a temporary directory, applies the edit (which must match exactly once: a mutant whose target
line has changed fails loudly instead of silently testing nothing), and runs the tests that carry
the mutant's claim marker (``pytest tests --claim LABEL``, see ``tests/conftest.py``) against the
mutated copy. The mutant is *caught* when those tests fail, and *survives* when they pass; a
survivor means the claim's tests cannot tell the wrong formula from the right one. Exit status 0
only if every mutant is caught. The verification ledger (``tools/ledger.py``) lists, for each
claim, the mutants its tests reject.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pgbook"


@dataclass(frozen=True)
class Mutant:
    name: str  #: short identifier
    claim: str  #: the label of the claim the wrong formula breaks
    path: str  #: file inside src/pgbook
    old: str  #: the exact source text replaced (must occur once)
    new: str  #: the wrong version
    what: str  #: one line for the ledger


MUTANTS: list[Mutant] = [
    # ch01 — trajectories and the softmax score
    Mutant("score-sign", "eq-softmax-score", "policies.py",
           "np.eye(A)[None, :, :] - pi[:, None, :]", "np.eye(A)[None, :, :] + pi[:, None, :]",
           "softmax score e_a + pi instead of e_a - pi"),
    Mutant("traj-return-discount-shift", "eq-traj-prob", "mdp.py",
           "return self.rewards @ gamma ** np.arange(H)", "return self.rewards @ gamma ** np.arange(1, H + 1)",
           "trajectory return discounted from gamma^1 instead of gamma^0"),
    Mutant("traj-prob-squared", "eq-log-derivative-trick", "mdp.py",
           "prob = prob * mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(axis=1)",
           "prob = (prob * mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(axis=1)) ** 2",
           "trajectory probabilities squared"),
    # ch02 — the policy gradient theorem
    Mutant("pg-normalised-visitation", "eq-pg-visitation", "gradients.py",
           "return score_contraction(pi, eta, Q)",
           "return score_contraction(pi, (1 - mdp.gamma) * eta, Q)",
           "visitation d = (1-gamma) eta in place of eta (missing 1/(1-gamma))"),
    Mutant("pg-block-score-without-pi", "eq-pg-visitation", "gradients.py",
           "return w[:, None] * pi * (f - (pi * f).sum(axis=1, keepdims=True))",
           "return w[:, None] * pi * f",
           "block-structured score contraction without the -pi(b|s) of the softmax score: eta pi Q for eta pi (Q - V)"),
    Mutant("visitation-transposed", "eq-visitation", "mdp.py",
           "return solver.solve(mdp.p0, transpose=True)",
           "return solver.solve(mdp.p0, transpose=False)",
           "eta from (I - gamma P_pi) eta = p0: the transition matrix not transposed (dense and sparse solves)"),
    Mutant("reinforce-5pct-bias", "thm-policy-gradient", "gradients.py",
           "return policies.weighted_score_sum(theta, states, actions, weights)",
           "return policies.weighted_score_sum(theta, states, actions, 1.05 * weights)",
           "REINFORCE estimator biased by +5%"),
    Mutant("full-return-15pct-low", "eq-pg-log-trick", "gradients.py",
           "weights = np.repeat((rewards @ discounts)[:, None], H, axis=1)",
           "weights = 0.85 * np.repeat((rewards @ discounts)[:, None], H, axis=1)",
           "full-return REINFORCE estimator scaled by 0.85"),
    Mutant("tail-bound-one-power", "eq-pg-tail-bound", "gradients.py",
           "(np.sqrt(H) / (1.0 - gamma) + 1.0 / (1.0 - gamma) ** 2)",
           "(np.sqrt(H) / (1.0 - gamma) + 1.0 / (1.0 - gamma))",
           "gradient tail bound with one power of 1/(1-gamma) missing"),
    Mutant("tail-bound-no-sqrt-h", "rem-pg-tail-factor", "gradients.py",
           "(np.sqrt(H) / (1.0 - gamma) + 1.0 / (1.0 - gamma) ** 2)",
           "(1.0 / (1.0 - gamma) ** 2)",
           "gradient tail bound without its sqrt(H)/(1-gamma) term (the O(gamma^H) bound the notes imply)"),
    Mutant("finite-horizon-gradient-q-of-step-0", "lem-pg-finite-horizon", "gradients.py",
           "grad += mdp.gamma**t * score_contraction(pi, marginal, Q[t])",
           "grad += mdp.gamma**t * score_contraction(pi, marginal, Q[0])",
           "finite-horizon gradient with the H-step Q at every step (Q_0 for Q_t)"),
    # ch03 — the score-function identity
    Mutant("score-times-minus-3", "eq-score-other-sampling", "score_function.py",
           'return np.einsum("sa,sa,saxy->sxy", q, w, policies.score(theta))',
           'return np.einsum("sa,sa,saxy->sxy", q, -3.0 * w, policies.score(theta))',
           "expected score with the score replaced by -3 x score"),
    Mutant("score-scaled-zero-mean", "thm-score-zero-mean", "policies.py",
           "np.eye(A)[None, :, :] - pi[:, None, :]", "-3.0 * (np.eye(A)[None, :, :] - pi[:, None, :])",
           "tabular score replaced by -3 x score (its mean is zero too)"),
    Mutant("score-scaled-baseline", "eq-score-baseline", "policies.py",
           "np.eye(A)[None, :, :] - pi[:, None, :]", "-3.0 * (np.eye(A)[None, :, :] - pi[:, None, :])",
           "tabular score replaced by -3 x score, under a state baseline"),
    # ch04 — baselines
    Mutant("optimal-baseline-plus-one", "thm-optimal-baseline", "baselines.py",
           "w = pi * score_sq_norms(theta)", "w = pi * (score_sq_norms(theta) + 1.0)",
           "optimal baseline weighted by ||score||^2 + 1 instead of ||score||^2"),
    Mutant("coordinate-baseline-abs-score", "prop-coordinate-baseline", "baselines.py",
           "w = pi[:, :, None] * _state_scores(theta) ** 2  # (S, A, i)",
           "w = pi[:, :, None] * np.abs(_state_scores(theta))  # (S, A, i)",
           "per-coordinate baseline weighted by |d_i log pi| instead of its square"),
    Mutant("sampled-baseline-future-return", "prop-sampled-baseline", "baselines.py",
           "G = reward_to_go(traj.rewards, mdp.gamma)[:, t]",
           "G = reward_to_go(traj.rewards, mdp.gamma)[:, t] * mdp.gamma ** t",
           "the sampled return discounted from time 0 (gamma^t G_t) in the one-step estimator at step t"),
    # ch05 — importance sampling
    Mutant("is-variance-centred-at-ep", "eq-is-variance", "importance.py",
           "mean = float(np.sum(q[pos] * wf))", "mean = float(np.sum(p * f))",
           "IS variance centred at E_p f, summing over q > 0 only"),
    Mutant("is-pg-normalised-visitation", "thm-is-pg-at-old", "importance.py",
           "        eta_old = _mdp.discounted_visits(mdp, pi_old)",
           "        eta_old = (1 - mdp.gamma) * _mdp.discounted_visits(mdp, pi_old)",
           "IS gradient weighted by (1-gamma) eta_old (the normalised visitation)"),
    Mutant("is-pg-naive-weight", "eq-is-pg-notes", "importance.py",
           "weight = np.exp(log_pi_old + log_ratio)", "weight = pi_old * np.exp(log_ratio)",
           "pi_old * r(theta) taken literally: 0 * inf = nan for a near-deterministic pi_old"),
    # ch06 — the CPI surrogate and TRPO's bound
    Mutant("trpo-coefficient-one-power", "thm-cpi-trpo-bound", "surrogate.py",
           "return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2",
           "return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma)",
           "TRPO's penalty coefficient with one power of 1/(1-gamma) missing"),
    Mutant("trpo-coefficient-twentieth", "thm-cpi-trpo-bound", "surrogate.py",
           "return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2",
           "return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2 / 20",
           "TRPO's penalty coefficient 20 times too small"),
    Mutant("pdl-old-visitation", "eq-cpi-pdl", "surrogate.py",
           "    eta_new = _mdp.discounted_visits(mdp, policies.probs(theta))\n    return surrogate_objective(mdp, theta, theta_old, eta_new)",
           "    eta_new = _mdp.discounted_visits(mdp, policies.probs(theta_old))\n    return surrogate_objective(mdp, theta, theta_old, eta_new)",
           "performance difference lemma with the old policy's visitation (that is L^CPI)"),
    # ch07 — clipping
    Mutant("clip-max", "eq-clip-cases", "clipping.py",
           "return np.minimum(ratio * advantages, np.clip(ratio, 1.0 - eps, 1.0 + eps) * advantages)",
           "return np.maximum(ratio * advantages, np.clip(ratio, 1.0 - eps, 1.0 + eps) * advantages)",
           "clipped objective with max in place of min"),
    Mutant("clip-upper-only", "eq-clip-cases", "clipping.py",
           "return np.minimum(ratio * advantages, np.clip(ratio, 1.0 - eps, 1.0 + eps) * advantages)",
           "return np.minimum(ratio * advantages, np.minimum(ratio, 1.0 + eps) * advantages)",
           "clipped objective that clips the ratio only from above"),
    Mutant("clip-sup-worst-first", "prop-clip-ratio-escape", "clipping.py",
           "for value in sorted(set(A[good].tolist()), reverse=True):",
           "for value in sorted(set(A[good].tolist())):",
           "supremum of the clipped objective filled worst advantage first"),
    Mutant("kl-penalty-floor-half", "thm-clip-avg-divergence", "surrogate.py",
           "return J_old - (g * cpo_epsilon(mdp, theta, theta_old)) ** 2 / (2.0 * beta * (1.0 - g) ** 3)",
           "return J_old - (g * cpo_epsilon(mdp, theta, theta_old)) ** 2 / (4.0 * beta * (1.0 - g) ** 3)",
           "KL-penalty floor half as deep (4 beta for 2 beta)"),
    Mutant("clip-terms-naive-product", "eq-clip-cases", "clipping.py",
           "torch.exp(log_old + torch.clamp(log_ratio, lo, hi)) * A)",
           "pi_old * torch.clamp(torch.exp(log_ratio), 1.0 - eps, 1.0 + eps) * A)",
           "pi_old * clip(r) * A taken literally: 0 * inf = nan for a near-deterministic pi_old"),
    Mutant("softmax-kl-reversed", "eq-clip-klpen", "surrogate.py",
           "return np.maximum((np.exp(lp_old) * (lp_old - lp)).sum(axis=1), 0.0)",
           "return np.maximum((np.exp(lp) * (lp - lp_old)).sum(axis=1), 0.0)",
           "KL(pi_theta || pi_old) for KL(pi_old || pi_theta)"),
    # ch08 — GAE
    Mutant("td-bootstrap-after-termination", "eq-gae-truncation", "gae.py",
           'return floats["rewards"] + gamma * not_term * floats["next_values"] - floats["values"]',
           'return floats["rewards"] + gamma * floats["next_values"] - floats["values"]',
           "TD error bootstraps after a termination (termination treated as truncation)"),
    Mutant("gae-no-cut-at-episode-end", "eq-gae-recursion", "gae.py",
           "advantages = _backward(deltas, (gamma * lam) * (~end).astype(np.float64))",
           "advantages = _backward(deltas, (gamma * lam) * np.ones_like(deltas))",
           "GAE recursion runs across episode ends"),
    Mutant("gae-moments-no-gamma", "eq-gae-mean", "gae.py",
           "c = mdp.gamma * lam", "c = lam",
           "tabular GAE mean with decay lambda instead of gamma lambda"),
    # ch09 — A2C
    Mutant("a2c-value-loss-abs", "eq-a2c-value-loss", "a2c.py",
           "value = (returns.detach() - values).pow(2).mean()",
           "value = (returns.detach() - values).abs().mean()",
           "value loss |G - V| instead of (G - V)^2"),
    Mutant("a2c-entropy-sign", "eq-a2c-total-loss", "a2c.py",
           "total = policy + vf_coef * value - ent_coef * entropy  # eq-a2c-total-loss",
           "total = policy + vf_coef * value + ent_coef * entropy  # eq-a2c-total-loss",
           "entropy bonus with the wrong sign (the entropy is minimised)"),
    Mutant("agent-direction-discounted-visits", "eq-agent-direction", "episodic.py",
           "return _score_sum(theta, episode_visits(mdp, pi), _mdp.advantage_values(mdp, pi))",
           "return _score_sum(theta, _mdp.discounted_visits(mdp, pi), _mdp.advantage_values(mdp, pi))",
           "the agents' direction with the discounted visitation eta_gamma in place of eta_1"),
    Mutant("agent-direction-undiscounted-advantage", "prop-agent-direction", "episodic.py",
           "return _score_sum(theta, episode_visits(mdp, pi), _mdp.advantage_values(mdp, pi))",
           "return _score_sum(theta, episode_visits(mdp, pi), _mdp.advantage_values(mdp.with_gamma(1.0), pi))",
           "the agents' direction with the undiscounted advantage A_1 (as if the agents followed grad J_1)"),
    Mutant("episodic-gradient-discounted-advantage", "eq-episodic-pg", "episodic.py",
           "return _score_sum(theta, _mdp.discounted_visits(m1, pi), _mdp.advantage_values(m1, pi))",
           "return _score_sum(theta, _mdp.discounted_visits(m1, pi), _mdp.advantage_values(mdp, pi))",
           "undiscounted gradient with the discounted advantages A_gamma"),
    # ch10 — PPO
    Mutant("ppo-clip-max", "eq-ppo-loss", "ppo.py",
           "return torch.min(ratio * advantages, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)",
           "return torch.max(ratio * advantages, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)",
           "PPO's clipped surrogate with max in place of min"),
    Mutant("ppo-approx-kl-sign", "eq-ppo-approx-kl", "ppo.py",
           "approx_kl = ((ratio - 1.0) - log_ratio).mean(-1)", "approx_kl = ((ratio - 1.0) + log_ratio).mean(-1)",
           "approx-KL estimator (r - 1) + log r"),
    # errata — the critic's loss as written (err-a2c-value-target, src/pgbook/value_learning.py)
    Mutant("vl-residual-no-variance", "err-a2c-value-target", "value_learning.py",
           "return _solve(Phi.T @ (B.T @ Dw @ B + cov_xx) @ Phi, Phi.T @ (B.T @ Dw @ r_n - cov_xg), Phi)",
           "return _solve(Phi.T @ (B.T @ Dw @ B) @ Phi, Phi.T @ (B.T @ Dw @ r_n), Phi)",
           "notes' loss minimiser without the conditional-variance terms (collapses to the MSBE minimiser, V^pi)"),
    Mutant("vl-residual-no-next-value-variance", "err-a2c-value-target", "value_learning.py",
           "cov_xx = gn**2 * (np.diag(d @ M) - M.T @ Dw @ M)",
           "cov_xx = gn**2 * (M.T @ Dw @ M - M.T @ Dw @ M)",
           "E[e_{s'} e_{s'}^T] replaced by E[e_{s'}] E[e_{s'}]^T: the variance of V(s_{t+n}) dropped"),
    Mutant("vl-semi-missing-gamma-n", "err-a2c-value-target", "value_learning.py",
           "lhs = PhiTD @ (np.eye(mdp.n_states) - g_n * M) @ Phi",
           "lhs = PhiTD @ (np.eye(mdp.n_states) - mdp.gamma * M) @ Phi",
           "n-step TD fixed point with gamma in place of gamma^n"),
    Mutant("vl-transposed-chain", "err-a2c-value-target", "value_learning.py",
           "P_pi = _mdp.policy_transition_matrix(mdp, pi)\n    r_pi = ",
           "P_pi = _mdp.policy_transition_matrix(mdp, pi).T\n    r_pi = ",
           "the state chain P_pi transposed"),
    Mutant("vl-td-unweighted-projection", "err-a2c-value-target", "value_learning.py",
           "PhiTD = Phi.T * d  # Phi^T D", "PhiTD = Phi.T  # Phi^T D",
           "TD fixed point with the unweighted projection Phi^T (no D): invisible tabular, wrong with features"),
    Mutant("vl-reward-moment-shift", "err-a2c-value-target", "value_learning.py",
           "np.linalg.matrix_power(P_pi, n - k - 1)", "np.linalg.matrix_power(P_pi, n - k)",
           "reward/next-state moment C with one transition too many"),
    # errata — the notes' formulas (tests/test_errata_notes.py)
    Mutant("a2c-total-drops-c2", "err-a2c-actor-update", "a2c.py",
           "total = policy + vf_coef * value - ent_coef * entropy  # eq-a2c-total-loss",
           "total = policy + vf_coef * value - entropy  # eq-a2c-total-loss",
           "A2C total loss whose entropy term has weight 1 instead of c2 (the notes' actor update, L162)"),
    Mutant("finite-horizon-values-stationary", "err-finite-horizon-value", "baselines.py",
           "Q[t] = mdp.R + mdp.gamma * _mdp.next_state_expectation(mdp, v_next)  # dense or sparse P",
           "Q[t] = _mdp.action_values(mdp, pi)  # dense or sparse P",
           "finite-horizon V_t, Q_t replaced by the stationary V^pi, Q^pi (the notes' V^pi(s_t) with a fixed T)"),
    # ch11 — continuous actions
    Mutant("gauss-logpdf-no-half", "eq-cont-gauss-logpdf", "gaussian.py", "return np.sum(-0.5 * z * z - ls - _HALF_LOG_2PI, axis=-1)", "return np.sum(-z * z - ls - _HALF_LOG_2PI, axis=-1)", "Gaussian log-density without the 1/2 in front of z^2"),
    Mutant("gauss-score-sigma-not-sigma2", "eq-cont-gauss-score", "gaussian.py", "d_mean = z * np.exp(-ls)", "d_mean = z", "score in the mean (a - mu)/sigma instead of (a - mu)/sigma^2"),
    Mutant("gauss-score-logstd-no-minus-one", "eq-cont-gauss-score", "gaussian.py", "d_log_std = z * z - 1.0", "d_log_std = z * z", "score in log sigma z^2 instead of z^2 - 1"),
    Mutant("gauss-entropy-no-half", "eq-cont-gauss-entropy", "gaussian.py", "np.sum(ls + 0.5 + _HALF_LOG_2PI, axis=-1)", "np.sum(ls + _HALF_LOG_2PI, axis=-1)", "Gaussian entropy missing the 1/2"),
    Mutant("agent-gauss-logpdf-no-half", "eq-cont-gauss-logpdf", "heads.py", "return -0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI", "return -z.pow(2) - self.log_std - _HALF_LOG_2PI", "the agent's Gaussian log-density without the 1/2 in front of z^2"),
    Mutant("agent-gauss-z-times-sigma", "eq-cont-gauss-score", "heads.py", "z = (value - self.loc) * torch.exp(-self.log_std)", "z = (value - self.loc) * torch.exp(self.log_std)", "the agent's standardised action (a - mu) sigma instead of (a - mu) / sigma"),
    Mutant("agent-gauss-entropy-no-half", "eq-cont-gauss-entropy", "heads.py", "return self.log_std + (0.5 + _HALF_LOG_2PI)", "return self.log_std + _HALF_LOG_2PI", "the agent's Gaussian entropy missing the 1/2"),
    Mutant("tanh-no-logdet", "eq-cont-tanh-logpdf", "gaussian.py", "return log_n - np.sum(tanh_log_det_jacobian(u_b), axis=-1)", "return log_n", "squashed log-density without the log-det-Jacobian"),
    Mutant("tanh-logdet-softplus-sign", "eq-cont-tanh-logpdf", "gaussian.py", "return 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))", "return 2.0 * (math.log(2.0) - u - np.logaddexp(0.0, 2.0 * u))", "log(1 - tanh^2) with softplus(2u) for softplus(-2u)"),
    Mutant("tanh-entropy-no-jacobian", "eq-cont-tanh-entropy", "gaussian.py", "return np.sum(ls + 0.5 + _HALF_LOG_2PI + jac @ w, axis=-1)", "return np.sum(ls + 0.5 + _HALF_LOG_2PI, axis=-1)", "entropy of tanh(u) taken as the Gaussian entropy of u"),
    Mutant("beta-score-no-psi-sum", "eq-cont-beta-logpdf", "gaussian.py", "return log_x - special.digamma(alpha) + psi_sum,", "return log_x - special.digamma(alpha),", "Beta score in alpha without + psi(alpha + beta)"),
    Mutant("beta-logpdf-no-width", "eq-cont-beta-logpdf", "gaussian.py", "- special.betaln(alpha, beta) - math.log(width)", "- special.betaln(alpha, beta)", "Beta policy on [low, high] without -log(high - low)"),
    Mutant("bandit-grad-sigma-not-sigma2", "eq-cont-lq-objective", "lq.py", "-2.0 * np.exp(2.0 * np.float64(log_std))])", "-2.0 * np.exp(np.float64(log_std))])", "bandit gradient in log sigma -2 sigma for -2 sigma^2"),
    Mutant("optimal-baseline-is-J", "prop-cont-optimal-baseline", "lq.py", "return float(-(d * d) - tail)", "return float(-(d * d) - s2)", "optimal baseline taken as J = E[r]"),
    Mutant("optimal-baseline-denominator", "prop-cont-optimal-baseline", "lq.py", "tail = s2 * (3.0 + 10.0 * s2) / (1.0 + 2.0 * s2)", "tail = s2 * (3.0 + 10.0 * s2) / (1.0 + s2)", "optimal baseline with 1 + sigma^2 for 1 + 2 sigma^2"),
    Mutant("moments-score-sigma", "prop-cont-optimal-baseline", "lq.py", "np.stack([u / sigma2, u * u / sigma2 - 1.0], axis=-1)", "np.stack([u / math.sqrt(sigma2), u * u / sigma2 - 1.0], axis=-1)", "estimator moments with the score (a - mu)/sigma"),
    Mutant("contextual-no-l1-squared", "eq-cont-contextual", "lq.py", "np.exp(2.0 * l0 + 2.0 * l1 * l1))", "np.exp(2.0 * l0))", "contextual J without E[exp(2 l1 s)] = exp(2 l1^2)"),
    Mutant("contextual-grad-l1-factor", "eq-cont-contextual", "lq.py", "-4.0 * l1 * v", "-2.0 * l1 * v", "contextual gradient in l1 with -2 l1 for -4 l1"),
    Mutant("clip-grad-no-m1", "prop-cont-clip-unbiased", "lq.py", "-2.0 * (sigma * m1 + d * p_in)", "-2.0 * (d * p_in)", "clipped gradient in the mean without the truncated first moment"),
    Mutant("clip-m2-sign", "eq-cont-clip-objective", "lq.py", "m2 = p_in - (beta * _phi(beta) - alpha * _phi(alpha))", "m2 = p_in + (beta * _phi(beta) - alpha * _phi(alpha))", "truncated second moment with a flipped boundary term"),
    Mutant("clip-grad-dsigma-not-dlogsigma", "eq-cont-clip-objective", "lq.py", "-2.0 * sigma * (sigma * m2 + d * m1)", "-2.0 * (sigma * m2 + d * m1)", "d/d sigma reported as d/d log sigma"),
    Mutant("clip-objective-no-high-mass", "rem-cont-clip-drift", "lq.py", "return float(-p_low * (low - a_star) ** 2 - p_high * (high - a_star) ** 2 - inside)", "return float(-p_low * (low - a_star) ** 2 - inside)", "clipped objective dropping the mass clipped to high"),
    Mutant("scale-rewards-shift", "prop-cont-reward-scale", "normalization.py", "R = mdp.R * c", "R = mdp.R * c + (c - 1.0)", "reward scaling that also shifts the rewards"),
    Mutant("value-iteration-gamma-squared", "prop-cont-reward-scale", "normalization.py", "Q_new = mdp.R + mdp.gamma * nxt", "Q_new = mdp.R + mdp.gamma**2 * nxt", "value iteration with gamma^2"),
    Mutant("normalize-var-not-std", "rem-cont-normalize-reward", "normalization.py", "scales[t] = 1.0 / np.sqrt(float(wrapped.return_rms.var) + epsilon)", "scales[t] = 1.0 / (float(wrapped.return_rms.var) + epsilon)", "NormalizeReward's factor read as 1/var"),
    Mutant("tanh-jacobian-at-mean", "prop-cont-tanh-jacobian", "gaussian.py", "return log_n - np.sum(tanh_log_det_jacobian(u_b), axis=-1)", "return log_n - np.sum(tanh_log_det_jacobian(np.broadcast_to(as_float_array(mean, 'mean'), z.shape)), axis=-1)", "squashed log-density with the Jacobian evaluated at the mean instead of u"),
    Mutant("normalize-terminated-previous-step", "rem-cont-normalize-reward", "normalization.py", "float(self._rew[t]), bool(self._term[t]), bool(self._trunc[t]), {}", "float(self._rew[t]), bool(t > 0 and self._term[t - 1]), bool(self._trunc[t]), {}", "NormalizeReward's accumulator reset with terminated_{t-1} instead of terminated_t"),
    Mutant("normalize-truncation-as-termination", "rem-cont-normalize-reward", "normalization.py", "float(self._rew[t]), bool(self._term[t]), bool(self._trunc[t]), {}", "float(self._rew[t]), bool(self._term[t] or self._trunc[t]), False, {}", "a truncated episode end treated as a termination"),
    Mutant("clip-bias-no-mass-derivative", "prop-cont-clip-unbiased", "lq.py", "total += r_edge * (p_edge * score - grad_p)", "total += r_edge * p_edge * score", "clipped-score bias without the derivative of the clipped mass"),
]


def _mutated_copy(mutant: Mutant, where: Path) -> Path:
    target = where / "pgbook"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    path = target / mutant.path
    source = path.read_text()
    count = source.count(mutant.old)
    if count != 1:
        raise RuntimeError(f"mutant {mutant.name}: the text to replace occurs {count} times in src/pgbook/{mutant.path}")
    path.write_text(source.replace(mutant.old, mutant.new))
    return where


def run(mutant: Mutant) -> tuple[Mutant, str, float, str]:
    """Returns (mutant, 'caught' | 'SURVIVED' | 'ERROR', seconds, last lines of pytest's output)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        try:
            _mutated_copy(mutant, Path(tmp))
        except RuntimeError as exc:
            return mutant, "ERROR", time.perf_counter() - start, str(exc)
        env = dict(os.environ, PYTHONPATH=tmp + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "pytest", "tests", "-q", "-x", "-p", "no:cacheprovider", "--claim", mutant.claim,
               "--mutant-check", mutant.path]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join(proc.stdout.strip().splitlines()[-3:])
    status = {0: "SURVIVED", 1: "caught"}.get(proc.returncode, "ERROR")
    return mutant, status, time.perf_counter() - start, tail


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default 2)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {sorted(unknown)}")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in chosen:
            print(f"{m.name:34s} {m.claim:28s} {m.what}")
        return 0
    start = time.perf_counter()
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for mutant, status, seconds, tail in pool.map(run, chosen):
            print(f"{status:8s} {mutant.name:34s} claim {mutant.claim:28s} {seconds:5.1f} s  ({mutant.what})", flush=True)
            if status != "caught":
                failed += 1
                print("         " + tail.replace("\n", "\n         "))
    print(f"mutants: {len(chosen) - failed} of {len(chosen)} caught in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
