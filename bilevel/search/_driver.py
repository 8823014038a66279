"""One driver for every outer searcher: budgets, callbacks, progress, timing.

Searchers implement the small :class:`Searcher` protocol (``init`` / ``step`` / ``done`` /
``best``); :func:`run_search` owns the loop. A ``callback(intermediate)`` may raise
``StopIteration`` to stop early; the result's ``message`` records why the search ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from bilevel._mechanism import AMA
from bilevel._objectives import Objective
from bilevel._outcomes import ExactInner
from models import Environment

__all__ = ["DesignProblem", "Intermediate", "SearchResult", "Searcher", "run_search"]

StateT = TypeVar("StateT")


@dataclass(frozen=True)
class DesignProblem:
    """What an outer searcher optimises.

    Attributes
    ----------
    env : Environment
    objective : Objective
    inner : ExactInner
        Exact inner solver used to score candidates.
    optimise_weights : bool
        Whether weights are searched (else fixed to 1).
    boost_box : tuple of float
        ``(lo, hi)`` for every boost.
    """

    env: Environment
    objective: Objective
    inner: ExactInner
    optimise_weights: bool
    boost_box: tuple[float, float]


@dataclass(frozen=True)
class Intermediate:
    """What the callback sees after each step."""

    nit: int
    best_score: float
    best: AMA
    history: list[tuple[int, float]]
    elapsed: float


@dataclass(frozen=True)
class SearchResult:
    """Outcome of an outer search.

    Attributes
    ----------
    mechanism : AMA
        The best candidate found.
    score : float
        Its estimated objective on the search profiles (optimistically biased: it won a
        selection; evaluate on fresh profiles for an unbiased estimate).
    history : list of (int, float)
        ``(candidate index or step, score)`` for every scored candidate or step.
    nit : int
        Steps run.
    success : bool
        False only if the search failed (stopping early by budget or callback is a success).
    message : str
        Why the search ended.
    wall_time : float
        Seconds spent searching.
    stats : dict
        Searcher-specific figures (e.g. candidates scored, inner solves).
    """

    mechanism: AMA
    score: float
    history: list[tuple[int, float]]
    nit: int
    success: bool
    message: str
    wall_time: float
    stats: dict[str, Any] = field(default_factory=dict)


class Searcher(Protocol[StateT]):
    """An outer searcher (grid, zeroth-order, first-order, multistart)."""

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> StateT:
        """Initial state."""
        ...

    def step(self, problem: DesignProblem, state: StateT) -> StateT:
        """One unit of work (e.g. a chunk of candidates); returns the new state."""
        ...

    def done(self, state: StateT) -> bool:
        """Whether the searcher has exhausted its own budget."""
        ...

    def best(self, state: StateT) -> tuple[AMA, float]:
        """Best mechanism so far and its score."""
        ...

    def history(self, state: StateT) -> list[tuple[int, float]]:
        """Scores recorded so far."""
        ...

    def total_steps(self, problem: DesignProblem) -> int | None:
        """Number of steps to completion, if known (for progress bars)."""
        ...


def run_search(
    searcher: Searcher[StateT],
    problem: DesignProblem,
    *,
    rng: np.random.Generator,
    max_steps: int | None = None,
    callback: Callable[[Intermediate], None] | None = None,
    progress: bool = False,
    desc: str = "search",
    validate: Callable[[AMA], float] | None = None,
    validate_every: int = 50,
) -> SearchResult:
    """Run ``searcher`` on ``problem`` until done, ``max_steps`` or a callback stop.

    Parameters
    ----------
    searcher : Searcher
    problem : DesignProblem
    rng : numpy.random.Generator
        Randomness of the search.
    max_steps : int, optional
        Step budget (``None``: until the searcher is done).
    callback : callable ``(Intermediate) -> None``, optional
        Called after every step; raise ``StopIteration`` to stop.
    progress : bool, default False
        Show a progress bar (tqdm) on stderr.
    desc : str
        Progress-bar label.
    validate : callable ``(AMA) -> float``, optional
        Checkpoint selection: every ``validate_every`` steps (and at the end) the searcher's
        current mechanism is scored by ``validate`` (e.g. an exact evaluation on fixed held-out
        profiles) and the best-scoring one is returned, in the objective's direction. Stochastic
        gradient iterates oscillate; this keeps the best of them.
    validate_every : int, default 50
        Steps between checkpoints.

    Returns
    -------
    SearchResult
    """
    start = time.perf_counter()
    state = searcher.init(problem, rng)
    total = searcher.total_steps(problem)
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    nit = 0
    message = "The searcher finished its budget."
    sign = 1.0 if problem.objective.maximize else -1.0
    best_val: tuple[float, AMA, int] | None = None
    val_history: list[tuple[int, float]] = []

    def checkpoint() -> None:
        nonlocal best_val
        if validate is None:
            return
        mech, _ = searcher.best(state)
        v = float(validate(mech))
        val_history.append((nit, v))
        if best_val is None or sign * v > sign * best_val[0]:
            best_val = (v, mech, nit)

    checkpoint()
    try:
        while not searcher.done(state):
            if max_steps is not None and nit >= max_steps:
                message = f"Stopped after max_steps = {max_steps}."
                break
            state = searcher.step(problem, state)
            nit += 1
            if validate is not None and nit % validate_every == 0:
                checkpoint()
            if bar is not None:
                _, best = searcher.best(state)
                bar.set_postfix(best=f"{best:.4f}")
                bar.update(1)
            if callback is not None:
                mech, score = searcher.best(state)
                info = Intermediate(
                    nit, score, mech, searcher.history(state), time.perf_counter() - start
                )
                try:
                    callback(info)
                except StopIteration:
                    message = "Stopped by the callback."
                    break
    finally:
        if bar is not None:
            bar.close()
    stats: dict[str, Any] = {}
    if validate is not None and (not val_history or val_history[-1][0] != nit):
        checkpoint()
    mech, score = searcher.best(state)
    if best_val is not None:
        score, mech, at = best_val
        stats = {"validation": val_history, "selected_step": at}
        message += f" Returned the checkpoint of step {at} (best held-out score {score:.4f})."
    return SearchResult(
        mechanism=mech,
        score=score,
        history=searcher.history(state),
        nit=nit,
        success=True,
        message=message,
        wall_time=time.perf_counter() - start,
        stats=stats,
    )
