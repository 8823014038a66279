"""Multi-start search: the AMA paper's Algorithm 1.

Grid search seeds ``n_starts`` starting points (the best Sobol candidates on the grid's
profiles), each is refined by a gradient method (first- or zeroth-order), and the best of the
refined mechanisms *and* their starting points is chosen by an exact, unregularised evaluation
on fresh held-out profiles common to all of them (so the result is never worse, on those
profiles, than the grid search alone).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bilevel._mechanism import AMA
from bilevel._outcomes import batch_outcomes, counterfactual_rewards
from bilevel.search._driver import DesignProblem
from bilevel.search._first_order import FirstOrder, check_count, check_differentiable
from bilevel.search._grid import GridSearch, GridState
from bilevel.search._serialize import serializable
from bilevel.search._streams import design_streams, trial_streams
from bilevel.search._zeroth_order import ZerothOrder

__all__ = ["MultiStart", "MultiStartState", "score_on_profiles"]

_FINAL_CHUNK = 1000  # profiles per batched scoring call of the final selection


def score_on_profiles(
    problem: DesignProblem, mechs: list[AMA], types: np.ndarray[Any, np.dtype[np.float64]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Exact mean objective of each mechanism on the same profiles, shape (len(mechs),)."""
    env = problem.env
    R = env.rewards(types)
    R_cf = counterfactual_rewards(env, types) if problem.objective.needs_payments else None
    W = np.stack([m.weights for m in mechs])
    B = np.stack([m.boosts for m in mechs])
    out = batch_outcomes(env.mdp, W, B, R, R_cf, inner=problem.inner)
    scores: np.ndarray[Any, np.dtype[np.float64]] = problem.objective.score(env, out, types).mean(
        axis=1
    )
    return scores


