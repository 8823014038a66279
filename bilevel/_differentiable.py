"""Differentiable (torch) design objectives for gradient-based outer searchers.

The AMA is parametrised by ``theta = (log w, b)`` — the log keeps weights positive (the authors'
code updates ``w`` itself, which may drift to ≤ 0, where payments divide by w) — or by ``b``
alone when weights are fixed at 1. For a batch of K type profiles the factual problem (reports)
and, for revenue, the n counterfactual problems (agent i's report replaced by its "absent"
report) are solved together; the per-profile objective is

* revenue: ``SW(x*) + sum_i (A_{-i} - A) / w_i`` with ``A = c . x*`` and
  ``A_{-i} = c_{-i} . x_{-i}`` (= the sum of the AMA payments of Curry et al. (2024), §3,
  Definition 3.1, written as their revenue identity of §4);
* welfare: ``sum_i r_i . x*``; linear costs (makespan): ``coef . x*``;
* custom: a user ``torch_fn(x*, types)``, or an ``outcome_fn(outcomes, types)`` of
  :meth:`~bilevel.Objective.from_outcomes` on torch outcomes: agent rewards ``r_i . x*`` and
  payments ``p_i = (A_{-i} - A) / w_i + r_i(x*)`` (the AMA payment, exact when the solutions are).

:func:`profile_objective` evaluates it as a torch function of ``(w, b)`` and of the occupancy
measures, so autograd gives (i) the exact gradient when the measures come from a differentiable
regularised solver, (ii) the explicit partial derivative and the ``d f / d x`` vectors needed by
the zeroth-order decomposition when they are constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bilevel._objectives import Objective, ProfileOutcomes
from bilevel._outcomes import counterfactual_rewards
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["ProfileBatch", "profile_objective", "sample_batch"]

Tensor = torch.Tensor


@dataclass(frozen=True)
class ProfileBatch:
    """Type profiles and the reward arrays a gradient step needs (torch, float64).

    Attributes
    ----------
    types : ndarray of shape (K, *type_shape)
    rewards : Tensor of shape (K, n, S, A)
    cf_rewards : Tensor of shape (n, K, n, S, A), or None
        Counterfactual rewards (revenue only).
    cost : Tensor of shape (K, S, A), or None
        Linear cost coefficients (cost objectives only).
    """

    types: FloatArray
    rewards: Tensor
    cf_rewards: Tensor | None
    cost: Tensor | None

    @property
    def all_rewards(self) -> Tensor:
        """Factual and counterfactual rewards stacked: ((1 + n) K, n, S, A) or (K, n, S, A)."""
        if self.cf_rewards is None:
            return self.rewards
        n, K = self.cf_rewards.shape[:2]
        return torch.cat([self.rewards, self.cf_rewards.reshape(n * K, *self.rewards.shape[1:])])


def sample_batch(
    env: Environment, objective: Objective, rng: np.random.Generator, k: int, device: str = "cpu"
) -> ProfileBatch:
    """Draw ``k`` profiles and build the torch reward arrays the objective needs."""
    types = env.sample_types(rng, k)
    dev = torch.device(device)
    R = torch.as_tensor(env.rewards(types), device=dev)
    R_cf = None
    if objective.needs_payments:
        R_cf = torch.as_tensor(counterfactual_rewards(env, types), device=dev)
    cost = None
    if objective.kind == "cost":
        cost = torch.as_tensor(env.cost(objective.name, types), device=dev)
    return ProfileBatch(types, R, R_cf, cost)


def affine_welfare(w: Tensor, b: Tensor, rewards: Tensor) -> Tensor:
    """``sum_i w_i r_i + b`` for rewards (..., n, S, A) → (..., S, A)."""
    return torch.einsum("n,...nsa->...sa", w, rewards) + b


def profile_objective(
    objective: Objective,
    w: Tensor,
    b: Tensor,
    batch: ProfileBatch,
    x: Tensor,
    x_cf: Tensor | None,
    *,
    envelope: bool = False,
) -> Tensor:
    """Per-profile objective as a torch function of ``(w, b, x, x_cf)``.

    Parameters
    ----------
    objective : Objective
    w : Tensor of shape (n,)
    b : Tensor of shape (S, A)
    batch : ProfileBatch
    x : Tensor of shape (K, S, A)
        Occupancy measures of the factual problems.
    x_cf : Tensor of shape (n, K, S, A), or None
        Occupancy measures of the counterfactual problems (revenue).
    envelope : bool, default False
        Revenue and objectives of the outcomes: the paper's "asw-envelope" estimator — the
        affine-welfare values ``A`` and ``A_{-i}`` are differentiated with the occupancy
        measures held fixed (their envelope-theorem derivative), only ``SW(x*)`` (the agent
        rewards) is differentiated through the solver.

    Returns
    -------
    Tensor of shape (K,)
    """
    if objective.kind == "revenue":
        if x_cf is None or batch.cf_rewards is None:
            raise ValueError("expected counterfactual solutions for revenue, got None")
        xa, xa_cf = (x.detach(), x_cf.detach()) if envelope else (x, x_cf)
        sw = (batch.rewards.sum(dim=1) * x).sum(dim=(-2, -1))
        A = (affine_welfare(w, b, batch.rewards) * xa).sum(dim=(-2, -1))  # (K,)
        A_cf = (affine_welfare(w, b, batch.cf_rewards) * xa_cf).sum(dim=(-2, -1))  # (n, K)
        return sw + ((A_cf - A[None]) / w[:, None]).sum(dim=0)
    if objective.kind == "welfare":
        return (batch.rewards.sum(dim=1) * x).sum(dim=(-2, -1))
    if objective.kind == "cost":
        if batch.cost is None:
            raise ValueError(f"expected cost coefficients for {objective.name!r}, got None")
        return (batch.cost * x).sum(dim=(-2, -1))
    if objective.outcome_fn is not None:
        return _outcome_objective(objective, w, b, batch, x, x_cf, envelope)
    if objective.torch_fn is None:
        raise ValueError(
            f"expected a differentiable objective for gradient-based search; {objective.name!r} "
            "has no torch form (use Objective.from_outcomes(fn) or "
            "Objective.from_occupancy(fn, differentiable=True))"
        )
    out: Tensor = objective.torch_fn(x, batch.types)
    return out


def _outcome_objective(
    objective: Objective, w: Tensor, b: Tensor, batch: ProfileBatch, x: Tensor,
    x_cf: Tensor | None, envelope: bool,
) -> Tensor:
    """``outcome_fn`` on torch outcomes; payments ``(A_{-i} - A) / w_i + r_i(x)``, (K, n)."""
    assert objective.outcome_fn is not None
    r = torch.einsum("knsa,ksa->kn", batch.rewards, x)  # (K, n)
    payments = None
    if objective.needs_payments:
        if x_cf is None or batch.cf_rewards is None:
            raise ValueError(
                f"expected counterfactual solutions for {objective.name!r}, got None"
            )
        xa, xa_cf = (x.detach(), x_cf.detach()) if envelope else (x, x_cf)
        A = (affine_welfare(w, b, batch.rewards) * xa).sum(dim=(-2, -1))  # (K,)
        A_cf = (affine_welfare(w, b, batch.cf_rewards) * xa_cf).sum(dim=(-2, -1))  # (n, K)
        payments = ((A_cf - A[None]) / w[:, None]).T + r
    out: Tensor = objective.outcome_fn(ProfileOutcomes(x, r, payments), batch.types)
    return out
