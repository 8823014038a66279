"""Evaluation of mechanisms with common random numbers, standard errors and paired differences.

A mechanism and its baseline (VCG by default) are run on the *same* fresh type profiles, so the
standard error of their difference is that of the paired per-profile differences — much smaller
than the two separate standard errors (the authors' code of Curry et al. (2024) evaluates VCG and
the AMA on independent samples).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bilevel._bounds import NoBoundError, bound_kind, bound_values
from bilevel._mechanism import AMA, vcg
from bilevel._memory import fit_batch, outcome_bytes_per_profile
from bilevel._objectives import Objective, resolve_objective
from bilevel._outcomes import ExactInner, batch_outcomes, counterfactual_rewards
from bilevel.models import Environment, draw_profiles
from bilevel.models.typing import FloatArray

__all__ = ["Estimate", "Evaluation", "evaluate", "mean_se"]

# Means below this are rounding noise (e.g. a VCG revenue of 0 computed as ±1e-17): no relative
# improvement or significance is reported against them.
_TINY = 1e-9


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate: mean, standard error (sample std / sqrt(N)) and N."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.se:.4f}"


def mean_se(samples: FloatArray) -> Estimate:
    """Mean and standard error of the last axis-free sample vector of shape (N,)."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("expected at least one sample, got 0")
    se = float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(x.mean()), se, n)


@dataclass(frozen=True)
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    objective : str
        Objective name; ``maximize`` says its direction.
    maximize : bool
    n_samples : int
        Number of fresh type profiles (shared by mechanism and baseline).
    mean, se : float
        Objective of the mechanism.
    revenue, revenue_se, welfare, welfare_se : float
        Revenue and welfare of the mechanism.
    baseline : str or None
        Name of the baseline (``"vcg"``).
    baseline_mean, baseline_se, baseline_revenue, baseline_revenue_se : float or None
        The baseline's objective and revenue on the same profiles.
    baseline_welfare, baseline_welfare_se : float or None
        The baseline's welfare on the same profiles.
    diff_mean, diff_se : float or None
        Paired difference mechanism − baseline of the objective, and its standard error.
    improvement_pct : float or None
        ``100 · diff / |baseline|`` (positive = better for maximised objectives; for minimised
        objectives a negative value is better, as in the paper's tables); None when the
        baseline is 0 (e.g. VCG revenue with n ≤ m).
    min_utility : float
        Smallest agent utility observed (≥ 0 means every sampled agent was individually rational).
    runtime : float
        Wall time in seconds.
    seed : int or None
    batch_size : int
        Profiles per batch (memory control only: the profiles depend on ``seed`` and
        ``n_samples`` alone).
    bound, bound_se : float or None
        The objective's optimum or bound on the same profiles (see
        :func:`bilevel.objective_bound`); None when no bound exists or ``bound=False``.
    bound_kind : str or None
        ``"optimal"``, ``"virtual-welfare"``, ``"public-information"``, ``"welfare"`` or
        ``"first-best"``.
    gap_mean, gap_se : float or None
        Paired per-profile gap to the bound: bound − mechanism for maximised objectives,
        mechanism − bound for minimised ones (≥ 0 up to noise).
    pct_of_bound : float or None
        ``100 · mean / bound`` (maximised) or ``100 · bound / mean`` (minimised); None when the
        denominator is 0.
    """

    objective: str
    maximize: bool
    n_samples: int
    mean: float
    se: float
    revenue: float
    revenue_se: float
    welfare: float
    welfare_se: float
    baseline: str | None
    baseline_mean: float | None
    baseline_se: float | None
    baseline_revenue: float | None
    baseline_revenue_se: float | None
    baseline_welfare: float | None
    baseline_welfare_se: float | None
    diff_mean: float | None
    diff_se: float | None
    improvement_pct: float | None
    min_utility: float
    runtime: float
    seed: int | None
    batch_size: int = 2_000
    bound: float | None = None
    bound_se: float | None = None
    bound_kind: str | None = None
    gap_mean: float | None = None
    gap_se: float | None = None
    pct_of_bound: float | None = None

    def baseline_pct_of_bound(self) -> float | None:
        """The baseline's objective as a percentage of the bound (as ``pct_of_bound``)."""
        if self.bound is None or self.baseline_mean is None:
            return None
        return _pct(self.baseline_mean, self.bound, self.maximize)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in asdict(self).items()
        }

    @property
    def significant(self) -> bool:
        """Whether the paired difference is more than 2 standard errors from 0."""
        if self.diff_mean is None or self.diff_se is None:
            return False
        return bool(abs(self.diff_mean) > 2 * self.diff_se and abs(self.diff_mean) > _TINY)


