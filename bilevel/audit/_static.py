"""Exploitability of static-report mechanisms on the library's MDP environments.

In the library's environments each agent's type is drawn once and reported once; the mechanism
then commits to an allocation (an occupancy measure ``x``) and payments. Agent i's utility when
its true type is ``t_i`` and the reported profile is ``t̂`` is

    u_i(t_i; t̂) = <x(t̂), R_i(t_i)> - p_i(t̂),

the allocation and payments computed from the **reports**, the reward scored with the **true**
type. Exploitability is the sum over agents of the best unilateral misreport gain at truthful
reporting (NashConv at truth):

* ex-post: ``phi_i = E_t[max_{t'_i} u_i(t_i; t'_i, t_-i)] - E_t[u_i(t_i; t)]`` (the regret of
  RegretNet);
* Bayes: ``phi_i = E_{t_i}[max_{t'_i} E_{t_-i} u_i(t_i; t'_i, t_-i)] - E_t[u_i(t_i; t)]``
  (``<=`` the ex-post value).

An AMA with an exact inner solver is dominant-strategy incentive compatible, so both are 0 up to
rounding; pay-your-bid and first-price auctions are not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from bilevel._mechanism import AMA
from bilevel._memory import fit_batch, outcome_bytes_per_profile
from bilevel._outcomes import ExactInner, batch_outcomes, counterfactual_rewards, exact_inner
from bilevel.audit._result import Exploitability, Kind, Notion
from bilevel.models import Environment
from bilevel.models.typing import FloatArray

__all__ = ["STATIC_NOTIONS", "AMAOutcome", "DirectMechanism", "static_exploitability"]

#: Notions of the static audit (the dynamic one adds "clairvoyant").
STATIC_NOTIONS: tuple[str, ...] = ("ex_post", "bayes")

_BREAK = 1e-9  # offset of the breakpoints (others' values ± 1e-9)
_GOLDEN_STEPS = 30
_MAX_ENUMERATED = 1_000_000
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@runtime_checkable
class DirectMechanism(Protocol):
    """A static direct mechanism: one report profile in, an allocation and payments out.

    Implement ``outcome`` to audit your own rule with :func:`exploitability`.

    Methods
    -------
    outcome(env, reports) -> (occupancy, payments)
        ``reports`` of shape (K, *env.type_shape) (one reported profile per row); returns the
        occupancy measure of the chosen policy, shape (K, S, A) (fractional entries are
        lotteries, e.g. split ties), and the payments, shape (K, n).
    """

    def outcome(self, env: Environment, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Allocation (K, S, A) and payments (K, n) for reports of shape (K, *type_shape)."""
        ...


