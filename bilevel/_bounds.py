"""Benchmarks for evaluated mechanisms: the optimum or an upper (lower) bound of an objective.

For each profile of types the bound is the value of one exact inner solve, so it is computed on
exactly the profiles an evaluation uses (common random numbers) and the per-profile gap between
bound and mechanism has a paired standard error.

Kinds (each with its proof):

``"optimal"`` — revenue, single-parameter environment, regular value distributions.
    Myerson (1981, *Optimal Auction Design*, §3 Lemma 2 and §6 Theorem 2): for any truthful,
    individually rational mechanism with interim allocation quantity ``Q_i(v_i)`` the envelope
    formula gives expected revenue ``E[Σ_i φ_i(v_i) Q_i(v_i)] − Σ_i U_i(lo_i)`` with
    ``U_i(lo_i) ≥ 0``, hence revenue ``≤ E[max_x Σ_i φ_i(v_i) q_i(x)]`` pointwise in the profile.
    With regular ``F_i`` the maximiser is monotone in each value and, charged threshold prices,
    attains the bound: it is the optimum.
``"virtual-welfare"`` — the same computation when some distribution is not regular: the
    pointwise inequality above still holds (only attainment needs regularity; ironing would
    tighten it), so it is an upper bound, not the optimum.
``"public-information"`` — the same computation when the allocation quantities depend on a
    non-value part of the type (``public_information=True``). Fix that part for every agent:
    any mechanism truthful on the full type space is, restricted to reports whose non-value
    part is true, a truthful IR mechanism of the single-parameter problem with those ``q``;
    revealing the non-value part only removes incentive constraints, so the conditional
    Myerson optimum bounds its conditional revenue; averaging over the non-value part gives an
    upper bound (values independent of the non-value part).
``"welfare"`` — revenue otherwise, when rewards are non-negative: individual rationality gives
    ``Σ_i p_i ≤ Σ_i r_i(x) ≤ max_x Σ_i r_i(x)`` per profile.
``"first-best"`` — welfare: ``max_x Σ_i r_i(x)`` per profile (attained by VCG); a linear cost
    such as the makespan (minimised): ``min_x Σ x · coef`` per profile, a lower bound for every
    mechanism, truthful or not.

Revenue with possibly negative rewards (scheduling: IR does not bound payments by welfare) and
custom objectives have no bound (:class:`NoBoundError`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bilevel._objectives import Objective, resolve_objective
from bilevel.models import Environment, check_count, check_single_parameter, draw_profiles
from bilevel.models.typing import FloatArray
from bilevel.solvers import solve_dp

__all__ = ["Bound", "NoBoundError", "bound_values", "objective_bound"]

ObjectiveSpec = str | Objective | Callable[[FloatArray, FloatArray], FloatArray] | None

_CHECK_PROFILES = 64  # profiles on which a single-parameter declaration is checked at use time

_DESCRIPTIONS = {
    "optimal": "optimal revenue E[max_x sum_i phi_i(v_i) q_i(x)] (Myerson 1981): attained by "
    "the virtual-welfare maximiser",
    "virtual-welfare": "upper bound E[max_x sum_i phi_i(v_i) q_i(x)] on revenue (Myerson 1981; "
    "a non-regular distribution: not attained without ironing)",
    "public-information": "upper bound on revenue: Myerson's optimum when {part} is public "
    "information",
    "welfare": "upper bound on revenue: the maximal welfare (individual rationality)",
    "first-best": "first-best {obj} ({best} over all policies, ignoring incentives)",
}


class NoBoundError(ValueError):
    """No optimum or bound is known for this objective in this environment."""


@dataclass(frozen=True)
class Bound:
    """A Monte Carlo estimate of an objective's optimum or bound.

    Attributes
    ----------
    objective : str
    mean, se : float
        Mean over the profiles and its standard error.
    n : int
        Number of profiles.
    kind : str
        ``"optimal"``, ``"virtual-welfare"``, ``"public-information"``, ``"welfare"`` or
        ``"first-best"`` (see the module docstring for each proof).
    sense : {"upper", "lower"}
        ``"upper"`` for maximised objectives (no mechanism of the class exceeds it), ``"lower"``
        for minimised ones.
    description : str
        One sentence saying what the bound is.
    """

    objective: str
    mean: float
    se: float
    n: int
    kind: str
    sense: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    def __str__(self) -> str:
        return f"{self.objective} {self.sense} bound ({self.kind}): {self.mean:.4f} ± {self.se:.4f}"


def _kind(env: Environment, obj: Objective) -> str:
    """The bound kind for ``obj`` in ``env``, or raise :class:`NoBoundError`."""
    if obj.kind == "revenue":
        sp = env.single_parameter
        if sp is not None:
            if sp.public_information:
                return "public-information"
            return "optimal" if all(d.regular for d in sp.distributions) else "virtual-welfare"
        if env.nonnegative_rewards:
            return "welfare"
        raise NoBoundError(
            f"no revenue bound for {env.name!r}: rewards can be negative and the types are not "
            "single-parameter (individual rationality does not bound payments by welfare)"
        )
    if obj.kind in ("welfare", "cost"):
        return "first-best"
    raise NoBoundError(f"no bound for a custom objective ({obj.name!r})")


def bound_kind(env: Environment, objective: ObjectiveSpec = None) -> str:
    """The kind of bound :func:`objective_bound` computes, or raise :class:`NoBoundError`."""
    return _kind(env, resolve_objective(env, objective))


def bound_values(
    env: Environment, objective: ObjectiveSpec, types: FloatArray
) -> tuple[str, FloatArray]:
    """Per-profile values of the objective's bound on the given type profiles.

    Parameters
    ----------
    env : Environment
    objective : str or Objective or callable or None
        As in :func:`bilevel.evaluate` (``None``: the environment's objective).
    types : ndarray of shape (K, *type_shape)

    Returns
    -------
    kind : str
        See the module docstring.
    values : ndarray of shape (K,)
        The bound on each profile (for revenue kinds the virtual welfare or the welfare of the
        maximising policy; for costs the minimal cost). Its mean bounds the expected objective.

    Raises
    ------
    NoBoundError
        If no bound exists (revenue with negative rewards and no single-parameter structure,
        custom objectives).
    ValueError
        If the environment's single-parameter declaration does not match its rewards.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=2, n_items=1)
    >>> kind, v = bound_values(env, "revenue", np.array([[0.9, 0.7]]))
    >>> kind, round(float(v[0]), 6)   # the highest virtual value 2 * 0.9 - 1
    ('optimal', 0.8)
    """
    obj = resolve_objective(env, objective)
    kind = _kind(env, obj)
    types = env._check_types(types)
    if obj.kind == "revenue" and env.single_parameter is not None:
        sp = check_single_parameter(env, types[:_CHECK_PROFILES])
        phi = sp.virtual_values(sp.values(types))  # (K, n)
        c = np.einsum("kn,knsa->ksa", phi, sp.allocation(types))
        return kind, solve_dp(env.mdp, c, occupancy=False).value
    if obj.kind in ("revenue", "welfare"):
        return kind, solve_dp(env.mdp, env.rewards(types).sum(axis=1), occupancy=False).value
    coef = env.cost(obj.name, types)  # obj.kind == "cost"
    out: FloatArray = -solve_dp(env.mdp, -coef, occupancy=False).value
    return kind, out


def describe(env: Environment, obj: Objective, kind: str) -> str:
    """One sentence describing a bound of ``kind`` for ``obj`` in ``env``."""
    part = env.single_parameter.nonvalue_part if env.single_parameter is not None else ""
    best = "maximum" if obj.maximize else "minimum"
    return _DESCRIPTIONS[kind].format(part=part, obj=obj.name, best=best)


def objective_bound(
    env: Environment,
    objective: ObjectiveSpec = None,
    *,
    n_samples: int = 10_000,
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 2_000,
) -> Bound:
    """Estimate the optimum (or an upper / lower bound) of an objective on fresh profiles.

    The profiles are drawn exactly as :func:`bilevel.evaluate` draws them for the same ``seed``
    (:func:`bilevel.models.draw_profiles`: fixed blocks from one generator, whatever the
    ``batch_size``), so a bound and an evaluation with the same seed and ``n_samples`` share
    their profiles.

    Parameters
    ----------
    env : Environment
    objective : str or Objective or callable, optional
        Defaults to the environment's objective.
    n_samples : int, default 10000
    seed : int or numpy.random.Generator or None, default 0
    batch_size : int, default 2000
        Profiles per batch (memory control; the result does not depend on it).

    Returns
    -------
    Bound

    Raises
    ------
    NoBoundError
        If no bound exists for the objective (a ``ValueError``).
    ValueError
        If ``n_samples`` or ``batch_size`` is < 1, or a single-parameter declaration does not
        match the rewards.

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> b = objective_bound(make_env("sales", n_agents=3, n_items=2), n_samples=2000)
    >>> b.kind, b.sense, abs(b.mean - 0.718) < 4 * b.se
    ('optimal', 'upper', True)
    """
    n_samples = check_count(n_samples, "n_samples")
    batch_size = check_count(batch_size, "batch_size")
    obj = resolve_objective(env, objective)
    kind = _kind(env, obj)
    parts = [bound_values(env, obj, types)[1]
             for types in draw_profiles(env, seed, n_samples, batch_size)]
    vals = np.concatenate(parts)
    se = float(vals.std(ddof=1) / np.sqrt(vals.size)) if vals.size > 1 else float("nan")
    return Bound(
        objective=obj.name,
        mean=float(vals.mean()),
        se=se,
        n=int(vals.size),
        kind=kind,
        sense="upper" if obj.maximize else "lower",
        description=describe(env, obj, kind),
    )