def evaluate(
    env: Environment,
    mechanism: AMA,
    *,
    n_samples: int = 10_000,
    seed: int | np.random.Generator | None = 0,
    objective: str | Objective | Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    baseline: AMA | str | None = "vcg",
    batch_size: int = 2_000,
    inner: str | ExactInner = "dp",
    progress: Callable[[int], None] | None = None,
    bound: bool = True,
    allow_transfer: bool = False,
) -> Evaluation:
    """Evaluate a mechanism on fresh type profiles, paired with a baseline (VCG by default).

    Parameters
    ----------
    env : Environment
    mechanism : AMA
        Must fit ``env`` (``n`` weights, boosts of shape (S, A)).
    n_samples : int, default 10000
        Number of fresh type profiles.
    seed : int or numpy.random.Generator or None, default 0
        Randomness of the profiles (common to the mechanism and the baseline).
    objective : str or Objective, optional
        Defaults to the environment's objective (revenue; makespan for scheduling).
    baseline : AMA or "vcg" or None, default "vcg"
        Mechanism compared on the same profiles; ``None`` for no comparison.
    batch_size : int, default 2000
        Profiles per batched solve (memory control; the results do not depend on it).
    inner : {"dp", "lp"} or ExactInner, default "dp"
        Exact inner solver (unregularised: the evaluated mechanism is exactly truthful).
    progress : callable ``(n_done) -> None``, optional
        Called after each batch with the number of profiles just evaluated.
    bound : bool, default True
        Also compute the objective's optimum or bound on the same profiles
        (:func:`bilevel.bound_values`), the paired gap and the percentage of the bound; the
        fields stay None when no bound exists for the objective.
    allow_transfer : bool, default False
        Evaluate a mechanism designed for another environment (its ``meta["env_identity"]``
        differs from ``env.identity()``); by default that is refused. Mechanisms without a
        saved identity are checked by shape only.

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        If ``n_samples < 1``, the mechanism does not fit the environment or was designed for
        another one (unless ``allow_transfer``).

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> ev = evaluate(env, vcg(env), n_samples=2000, seed=1, baseline=None)
    >>> abs(ev.mean - 0.5) < 4 * ev.se  # analytic VCG revenue m(n-m)/(n+1) = 0.5
    True
    """
    start = time.perf_counter()
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
        raise TypeError(f"expected n_samples as an int, got {type(n_samples).__name__}")
    if n_samples < 1:
        raise ValueError(f"expected n_samples >= 1, got {n_samples}")
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    mechanism.check_origin(env, allow_transfer=allow_transfer)
    obj = resolve_objective(env, objective)
    base: AMA | None
    if baseline is None:
        base = None
    elif isinstance(baseline, str):
        if baseline != "vcg":
            raise ValueError(f"expected baseline 'vcg', an AMA or None, got {baseline!r}")
        base = vcg(env)
    else:
        base = baseline
        base.check_origin(env, allow_transfer=allow_transfer)
    mechs = [mechanism] if base is None else [mechanism, base]
    W = np.stack([m.weights for m in mechs])
    Bst = np.stack([m.boosts for m in mechs])
    # Memory guard: chunk the batches to the budget; refuse if one profile does not fit.
    batch_size = fit_batch(batch_size, outcome_bytes_per_profile(
        env.n_agents, env.n_states, env.n_actions, len(mechs)), f"evaluation on {env!r}")
    with_bound = bool(bound)
    if with_bound:
        try:
            bound_kind(env, obj)
        except NoBoundError:
            with_bound = False
    scores, revs, wels, bounds, min_u = [], [], [], [], np.inf
    kind: str | None = None
    # Profiles come in fixed blocks from the seed: batch_size changes memory, never results.
    for types in draw_profiles(env, seed, int(n_samples), int(batch_size)):
        k = types.shape[0]
        R = env.rewards(types)
        R_cf = counterfactual_rewards(env, types)
        out = batch_outcomes(env.mdp, W, Bst, R, R_cf, inner=inner)
        scores.append(obj.score(env, out, types))
        revs.append(out.revenue)
        wels.append(out.welfare)
        min_u = min(min_u, float(out.utility[0].min()))
        if with_bound:
            kind, bvals = bound_values(env, obj, types)
            bounds.append(bvals)
        if progress is not None:
            progress(k)
    S_ = np.concatenate(scores, axis=1)
    Rv = np.concatenate(revs, axis=1)
    Wf = np.concatenate(wels, axis=1)
    m, r, w = mean_se(S_[0]), mean_se(Rv[0]), mean_se(Wf[0])
    bm = br = bw = d = None
    if base is not None:
        bm, br, bw = mean_se(S_[1]), mean_se(Rv[1]), mean_se(Wf[1])
        d = mean_se(S_[0] - S_[1])
    bnd = gap = None
    if bounds:
        Bv = np.concatenate(bounds)
        bnd = mean_se(Bv)
        gap = mean_se(Bv - S_[0] if obj.maximize else S_[0] - Bv)
    return Evaluation(
        objective=obj.name,
        maximize=obj.maximize,
        n_samples=int(n_samples),
        mean=m.mean,
        se=m.se,
        revenue=r.mean,
        revenue_se=r.se,
        welfare=w.mean,
        welfare_se=w.se,
        baseline=None if base is None else base.name,
        baseline_mean=None if bm is None else bm.mean,
        baseline_se=None if bm is None else bm.se,
        baseline_revenue=None if br is None else br.mean,
        baseline_revenue_se=None if br is None else br.se,
        baseline_welfare=None if bw is None else bw.mean,
        baseline_welfare_se=None if bw is None else bw.se,
        diff_mean=None if d is None else d.mean,
        diff_se=None if d is None else d.se,
        improvement_pct=(
            None if d is None or bm is None or abs(bm.mean) < _TINY
            else 100 * d.mean / abs(bm.mean)
        ),
        min_utility=min_u,
        runtime=time.perf_counter() - start,
        seed=int(seed) if isinstance(seed, (int, np.integer)) else None,
        batch_size=int(batch_size),
        bound=None if bnd is None else bnd.mean,
        bound_se=None if bnd is None else bnd.se,
        bound_kind=kind if bnd is not None else None,
        gap_mean=None if gap is None else gap.mean,
        gap_se=None if gap is None else gap.se,
        pct_of_bound=None if bnd is None else _pct(m.mean, bnd.mean, obj.maximize),
    )


def _pct(value: float, bound: float, maximize: bool) -> float | None:
    """``100 · value / bound`` (maximised) or ``100 · bound / value`` (minimised)."""
    num, den = (value, bound) if maximize else (bound, value)
    if abs(den) < _TINY:
        return None
    return 100.0 * num / den
