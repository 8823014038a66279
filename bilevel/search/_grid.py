"""Sobol grid search over AMA parameters (the grid-search baseline of Curry et al. (2024), §5).

Candidates are the points of *unscrambled* Sobol sequences (Joe–Kuo direction numbers, as
Sobol.jl), without the all-zero first row, so the first candidate is the box midpoint: ``b = 0``
and ``w = 1`` (or ``1/n`` each), i.e. **VCG is always the first candidate**:

* boosts: point ``u`` of a Sobol sequence of dimension S·A mapped to ``lo + (hi - lo) u`` and
  reshaped to (S, A) in **column-major** order (the first S coordinates are action 0);
* weights (only when optimised, e.g. asymmetric distributions): point of an independent
  n-dimensional Sobol sequence divided by its sum (weights on the simplex); otherwise ``w = 1``.

Each candidate is scored by the mean objective over ``n_profiles`` type profiles solved
exactly (unregularised). Unlike the authors' code, which draws fresh profiles for every candidate,
all candidates are scored on the *same* profiles (common random numbers), which makes the
comparison between candidates sharper; the best candidate is chosen by strict improvement, so
the first (VCG) wins ties. Scoring is batched over candidates × profiles × (n + 1) solves.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import qmc

from bilevel._mechanism import AMA
from bilevel._memory import check_memory, outcome_bytes_per_profile
from bilevel._outcomes import batch_outcomes, counterfactual_rewards
from bilevel.models.typing import FloatArray
from bilevel.search._driver import DesignProblem
from bilevel.search._serialize import serializable

__all__ = ["GridSearch", "GridState", "score_chunk", "sobol_candidates"]


def _sobol(dim: int, count: int) -> FloatArray:
    """Rows 1..count of the unscrambled Sobol sequence of dimension ``dim`` (row 0 = 0 skipped)."""
    engine = qmc.Sobol(d=dim, scramble=False)
    with warnings.catch_warnings():
        # Balance properties need powers of two; the authors' Sobol.jl prefix ignores that too.
        warnings.filterwarnings("ignore", message=".*balance properties.*", category=UserWarning)
        pts = engine.random(count + 1)
    return np.asarray(pts[1:], dtype=np.float64)


def sobol_candidates(
    n_points: int,
    n_agents: int,
    shape: tuple[int, int],
    box: tuple[float, float],
    optimise_weights: bool,
) -> tuple[FloatArray, FloatArray]:
    """The first ``n_points`` grid-search candidates.

    Parameters
    ----------
    n_points : int
        Number of candidates.
    n_agents : int
        n.
    shape : tuple of int
        ``(S, A)``.
    box : tuple of float
        ``(lo, hi)`` for every boost.
    optimise_weights : bool
        Weights from a Sobol sequence on the simplex (else all 1).

    Returns
    -------
    weights : ndarray of shape (n_points, n)
    boosts : ndarray of shape (n_points, S, A)

    Examples
    --------
    >>> box = (-2 / (1 - 0.9), 2 / (1 - 0.9))  # gridworld, n = 2, gamma = 0.9
    >>> w, b = sobol_candidates(2, 2, (9, 4), box, False)
    >>> float(abs(b[0]).max()), float(b[1][0, 0])  # VCG, then the authors' runtests.jl boosts
    (0.0, 10.000000000000004)
    """
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise ValueError(f"expected n_points as an int >= 1, got {n_points!r}")
    S, A = shape
    lo, hi = (float(box[0]), float(box[1]))
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"expected a boost box (lo, hi) with finite lo < hi, got {box!r}")
    maxdim = int(getattr(qmc.Sobol, "MAXDIM", 21201))
    if maxdim < S * A:
        raise ValueError(
            f"grid search needs Sobol points of dimension S·A = {S}·{A} = {S * A}, beyond "
            f"scipy's maximum of {maxdim}; use method='cma' (tied boosts) or a gradient method"
        )
    check_memory(8.0 * n_points * S * A, f"{n_points} grid candidates of shape (S, A) = "
                 f"({S}, {A})", "use fewer points")
    u = _sobol(S * A, n_points)
    boosts = lo + (hi - lo) * u
    boosts = boosts.reshape(n_points, A, S).transpose(0, 2, 1)  # column-major (S, A)
    if optimise_weights:
        wu = _sobol(n_agents, n_points)
        weights = wu / wu.sum(axis=1, keepdims=True)
    else:
        weights = np.ones((n_points, n_agents))
    return weights, np.ascontiguousarray(boosts)


@serializable("bilevel.search.GridState")
@dataclass
class GridState:
    """Progress of a grid search (plain data; checkpointable)."""

    weights: FloatArray
    boosts: FloatArray
    types: FloatArray
    rewards: FloatArray
    cf_rewards: FloatArray | None
    next_index: int = 0
    best_index: int = 0
    best_score: float = float("nan")
    scores: list[float] = field(default_factory=list)


def score_chunk(
    problem: DesignProblem,
    weights: FloatArray,
    boosts: FloatArray,
    types: FloatArray,
    rewards: FloatArray,
    cf_rewards: FloatArray | None,
) -> FloatArray:
    """Mean objective of each candidate on common profiles (exact inner solves).

    Parameters
    ----------
    problem : DesignProblem
    weights : ndarray, shape (C, n)
    boosts : ndarray, shape (C, S, A)
    types : ndarray, shape (K, *type_shape)
    rewards : ndarray, shape (K, n, S, A)
    cf_rewards : ndarray, shape (n, K, n, S, A), or None without payments

    Returns
    -------
    ndarray, shape (C,)
    """
    out = batch_outcomes(problem.env.mdp, weights, boosts, rewards, cf_rewards,
                         inner=problem.inner)
    scores: FloatArray = problem.objective.score(problem.env, out, types).mean(axis=1)
    return scores


@serializable("bilevel.search.GridSearch", exclude=("executor",))
@dataclass(frozen=True)
class GridSearch:
    """Sobol grid search.

    Parameters
    ----------
    n_points : int, default 10000
        Number of Sobol candidates (the paper's protocol: 10,000).
    n_profiles : int, default 2000
        Type profiles each candidate is scored on (the paper's protocol: 2,000).
    batch_candidates : int, optional
        Candidates scored per chunk (default: sized so a chunk holds ~4M reward entries).
    executor : concurrent.futures.Executor, optional
        Fan the chunks out over this executor (a process pool, a Dask
        ``Client.get_executor()``, ...); each step then scores ``parallel_chunks`` chunks at
        once. Chunk boundaries do not depend on it, so the scores — and the chosen
        candidate — are identical with or without an executor and for any number of workers.
    parallel_chunks : int, default 8
        Chunks in flight per step when an executor is given.
    """

    n_points: int = 10_000
    n_profiles: int = 2_000
    batch_candidates: int | None = None
    executor: Executor | None = field(default=None, compare=False, repr=False)
    parallel_chunks: int = 8

    def __post_init__(self) -> None:
        for name in ("n_points", "n_profiles"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"expected {name} as an int >= 1, got {v!r}")
        bc = self.batch_candidates
        bad_type = isinstance(bc, bool) or not isinstance(bc, (int, np.integer))
        if bc is not None and (bad_type or bc < 1):
            raise ValueError(f"expected batch_candidates as an int >= 1 or None, got {bc!r}")
        pc = self.parallel_chunks
        if isinstance(pc, bool) or not isinstance(pc, (int, np.integer)) or pc < 1:
            raise ValueError(f"expected parallel_chunks as an int >= 1, got {pc!r}")
        if self.executor is not None and not isinstance(self.executor, Executor):
            raise TypeError(
                "expected executor as a concurrent.futures.Executor, "
                f"got {type(self.executor).__name__}"
            )

    def _chunk(self, problem: DesignProblem) -> int:
        if self.batch_candidates is not None:
            return int(self.batch_candidates)
        env = problem.env
        solves = 1 + (env.n_agents if problem.objective.needs_payments else 0)
        per = self.n_profiles * solves * env.n_states * env.n_actions
        return int(max(1, min(self.n_points, 4_000_000 // per)))

    def _per_step(self, problem: DesignProblem) -> int:
        return self._chunk(problem) * (1 if self.executor is None else self.parallel_chunks)

    def total_steps(self, problem: DesignProblem) -> int:
        """Number of steps (chunks of candidates, or groups of chunks with an executor)."""
        return -(-self.n_points // self._per_step(problem))

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> GridState:
        """Generate candidates and the common scoring profiles."""
        env = problem.env
        W, B = sobol_candidates(
            self.n_points, env.n_agents, env.mdp.shape, problem.boost_box,
            problem.optimise_weights,
        )
        check_memory(self.n_profiles * outcome_bytes_per_profile(
            env.n_agents, env.n_states, env.n_actions, 0, problem.objective.needs_payments),
            f"the rewards of {self.n_profiles} scoring profiles", "use fewer profiles")
        types = env.sample_types(rng, self.n_profiles)
        R = env.rewards(types)
        R_cf = counterfactual_rewards(env, types) if problem.objective.needs_payments else None
        return GridState(W, B, types, R, R_cf)

    def step(self, problem: DesignProblem, state: GridState) -> GridState:
        """Score the next chunk of candidates."""
        i0 = state.next_index
        i1 = min(self.n_points, i0 + self._per_step(problem))
        c = self._chunk(problem)
        bounds = [(a, min(a + c, i1)) for a in range(i0, i1, c)]
        if self.executor is None:
            parts = [score_chunk(problem, state.weights[a:b], state.boosts[a:b], state.types,
                                 state.rewards, state.cf_rewards) for a, b in bounds]
        else:
            futures = [
                self.executor.submit(score_chunk, problem, state.weights[a:b],
                                     state.boosts[a:b], state.types, state.rewards,
                                     state.cf_rewards)
                for a, b in bounds
            ]
            parts = [f.result() for f in futures]
        scores = np.concatenate(parts)
        sign = 1.0 if problem.objective.maximize else -1.0
        for j, s in enumerate(scores.tolist()):
            state.scores.append(s)
            if not np.isfinite(state.best_score) or sign * s > sign * state.best_score:
                state.best_score = s
                state.best_index = i0 + j
        state.next_index = i1
        return state

    def done(self, state: GridState) -> bool:
        """Whether every candidate was scored."""
        return state.next_index >= self.n_points

    def best(self, state: GridState) -> tuple[AMA, float]:
        """The best candidate so far."""
        i = state.best_index
        mech = AMA(state.weights[i], state.boosts[i], name="grid", meta={"sobol_index": i + 1})
        return mech, state.best_score

    def history(self, state: GridState) -> list[tuple[int, float]]:
        """``(candidate index, score)`` of every scored candidate."""
        return list(enumerate(state.scores))
