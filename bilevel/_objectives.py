"""Design objectives: revenue, welfare, makespan, linear costs and user callables.

An :class:`Objective` maps batched outcomes (leading axes ``(C, K)``: candidates × profiles) to
per-profile scores of shape (C, K). ``maximize`` says which direction is better; searchers and
reports use it (makespan is minimised). Custom objectives are built from the allocation
(:meth:`Objective.from_occupancy`) or from the per-profile outcomes, payments included
(:meth:`Objective.from_outcomes`); :func:`resolve_objective` checks them on a tiny batch of the
environment before any search starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bilevel._outcomes import Outcomes, batch_outcomes, counterfactual_rewards
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["Objective", "ProfileOutcomes", "resolve_objective"]

ScoreFn = Callable[[Environment, Outcomes, FloatArray], FloatArray]
_CHECK_PROFILES = 2  # profiles of the construction-time check of a custom objective


@dataclass(frozen=True)
class ProfileOutcomes:
    """One mechanism's outcomes on K profiles, as numpy arrays or torch tensors.

    :meth:`Objective.from_outcomes` passes numpy arrays when candidates are scored exactly
    (grid, CMA-ES, checkpoint selection, evaluation) and float64 torch tensors in the
    gradient methods, where the payments are functions of the (regularised) occupancy
    measures: ``p_i = (A_{-i} - A) / w_i + r_i(x)`` with ``A = (sum_j w_j r_j + b) . x`` and
    ``A_{-i}`` the same at the solution without agent i, which is the AMA payment
    ``(1/w_i)[asw^(-i) - (asw - w_i r_i)]`` exactly when the solutions are exact.

    Attributes
    ----------
    occupancy : ndarray or Tensor of shape (K, S, A)
        Occupancy measure of the chosen policy.
    agent_rewards : ndarray or Tensor of shape (K, n)
        ``r_i(x)``: each agent's total reward.
    payments : ndarray or Tensor of shape (K, n), or None
        AMA payments (None for objectives built with ``payments=False``).
    """

    occupancy: Any
    agent_rewards: Any
    payments: Any

    @property
    def welfare(self) -> Any:
        """Social welfare ``sum_i r_i(x)``, shape (K,)."""
        return self.agent_rewards.sum(-1)

    @property
    def revenue(self) -> Any:
        """Sum of payments, shape (K,)."""
        return self._payments().sum(-1)

    @property
    def utility(self) -> Any:
        """Quasi-linear utilities ``r_i(x) - p_i``, shape (K, n)."""
        return self.agent_rewards - self._payments()

    def _payments(self) -> Any:
        if self.payments is None:
            raise ValueError(
                "expected outcomes with payments, got payments=None "
                "(build the objective with Objective.from_outcomes(fn, payments=True))"
            )
        return self.payments


def _check_signature(fn: object, name: str, args: str) -> None:
    """Raise a one-line ``ValueError`` unless ``fn`` is callable with two positional args."""
    if not callable(fn):
        raise ValueError(
            f"expected the objective {name!r} as a callable {args} -> (K,), "
            f"got {type(fn).__name__}"
        )
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: checked by calling
        return
    try:
        sig.bind(None, None)
    except TypeError:
        raise ValueError(
            f"expected the objective {name!r} as a callable {args} -> (K,), "
            f"got a callable of signature {sig}"
        ) from None


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
        Differentiable version of a custom objective of the allocation.
    outcome_fn : callable ``(ProfileOutcomes, types) -> (K,)``, optional
        Differentiable per-profile objective of the outcomes (payments included), evaluated on
        torch outcomes by the gradient-based searchers (see :meth:`from_outcomes`).

    Notes
    -----
    Grid search, CMA-ES and zeroth order take any objective (zeroth order estimates the
    gradient of the exact score itself when the objective has no differentiable form); first
    order needs a differentiable one (:attr:`differentiable`).
    """

    name: str
    score: ScoreFn
    maximize: bool = True
    needs_payments: bool = False
    kind: str = "custom"
    torch_fn: Callable[[Any, FloatArray], Any] | None = None
    outcome_fn: Callable[[ProfileOutcomes, FloatArray], Any] | None = None

    @property
    def differentiable(self) -> bool:
        """Whether the objective has a torch form (built-ins, ``torch_fn`` or ``outcome_fn``)."""
        return (
            self.kind in ("revenue", "welfare", "cost")
            or self.torch_fn is not None
            or self.outcome_fn is not None
        )

    def check(self, env: Environment) -> None:
        """Score VCG on a tiny batch of ``env``: a one-line ``ValueError`` if that fails.

        Custom objectives only (built-ins are not called). The numpy score must have shape
        (1, K) and be finite; a differentiable objective must also give a torch tensor of
        shape (K,) that depends on the occupancy measures.

        Parameters
        ----------
        env : Environment

        Raises
        ------
        ValueError
            If the objective fails on the batch, with the reason.
        """
        if self.kind != "custom":
            return
        K = _CHECK_PROFILES
        types = env.sample_types(np.random.default_rng(0), K)
        R = env.rewards(types)
        R_cf = counterfactual_rewards(env, types) if self.needs_payments else None
        W = np.ones((1, env.n_agents))
        B = np.zeros((1, *env.mdp.shape))
        what = f"the objective {self.name!r}"
        try:
            out = batch_outcomes(env.mdp, W, B, R, R_cf)
            scores = np.asarray(self.score(env, out, types), dtype=np.float64)
        except ValueError as e:
            if str(e).startswith(f"expected {what}"):  # the score's own shape check
                raise
            raise ValueError(
                f"expected {what} to score {K} profiles of {env.name!r}, got ValueError: {e}"
            ) from e
        except Exception as e:  # any failure of user code, reported on one line
            raise ValueError(
                f"expected {what} to score {K} profiles of {env.name!r}, got "
                f"{type(e).__name__}: {e}"
            ) from e
        if scores.shape != (1, K):
            raise ValueError(f"expected {what} to return shape (1, {K}), got {scores.shape}")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"expected {what} to return finite scores, got {scores.tolist()}")
        if self.outcome_fn is not None or self.torch_fn is not None:
            self._check_torch(env, types, out.occupancy[0], out.asw.shape[1])

    def _check_torch(self, env: Environment, types: FloatArray, x: FloatArray, K: int) -> None:
        import torch

        from bilevel._differentiable import ProfileBatch, profile_objective

        what = f"the differentiable objective {self.name!r}"
        n = env.n_agents
        R = torch.as_tensor(env.rewards(types))
        R_cf = torch.as_tensor(counterfactual_rewards(env, types)) if self.needs_payments else None
        x_t = torch.tensor(x, requires_grad=True)
        x_cf = x_t[None].expand(n, *x.shape) if R_cf is not None else None
        w = torch.ones(n, dtype=torch.float64)
        b = torch.zeros(env.mdp.shape, dtype=torch.float64)
        try:
            f = profile_objective(self, w, b, ProfileBatch(types, R, R_cf, None), x_t, x_cf)
        except Exception as e:  # any failure of user code, reported on one line
            raise ValueError(
                f"expected {what} to work on torch outcomes (tensor methods such as "
                f".clip(min=0), not numpy functions), got {type(e).__name__}: {e}"
            ) from e
        if not isinstance(f, torch.Tensor) or tuple(f.shape) != (K,) or not f.requires_grad:
            got = (f"a tensor of shape {tuple(f.shape)} (requires_grad={f.requires_grad})"
                   if isinstance(f, torch.Tensor) else type(f).__name__)
            raise ValueError(
                f"expected {what} to return a torch tensor of shape ({K},) that depends on the "
                f"outcomes (use tensor methods, not numpy functions, or differentiable=False), "
                f"got {got}"
            )
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
        _check_signature(fn, name, "(occupancy (K, S, A), types)")

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

    @classmethod
    def from_outcomes(
        cls,
        fn: Callable[[ProfileOutcomes, FloatArray], Any],
        *,
        name: str = "custom",
        maximize: bool = True,
        payments: bool = True,
        differentiable: bool = True,
    ) -> Objective:
        """A custom objective of the per-profile outcomes: welfare, utilities, payments.

        Every search method takes it: grid search, CMA-ES and checkpoint selection score it
        exactly on numpy outcomes; first and zeroth order differentiate it on torch outcomes,
        whose payments are differentiable functions of the occupancy measures (see
        :class:`ProfileOutcomes`). Write ``fn`` with operations both array kinds have
        (arithmetic, ``.sum(-1)``, ``.clip(min=0)``, indexing), or pass
        ``differentiable=False`` (then first order refuses it and zeroth order estimates the
        gradient of the exact score directly).

        Parameters
        ----------
        fn : callable ``(outcomes ProfileOutcomes, types (K, ...)) -> (K,)``
            Per-profile score of one mechanism: row ``k`` depends on profile ``k`` only.
        name : str, default "custom"
        maximize : bool, default True
        payments : bool, default True
            Whether ``fn`` reads payments (then the counterfactual problems are solved).
        differentiable : bool, default True
            Whether ``fn`` also works on torch tensors.

        Returns
        -------
        Objective

        Raises
        ------
        ValueError
            If ``fn`` is not a callable of two positional arguments (it is called on a tiny
            batch of the environment by :func:`resolve_objective`, before any search).

        Examples
        --------
        Revenue plus half the welfare, and revenue with a penalty below a welfare floor:

        >>> mixed = Objective.from_outcomes(
        ...     lambda out, types: out.revenue + 0.5 * out.welfare, name="rev+0.5sw")
        >>> floor = Objective.from_outcomes(
        ...     lambda out, types: out.revenue - 10 * (0.5 - out.welfare).clip(min=0),
        ...     name="revenue_welfare_floor")
        >>> from bilevel import AMADesigner
        >>> d = AMADesigner(method="zeroth_order", objective=mixed, steps=2, n_validation=50,
        ...                 eval_samples=50).fit("sales")
        >>> d.evaluation_.objective
        'rev+0.5sw'
        """
        _check_signature(fn, name, "(outcomes, types)")

        def score(env: Environment, out: Outcomes, types: FloatArray) -> FloatArray:
            C, K = out.occupancy.shape[:2]
            vals = [
                np.asarray(fn(ProfileOutcomes(
                    out.occupancy[c], out.agent_rewards[c],
                    None if out.payments is None else out.payments[c],
                ), types), dtype=np.float64)
                for c in range(C)
            ]
            arr = np.stack(vals)
            if arr.shape != (C, K):
                raise ValueError(
                    f"expected the objective {name!r} to return shape (K,) = ({K},), "
                    f"got {arr.shape[1:]}"
                )
            return arr

        return cls(
            name, score, maximize, needs_payments=payments, kind="custom",
            outcome_fn=fn if differentiable else None,
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
        :meth:`Objective.from_occupancy`); objectives of the outcomes (payments included) are
        built with :meth:`Objective.from_outcomes`. Custom objectives are checked here, on a
        tiny batch of ``env`` (:meth:`Objective.check`).

    Returns
    -------
    Objective

    Raises
    ------
    ValueError
        If the name is unknown or a custom objective fails its check, on one line.
    """
    if isinstance(spec, Objective):
        spec.check(env)
        return spec
    if callable(spec):
        obj = Objective.from_occupancy(spec, name=getattr(spec, "__name__", "custom"))
        obj.check(env)
        return obj
    name = env.objective if spec is None else spec
    if name == "revenue":
        return REVENUE
    if name == "welfare":
        return WELFARE
    if isinstance(name, str) and name in env.costs:
        return Objective(name, _cost(name), maximize=False, needs_payments=False, kind="cost")
    choices = ["revenue", "welfare", *sorted(env.costs)]
    raise ValueError(f"expected objective in {choices} for {env.name!r}, got {name!r}")