@dataclass(frozen=True)
class AMAOutcome:
    """An :class:`bilevel.AMA` as a :class:`DirectMechanism`, solved by an exact inner solver.

    Parameters
    ----------
    mechanism : AMA
    inner : {"dp", "lp"} or ExactInner, default "dp"
    """

    mechanism: AMA
    inner: str | ExactInner = "dp"

    def outcome(self, env: Environment, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Allocation (K, S, A) and payments (K, n) of the AMA on the reports."""
        R = env.rewards(reports)
        out = batch_outcomes(env.mdp, self.mechanism.weights[None], self.mechanism.boosts[None],
                             R, counterfactual_rewards(env, reports), inner=self.inner)
        assert out.payments is not None  # requested above
        return out.occupancy[0], out.payments[0]


def _resolve_env(problem: Environment | str) -> Environment:
    if isinstance(problem, Environment):
        return problem
    if isinstance(problem, str):
        from bilevel.models import make_env

        return make_env(problem)
    raise TypeError(
        f"expected an Environment or a registered environment name, got {type(problem).__name__}"
    )


def _resolve_mechanism(env: Environment, mechanism: Any, inner: str | ExactInner) -> Any:
    if isinstance(mechanism, AMA):
        mechanism.check_compatible(env)
        return AMAOutcome(mechanism, exact_inner(inner))
    if isinstance(mechanism, DirectMechanism):
        return mechanism
    raise TypeError(
        "expected an AMA or a DirectMechanism (an object with outcome(env, reports)), got "
        f"{type(mechanism).__name__}"
    )


class _Outcomes:
    """Chunked, shape-checked calls of a mechanism on report profiles."""

    def __init__(self, env: Environment, mech: Any) -> None:
        self.env, self.mech = env, mech
        S, A = env.mdp.shape
        n = env.n_agents
        types = int(np.prod(env.type_shape))
        self.bytes = outcome_bytes_per_profile(n, S, A) + 8 * (types + S * A + n)
        self.calls = 0

    def __call__(self, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        M = reports.shape[0]
        step = fit_batch(M, self.bytes, "the exploitability audit")
        xs, ps = [], []
        for lo in range(0, M, step):
            x, p = self._one(reports[lo : lo + step])
            xs.append(x)
            ps.append(p)
        return np.concatenate(xs), np.concatenate(ps)

    def _one(self, reports: FloatArray) -> tuple[FloatArray, FloatArray]:
        K = reports.shape[0]
        S, A = self.env.mdp.shape
        n = self.env.n_agents
        self.calls += 1
        got = self.mech.outcome(self.env, reports.copy())
        if not (isinstance(got, tuple) and len(got) == 2):
            raise ValueError(
                f"expected outcome(env, reports) to return (occupancy, payments), got "
                f"{type(got).__name__}"
            )
        x = np.asarray(got[0], dtype=np.float64)
        p = np.asarray(got[1], dtype=np.float64)
        if x.shape != (K, S, A) or p.shape != (K, n):
            raise ValueError(
                f"expected mechanism outcomes of shapes occupancy (K, S, A) = {(K, S, A)} and "
                f"payments (K, n) = {(K, n)}, got {x.shape} and {p.shape}"
            )
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(p))):
            raise ValueError("expected finite mechanism outcomes, got NaN or inf")
        return x, p


def _shape(lead: str, slice_shape: tuple[int, ...]) -> str:
    """``"(V,)"`` or ``"(V, 2)"``: a leading named axis and one agent's type shape."""
    return "(" + ", ".join([lead, *map(str, slice_shape)]) + ("," if not slice_shape else "") + ")"


def _replace(types: FloatArray, i: int, reports_i: FloatArray) -> FloatArray:
    """Profiles ``types`` (M, *type_shape) with agent i's slice replaced by ``reports_i``."""
    rep = types.copy()
    rep[:, i] = reports_i
    return rep


def _utility(call: _Outcomes, types: FloatArray, i: int, reports_i: FloatArray,
             R_i: FloatArray) -> FloatArray:
    """u_i of agent i (true rewards R_i, (M, S, A)) when it reports ``reports_i``, shape (M,)."""
    x, p = call(_replace(types, i, reports_i))
    out: FloatArray = np.einsum("msa,msa->m", x, R_i) - p[:, i]
    return out


def _value_supports(env: Environment) -> list[tuple[float, float]] | None:
    sp = env.single_parameter
    if sp is None or env.type_shape != (env.n_agents,):
        return None
    dists = getattr(sp, "distributions", None)
    if dists is None or len(dists) != env.n_agents:
        return None
    return [tuple(d.support) for d in dists]


def static_exploitability(
    problem: Environment | str,
    mechanism: AMA | DirectMechanism,
    *,
    samples: int | None = None,
    seed: int = 0,
    notion: str = "ex_post",
    grid: int | ArrayLike = 41,
    refine: bool = True,
    inner: str | ExactInner = "dp",
    support: ArrayLike | None = None,
    inner_samples: int = 500,
) -> Exploitability:
    """Exploitability of a static-report mechanism: the summed best misreport gains at truth.

    Parameters
    ----------
    problem : Environment or str
        The environment (or its registered name, built with default parameters).
    mechanism : AMA or DirectMechanism
        An AMA (VCG, ``optimal_mechanism(...)``, a designed one), solved by ``inner``, or any
        object with ``outcome(env, reports (K, *type_shape)) -> (occupancy (K, S, A),
        payments (K, n))``.
    samples : int, optional
        Number of type profiles K (drawn with ``env.sample_types(seed, K)``; default 1000). With
        a finite ``support`` and ``samples=None`` every profile of the support is enumerated.
    seed : int, default 0
        Seed of the profiles (and of the prior draws used as candidates for multi-parameter
        types).
    notion : {"ex_post", "bayes"}, default "ex_post"
        Ex-post regret, or the interim (Bayes–Nash) gain. ``"bayes"`` assumes independent
        private types (agent i's reward depends on its own type only, the types of different
        agents are independent, as in every built-in environment): the conditional expectation
        over the others runs over the others' types of the first ``inner_samples`` profiles (a
        fixed inner sample, the same for every report, the truthful one included), or exactly
        over the support when it is enumerated. ``phi_i`` is then ``E_{t_i}[max(0, max_c
        U(t_i, c) - U(t_i, t_i))]`` with ``U`` the inner-sample interim utility.
    grid : int or array_like, default 41
        Misreport candidates when no ``support`` is given. An int G: for scalar types (type
        shape ``(n,)``) G evenly spaced reports over each agent's value support (from
        ``env.single_parameter``, else the sampled range), plus, ex-post, the breakpoints where
        the allocation changes (the others' reports ± 1e-9); for multi-parameter types agent i's
        slices of G profiles drawn from the prior. An array: the candidates, shape
        (C, *slice) with ``slice = type_shape[1:]``, used for every agent.
    refine : bool, default True
        Ex-post with scalar types: refine each agent's best grid report by a 1-D golden-section
        search between the neighbouring candidates (30 steps).
    inner : {"dp", "lp"} or ExactInner, default "dp"
        Exact inner solver of an AMA (ignored for other mechanisms).
    inner_samples : int, default 500
        Bayes notion, sampled profiles: size of the inner sample of the others' types (the
        Bayes audit solves ``(C + K) * inner_samples`` report profiles per agent).
    support : array_like of shape (V, *slice), optional
        A finite type support shared by all agents (types uniform on it, independent across
        agents; this replaces the environment's sampler). Every misreport in it is tried.

    Returns
    -------
    Exploitability
        ``kind="exact"`` when the support is finite and enumerated (``se`` is None) or sampled
        from it (``se`` is the paired sampling error; the misreport search is still
        exhaustive); ``"lower_bound"`` for a grid search over continuous types, with its
        ``resolution`` G.

    Raises
    ------
    ValueError
        For an unknown notion, a mechanism whose shapes do not fit the environment, a grid
        outside the type support, or a malformed support.
    TypeError
        If ``problem`` or ``mechanism`` has the wrong type.

    Examples
    --------
    >>> from bilevel import make_env, vcg
    >>> from bilevel.audit import first_price
    >>> env = make_env("sales", n_agents=2, n_items=1)
    >>> static_exploitability(env, vcg(env), samples=200).max_gain <= 1e-9
    True
    >>> r = static_exploitability(env, first_price(env), samples=2000, grid=101)
    >>> round(r.total, 1), r.kind
    (0.3, 'lower_bound')
    """
    if notion not in STATIC_NOTIONS:
        raise ValueError(f"expected notion in {STATIC_NOTIONS}, got {notion!r}")
    env = _resolve_env(problem)
    mech = _resolve_mechanism(env, mechanism, inner)
    call = _Outcomes(env, mech)
    n = env.n_agents
    slice_shape = tuple(env.type_shape[1:])
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)
                                or samples < 1):
        raise ValueError(f"expected samples as an int >= 1, got {samples!r}")

    enumerated = False
    if support is not None:
        sup = np.asarray(support, dtype=np.float64)
        if sup.ndim < 1 or sup.shape[1:] != slice_shape or sup.shape[0] < 1:
            raise ValueError(
                f"expected a support of shape {_shape('V', slice_shape)}, got {sup.shape}"
            )
        V = sup.shape[0]
        if samples is None:
            if V**n > _MAX_ENUMERATED:
                raise ValueError(
                    f"expected at most {_MAX_ENUMERATED} profiles to enumerate, got {V}^{n} = "
                    f"{V**n} (pass samples=K to sample them)"
                )
            idx = np.array(list(itertools.product(range(V), repeat=n)), dtype=np.int64)
            enumerated = True
        else:
            idx = np.random.default_rng(seed).integers(0, V, size=(samples, n))
        types = env._check_types(sup[idx])
        cands: list[FloatArray] = [sup] * n
        method, resolution, kind = "static-enumeration", None, "exact"
    else:
        K = 1000 if samples is None else samples
        types = env.sample_types(seed, K)
        cands, method, resolution = _candidates(env, types, grid, seed, notion)
        kind = "lower_bound"
    types = np.asarray(types, dtype=np.float64)
    K = types.shape[0]
    if isinstance(inner_samples, bool) or not isinstance(inner_samples, int) or inner_samples < 1:
        raise ValueError(f"expected inner_samples as an int >= 1, got {inner_samples!r}")
    n_inner = K if enumerated else min(K, inner_samples)
    R_true = env.rewards(types)  # (K, n, S, A)
    x_tr, p_tr = call(types)
    u_tr = np.einsum("ksa,knsa->kn", x_tr, R_true) - p_tr  # (K, n)

    scalar = slice_shape == () and support is None and isinstance(grid, (int, np.integer))
    gains = np.empty((K, n))
    best: list[FloatArray] = []
    for i in range(n):
        if notion == "ex_post":
            breaks = _breakpoints(types, i, cands[i]) if scalar else None
            g, b = _ex_post(call, types, i, cands[i], R_true[:, i], u_tr[:, i], breaks,
                            refine and scalar)
        else:
            g, b = _bayes(call, types, i, cands[i], R_true[:, i], n_inner)
        gains[:, i] = g
        best.append(b)
    if scalar and notion == "ex_post":
        method += "+breakpoints" + ("+golden" if refine else "")
    per = gains.mean(axis=0)
    if enumerated:
        se: float | None = None
        per_se: FloatArray | None = None
    else:
        per_se = gains.std(axis=0, ddof=1) / math.sqrt(K) if K > 1 else np.full(n, np.nan)
        tot = gains.sum(axis=1)
        se = float(tot.std(ddof=1) / math.sqrt(K)) if K > 1 else float("nan")
    nt: Notion = "ex_post" if notion == "ex_post" else "bayes"
    kd: Kind = "exact" if kind == "exact" else "lower_bound"
    return Exploitability(float(per.sum()), per, se, per_se, tuple(best), kd, method,
                          resolution, K, nt, u_tr.mean(axis=0))


