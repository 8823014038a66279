"""``AMADesigner``: search for an affine maximizer mechanism and compare it with VCG.

Follows the scikit-learn estimator contract: ``__init__`` stores keyword-only hyperparameters,
``fit(env)`` validates them, runs the outer search and sets the learned attributes ending in
``_``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bilevel._evaluate import Evaluation, evaluate
from bilevel._mechanism import AMA
from bilevel._objectives import Objective, resolve_objective
from bilevel._outcomes import ExactInner, exact_inner
from bilevel.search import DesignProblem, GridSearch, Intermediate, SearchResult, run_search
from models import Environment
from models._typing import FloatArray

__all__ = ["AMADesigner", "DesignResult"]

_METHODS = ("grid",)


@dataclass(frozen=True)
class DesignResult:
    """Outcome of :meth:`AMADesigner.fit`.

    Attributes
    ----------
    mechanism : AMA
        The designed mechanism.
    search : SearchResult
        The outer search (score on the search profiles, history, stop message, wall time).
    evaluation : Evaluation or None
        Unregularised evaluation on fresh profiles paired with VCG (None if
        ``eval_samples=0``).
    method : str
    wall_time : float
        Search plus evaluation, seconds.
    """

    mechanism: AMA
    search: SearchResult
    evaluation: Evaluation | None
    method: str
    wall_time: float

    @property
    def success(self) -> bool:
        """Whether the search succeeded."""
        return self.search.success

    @property
    def message(self) -> str:
        """Why the search ended."""
        return self.search.message


class AMADesigner:
    """Design a dynamic affine maximizer mechanism (AMA) for an environment.

    Parameters
    ----------
    method : {"grid"}, default "grid"
        Outer search method. ``"grid"``: Sobol grid search (AMA paper, §5 of the reference).
    objective : str or Objective or callable, optional
        ``"revenue"``, ``"welfare"``, an environment cost (``"makespan"``, minimised), a
        custom :class:`Objective` or a callable ``(occupancy (K, S, A), types) -> (K,)``
        (maximised); defaults to the environment's objective.
    n_points : int, default 10000
        Grid search: number of Sobol candidates (paper: 10,000).
    n_profiles : int, default 2000
        Grid search: type profiles each candidate is scored on (paper: 2,000).
    eval_samples : int, default 10000
        Fresh profiles for the final unregularised evaluation against VCG (0 skips it).
    optimise_weights : bool, optional
        Search agent weights too; default: the environment's choice (asymmetric
        distributions).
    boost_box : tuple of float, optional
        ``(lo, hi)`` for every boost; default: the environment's box (reference §5).
    inner : {"dp", "lp"} or ExactInner, default "dp"
        Exact inner solver.
    seed : int, default 0
        Seed of the search; the evaluation uses an independent stream derived from it.
    max_steps : int, optional
        Step budget of the searcher.
    callback : callable ``(Intermediate) -> None``, optional
        Called after each step; may raise ``StopIteration``.
    progress : bool, default False
        Show progress bars.
    batch_candidates : int, optional
        Grid search: candidates per batched step.

    Attributes
    ----------
    mechanism_ : AMA
        The designed mechanism.
    result_ : DesignResult
        Search and evaluation details.
    history_ : list of (int, float)
        Search history.
    evaluation_ : Evaluation or None
        Comparison with VCG on fresh profiles.

    Examples
    --------
    >>> from models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> d = AMADesigner(n_points=8, n_profiles=100, eval_samples=200).fit(env)
    >>> d.mechanism_.boosts.shape
    (5, 4)
    """

    def __init__(
        self,
        *,
        method: str = "grid",
        objective: str | Objective | Callable[[FloatArray, FloatArray], FloatArray] | None = None,
        n_points: int = 10_000,
        n_profiles: int = 2_000,
        eval_samples: int = 10_000,
        optimise_weights: bool | None = None,
        boost_box: tuple[float, float] | None = None,
        inner: str | ExactInner = "dp",
        seed: int = 0,
        max_steps: int | None = None,
        callback: Callable[[Intermediate], None] | None = None,
        progress: bool = False,
        batch_candidates: int | None = None,
    ) -> None:
        self.method = method
        self.objective = objective
        self.n_points = n_points
        self.n_profiles = n_profiles
        self.eval_samples = eval_samples
        self.optimise_weights = optimise_weights
        self.boost_box = boost_box
        self.inner = inner
        self.seed = seed
        self.max_steps = max_steps
        self.callback = callback
        self.progress = progress
        self.batch_candidates = batch_candidates

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as passed to ``__init__``."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"AMADesigner({ps})"

    # ------------------------------------------------------------------ validation
    def _validate(self, env: Environment) -> DesignProblem:
        if not isinstance(env, Environment):
            raise TypeError(f"expected an Environment (see make_env), got {type(env).__name__}")
        if self.method not in _METHODS:
            raise ValueError(
                f"The 'method' parameter of AMADesigner must be one of {_METHODS}. "
                f"Got {self.method!r} instead."
            )
        for name in ("n_points", "n_profiles"):
            _check_int(name, getattr(self, name), 1)
        _check_int("eval_samples", self.eval_samples, 0)
        _check_int("seed", self.seed, 0)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, 1)
        box = self.boost_box if self.boost_box is not None else env.boost_box
        if box is None:
            raise ValueError(
                f"The environment {env.name!r} has no default boost box; pass "
                f"boost_box=(lo, hi) to AMADesigner. Got None."
            )
        lo, hi = (float(box[0]), float(box[1]))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"The 'boost_box' parameter of AMADesigner must be (lo, hi) with finite "
                f"lo < hi. Got {box!r} instead."
            )
        ow = env.optimise_weights if self.optimise_weights is None else bool(self.optimise_weights)
        return DesignProblem(
            env=env,
            objective=resolve_objective(env, self.objective),
            inner=exact_inner(self.inner),
            optimise_weights=ow,
            boost_box=(lo, hi),
        )

    # ------------------------------------------------------------------ fit
    def fit(self, env: Environment) -> AMADesigner:
        """Search for a mechanism for ``env`` and evaluate it against VCG.

        Parameters
        ----------
        env : Environment

        Returns
        -------
        AMADesigner
            ``self``, with ``mechanism_``, ``result_``, ``history_`` and ``evaluation_`` set.
        """
        start = time.perf_counter()
        problem = self._validate(env)
        search_rng, eval_seed = _streams(self.seed)
        searcher = GridSearch(
            n_points=self.n_points,
            n_profiles=self.n_profiles,
            batch_candidates=self.batch_candidates,
        )
        result = run_search(
            searcher,
            problem,
            rng=search_rng,
            max_steps=self.max_steps,
            callback=self.callback,
            progress=self.progress,
            desc=f"grid search {env.name}",
        )
        mech = AMA(
            result.mechanism.weights,
            result.mechanism.boosts,
            name=f"ama-{self.method}",
            meta={
                "env": env.name,
                "params": dict(env.params),
                "method": self.method,
                "objective": problem.objective.name,
                "seed": self.seed,
                "n_points": self.n_points,
                "n_profiles": self.n_profiles,
                "search_score": result.score,
                **result.mechanism.meta,
            },
        )
        evaluation = None
        if self.eval_samples > 0:
            bar = None
            if self.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=self.eval_samples, desc="evaluate vs VCG", leave=False)
            try:
                evaluation = evaluate(
                    env,
                    mech,
                    n_samples=self.eval_samples,
                    seed=eval_seed,
                    objective=problem.objective,
                    inner=problem.inner,
                    progress=None if bar is None else _updater(bar),
                )
            finally:
                if bar is not None:
                    bar.close()
        self.mechanism_ = mech
        self.history_ = result.history
        self.evaluation_ = evaluation
        self.result_ = DesignResult(
            mechanism=mech,
            search=result,
            evaluation=evaluation,
            method=self.method,
            wall_time=time.perf_counter() - start,
        )
        return self


def _updater(bar: Any) -> Callable[[int], None]:
    def update(k: int) -> None:
        bar.update(k)

    return update


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"The {name!r} parameter of AMADesigner must be an int >= {low}. "
            f"Got {value!r} instead."
        )


def _streams(seed: int) -> tuple[np.random.Generator, int]:
    """Independent search generator and evaluation seed from one user seed."""
    ss = np.random.SeedSequence(seed)
    search, ev = ss.spawn(2)
    return np.random.default_rng(search), int(ev.generate_state(1)[0])
