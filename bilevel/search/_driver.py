"""One driver for every outer searcher: budgets, callbacks, progress, timing.

Searchers implement the small :class:`Searcher` protocol (``init`` / ``step`` / ``done`` /
``best``); :func:`run_search` owns the loop. A ``callback(intermediate)`` may raise
``StopIteration`` to stop early; the result's ``message`` records why the search ended. With a
``checkpoint`` the driver saves the whole search state periodically and resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from bilevel._contract import RunStatus
from bilevel._mechanism import AMA
from bilevel._objectives import Objective
from bilevel._outcomes import ExactInner
from bilevel.models import Environment
from bilevel.search._checkpoint import Checkpoint
from bilevel.search._serialize import dumps, loads

__all__ = ["DesignProblem", "Intermediate", "SearchResult", "Searcher", "run_search"]

StateT = TypeVar("StateT")

# Bumped whenever the layout of the driver's snapshot changes. Format 1 was a pickle (never
# loaded now); 2 is the data-only format of bilevel.search._serialize.
_CHECKPOINT_FORMAT = 2
_SNAPSHOT_KEYS = {"format", "state", "nit", "best_val", "val_history", "elapsed"}


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
    status : RunStatus
        Why the search ended, as a code: ``completed``, ``step_limit`` (``max_steps``) or
        ``callback``.
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
    status: RunStatus = RunStatus.COMPLETED


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
    checkpoint: Checkpoint | None = None,
    checkpoint_every: float = 30.0,
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
    checkpoint : Checkpoint, optional
        Where to save the search state (e.g. a :class:`StoreCheckpoint` in the run's SQLite
        store). If it holds a state, the search resumes from it instead of starting over; the
        result is identical to an uninterrupted run. The final state is saved too, so a
        finished search replays instantly.
    checkpoint_every : float, default 30.0
        Seconds between saves (0: after every step); the first completed step is always
        saved, so a search killed early resumes after it.

    Returns
    -------
    SearchResult
    """
    if checkpoint_every < 0:
        raise ValueError(f"expected checkpoint_every >= 0, got {checkpoint_every}")
    start = time.perf_counter()
    total = searcher.total_steps(problem)
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    nit = 0
    message = "The searcher finished its budget."
    status = RunStatus.COMPLETED
    sign = 1.0 if problem.objective.maximize else -1.0
    best_val: tuple[float, AMA, int] | None = None
    val_history: list[tuple[int, float]] = []
    elapsed_before = 0.0
    saved = None if checkpoint is None else checkpoint.load()
    if saved is not None:
        snap = _load_snapshot(checkpoint, saved)
        state, nit, best_val = snap["state"], snap["nit"], snap["best_val"]
        val_history, elapsed_before = snap["val_history"], snap["elapsed"]
    else:
        state = searcher.init(problem, rng)
    last_save = time.perf_counter()

    def save() -> None:
        nonlocal last_save
        if checkpoint is None:
            return
        checkpoint.save(dumps({
            "format": _CHECKPOINT_FORMAT, "state": state, "nit": nit, "best_val": best_val,
            "val_history": val_history,
            "elapsed": elapsed_before + time.perf_counter() - start,
        }))
        last_save = time.perf_counter()

    def validation() -> None:
        nonlocal best_val
        if validate is None:
            return
        mech, _ = searcher.best(state)
        v = float(validate(mech))
        val_history.append((nit, v))
        if best_val is None or sign * v > sign * best_val[0]:
            best_val = (v, mech, nit)

    resumed_at = nit
    if saved is None:
        validation()
    if bar is not None and nit:
        bar.update(nit)
    try:
        while not searcher.done(state):
            if max_steps is not None and nit >= max_steps:
                message = f"Stopped after max_steps = {max_steps}."
                status = RunStatus.STEP_LIMIT
                break
            state = searcher.step(problem, state)
            nit += 1
            if validate is not None and nit % validate_every == 0:
                validation()
            # The first completed step is saved at once, then every checkpoint_every seconds.
            if checkpoint is not None and (
                nit == resumed_at + 1 or time.perf_counter() - last_save >= checkpoint_every
            ):
                save()
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
                    status = RunStatus.CALLBACK
                    break
    finally:
        if bar is not None:
            bar.close()
    stats: dict[str, Any] = {}
    save()  # before the end-of-run validation, so a resumed run validates on the same schedule
    if validate is not None and (not val_history or val_history[-1][0] != nit):
        validation()
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
        wall_time=elapsed_before + time.perf_counter() - start,
        stats={**stats, "resumed_at_step": resumed_at} if saved is not None else stats,
        status=status,
    )


def _load_snapshot(checkpoint: Checkpoint | None, saved: bytes) -> dict[str, Any]:
    """The driver's snapshot in ``saved``, checked; a one-line ``ValueError`` otherwise."""
    where = f"the search checkpoint {checkpoint!r}"
    try:
        snap = loads(saved)
    except ValueError as e:
        raise ValueError(f"cannot resume from {where}: {e}; delete it to start over") from None
    fmt = snap.get("format") if isinstance(snap, dict) else None
    if fmt != _CHECKPOINT_FORMAT:
        age = "an older" if isinstance(fmt, int) and fmt < _CHECKPOINT_FORMAT else "another"
        raise ValueError(
            f"cannot resume from {where}: expected a search checkpoint of format "
            f"{_CHECKPOINT_FORMAT}, got format {fmt!r} (written by {age} version of bilevel); "
            "delete it to start over"
        )
    assert isinstance(snap, dict)
    best_val = snap.get("best_val")
    ok = (
        set(snap) == _SNAPSHOT_KEYS
        and type(snap["nit"]) is int and snap["nit"] >= 0
        and isinstance(snap["val_history"], list)
        and isinstance(snap["elapsed"], float)
        and (best_val is None or (isinstance(best_val, tuple) and len(best_val) == 3
                                  and isinstance(best_val[1], AMA)))
    )
    if not ok:
        raise ValueError(
            f"cannot resume from {where}: expected a search checkpoint of format "
            f"{_CHECKPOINT_FORMAT} with {sorted(_SNAPSHOT_KEYS)}, got an invalid one; "
            "delete it to start over"
        )
    return snap