def _candidates(env: Environment, types: FloatArray, grid: int | ArrayLike, seed: int,
                notion: str) -> tuple[list[FloatArray], str, int | None]:
    """Per-agent candidate misreports (C, *slice), the method name and the resolution."""
    n = env.n_agents
    slice_shape = tuple(env.type_shape[1:])
    supports = _value_supports(env)
    if not isinstance(grid, (int, np.integer)) or isinstance(grid, bool):
        arr = np.asarray(grid, dtype=np.float64)
        if arr.ndim < 1 or arr.shape[1:] != slice_shape or arr.shape[0] < 1:
            raise ValueError(
                f"expected a grid of shape {_shape('C', slice_shape)}, got {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("expected a finite grid, got NaN or inf")
        if supports is not None:
            for i, (lo, hi) in enumerate(supports):
                if arr.min() < lo or arr.max() > hi:
                    raise ValueError(
                        f"expected a report grid within agent {i + 1}'s type support "
                        f"[{lo:g}, {hi:g}], got reports in [{arr.min():g}, {arr.max():g}]"
                    )
        return [arr] * n, f"static-candidates(C={arr.shape[0]})", int(arr.shape[0])
    G = int(grid)
    if G < 2:
        raise ValueError(f"expected grid >= 2 points, got {G}")
    if slice_shape == ():
        out = []
        for i in range(n):
            lo, hi = (supports[i] if supports is not None
                      else (float(types[:, i].min()), float(types[:, i].max())))
            if not math.isfinite(hi):
                hi = float(types[:, i].max())
            if not math.isfinite(lo):
                lo = float(types[:, i].min())
            out.append(np.linspace(lo, hi, G))
        return out, f"static-grid(G={G})", G
    draws = env.sample_types(np.random.default_rng([seed, 1]), G)
    return [draws[:, i] for i in range(n)], f"static-prior-draws(G={G})", G


def _breakpoints(types: FloatArray, i: int, grid: FloatArray) -> FloatArray:
    """The others' reports ± 1e-9 within the grid's range, shape (K, 2 (n - 1))."""
    others = np.delete(types, i, axis=1)
    pts = np.concatenate([others - _BREAK, others + _BREAK], axis=1)
    out: FloatArray = np.clip(pts, grid.min(), grid.max())
    return out


def _ex_post(call: _Outcomes, types: FloatArray, i: int, cand: FloatArray, R_i: FloatArray,
             u_tr: FloatArray, breaks: FloatArray | None,
             refine: bool) -> tuple[FloatArray, FloatArray]:
    """Per-profile best gains (K,) and argmax reports (K, *slice) of agent i."""
    K = types.shape[0]
    C = cand.shape[0]
    slice_shape = cand.shape[1:]
    per_k = np.broadcast_to(cand[None], (K, *cand.shape))
    if breaks is not None:
        per_k = np.concatenate([per_k, breaks], axis=1)
        per_k = np.sort(per_k, axis=1)
        C = per_k.shape[1]
    rows = fit_batch(K, call.bytes * C, "the exploitability audit")
    u = np.empty((K, C))
    for lo in range(0, K, rows):
        t = types[lo : lo + rows]
        k = t.shape[0]
        rep_t = np.repeat(t, C, axis=0)
        rep_i = per_k[lo : lo + rows].reshape(k * C, *slice_shape)
        R = np.repeat(R_i[lo : lo + rows], C, axis=0)
        u[lo : lo + rows] = _utility(call, rep_t, i, rep_i, R).reshape(k, C)
    j = u.argmax(axis=1)
    ar = np.arange(K)
    best_u = u[ar, j]
    best_r = per_k[ar, j].copy()
    if refine:
        a = per_k[ar, np.maximum(j - 1, 0)]
        b = per_k[ar, np.minimum(j + 1, C - 1)]
        ru, rr = _golden(lambda r: _utility(call, types, i, r, R_i), a, b)
        better = ru > best_u
        best_u = np.where(better, ru, best_u)
        best_r = np.where(better, rr, best_r)
    truthful = best_u <= u_tr
    gain = np.where(truthful, 0.0, best_u - u_tr)
    best_r = np.where(truthful, types[:, i], best_r) if slice_shape == () else best_r
    return gain, best_r


def _golden(f: Callable[[FloatArray], FloatArray], a: FloatArray,
            b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Golden-section maximisation of f on [a, b] (vectorised); the best point evaluated."""
    a, b = a.copy(), b.copy()
    c1 = b - _INV_PHI * (b - a)
    c2 = a + _INV_PHI * (b - a)
    f1, f2 = f(c1), f(c2)
    best_u = np.maximum(f1, f2)
    best_r = np.where(f1 >= f2, c1, c2)
    for _ in range(_GOLDEN_STEPS):
        left = f1 >= f2  # the maximum lies in [a, c2]
        b = np.where(left, c2, b)
        a = np.where(left, a, c1)
        new_c1 = np.where(left, b - _INV_PHI * (b - a), c2)
        new_c2 = np.where(left, c1, a + _INV_PHI * (b - a))
        probe = np.where(left, new_c1, new_c2)
        fp = f(probe)
        f1, f2 = np.where(left, fp, f2), np.where(left, f1, fp)
        c1, c2 = new_c1, new_c2
        better = fp > best_u
        best_u = np.where(better, fp, best_u)
        best_r = np.where(better, probe, best_r)
    return best_u, best_r


def _bayes(call: _Outcomes, types: FloatArray, i: int, cand: FloatArray, R_i: FloatArray,
           n_inner: int) -> tuple[FloatArray, FloatArray]:
    """Per-profile interim gains (K,) and argmax reports (K, *slice) of agent i.

    The interim utility of report c for true type t_i is ``<mean_j x(c, t_-i^j), R_i(t_i)> -
    mean_j p_i(c, t_-i^j)`` (linear in the allocation), the mean over the others of the first
    ``n_inner`` profiles (the inner sample). The truthful interim utility uses the same inner
    sample, so a truthful mechanism gains exactly nothing.
    """
    K = types.shape[0]
    inner = types[:n_inner]
    xbar_c, pbar_c = _interim(call, inner, i, cand)  # (C, S, A), (C,)
    xbar_t, pbar_t = _interim(call, inner, i, types[:, i])  # (K, S, A), (K,)
    interim = np.einsum("csa,ksa->kc", xbar_c, R_i) - pbar_c[None]  # (K, C)
    truthful = np.einsum("ksa,ksa->k", xbar_t, R_i) - pbar_t  # (K,)
    j = interim.argmax(axis=1)
    best = interim[np.arange(K), j]
    lie = best > truthful
    gain: FloatArray = np.where(lie, best - truthful, 0.0)
    reports = cand[j].copy()
    reports[~lie] = types[~lie, i]
    return gain, reports


def _interim(call: _Outcomes, inner: FloatArray, i: int,
             reports_i: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean allocation (C, S, A) and agent i's mean payment (C,) of each report of agent i
    against the others of the inner profiles (J, *type_shape)."""
    J = inner.shape[0]
    C = reports_i.shape[0]
    S, A = call.env.mdp.shape
    xbar = np.empty((C, S, A))
    pbar = np.empty(C)
    rows = fit_batch(C, call.bytes * J, "the exploitability audit (Bayes)")
    for lo in range(0, C, rows):
        c = reports_i[lo : lo + rows]
        m = c.shape[0]
        rep_t = np.tile(inner, (m, *([1] * (inner.ndim - 1))))
        rep_i = np.repeat(c, J, axis=0)
        x, p = call(_replace(rep_t, i, rep_i))
        xbar[lo : lo + m] = x.reshape(m, J, S, A).mean(axis=1)
        pbar[lo : lo + m] = p[:, i].reshape(m, J).mean(axis=1)
    return xbar, pbar
