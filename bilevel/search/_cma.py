"""CMA-ES over tied boost parameterisations, refined coarse to fine, with exact scores.

The revenue of an AMA is piecewise constant in its parameters (exact inner solves) and has
local optima; gradient runs through the regularised problem from random boosts stall on its
plateaus (``docs/results.md``). This searcher is a global, derivative-free alternative:

1. the boosts are tied by the MDP's structure (:mod:`bilevel.search._tying`): first one boost
   per action label — a handful of parameters — then one per (depth, action), then (optionally)
   every state–action pair, each phase starting from the best point of the previous one (a
   finer tying represents every coarser point exactly);
2. in each phase, the covariance matrix adaptation evolution strategy (CMA-ES; Hansen &
   Ostermeier 2001; default parameters of Hansen 2016, *The CMA Evolution Strategy: A
   Tutorial*, Table 1) searches the tied parameters, scoring each generation's candidates
   exactly on common type profiles in one batched solve;
3. weights, when optimised, are searched as ``log w`` with zero mean (the common scale of
   ``(w, b)`` does not change the mechanism, so it is fixed instead of left as a ridge).

Coordinates are scaled so that one unit of a boost parameter is ``reward_scale`` (the mean over
the search profiles of the largest reward of any agent), and ``sigma0`` is in those units. The
searcher starts at VCG (``w = 1``, ``b = 0``) or at a given mechanism — never at a known optimum.
The state is plain arrays plus the generator, so it checkpoints and resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bilevel._mechanism import AMA
from bilevel._memory import check_memory, outcome_bytes_per_profile
from bilevel._outcomes import counterfactual_rewards
from bilevel.models.typing import FloatArray
from bilevel.search._driver import DesignProblem
from bilevel.search._first_order import check_count, check_positive
from bilevel.search._grid import score_chunk
from bilevel.search._serialize import serializable
from bilevel.search._tying import TYINGS, lift, tying_matrix

__all__ = ["CMAES", "CMAESState", "EvolutionState", "evolution_ask", "evolution_start",
           "evolution_tell"]


# ---------------------------------------------------------------------- the CMA-ES core


@serializable("bilevel.search.EvolutionState")
@dataclass
class EvolutionState:
    """State of one CMA-ES run over ``d`` parameters (minimisation; plain arrays).

    Attributes
    ----------
    mean : ndarray of shape (d,)
    sigma : float
        Global step size.
    C : ndarray of shape (d, d)
        Covariance matrix.
    p_sigma, p_c : ndarray of shape (d,)
        Evolution paths of the step size and of the covariance.
    generation : int
    """

    mean: FloatArray
    sigma: float
    C: FloatArray
    p_sigma: FloatArray
    p_c: FloatArray
    generation: int = 0

    @property
    def dim(self) -> int:
        """Number of parameters d."""
        return int(self.mean.size)


def _params(d: int, popsize: int | None) -> dict[str, Any]:
    """Default strategy parameters (Hansen 2016, Table 1)."""
    lam = int(popsize) if popsize is not None else 4 + int(3 * np.log(d))
    mu = lam // 2
    raw = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w = raw / raw.sum()
    mu_eff = 1.0 / float(np.sum(w**2))
    c_sigma = (mu_eff + 2) / (d + mu_eff + 5)
    d_sigma = 1 + 2 * max(0.0, np.sqrt((mu_eff - 1) / (d + 1)) - 1) + c_sigma
    c_c = (4 + mu_eff / d) / (d + 4 + 2 * mu_eff / d)
    c_1 = 2 / ((d + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((d + 2) ** 2 + mu_eff))
    chi_n = np.sqrt(d) * (1 - 1 / (4 * d) + 1 / (21 * d**2))
    return {"lam": lam, "mu": mu, "w": w, "mu_eff": mu_eff, "c_sigma": c_sigma,
            "d_sigma": d_sigma, "c_c": c_c, "c_1": c_1, "c_mu": c_mu, "chi_n": chi_n}


def evolution_start(mean: FloatArray, sigma: float) -> EvolutionState:
    """A CMA-ES run at ``mean`` with step size ``sigma`` and identity covariance."""
    m = np.array(mean, dtype=np.float64).ravel()
    d = m.size
    return EvolutionState(m, float(sigma), np.eye(d), np.zeros(d), np.zeros(d))


def evolution_ask(
    es: EvolutionState, rng: np.random.Generator, popsize: int | None = None
) -> FloatArray:
    """Sample one generation.

    Parameters
    ----------
    es : EvolutionState
    rng : numpy.random.Generator
    popsize : int, optional
        λ; default ``4 + floor(3 ln d)``.

    Returns
    -------
    ndarray of shape (λ, d)
        ``mean + sigma * N(0, C)`` samples.
    """
    lam = _params(es.dim, popsize)["lam"]
    vals, vecs = np.linalg.eigh(es.C)
    root = vecs * np.sqrt(np.maximum(vals, 0.0))  # B D
    z = rng.standard_normal((lam, es.dim))
    X: FloatArray = es.mean + es.sigma * z @ root.T
    return X


def evolution_tell(
    es: EvolutionState, X: FloatArray, f: FloatArray, popsize: int | None = None
) -> EvolutionState:
    """Update the strategy with a generation's (minimised) fitness values.

    Parameters
    ----------
    es : EvolutionState
    X : ndarray of shape (λ, d)
        The generation returned by :func:`evolution_ask`.
    f : ndarray of shape (λ,)
        Fitness, lower is better; ties keep the sampling order.
    popsize : int, optional
        The λ used to sample ``X``.

    Returns
    -------
    EvolutionState
        The updated state (a new object).
    """
    p = _params(es.dim, popsize)
    d, mu, w = es.dim, p["mu"], p["w"]
    order = np.argsort(f, kind="stable")[:mu]
    Y = (X[order] - es.mean) / es.sigma  # (mu, d)
    y_w = w @ Y
    mean = es.mean + es.sigma * y_w
    vals, vecs = np.linalg.eigh(es.C)
    inv_root = (vecs / np.sqrt(np.maximum(vals, 1e-300))) @ vecs.T  # C^{-1/2}
    cs = p["c_sigma"]
    p_sigma = (1 - cs) * es.p_sigma + np.sqrt(cs * (2 - cs) * p["mu_eff"]) * (inv_root @ y_w)
    g = es.generation + 1
    norm = float(np.linalg.norm(p_sigma))
    h_sigma = float(
        norm / np.sqrt(1 - (1 - cs) ** (2 * g)) < (1.4 + 2 / (d + 1)) * p["chi_n"]
    )
    cc = p["c_c"]
    p_c = (1 - cc) * es.p_c + h_sigma * np.sqrt(cc * (2 - cc) * p["mu_eff"]) * y_w
    c1, cmu = p["c_1"], p["c_mu"]
    rank_mu = (Y * w[:, None]).T @ Y
    C = (
        (1 - c1 - cmu) * es.C
        + c1 * (np.outer(p_c, p_c) + (1 - h_sigma) * cc * (2 - cc) * es.C)
        + cmu * rank_mu
    )
    C = (C + C.T) / 2
    sigma = es.sigma * float(np.exp((cs / p["d_sigma"]) * (norm / p["chi_n"] - 1)))
    return EvolutionState(mean, sigma, C, p_sigma, p_c, g)


# ---------------------------------------------------------------------- the searcher


@serializable("bilevel.search.CMAESState", exclude=("rewards", "cf_rewards"))
@dataclass
class CMAESState:
    """Progress of a :class:`CMAES` search (plain data; checkpointable).

    The rewards of the common profiles (``rewards``, ``cf_rewards``: one array per chunk of
    profiles) are derived from ``types`` and are not saved: a resumed search recomputes them
    (a checkpoint of sales n=5, m=3 with 12,000 profiles would otherwise hold 0.7 GB).
    """

    rng: np.random.Generator
    types: FloatArray
    reward_scale: float
    phase: int
    es: EvolutionState
    rewards: list[FloatArray] = field(default_factory=list)
    cf_rewards: list[FloatArray | None] = field(default_factory=list)
    scan_next: int = 0
    evals: int = 0
    phase_evals: int = 0
    best_weights: FloatArray | None = None
    best_boosts: FloatArray | None = None
    best_score: float = float("nan")
    scores: list[float] = field(default_factory=list)
    phase_ends: list[int] = field(default_factory=list)
    scan_points: list[FloatArray] = field(default_factory=list)
    scan_scores: list[float] = field(default_factory=list)
    starts: list[FloatArray] = field(default_factory=list)
    run: int = 0


@dataclass(frozen=True)
class CMAES:
    """CMA-ES over tied boosts (and zero-mean log weights), refined coarse to fine.

    Parameters
    ----------
    tyings : tuple of str, default ("action", "layer_action")
        The phases' boost tyings, coarsest first (see :mod:`bilevel.search._tying`:
        ``"action"``, ``"layer_action"``, ``"state_action"``).
    evals : int or tuple of int, default 600
        Candidate evaluations per phase (one value for all phases, or one per phase).
    n_profiles : int or tuple of int, default (4000, 12000)
        Common type profiles every candidate of a phase is scored on, exactly (one value for
        all phases, or one per tying; the scan uses the first phase's). The profiles are
        nested: a phase with fewer profiles uses the first ones of the others. Near the
        optimum the revenue is flat, so the error a phase leaves is its sampling noise:
        later phases refine on more profiles.
    sigma0 : float, default 0.2
        Initial step size of the first phase, in units of the reward scale (boosts) and of
        ``log w`` (weights).
    refine_sigma : float, default 0.5
        Each later phase restarts with step size ``refine_sigma`` times the previous phase's
        final step size (at least ``sigma0 / 20``).
    popsize : int, optional
        Candidates per generation λ; default ``4 + floor(3 ln d)``.
    n_scan : int, default 256
        Before the first phase, a global scan: the first ``n_scan`` points of an unscrambled
        Sobol sequence over the first tying's parameters in the box ``start ± scan_box``
        (the first point, the box's corner, is replaced by the start itself) are scored; the
        best of them start the first phase's runs (``n_starts``). CMA-ES is a local method at
        small step sizes and the revenue has local optima: asymmetric sales have a basin
        without reserve prices, separated from Myerson's optimum by a valley, and from VCG
        with 2,000 profiles no candidate at step size 0.2 improved on VCG for 8 generations
        (uniform, n = 3, m = 2). 0 disables the scan (then the only start is ``start``).
    n_starts : int, default 4
        Runs of the first phase: from the start, then from the best scan points that differ
        from every earlier start by more than ``sigma0`` in some coordinate. Each run has the
        first phase's budget; the next phase starts from the best point of all of them.
    scan_box : float, default 1.0
        Half-width of the scan box, in the scaled units (reward scale for boosts, ``log w``
        for weights).
    start : AMA, optional
        Starting mechanism (projected onto the first tying); default VCG.
    """

    tyings: tuple[str, ...] = ("action", "layer_action")
    evals: int | tuple[int, ...] = 600
    n_profiles: int | tuple[int, ...] = (4000, 12000)
    sigma0: float = 0.2
    refine_sigma: float = 0.5
    popsize: int | None = None
    n_scan: int = 256
    n_starts: int = 4
    scan_box: float = 1.0
    start: AMA | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tyings, tuple) or not self.tyings:
            raise ValueError(f"expected tyings as a non-empty tuple, got {self.tyings!r}")
        for t in self.tyings:
            if t not in TYINGS:
                raise ValueError(f"expected every tying in {TYINGS!r}, got {t!r}")
        for e in self.budgets:
            check_count("evals", e)
        for k in self.profile_counts:
            check_count("n_profiles", k)
        check_positive("sigma0", self.sigma0)
        check_positive("refine_sigma", self.refine_sigma)
        check_positive("scan_box", self.scan_box)
        check_count("n_starts", self.n_starts)
        if isinstance(self.n_scan, bool) or not isinstance(self.n_scan, int) or self.n_scan < 0:
            raise ValueError(f"expected n_scan as an int >= 0, got {self.n_scan!r}")
        if self.popsize is not None:
            check_count("popsize", self.popsize)
            if self.popsize < 2:
                raise ValueError(f"expected popsize >= 2, got {self.popsize}")

    @property
    def budgets(self) -> tuple[int, ...]:
        """Evaluations of each phase."""
        return _per_phase(self.evals, len(self.tyings), "evals budget")

    @property
    def profile_counts(self) -> tuple[int, ...]:
        """Profiles of each phase."""
        return _per_phase(self.n_profiles, len(self.tyings), "n_profiles")

    # ------------------------------------------------------------------ parameter maps
    def _layout(self, problem: DesignProblem, phase: int) -> tuple[FloatArray, FloatArray | None]:
        """Group matrix of the phase's tying and the zero-mean log-weight basis (or None)."""
        T = tying_matrix(problem.env.mdp, self.tyings[phase])
        H = _zero_mean_basis(problem.env.n_agents) if problem.optimise_weights else None
        return T, H

    def _decode(
        self, problem: DesignProblem, state: CMAESState, X: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Weights (C, n) and boosts (C, S, A) of parameter rows X (C, d)."""
        T, H = self._layout(problem, state.phase)
        n = problem.env.n_agents
        kw = 0 if H is None else H.shape[1]
        W = np.ones((X.shape[0], n)) if H is None else np.exp(X[:, :kw] @ H.T)
        B = (X[:, kw:] @ T.T) * state.reward_scale
        return W, B.reshape(X.shape[0], *problem.env.mdp.shape)

    def _encode(
        self, problem: DesignProblem, phase: int, scale: float, mech: AMA
    ) -> FloatArray:
        T, H = self._layout(problem, phase)
        parts = []
        if H is not None:
            lw = np.log(mech.weights)
            parts.append(H.T @ (lw - lw.mean()))
            scale = scale * float(np.exp(-lw.mean()))  # (w, b) / exp(mean log w): same AMA
        parts.append(lift(T, mech.boosts) / scale)
        return np.concatenate(parts)

    # ------------------------------------------------------------------ Searcher protocol
    def total_steps(self, problem: DesignProblem) -> int:
        """Scan chunks plus generations over all phases (an upper bound)."""
        total = -(-self.n_scan // _SCAN_CHUNK)
        for phase, budget in enumerate(self.budgets):
            runs = min(self.n_starts, 1 + self.n_scan) if phase == 0 else 1
            T, H = self._layout(problem, phase)
            d = T.shape[1] + (0 if H is None else H.shape[1])
            lam = _params(d, self.popsize)["lam"]
            total += runs * -(-budget // lam)
        return total

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> CMAESState:
        """Draw the common profiles and start the first phase at VCG (or ``start``)."""
        env = problem.env
        k = max(self.profile_counts)
        # the cached rewards of every profile, and one chunk's scoring arrays for a candidate
        per = outcome_bytes_per_profile(env.n_agents, env.n_states, env.n_actions, 0,
                                        problem.objective.needs_payments)
        check_memory(k * per + min(k, _PROFILE_CHUNK) * outcome_bytes_per_profile(
            env.n_agents, env.n_states, env.n_actions, 1, problem.objective.needs_payments),
            f"CMA-ES on {k} common profiles", "use fewer profiles (n_profiles)")
        types = env.sample_types(rng, k)
        first = types[: self.profile_counts[0]]
        scale = float(np.abs(env.rewards(first)).reshape(first.shape[0], -1).max(axis=1).mean())
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        start = self.start
        if start is None:
            start = AMA(np.ones(env.n_agents), np.zeros(env.mdp.shape))
        else:
            start.check_compatible(env)
        x0 = self._encode(problem, 0, scale, start)
        state = CMAESState(rng, types, scale, 0, evolution_start(x0, self.sigma0))
        # until a candidate is scored, the best is the start (with an unknown score)
        state.best_weights = np.array(start.weights, dtype=np.float64)
        state.best_boosts = np.array(start.boosts, dtype=np.float64)
        _ensure_rewards(problem, state)
        if self.n_scan == 0:
            state.starts = [x0]
        return state

    def _score(self, problem: DesignProblem, state: CMAESState, X: FloatArray) -> FloatArray:
        """Exact scores of parameter rows X (C, d); records them and the best so far."""
        _ensure_rewards(problem, state)
        W, B = self._decode(problem, state, X)
        count = self.profile_counts[min(state.phase, len(self.tyings) - 1)]
        total = np.zeros(X.shape[0])
        for c, a in enumerate(range(0, count, _PROFILE_CHUNK)):
            b = min(a + _PROFILE_CHUNK, count)
            R, R_cf = state.rewards[c], state.cf_rewards[c]
            cf = None if R_cf is None else R_cf[:, : b - a]
            for j in range(X.shape[0]):  # one candidate per call: smaller temporaries, faster
                total[j] += (b - a) * score_chunk(
                    problem, W[j : j + 1], B[j : j + 1], state.types[a:b], R[: b - a], cf
                )[0]
        scores: FloatArray = total / count
        sign = 1.0 if problem.objective.maximize else -1.0
        for j, s in enumerate(scores.tolist()):
            state.scores.append(s)
            if np.isfinite(s) and (
                not np.isfinite(state.best_score) or sign * s > sign * state.best_score
            ):
                state.best_score, state.best_weights, state.best_boosts = s, W[j], B[j]
        return scores

    def _scan_step(self, problem: DesignProblem, state: CMAESState) -> None:
        _, H = self._layout(problem, 0)
        kw = 0 if H is None else H.shape[1]  # the scan keeps the start's weights
        d = state.es.dim - kw
        i0 = state.scan_next
        i1 = min(self.n_scan, i0 + _SCAN_CHUNK)
        u = _sobol_rows(d, i1)[i0:i1]
        u[np.arange(i0, i1) == 0] = 0.5  # the first candidate is the start itself
        X = np.repeat(state.es.mean[None], i1 - i0, axis=0)
        X[:, kw:] += self.scan_box * (2 * u - 1)
        scores = self._score(problem, state, X)
        state.scan_points.extend(X)
        state.scan_scores.extend(scores.tolist())
        state.scan_next = i1
        state.evals += i1 - i0
        if i1 >= self.n_scan:
            self._choose_starts(problem, state)

    def _choose_starts(self, problem: DesignProblem, state: CMAESState) -> None:
        """The first phase's starts: the given start, then the best distinct scan points."""
        sign = 1.0 if problem.objective.maximize else -1.0
        order = np.argsort(-sign * np.asarray(state.scan_scores), kind="stable")
        starts = [state.es.mean]
        for i in order:
            if len(starts) >= self.n_starts:
                break
            x = state.scan_points[i]
            if all(np.abs(x - y).max() > self.sigma0 for y in starts):
                starts.append(x)
        state.starts = starts
        state.scan_points, state.scan_scores = [], []
        state.es = evolution_start(starts[0], self.sigma0)

    def step(self, problem: DesignProblem, state: CMAESState) -> CMAESState:
        """One scan chunk, or one generation: sample, score exactly, update."""
        if state.scan_next < self.n_scan:
            self._scan_step(problem, state)
            return state
        X = evolution_ask(state.es, state.rng, self.popsize)
        scores = self._score(problem, state, X)
        sign = 1.0 if problem.objective.maximize else -1.0
        state.es = evolution_tell(state.es, X, -sign * scores, self.popsize)
        state.evals += X.shape[0]
        state.phase_evals += X.shape[0]
        converged = state.es.sigma < 1e-6 * self.sigma0
        if state.phase_evals >= self.budgets[state.phase] or converged:
            if state.phase == 0 and state.run + 1 < len(state.starts):
                state.run += 1  # the next start of the first phase
                state.phase_evals = 0
                state.es = evolution_start(state.starts[state.run], self.sigma0)
            else:
                self._next_phase(problem, state)
        return state

    def _next_phase(self, problem: DesignProblem, state: CMAESState) -> None:
        state.phase_ends.append(state.evals)
        if state.phase + 1 >= len(self.tyings):
            state.phase += 1
            return
        best, _ = self.best(state)
        sigma = max(self.refine_sigma * state.es.sigma, self.sigma0 / 20)
        state.phase += 1
        state.phase_evals = 0
        x0 = self._encode(problem, state.phase, state.reward_scale, best)
        state.es = evolution_start(x0, sigma)
        if self.profile_counts[state.phase] != self.profile_counts[state.phase - 1]:
            # scores of different profile sets do not compare: the best so far is re-scored
            # on this phase's profiles and competes with its candidates from there
            state.best_score = float("nan")
            self._score(problem, state, x0[None])
            state.evals += 1

    def done(self, state: CMAESState) -> bool:
        """Whether every phase has run."""
        return state.phase >= len(self.tyings)

    def best(self, state: CMAESState) -> tuple[AMA, float]:
        """The best candidate scored so far (exact score on the common profiles)."""
        if state.best_weights is None or state.best_boosts is None:  # pragma: no cover
            raise RuntimeError("expected a state made by CMAES.init, got one without a start")
        mech = AMA(state.best_weights, state.best_boosts, name="cma",
                   meta={"cma_evaluations": state.evals})
        return mech, state.best_score

    def history(self, state: CMAESState) -> list[tuple[int, float]]:
        """``(evaluation index, score)`` of every scored candidate."""
        return list(enumerate(state.scores))


_SCAN_CHUNK = 64  # scan candidates scored per step
_PROFILE_CHUNK = 2000  # profiles per batched scoring call (memory)


def _ensure_rewards(problem: DesignProblem, state: CMAESState) -> None:
    """Compute the common profiles' rewards in chunks (after ``init`` or a resume)."""
    if state.rewards:
        return
    env = problem.env
    for a in range(0, state.types.shape[0], _PROFILE_CHUNK):
        t = state.types[a : a + _PROFILE_CHUNK]
        state.rewards.append(env.rewards(t))
        state.cf_rewards.append(
            counterfactual_rewards(env, t) if problem.objective.needs_payments else None
        )


def _per_phase(value: int | tuple[int, ...], phases: int, name: str) -> tuple[int, ...]:
    """One value per phase from an int or a tuple of the right length."""
    if isinstance(value, tuple):
        if len(value) != phases:
            raise ValueError(f"expected one {name} per tying ({phases}), got {len(value)}")
        return value
    return (value,) * phases


def _sobol_rows(d: int, count: int) -> FloatArray:
    """Rows 0..count-1 of the unscrambled Sobol sequence of dimension d (row 0 is 0)."""
    import warnings

    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*balance properties.*", category=UserWarning)
        pts = qmc.Sobol(d=d, scramble=False).random(count)
    return np.asarray(pts, dtype=np.float64)


def _zero_mean_basis(n: int) -> FloatArray:
    """Orthonormal basis (n, n - 1) of the vectors of R^n with zero mean (Helmert)."""
    H = np.zeros((n, max(n - 1, 0)))
    for k in range(1, n):
        H[:k, k - 1] = 1.0 / np.sqrt(k * (k + 1))
        H[k, k - 1] = -k / np.sqrt(k * (k + 1))
    return H
