"""``AMADesigner``: search for an affine maximizer mechanism and compare it with VCG.

Keeps the designer contract of :mod:`bilevel._contract`: ``__init__`` stores keyword-only
hyper-parameters, ``fit(env)`` validates them, runs the outer search and sets the fitted
attributes ending in ``_``. The search is a searcher object of :mod:`bilevel.search`
(``searcher=FirstOrder(...)``), or one built from ``method=`` and the flat method
parameters (:data:`METHODS`, the alias table).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from bilevel._contract import (
    Designer,
    Rule,
    RunStatus,
    bad_parameter,
    check_parameters,
    choice_rule,
    int_rule,
    positive_rule,
)
from bilevel._evaluate import Evaluation, evaluate
from bilevel._jsonsafe import to_json
from bilevel._mechanism import AMA, env_meta
from bilevel._objectives import Objective, resolve_objective
from bilevel._outcomes import ExactInner, exact_inner
from bilevel.models import Environment, make_env
from bilevel.models.typing import FloatArray
from bilevel.search import (
    CMAES,
    Checkpoint,
    DesignProblem,
    FirstOrder,
    GridSearch,
    Intermediate,
    MultiStart,
    SearchResult,
    StoreCheckpoint,
    ZerothOrder,
    run_search,
    score_on_profiles,
)
from bilevel.search._serialize import dumps, loads
from bilevel.search._streams import design_streams, trial_streams
from bilevel.solvers import check_device

__all__ = ["METHODS", "AMADesigner", "DesignResult"]

_METHODS = ("grid", "first_order", "zeroth_order", "multistart", "cma")
_GRADIENT_METHODS = ("first_order", "zeroth_order")
# Parameters that never change a fit's result (execution and reporting only): left out of the
# checkpoint key and of the mechanism's recorded hyperparameters.
_EXECUTION_ONLY = frozenset({"callback", "progress", "checkpoint", "checkpoint_every",
                             "executor", "threads"})

# Methods whose result is chosen among checkpoints (and trials) on held-out profiles.
_VALIDATED_METHODS = (*_GRADIENT_METHODS, "cma")


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

    The outer-result vocabulary (``success``, ``status``, ``message``, ``nit``, ``stats``) is
    the search's.
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
    def status(self) -> RunStatus:
        """Why the search ended."""
        return self.search.status

    @property
    def message(self) -> str:
        """Why the search ended, in words."""
        return self.search.message

    @property
    def nit(self) -> int:
        """Search steps run."""
        return self.search.nit

    @property
    def stats(self) -> dict[str, Any]:
        """Searcher-specific figures."""
        return self.search.stats


class AMADesigner(Designer):
    """Design a dynamic affine maximizer mechanism (AMA) for an environment.

    Parameters
    ----------
    searcher : GridSearch or FirstOrder or ZerothOrder or MultiStart or CMAES, optional
        The outer search, configured (e.g. ``FirstOrder(alpha=0.01, iters=2000)``). When given,
        ``method`` and the method parameters below (``n_points`` … ``n_scan``,
        ``learning_rate``, ``steps``, ``device``, ``regularised_solver``,
        ``batch_candidates``, ``replay_seeds``, ``n_final``) are not used: the searcher holds
        its own.
    method : {"grid", "first_order", "zeroth_order", "multistart", "cma"}, default "grid"
        Outer search method, built from the flat parameters below (:data:`METHODS`):
        ``"grid"`` Sobol grid search (Curry et al. 2024, §5); ``"first_order"`` stochastic
        gradients through the entropy-regularised inner problem (§4); ``"zeroth_order"``
        perturbation gradients with exact inner solves (§4, after Sow, Ji and Liang 2022);
        ``"multistart"`` grid-seeded refinement (paper, Algorithm 1); ``"cma"`` a global
        scan and CMA-ES over boosts tied by the MDP's structure, refined coarse to fine,
        scored exactly (:class:`~bilevel.search.CMAES`; the method that reaches Myerson's
        optimum on every sales row of Tables 1–2, see ``docs/results.md``).
    objective : str or Objective or callable, optional
        ``"revenue"``, ``"welfare"``, an environment cost (``"makespan"``, minimised), a
        custom :class:`Objective` or a callable ``(occupancy (K, S, A), types) -> (K,)``
        (maximised); defaults to the environment's objective.
    n_points : int, optional
        Sobol candidates: 10,000 for ``"grid"`` (paper), 1,000 for the seeding grid of
        ``"multistart"``.
    n_profiles : int, optional
        Type profiles per grid candidate (``"grid"``: 2,000, paper), per gradient step
        (``"first_order"``, ``"zeroth_order"`` and the refinements of ``"multistart"``: 20,
        paper; the multistart seeding grid always scores 500) or common to every CMA-ES
        candidate of a phase (``"cma"``: 4,000 in the first phase and the scan, 12,000 in
        the next; a tuple gives one count per tying).
    steps : int, default 1000
        Gradient steps (first/zeroth order, and each multistart refinement). Formerly
        ``iters``.
    learning_rate : float, optional
        Learning rate: 0.01 for first order, 0.1 for zeroth order (paper). Formerly ``lr``.
    alpha : float, default 0.01
        Entropy regularisation of the first-order inner problem (paper: 0.01).
    optimizer : {"adam", "sgd"}, default "adam"
        First-order update rule: Adam, or the authors' code's plain gradient steps (the
        paper names none; Adam is better or level on every row of Tables 1 and 4, see
        ``docs/results.md``).
    estimator : {"exact", "envelope"}, default "exact"
        First-order revenue gradient: exact gradient of the regularised objective, or the
        paper's asw-envelope estimator.
    n_perturbations : int, default 20
        Zeroth order: Gaussian perturbations per problem (paper: 20).
    sigma : float, default 0.05
        Zeroth order: perturbation standard deviation (paper: 0.05).
    n_starts : int, default 4
        Multistart: number of grid seeds refined.
    refine : {"both", "zeroth_order", "first_order"}, default "both"
        Multistart: refinement method(s); ``"both"`` refines every start with both.
    tyings : tuple of str, default ("action", "layer_action")
        CMA-ES: the phases' boost tyings, coarsest first (``"action"``: one boost per action
        label; ``"layer_action"``: one per (depth, action); ``"state_action"``: all S·A).
        Coarse tyings hold the structured optima (Myerson's sale is an ``"action"`` point)
        in a few parameters; add ``"state_action"`` when the boosts must differ state by
        state (gridworld).
    n_evals : int or tuple of int, default 300
        CMA-ES: candidate evaluations per phase (one value for all, or one per tying).
    sigma0 : float, default 0.2
        CMA-ES: initial step size, in units of the reward scale (boosts) and of ``log w``.
    n_scan : int, default 256
        CMA-ES: Sobol points of the global scan that chooses the first phase's start
        (0 disables it; the revenue has local optima, and CMA-ES is a local method).
    n_validation : int, default 2000
        Gradient methods and CMA-ES: held-out profiles for checkpoint selection (exact,
        unregularised); the best checkpoint is returned instead of the last, noisy iterate.
        0 disables it.
    eval_every : int, default 50
        Steps between the held-out evaluations that choose the returned checkpoint (and
        multistart rounds between its selections). Formerly ``validate_every``.
    n_trials : int, default 1
        Gradient methods and CMA-ES: independent runs from independent random starts (the
        ``num_trials`` of the authors' code); the run with the best held-out score (``n_validation``
        profiles, exact and unregularised) is returned. Trials run on ``executor`` when one
        is given.
        Multistart: the number of random default starts refined beside the grid seeds.
    n_final : int, default 10000
        Multistart: fresh held-out profiles (exact, unregularised) of the final selection among
        the refined mechanisms and their starts.
    replay_seeds : mapping of str to int, optional
        Multistart: the seeds of the stand-alone ``"first_order"`` / ``"zeroth_order"``
        designs whose runs the default starts replay. Default start ``t`` of method ``m`` runs
        with exactly the random stream of trial ``t`` of ``AMADesigner(method=m,
        seed=replay_seeds[m], n_trials=n_trials)`` (same other hyperparameters), so the
        multistart selection contains those runs. A method not given replays this designer's
        own ``seed``.
    device : str, default "cpu"
        Torch device of the first-order inner solver.
    regularised_solver : {"fast", "cvxpy", "soft"}, default "fast"
        First order: the fast batched torch solver, the cvxpylayers reference layer, or the
        causal-entropy (soft Bellman) variant — a different regulariser.
    threads : int or None, default 1
        Torch intra-op threads during ``fit`` (restored afterwards). The inner problems are
        many small batched solves, which run fastest single-threaded (measured up to 10×
        slower with 2 threads on a loaded 2-core machine); ``None`` leaves torch's setting.
        Formerly ``torch_threads``.
    eval_samples : int, default 10000
        Fresh profiles for the final unregularised evaluation against VCG (0 skips it).
    optimise_weights : bool, optional
        Search agent weights too; default: the environment's choice (asymmetric
        distributions).
    boost_box : tuple of float, optional
        ``(lo, hi)`` for every boost; default: the environment's box (that of the
        authors' code; the paper does not state one).
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
    executor : concurrent.futures.Executor, optional
        Fan work out over this executor (``ProcessPoolExecutor``, a Dask
        ``Client.get_executor()``, ...): chunks of grid candidates (grid search and the
        multistart seeding grid) and gradient trials. Results do not depend on it.
    checkpoint : str or pathlib.Path or Checkpoint, optional
        Save the search state periodically (an SQLite store path, keyed by the environment,
        the hyperparameters and the seed; or a :class:`~bilevel.search.Checkpoint`). A fit
        that was killed resumes from the last save when run again with the same arguments and
        ends with exactly the result of an uninterrupted run; a finished fit replays its
        search instantly.
    checkpoint_every : float, default 30.0
        Seconds between checkpoint saves.

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
    >>> from bilevel.models import make_env
    >>> env = make_env("sales", n_agents=3, n_items=2)
    >>> d = AMADesigner(n_points=8, n_profiles=100, eval_samples=200).fit(env)
    >>> d.mechanism_.boosts.shape
    (5, 4)
    >>> d
    AMADesigner(eval_samples=200, n_points=8, n_profiles=100)

    A configured searcher instead of ``method`` and its flat parameters:

    >>> from bilevel.search import ZerothOrder
    >>> d = AMADesigner(searcher=ZerothOrder(iters=3, n_profiles=10), eval_samples=0)
    >>> d.fit("sales").result_.method
    'zeroth_order'
    """

    _renamed: ClassVar[Mapping[str, str]] = {
        "iters": "steps", "lr": "learning_rate", "torch_threads": "threads",
        "validate_every": "eval_every",
    }

    def __init__(
        self,
        *,
        searcher: Any = None,
        method: str = "grid",
        objective: str | Objective | Callable[[FloatArray, FloatArray], FloatArray] | None = None,
        n_points: int | None = None,
        n_profiles: int | tuple[int, ...] | None = None,
        steps: int = 1000,
        learning_rate: float | None = None,
        alpha: float = 0.01,
        optimizer: str = "adam",
        estimator: str = "exact",
        n_perturbations: int = 20,
        sigma: float = 0.05,
        n_starts: int = 4,
        refine: str = "both",
        tyings: tuple[str, ...] = ("action", "layer_action"),
        n_evals: int | tuple[int, ...] = 300,
        sigma0: float = 0.2,
        n_scan: int = 256,
        n_validation: int = 2000,
        eval_every: int = 50,
        device: str = "cpu",
        regularised_solver: str = "fast",
        threads: int | None = 1,
        eval_samples: int = 10_000,
        optimise_weights: bool | None = None,
        boost_box: tuple[float, float] | None = None,
        inner: str | ExactInner = "dp",
        seed: int = 0,
        max_steps: int | None = None,
        callback: Callable[[Intermediate], None] | None = None,
        progress: bool = False,
        batch_candidates: int | None = None,
        n_trials: int = 1,
        n_final: int = 10_000,
        replay_seeds: Mapping[str, int] | None = None,
        executor: Executor | None = None,
        checkpoint: str | Path | Checkpoint | None = None,
        checkpoint_every: float = 30.0,
        **renamed: Any,
    ) -> None:
        self.searcher = searcher
        self.method = method
        self.objective = objective
        self.n_points = n_points
        self.n_profiles = n_profiles
        self.steps = steps
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.optimizer = optimizer
        self.estimator = estimator
        self.n_perturbations = n_perturbations
        self.sigma = sigma
        self.n_starts = n_starts
        self.refine = refine
        self.tyings = tyings
        self.n_evals = n_evals
        self.sigma0 = sigma0
        self.n_scan = n_scan
        self.n_validation = n_validation
        self.eval_every = eval_every
        self.device = device
        self.regularised_solver = regularised_solver
        self.threads = threads
        self.eval_samples = eval_samples
        self.optimise_weights = optimise_weights
        self.boost_box = boost_box
        self.inner = inner
        self.seed = seed
        self.max_steps = max_steps
        self.callback = callback
        self.progress = progress
        self.batch_candidates = batch_candidates
        self.n_trials = n_trials
        self.n_final = n_final
        self.replay_seeds = replay_seeds
        self.executor = executor
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self._accept_renamed(renamed)

    # ------------------------------------------------------------------ validation
    def _method(self) -> str:
        """The method name: the searcher's, or ``method``."""
        if self.searcher is None:
            if self.method not in METHODS:
                raise bad_parameter("AMADesigner", "method", f"as one of {tuple(METHODS)}",
                                    self.method)
            return self.method
        for name, kind in _SEARCHER_TYPES.items():
            if isinstance(self.searcher, kind):
                return name
        raise bad_parameter(
            "AMADesigner", "searcher",
            "as a searcher of bilevel.search (GridSearch, FirstOrder, ZerothOrder, MultiStart, "
            "CMAES) or None", type(self.searcher), TypeError,
        )

    def _validate(self, env: Environment) -> DesignProblem:
        if not isinstance(env, Environment):
            raise TypeError(f"expected an Environment (see make_env), got {type(env).__name__}")
        self._method()
        params = self.get_params(deep=False)
        profiles: Any = self.n_profiles
        if isinstance(profiles, (tuple, list)) and self._method() == "cma":
            for k in profiles:
                check_parameters("AMADesigner", {"n_profiles": k}, _RULES)
            params.pop("n_profiles")
        check_parameters("AMADesigner", params, _RULES)
        self._check_replay_seeds()
        if self.n_trials > 1 and self.n_validation == 0:
            raise bad_parameter("AMADesigner", "n_validation",
                                "as an int >= 1 to choose between n_trials > 1 trials", 0)
        ck = self.checkpoint
        if ck is not None and not isinstance(ck, (str, Path)) and not all(
            callable(getattr(ck, a, None)) for a in ("load", "save", "clear")
        ):
            raise bad_parameter("AMADesigner", "checkpoint",
                                "as a path or a Checkpoint (load/save/clear)", type(ck),
                                TypeError)
        try:
            check_device(self.device)
        except ValueError as e:
            raise ValueError(f"AMADesigner: expected device as a torch device: {e}") from None
        box = self.boost_box if self.boost_box is not None else env.boost_box
        if box is None and self._method() in _VALIDATED_METHODS:
            box = (-1.0, 1.0)  # unused by gradient methods
        if box is None:
            raise bad_parameter(
                "AMADesigner", "boost_box",
                f"as (lo, hi): the environment {env.name!r} has no default boost box", None,
            )
        lo, hi = (float(box[0]), float(box[1]))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise bad_parameter("AMADesigner", "boost_box", "as (lo, hi) with finite lo < hi",
                                box)
        ow = env.optimise_weights if self.optimise_weights is None else bool(self.optimise_weights)
        return DesignProblem(
            env=env,
            objective=resolve_objective(env, self.objective),
            inner=exact_inner(self.inner),
            optimise_weights=ow,
            boost_box=(lo, hi),
        )

    def _searcher(self) -> Any:
        if self.searcher is not None:
            return self.searcher
        return METHODS[self.method](self)

    def _grid(self) -> GridSearch:
        return GridSearch(
            n_points=10_000 if self.n_points is None else self.n_points,
            n_profiles=2_000 if self._profiles() is None else self._profiles(),
            batch_candidates=self.batch_candidates,
            executor=self.executor,
        )

    def _gradient(self, method: str) -> FirstOrder | ZerothOrder:
        return _gradient_searcher(self, method, self._profiles())

    def _cma(self) -> CMAES:
        tyings: Any = self.tyings
        evals: Any = self.n_evals
        profiles: Any = self.n_profiles
        try:
            return CMAES(
                tyings=tuple(tyings.split(",")) if isinstance(tyings, str) else tuple(tyings),
                evals=tuple(evals) if isinstance(evals, list) else evals,
                n_profiles=(
                    CMAES.n_profiles if profiles is None
                    else tuple(profiles) if isinstance(profiles, list) else profiles
                ),
                sigma0=self.sigma0, n_scan=self.n_scan,
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"AMADesigner(method='cma'): {e}") from None

    def _multistart(self) -> MultiStart:
        grid = GridSearch(
            n_points=1_000 if self.n_points is None else self.n_points,
            n_profiles=500,
            batch_candidates=self.batch_candidates,
            executor=self.executor,
        )
        methods = _GRADIENT_METHODS[::-1] if self.refine == "both" else (self.refine,)
        return MultiStart(
            grid=grid,
            refine=tuple(_gradient_searcher(self, m, self._profiles()) for m in methods),
            n_starts=self.n_starts,
            default_trials=self.n_trials,
            replay_seeds=tuple(self._replay_seed(m) for m in methods),
            n_select=max(self.n_validation, 1),
            n_final=self.n_final,
            validate_every=self.eval_every,
        )

    def _profiles(self) -> Any:
        """``n_profiles`` of the methods other than cma (validated as an int or None)."""
        return self.n_profiles

    def _replay_seed(self, method: str) -> int:
        seeds = self.replay_seeds or {}
        return int(seeds.get(method, self.seed))

    def _check_replay_seeds(self) -> None:
        rs = self.replay_seeds
        if rs is None:
            return
        if not isinstance(rs, Mapping):
            raise bad_parameter("AMADesigner", "replay_seeds", "as a mapping of method to seed",
                                type(rs), TypeError)
        for k, v in rs.items():
            if k not in _GRADIENT_METHODS:
                raise bad_parameter("AMADesigner", "replay_seeds",
                                    f"with keys among {_GRADIENT_METHODS}", k)
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0):
                raise bad_parameter("AMADesigner", f"replay_seeds[{k!r}]", "as an int >= 0", v)

    def _checkpoint_of(self, env: Environment) -> Checkpoint | None:
        """The checkpoint of this fit: a given Checkpoint, or a keyed record of a store."""
        ck = self.checkpoint
        if ck is None:
            return None
        if not isinstance(ck, (str, Path)):
            return ck
        return StoreCheckpoint(ck, self.checkpoint_key(env))

    def checkpoint_key(self, env: Environment) -> str:
        """Store key of this fit's checkpoint: a hash of everything that determines it.

        Parameters
        ----------
        env : Environment

        Returns
        -------
        str
            ``"design/<env name>/<method>/<sha256 prefix>"``; the hash covers the
            environment's content (:meth:`bilevel.models.Environment.identity`).

        Raises
        ------
        ValueError
            If the environment cannot be identified (see ``Environment.identity``).
        """
        from bilevel import __version__

        params = {k: v for k, v in self.get_params().items() if k not in _EXECUTION_ONLY}
        # the environment's content identity (MDP, callables or registry recipe), not just its
        # name and parameters: two custom environments never share a checkpoint
        blob = to_json(
            {"env": env.name, "env_identity": env.identity(), "params": params,
             "version": __version__},
            sort_keys=True, default=repr,
        )
        digest = hashlib.sha256(blob.encode()).hexdigest()[:20]
        return f"design/{env.name}/{self._method()}/{digest}"

    def save(self, path: str | Path) -> Path:
        """Save the designed mechanism (``.json`` or ``.npz``; read by :func:`bilevel.load`).

        Returns
        -------
        pathlib.Path
            The written path.
        """
        self._check_fitted("mechanism_")
        return self.mechanism_.save(path)

    # ------------------------------------------------------------------ fit
    def fit(self, env: Environment | str) -> AMADesigner:
        """Search for a mechanism for ``env`` and evaluate it against VCG.

        Parameters
        ----------
        env : Environment or str
            The environment, or a registered name (built with its default parameters).

        Returns
        -------
        AMADesigner
            ``self``, with ``mechanism_``, ``result_``, ``history_`` and ``evaluation_`` set.
        """
        if isinstance(env, str):
            env = make_env(env)
        if self.threads is not None:
            check_parameters("AMADesigner", {"threads": self.threads})
            previous = torch.get_num_threads()
            torch.set_num_threads(int(self.threads))
            try:
                return self._fit(env)
            finally:
                torch.set_num_threads(previous)
        return self._fit(env)

    def _fit(self, env: Environment) -> AMADesigner:
        start = time.perf_counter()
        problem = self._validate(env)
        search_rng, eval_seed = design_streams(self.seed)
        method = self._method()
        searcher = self._searcher()
        validate = None
        if method in _VALIDATED_METHODS and self.n_validation > 0:
            held_out = env.sample_types(np.random.default_rng(search_rng.spawn(1)[0]),
                                        self.n_validation)
            validate = HeldOutScore(problem, held_out)
        trials = self.n_trials if method in _VALIDATED_METHODS else 1
        rngs = [search_rng, *trial_streams(self.seed, trials - 1)]
        base = self._checkpoint_of(env)
        jobs = [
            _Trial(
                searcher, problem, rngs[t], self.max_steps, validate, self.eval_every,
                None if base is None else _Slot(base, t), self.checkpoint_every,
                f"{method} {env.name}" + (f" trial {t + 1}/{trials}" if trials > 1 else ""),
            )
            for t in range(trials)
        ]
        if trials > 1 and self.executor is not None:
            futures = [self.executor.submit(_run_trial, job) for job in jobs]
            results = [f.result() for f in futures]
        else:
            results = [
                run_search(
                    job.searcher, job.problem, rng=job.rng, max_steps=job.max_steps,
                    callback=self.callback, progress=self.progress, desc=job.desc,
                    validate=job.validate, validate_every=job.validate_every,
                    checkpoint=job.checkpoint, checkpoint_every=job.checkpoint_every,
                )
                for job in jobs
            ]
        result = _select_trial(results, problem.objective.maximize)
        mech = AMA(
            result.mechanism.weights,
            result.mechanism.boosts,
            name=f"ama-{method}",
            meta={
                **env_meta(env),
                "method": method,
                "objective": problem.objective.name,
                "seed": self.seed,
                "hyperparameters": {
                    k: v for k, v in self.get_params().items()
                    if isinstance(v, (int, float, str, bool, type(None)))
                    and k not in _EXECUTION_ONLY  # the same mechanism whatever their values
                },
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
            method=method,
            wall_time=time.perf_counter() - start,
        )
        return self


class HeldOutScore:
    """Exact mean objective of a mechanism on fixed held-out profiles (picklable).

    Parameters
    ----------
    problem : DesignProblem
    types : ndarray, shape (K, *type_shape)
    """

    def __init__(self, problem: DesignProblem, types: FloatArray) -> None:
        self.problem = problem
        self.types = types

    def __call__(self, mechanism: AMA) -> float:
        return float(score_on_profiles(self.problem, [mechanism], self.types)[0])


@dataclass(frozen=True)
class _Trial:
    searcher: Any
    problem: DesignProblem
    rng: np.random.Generator
    max_steps: int | None
    validate: HeldOutScore | None
    validate_every: int
    checkpoint: Checkpoint | None
    checkpoint_every: float
    desc: str


def _run_trial(job: _Trial) -> SearchResult:
    """One trial in a worker process (no callback or progress bar there)."""
    torch.set_num_threads(1)
    return run_search(
        job.searcher, job.problem, rng=job.rng, max_steps=job.max_steps,
        validate=job.validate, validate_every=job.validate_every,
        checkpoint=job.checkpoint, checkpoint_every=job.checkpoint_every, desc=job.desc,
    )


def _select_trial(results: list[SearchResult], maximize: bool) -> SearchResult:
    """The trial with the best (held-out) score; the first one wins ties."""
    if len(results) == 1:
        return results[0]
    sign = 1.0 if maximize else -1.0
    best = max(range(len(results)), key=lambda t: (sign * results[t].score, -t))
    chosen = results[best]
    return replace(
        chosen,
        nit=sum(r.nit for r in results),
        wall_time=sum(r.wall_time for r in results),
        message=f"Trial {best + 1} of {len(results)} chosen on held-out profiles. "
        + chosen.message,
        stats={
            **chosen.stats,
            "selected_trial": best,
            "trial_scores": [r.score for r in results],
        },
    )


_SLOTS_FORMAT = "bilevel.trial-checkpoints/2"  # /1 was a pickle, never loaded now


class _Slot:
    """Trial ``t``'s part of a checkpoint shared by all trials of one fit.

    The shared record is ``{"format": _SLOTS_FORMAT, "trials": {t: bytes}}`` in the data-only
    format of :mod:`bilevel.search._serialize` (never a pickle); each trial's bytes are its
    driver snapshot, in the same format.
    """

    def __init__(self, base: Checkpoint, t: int) -> None:
        self.base = base
        self.key = t

    def _all(self) -> dict[int, bytes]:
        data = self.base.load()
        if data is None:
            return {}
        where = f"the trial checkpoints {self.base!r}"
        try:
            table = loads(data)
        except ValueError as e:
            raise ValueError(
                f"cannot resume from {where}: {e}; delete it to start over"
            ) from None
        trials = table.get("trials") if isinstance(table, dict) else None
        if (
            not isinstance(table, dict) or table.get("format") != _SLOTS_FORMAT
            or not isinstance(trials, dict)
            or not all(type(k) is int and type(v) is bytes for k, v in trials.items())
        ):
            raise ValueError(
                f"cannot resume from {where}: expected a table of format {_SLOTS_FORMAT!r} "
                "(trial -> checkpoint bytes), got another; delete it to start over"
            )
        return trials

    def _write(self, trials: dict[int, bytes]) -> None:
        self.base.save(dumps({"format": _SLOTS_FORMAT, "trials": trials}))

    def load(self) -> bytes | None:
        return self._all().get(self.key)

    def save(self, data: bytes) -> None:
        trials = self._all()
        trials[self.key] = data
        self._write(trials)

    def clear(self) -> None:
        trials = self._all()
        trials.pop(self.key, None)
        self._write(trials)


def _gradient_searcher(
    d: AMADesigner, method: str, n_profiles: int | None
) -> FirstOrder | ZerothOrder:
    k = n_profiles if n_profiles is not None else 20
    if method == "first_order":
        return FirstOrder(alpha=d.alpha, iters=d.steps, n_profiles=k,
                          lr=0.01 if d.learning_rate is None else d.learning_rate,
                          optimizer=d.optimizer,
                          estimator=d.estimator, device=d.device,
                          regularised_solver=d.regularised_solver)
    return ZerothOrder(iters=d.steps, n_profiles=k, n_perturbations=d.n_perturbations,
                       sigma=d.sigma, lr=0.1 if d.learning_rate is None else d.learning_rate)


def _updater(bar: Any) -> Callable[[int], None]:
    def update(k: int) -> None:
        bar.update(k)

    return update


_SEARCHER_TYPES: dict[str, type] = {
    "grid": GridSearch, "first_order": FirstOrder, "zeroth_order": ZerothOrder,
    "multistart": MultiStart, "cma": CMAES,
}

METHODS: Mapping[str, Callable[[AMADesigner], Any]] = {
    "grid": AMADesigner._grid,
    "first_order": lambda d: d._gradient("first_order"),
    "zeroth_order": lambda d: d._gradient("zeroth_order"),
    "multistart": AMADesigner._multistart,
    "cma": AMADesigner._cma,
}
"""The ``method=`` alias table: each name builds its searcher from the flat parameters."""


_RULES: dict[str, Rule] = {
    **dict.fromkeys(("n_points", "n_profiles", "batch_candidates"), int_rule(1, optional=True)),
    **dict.fromkeys(("n_perturbations", "n_starts", "n_trials", "n_final"), int_rule(1)),
    "n_validation": int_rule(0),
    **dict.fromkeys(("alpha", "sigma"), positive_rule()),
    "refine": choice_rule(*_GRADIENT_METHODS, "both"),
}
