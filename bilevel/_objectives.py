"""Design objectives: revenue, welfare, makespan, linear costs and user callables.

An :class:`Objective` maps batched outcomes (leading axes ``(C, K)``: candidates × profiles) to
per-profile scores of shape (C, K). ``maximize`` says which direction is better; searchers and
reports use it (makespan is minimised).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bilevel._outcomes import Outcomes
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["Objective", "resolve_objective"]

ScoreFn = Callable[[Environment, Outcomes, FloatArray], FloatArray]


@dataclass(frozen=True)
class Objective:
    """A per-profile design objective.

    Parameters
    ----------
    name : str
        Label (``"revenue"``, ``"makespan"``, ...).
    score : callable ``(env, outcomes, types) -> ndarray of shape (C, K)``
        Per-profile score of each candidate.
    maximize : bool, default True
        Whether larger scores are better.
    needs_payments : bool, default False
        Whether ``score`` reads payments (then counterfactual solves are made).
    kind : {"revenue", "welfare", "cost", "custom"}, default "custom"
        What the objective measures; gradient-based searchers use it to build the
        differentiable (torch) version of built-in objectives.
    torch_fn : callable ``(occupancy (K, S, A) tensor, types) -> (K,) tensor``, optional
        Differentiable version of a custom objective (required by gradient-based searchers).
    """

    name: str
    score: ScoreFn
    maximize: bool = True
    needs_payments: bool = False
    kind: str = "custom"
    torch_fn: Callable[[Any, FloatArray], Any] | None = None

    @classmethod
    def from_occupancy(
        cls,
        fn: Callable[[FloatArray, FloatArray], FloatArray],
        *,
        name: str = "custom",
        maximize: bool = True,
        differentiable: bool = False,
    ) -> Objective:
        """A custom objective over the occupancy measure and the types.

        Parameters
        ----------
        fn : callable ``(occupancy (K, S, A), types (K, ...)) -> ndarray of shape (K,)``
            Per-profile score of one mechanism's allocation.
        name : str, default "custom"
        maximize : bool, default True
        differentiable : bool, default False
            Whether ``fn`` also works on torch tensors (then it is differentiated by the
            gradient-based searchers; numpy arrays are passed at evaluation).

        Returns
        -------
        Objective

        Examples
        --------
        >>> steps_selling = Objective.from_occupancy(
        ...     lambda x, types: x[..., 1:].sum(axis=(-2, -1)), name="sales_made")
        """

        def score(env: Environment, out: Outcomes, types: FloatArray) -> FloatArray:
            C, K = out.occupancy.shape[:2]
            vals = [np.asarray(fn(out.occupancy[c], types), dtype=np.float64) for c in range(C)]
            arr = np.stack(vals)
            if arr.shape != (C, K):
                raise ValueError(
                    f"expected the objective {name!r} to return shape (K,) = ({K},), "
                    f"got {arr.shape[1:]}"
                )
            return arr

        return cls(
            name, score, maximize, needs_payments=False, kind="custom",
            torch_fn=fn if differentiable else None,
        )


def _revenue(env: Environment, out: Outcomes, types: FloatArray) -> FloatArray:
    return out.revenue


def _welfare(env: Environment, out: Outcomes, types: FloatArray) -> FloatArray:
    return out.welfare


@dataclass(frozen=True)
class _CostScore:
    """Score of a linear environment cost (a picklable callable, for worker processes)."""

    name: str

    def __call__(self, env: Environment, out: Outcomes, types: FloatArray) -> FloatArray:
        coef = env.cost(self.name, types)  # (K, S, A)
        scores: FloatArray = np.einsum("cksa,ksa->ck", out.occupancy, coef)
        return scores


def _cost(name: str) -> ScoreFn:
    return _CostScore(name)


REVENUE = Objective("revenue", _revenue, maximize=True, needs_payments=True, kind="revenue")
WELFARE = Objective("welfare", _welfare, maximize=True, needs_payments=False, kind="welfare")


def resolve_objective(
    env: Environment,
    spec: str | Objective | Callable[[FloatArray, FloatArray], FloatArray] | None,
) -> Objective:
    """Resolve an objective name for ``env``.

    Parameters
    ----------
    env : Environment
    spec : str or Objective or callable or None
        ``None`` uses ``env.objective``; names are ``"revenue"``, ``"welfare"`` or a cost of
        the environment (e.g. ``"makespan"``, minimised). A plain callable
        ``(occupancy (K, S, A), types) -> (K,)`` is a maximised custom objective (see
        :meth:`Objective.from_occupancy`).

    Returns
    -------
    Objective
    """
    if isinstance(spec, Objective):
        return spec
    if callable(spec):
        return Objective.from_occupancy(spec, name=getattr(spec, "__name__", "custom"))
    name = env.objective if spec is None else spec
    if name == "revenue":
        return REVENUE
    if name == "welfare":
        return WELFARE
    if isinstance(name, str) and name in env.costs:
        return Objective(name, _cost(name), maximize=False, needs_payments=False, kind="cost")
    choices = ["revenue", "welfare", *sorted(env.costs)]
    raise ValueError(f"expected objective in {choices} for {env.name!r}, got {name!r}")