@serializable("bilevel.search.MultiStartState")
@dataclass
class MultiStartState:
    """Progress: grid phase, then round-robin refinement, then selection."""

    rng: np.random.Generator
    grid: GridState
    maximize: bool
    phase: str = "grid"
    starts: list[AMA] = field(default_factory=list)
    seed_scores: list[float] = field(default_factory=list)
    refiners: list[Any] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)
    run_start: list[int] = field(default_factory=list)
    default_rng: Any = None
    held_out: Any = None
    rounds: int = 0
    best_refined: list[tuple[float, AMA, int] | None] = field(default_factory=list)
    chosen: AMA | None = None
    chosen_score: float = float("nan")
    selection: list[tuple[str, float]] = field(default_factory=list)

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` beats ``b`` in the objective's direction."""
        return a > b if self.maximize else a < b


@dataclass(frozen=True)
class MultiStart:
    """Grid-seeded multi-start gradient search (paper, Algorithm 1).

    Parameters
    ----------
    grid : GridSearch
        Seeding grid search.
    refine : FirstOrder or ZerothOrder, or a tuple of them
        Template(s) of the refinement searcher (``start`` is replaced by each seed); with a
        tuple, every start is refined by every template.
    n_starts : int, default 4
        Number of starting points m.
    default_start : bool, default True
        Also refine from the gradient method's own default start (boosts U[0, 1], w = 1) —
        the grid's box is wide and its best points can sit on revenue plateaus, so this extra
        start keeps multistart at least as good as a single gradient run: it is refined with the
        same random stream as a stand-alone run of each template with the same seed, so the
        selection includes those runs.
        ``False`` gives Algorithm 1 exactly (grid seeds only).
    default_trials : int, default 1
        Independent default starts per template (the stand-alone runs' ``n_trials``).
    replay_seeds : tuple of int, optional
        One seed per template: default start ``t`` of template ``j`` is run with exactly the
        random stream of trial ``t`` of a stand-alone design with seed ``replay_seeds[j]``
        (:func:`~bilevel.search._streams.design_streams`, ``trial_streams``), so the
        selection contains those stand-alone runs. ``None``: the first default start uses the
        generator given to :meth:`init` (a stand-alone run with the same seed), the others
        streams spawned from it.
    n_select : int, default 2000
        Held-out profiles of each refinement's unregularised checkpoint selection.
    n_final : int, default 10000
        Fresh held-out profiles of the final selection among all refined mechanisms and their
        starts. Candidates often lie within a standard error of each other on ``n_select``
        profiles; scoring them again on profiles that did not choose their checkpoints removes
        that selection bias, and more profiles make a wrong pick rarer.
    validate_every : int, default 50
        Refinement rounds between checkpoints: each refinement keeps its best checkpoint on the
        held-out profiles (stochastic iterates oscillate).
    """

    grid: GridSearch = field(default_factory=lambda: GridSearch(n_points=1000, n_profiles=500))
    refine: FirstOrder | ZerothOrder | tuple[FirstOrder | ZerothOrder, ...] = field(
        default_factory=ZerothOrder
    )
    n_starts: int = 4
    default_start: bool = True
    default_trials: int = 1
    replay_seeds: tuple[int, ...] | None = None
    n_select: int = 2000
    n_final: int = 10_000
    validate_every: int = 50

    def __post_init__(self) -> None:
        check_count("n_starts", self.n_starts)
        check_count("default_trials", self.default_trials)
        check_count("n_select", self.n_select)
        check_count("n_final", self.n_final)
        check_count("validate_every", self.validate_every)
        if self.replay_seeds is not None and len(self.replay_seeds) != len(self.templates):
            raise ValueError(
                f"expected one replay seed per refinement template ({len(self.templates)}), "
                f"got {len(self.replay_seeds)}"
            )
        if self.n_starts > self.grid.n_points:
            raise ValueError(
                f"expected n_starts <= the grid's n_points ({self.grid.n_points}), "
                f"got {self.n_starts}"
            )

    @property
    def templates(self) -> tuple[FirstOrder | ZerothOrder, ...]:
        """The refinement templates as a tuple."""
        return self.refine if isinstance(self.refine, tuple) else (self.refine,)

    def total_steps(self, problem: DesignProblem) -> int:
        """Grid chunks + refinement rounds."""
        return self.grid.total_steps(problem) + max(t.iters for t in self.templates)

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> MultiStartState:
        """Start the seeding grid search (after checking the refiners can use the objective)."""
        if any(isinstance(t, FirstOrder) for t in self.templates):
            check_differentiable(problem)  # now, not after the grid phase
        default_rng = copy.deepcopy(rng)  # the stream a stand-alone gradient run would use
        state = MultiStartState(rng, self.grid.init(problem, rng), problem.objective.maximize)
        state.default_rng = default_rng
        return state

    def step(self, problem: DesignProblem, state: MultiStartState) -> MultiStartState:
        """One grid chunk or one refinement round (the last one also selects)."""
        if state.phase == "grid":
            self.grid.step(problem, state.grid)
            if self.grid.done(state.grid):
                self._seed(problem, state)
        elif state.phase == "refine":
            for i, (searcher, st) in enumerate(zip(state.refiners, state.states, strict=True)):
                if not searcher.done(st):
                    state.states[i] = searcher.step(problem, st)
            state.rounds += 1
            finished = all(
                r.done(st) for r, st in zip(state.refiners, state.states, strict=True)
            )
            if finished or state.rounds % self.validate_every == 0:
                self._checkpoint(problem, state)
            if finished:
                self._select(problem, state)
        return state

    def _seed(self, problem: DesignProblem, state: MultiStartState) -> None:
        scores = np.asarray(state.grid.scores)
        order = np.argsort(-scores if state.maximize else scores, kind="stable")
        g = state.grid
        state.starts = [
            AMA(g.weights[i], g.boosts[i], name=f"grid#{i + 1}") for i in order[: self.n_starts]
        ]
        for k, start in enumerate(state.starts):
            for tmpl in self.templates:
                r: Any = replace(tmpl, start=start)
                state.refiners.append(r)
                state.states.append(r.init(problem, state.rng.spawn(1)[0]))
                state.run_start.append(k)
        if self.default_start:
            streams = self._default_streams(state)
            for t in range(self.default_trials):
                for j, tmpl in enumerate(self.templates):
                    default: Any = replace(tmpl, start=None)
                    st = default.init(problem, streams[j][t])
                    if j == 0:
                        init, _ = default.best(st)
                        name = "default start" + (f" {t + 1}" if self.default_trials > 1 else "")
                        state.starts.append(AMA(init.weights, init.boosts, name=name))
                    state.refiners.append(default)
                    state.states.append(st)
                    state.run_start.append(len(state.starts) - 1)
        state.held_out = problem.env.sample_types(state.rng, self.n_select)
        state.seed_scores = score_on_profiles(problem, state.starts, state.held_out).tolist()
        state.best_refined = [None] * len(state.refiners)
        state.phase = "refine"

    def _default_streams(self, state: MultiStartState) -> list[list[np.random.Generator]]:
        """Per template, the generators of its default starts (one per trial)."""
        k = self.default_trials
        if self.replay_seeds is None:
            extra = copy.deepcopy(state.default_rng).spawn(k - 1)
            own = [copy.deepcopy(state.default_rng), *extra]
            return [[copy.deepcopy(g) for g in own] for _ in self.templates]
        return [
            [design_streams(seed)[0], *trial_streams(seed, k - 1)] for seed in self.replay_seeds
        ]

    def _checkpoint(self, problem: DesignProblem, state: MultiStartState) -> None:
        current = [r.best(st)[0] for r, st in zip(state.refiners, state.states, strict=True)]
        scores = score_on_profiles(problem, current, state.held_out).tolist()
        for i, (v, m) in enumerate(zip(scores, current, strict=True)):
            best = state.best_refined[i]
            if best is None or state.better(v, best[0]):
                state.best_refined[i] = (v, m, state.rounds)

    def _select(self, problem: DesignProblem, state: MultiStartState) -> None:
        cands: list[tuple[AMA, str]] = [(seed, seed.name) for seed in state.starts]
        for best, r, k in zip(state.best_refined, state.refiners, state.run_start, strict=True):
            if best is not None:
                method = type(r).__name__
                cands.append((best[1], f"{method} from {state.starts[k].name} (round {best[2]})"))
        final = problem.env.sample_types(state.rng, self.n_final)
        scores = np.zeros(len(cands))
        for lo in range(0, self.n_final, _FINAL_CHUNK):  # bounded memory
            part = final[lo:lo + _FINAL_CHUNK]
            scores += score_on_profiles(problem, [m for m, _ in cands], part) * len(part)
        scores /= self.n_final
        cands_scored = [(float(v), m, label) for v, (m, label) in zip(scores, cands, strict=True)]
        i = 0
        for j in range(1, len(cands_scored)):
            if state.better(cands_scored[j][0], cands_scored[i][0]):
                i = j
        state.selection = [(label, v) for v, _, label in cands_scored]
        score, chosen, label = cands_scored[i]
        state.chosen = AMA(chosen.weights, chosen.boosts, name="multistart",
                           meta={"selected": label,
                                 "selection": [[lbl, v] for lbl, v in state.selection]})
        state.chosen_score = score
        state.phase = "done"

    def done(self, state: MultiStartState) -> bool:
        """Whether the selection was made."""
        return state.phase == "done"

    def best(self, state: MultiStartState) -> tuple[AMA, float]:
        """The selected mechanism, or the best so far."""
        if state.chosen is not None:
            return state.chosen, state.chosen_score
        if state.phase == "refine":
            return state.refiners[0].best(state.states[0])  # type: ignore[no-any-return]
        return self.grid.best(state.grid)

    def history(self, state: MultiStartState) -> list[tuple[int, float]]:
        """Grid scores, then the first refinement's training scores."""
        h = self.grid.history(state.grid)
        if state.refiners:
            off = len(h)
            h += [(off + i, v) for i, v in state.refiners[0].history(state.states[0])]
        return h
