"""Zeroth-order search: the Sow–Ji–Liang decomposition with exact (unregularised) inner solves.

For every type profile the factual problem and (revenue) each counterfactual problem are solved
exactly. The total derivative of the per-profile objective ``f(theta, x*, x_{-1}, ..., x_{-n})``
is decomposed as in Curry et al. (2024), §4, "Zeroth-order methods" (after Sow, Ji and Liang,
2022):

    d f / d theta = ∂f/∂theta  +  sum_p J_p^T (∂f/∂x_p),

with the explicit partial and the vectors ``g_p = ∂f/∂x_p`` obtained by autograd with the
solutions held fixed, and each Jacobian–vector product estimated by Gaussian perturbations of the
parameters: ``J_p^T g_p ≈ (1/N) sum_k <(x_p(theta + mu u_k) - x_p(theta)) / mu, g_p> u_k`` with
fresh ``u_k ~ N(0, I)`` for every profile and every problem (no dimension factor, as in the
authors' code). All N × (1 + n) × K perturbed problems are solved in one batched DP call.

Any objective is accepted. One without a torch form (:attr:`bilevel.Objective.differentiable`
False, e.g. a plain numpy callable) has no ``∂f/∂x``; its gradient is then estimated from exact
scores alone — ``(1/N) sum_k (F(theta + mu u_k) - F(theta)) / mu * u_k`` with ``F`` the mean
exact score on the step's profiles, common to all N + 1 candidates — at the same cost of
N × (1 + n) × K exact solves (:meth:`ZerothOrder.smoothed_gradient`).

Parameters are ``theta = (log w, b)`` (weights optimised) or ``b``; perturbing ``log w`` keeps
weights positive, a deliberate difference from the authors' code, which perturbs ``w`` directly.
Paper defaults (Curry et al. (2024), §5): 20 perturbations of standard deviation 0.05 on 20
profiles per step, learning rate 0.1; plain gradient steps and boosts initialised U[0, 1] as in
the authors' code (the paper leaves both open).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from bilevel._differentiable import profile_objective, sample_batch
from bilevel._mechanism import AMA
from bilevel._outcomes import batch_outcomes, counterfactual_rewards
from bilevel.models.typing import FloatArray
from bilevel.search._driver import DesignProblem
from bilevel.search._first_order import check_count, check_positive
from bilevel.search._serialize import serializable
from bilevel.solvers import occupancy_of_policy, solve_values

__all__ = ["ZerothOrder", "ZerothOrderState", "perturbation_gradient"]


@serializable("bilevel.search.ZerothOrderState")
@dataclass
class ZerothOrderState:
    """Progress of a zeroth-order search (numpy parameters)."""

    log_w: FloatArray | None
    b: FloatArray
    rng: np.random.Generator
    n_agents: int
    step: int = 0
    scores: list[float] = field(default_factory=list)

    def weights(self) -> FloatArray:
        """Current weights."""
        return np.ones(self.n_agents) if self.log_w is None else np.exp(self.log_w)


@serializable("bilevel.search.ZerothOrder")
@dataclass(frozen=True)
class ZerothOrder:
    """Zeroth-order (perturbation) gradient search with exact inner solves.

    Parameters
    ----------
    iters : int, default 1000
        Number of steps.
    n_profiles : int, default 20
        Fresh type profiles per step (paper: 20).
    n_perturbations : int, default 20
        Gaussian perturbations per problem (paper: 20).
    sigma : float, default 0.05
        Perturbation standard deviation μ (paper: 0.05).
    lr : float, default 0.1
        Learning rate (paper: 0.1).
    start : AMA, optional
        Starting mechanism; default b ~ U[0, 1], w = 1.
    """

    iters: int = 1000
    n_profiles: int = 20
    n_perturbations: int = 20
    sigma: float = 0.05
    lr: float = 0.1
    start: AMA | None = None

    def __post_init__(self) -> None:
        check_count("iters", self.iters)
        check_count("n_profiles", self.n_profiles)
        check_count("n_perturbations", self.n_perturbations)
        check_positive("sigma", self.sigma)
        check_positive("lr", self.lr)

    def total_steps(self, problem: DesignProblem) -> int:
        """``iters``."""
        return self.iters

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> ZerothOrderState:
        """Initial parameters."""
        env = problem.env
        if self.start is not None:
            b = np.array(self.start.boosts, dtype=np.float64)
            lw = np.log(self.start.weights)
        else:
            b = rng.uniform(0.0, 1.0, env.mdp.shape)
            lw = np.zeros(env.n_agents)
        return ZerothOrderState(lw if problem.optimise_weights else None, b, rng, env.n_agents)

    def gradient(
        self, problem: DesignProblem, state: ZerothOrderState
    ) -> tuple[FloatArray | None, FloatArray, float]:
        """Estimate ``(d/d log w, d/d b)`` of the objective and its value on fresh profiles.

        Objectives without a torch form use :meth:`smoothed_gradient`.
        """
        env, obj = problem.env, problem.objective
        if not obj.differentiable:
            return self.smoothed_gradient(problem, state)
        mdp = env.mdp
        S, A = mdp.shape
        n, K = env.n_agents, self.n_profiles
        batch = sample_batch(env, obj, state.rng, K)
        R_all = batch.all_rewards.numpy()  # (P, n, S, A)
        P = R_all.shape[0]
        w = state.weights()
        c = np.einsum("n,pnsa->psa", w, R_all) + state.b
        _, pol = solve_values(mdp, c)
        x_hat = occupancy_of_policy(mdp, pol)  # (P, S, A)

        # explicit partials and g_p = ∂f/∂x_p by autograd with the solutions held fixed
        lw_t = torch.tensor(
            np.zeros(n) if state.log_w is None else state.log_w, requires_grad=True
        )
        b_t = torch.tensor(state.b, requires_grad=True)
        x_t = torch.tensor(x_hat, requires_grad=True)
        w_t = torch.exp(lw_t) if state.log_w is not None else torch.ones(n, dtype=torch.float64)
        x_cf = x_t[K:].reshape(n, K, S, A) if P > K else None
        f = profile_objective(obj, w_t, b_t, batch, x_t[:K], x_cf).mean()
        f.backward()  # type: ignore[no-untyped-call]
        g = _grad(x_t)  # (P, S, A)
        grad_b = _grad(b_t)
        grad_lw = _grad(lw_t) if state.log_w is not None else None

        # Jacobian-vector products by Gaussian perturbations, one batched exact solve
        N, mu = self.n_perturbations, self.sigma
        u_b = state.rng.standard_normal((N, P, S, A))
        if state.log_w is not None:
            u_w = state.rng.standard_normal((N, P, n))
            w_k = np.exp(state.log_w + mu * u_w)  # (N, P, n)
            c_k = np.einsum("kpn,pnsa->kpsa", w_k, R_all)
        else:
            u_w = None
            c_k = np.broadcast_to(c - state.b, (N, P, S, A))
        c_k = c_k + state.b + mu * u_b
        _, pol_k = solve_values(mdp, c_k.reshape(N * P, S, A))
        x_k = occupancy_of_policy(mdp, pol_k).reshape(N, P, S, A)
        diff = np.einsum("kpsa,psa->kp", x_k - x_hat, g)  # <x_p(theta + mu u) - x_p, g_p>
        grad_b = grad_b + perturbation_gradient(diff, u_b.reshape(N, P, -1), mu).reshape(S, A)
        if u_w is not None and grad_lw is not None:
            grad_lw = grad_lw + perturbation_gradient(diff, u_w, mu)
        return grad_lw, grad_b, float(f.detach())

    def smoothed_gradient(
        self, problem: DesignProblem, state: ZerothOrderState
    ) -> tuple[FloatArray | None, FloatArray, float]:
        """Gaussian-smoothing gradient of the exact mean score, for any objective.

        Scores the current mechanism and N perturbed ones ``theta + mu u_k`` exactly
        (unregularised, payments included when the objective reads them) on the same fresh
        profiles and returns ``(1/N) sum_k (F_k - F_0) / mu * u_k``, split into
        ``(d/d log w or None, d/d b of shape (S, A))``, and ``F_0``.
        """
        env, obj = problem.env, problem.objective
        S, A = env.mdp.shape
        n, N, mu = env.n_agents, self.n_perturbations, self.sigma
        types = env.sample_types(state.rng, self.n_profiles)
        u_b = state.rng.standard_normal((N, S, A))
        B = np.concatenate([state.b[None], state.b + mu * u_b])  # (N + 1, S, A)
        u_w = None
        if state.log_w is not None:
            u_w = state.rng.standard_normal((N, n))
            W = np.exp(np.concatenate([state.log_w[None], state.log_w + mu * u_w]))
        else:
            W = np.ones((N + 1, n))
        R_cf = counterfactual_rewards(env, types) if obj.needs_payments else None
        out = batch_outcomes(env.mdp, W, B, env.rewards(types), R_cf, inner=problem.inner)
        F = obj.score(env, out, types).mean(axis=1)  # (N + 1,)
        diff = (F[1:] - F[0])[:, None]  # (N, 1): one "problem", the mean score
        grad_b = perturbation_gradient(diff, u_b.reshape(N, 1, -1), mu).reshape(S, A)
        grad_lw = None if u_w is None else perturbation_gradient(diff, u_w[:, None], mu)
        return grad_lw, grad_b, float(F[0])

    def step(self, problem: DesignProblem, state: ZerothOrderState) -> ZerothOrderState:
        """One plain gradient step (ascent for maximised objectives)."""
        grad_lw, grad_b, value = self.gradient(problem, state)
        if not np.all(np.isfinite(grad_b)) or (
            grad_lw is not None and not np.all(np.isfinite(grad_lw))
        ):
            raise FloatingPointError(f"expected finite gradients at step {state.step}, got NaN")
        sign = 1.0 if problem.objective.maximize else -1.0
        state.b = state.b + sign * self.lr * grad_b
        if state.log_w is not None and grad_lw is not None:
            state.log_w = state.log_w + sign * self.lr * grad_lw
        state.scores.append(value)
        state.step += 1
        return state

    def done(self, state: ZerothOrderState) -> bool:
        """Whether ``iters`` steps were taken."""
        return state.step >= self.iters

    def best(self, state: ZerothOrderState) -> tuple[AMA, float]:
        """The last iterate and its (noisy) training score."""
        mech = AMA(state.weights(), state.b, name="zeroth_order")
        return mech, (state.scores[-1] if state.scores else float("nan"))

    def history(self, state: ZerothOrderState) -> list[tuple[int, float]]:
        """``(step, objective on that step's profiles before the update)``."""
        return list(enumerate(state.scores))


def perturbation_gradient(diff: FloatArray, u: FloatArray, mu: float) -> FloatArray:
    """Gaussian-perturbation gradient estimate, summed over problems.

    For problems p with scalar maps ``h_p`` and perturbations ``u[k, p] ~ N(0, I)``, estimates
    ``sum_p grad h_p(theta)`` by ``(1/N) sum_k sum_p (h_p(theta + mu u[k, p]) - h_p(theta)) / mu
    * u[k, p]``. It is unbiased for the gradient of the Gaussian-smoothed ``h_p`` (and, for
    smooth ``h_p``, biased by O(mu^2) only).

    Parameters
    ----------
    diff : ndarray of shape (N, P)
        ``h_p(theta + mu u[k, p]) - h_p(theta)``.
    u : ndarray of shape (N, P, d)
        The perturbation directions.
    mu : float
        Perturbation scale.

    Returns
    -------
    ndarray of shape (d,)
    """
    N = diff.shape[0]
    out: FloatArray = np.einsum("kp,kpd->d", diff / mu, u) / N
    return out


def _grad(t: torch.Tensor) -> FloatArray:
    if t.grad is None:
        return np.zeros(tuple(t.shape))
    return np.asarray(t.grad.numpy(), dtype=np.float64)
