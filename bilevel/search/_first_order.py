"""First-order search: gradients through the entropy-regularised inner problem.

The "regularized linear program" method of Curry et al. (2024), §4; its program is their
Appendix E, eq. (13), with the entropy-bonus sign (see :class:`bilevel.solvers.EntropicSolver`).

Each step draws fresh type profiles, solves the factual and (for revenue) counterfactual
problems with the entropy-regularised occupancy program — smooth in the rewards, so the
mechanism's objective is differentiable in ``theta = (log w, b)`` — and takes one SGD or Adam
step. Two gradient estimators:

* ``"exact"`` (default): autograd of the regularised per-profile objective through every solve
  (the implicit-function VJP of the inner solver);
* ``"envelope"``: the paper's revenue estimator (Curry et al. (2024), §5, "Regularized LP",
  with the partial derivatives of their Appendix C; "asw envelope" in the authors' code), which
  differentiates ``SW(x*)`` through the solver and takes the affine-welfare values' envelope
  derivative.

Paper defaults (Curry et al. (2024), §5): α = 0.01, 20 profiles per step, learning rate 0.01,
weights fixed at 1 for symmetric distributions and optimised for asymmetric ones; boosts start
at U[0, 1] as in the authors' code (the paper leaves the start open). The searcher returns its
last iterate; the designer evaluates it *unregularised* (exactly truthful).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bilevel._differentiable import affine_welfare, profile_objective, sample_batch
from bilevel._mechanism import AMA
from bilevel.models import TabularMDP
from bilevel.search._driver import DesignProblem
from bilevel.search._serialize import register, serializable

__all__ = ["FirstOrder", "FirstOrderState", "Params", "check_differentiable", "regularised_inner"]

Tensor = torch.Tensor
InnerFn = Callable[[Tensor], Tensor]


def regularised_inner(
    mdp: TabularMDP, alpha: float, device: str = "cpu", kind: str = "fast"
) -> InnerFn:
    """A differentiable solver of the entropy-regularised occupancy program.

    Parameters
    ----------
    mdp : TabularMDP
    alpha : float
        Regularisation strength α > 0.
    device : str, default "cpu"
        Torch device (fast solver only).
    kind : {"fast", "cvxpy", "soft"}, default "fast"
        ``"fast"``: the batched torch Newton solver with implicit backward (default);
        ``"cvxpy"``: the cvxpylayers reference layer (much slower; CPU); ``"soft"``: the
        causal-entropy (soft Bellman) solver — a *different* regulariser, not the paper's.

    Returns
    -------
    callable ``(c (B, S, A) tensor) -> x (B, S, A) tensor``
    """
    from bilevel.solvers import CvxpyEntropicLayer, EntropicSolver, SoftBellmanSolver

    solver: InnerFn
    if kind == "fast":
        solver = EntropicSolver(mdp, alpha, device=device)
    elif kind == "cvxpy":
        solver = CvxpyEntropicLayer(mdp, alpha)
    elif kind == "soft":
        solver = SoftBellmanSolver(mdp, alpha, device=device)
    else:
        raise ValueError(
            f"expected a regularised solver in ('fast', 'cvxpy', 'soft'), got {kind!r}"
        )
    return solver


@serializable("bilevel.search.Params")
@dataclass
class Params:
    """Searched parameters: ``log_w`` of shape (n,) (or None: w = 1) and ``b`` (S, A)."""

    log_w: Tensor | None
    b: Tensor

    def weights(self, n: int) -> Tensor:
        """``w = exp(log_w)`` or ones."""
        if self.log_w is None:
            return torch.ones(n, dtype=torch.float64, device=self.b.device)
        return torch.exp(self.log_w)

    def tensors(self) -> list[Tensor]:
        """The leaf tensors being optimised."""
        return [self.b] if self.log_w is None else [self.log_w, self.b]

    def to_ama(self, n: int, name: str) -> AMA:
        """The mechanism of these parameters."""
        with torch.no_grad():
            return AMA(self.weights(n).cpu().numpy(), self.b.detach().cpu().numpy(), name=name)


def init_params(
    problem: DesignProblem, rng: np.random.Generator, start: AMA | None, device: str
) -> Params:
    """Boosts U[0, 1] (paper) and w = 1, or a given starting mechanism."""
    env = problem.env
    if start is not None:
        b0 = np.array(start.boosts)
        lw0 = np.log(start.weights)
    else:
        b0 = rng.uniform(0.0, 1.0, env.mdp.shape)
        lw0 = np.zeros(env.n_agents)
    b = torch.tensor(b0, dtype=torch.float64, device=device, requires_grad=True)
    log_w = None
    if problem.optimise_weights:
        log_w = torch.tensor(lw0, dtype=torch.float64, device=device, requires_grad=True)
    return Params(log_w, b)


@dataclass
class FirstOrderState:
    """Progress of a first-order search.

    It checkpoints as data: the optimiser as its kind and ``state_dict()`` (rebuilt around the
    loaded parameter tensors), the inner solver not at all (``None`` after loading; the
    searcher rebuilds it, deterministically, on its next step).
    """

    params: Params
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    inner: InnerFn | None
    n_agents: int
    step: int = 0
    scores: list[float] = field(default_factory=list)


_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "Adam": torch.optim.Adam, "SGD": torch.optim.SGD,
}


def _encode_state(state: FirstOrderState) -> dict[str, Any]:
    kind = type(state.optimizer).__name__
    if _OPTIMIZERS.get(kind) is not type(state.optimizer):
        raise TypeError(f"cannot serialise a first-order state with a {kind} optimiser")
    return {
        "params": state.params, "rng": state.rng, "n_agents": state.n_agents,
        "step": state.step, "scores": state.scores,
        "optimizer": {"kind": kind, "state_dict": state.optimizer.state_dict()},
    }


def _decode_state(f: dict[str, Any]) -> FirstOrderState:
    expected = {"params", "rng", "n_agents", "step", "scores", "optimizer"}
    if set(f) != expected:
        raise ValueError(f"expected first-order state fields {sorted(expected)}, got {sorted(f)}")
    params, opt = f["params"], f["optimizer"]
    if not isinstance(params, Params) or not isinstance(opt, dict):
        raise ValueError("expected first-order parameters and an optimiser state")
    cls = _OPTIMIZERS.get(opt.get("kind"))  # type: ignore[arg-type]
    if cls is None or not isinstance(opt.get("state_dict"), dict):
        raise ValueError(f"expected an optimiser in {sorted(_OPTIMIZERS)}, got {opt.get('kind')!r}")
    # the hyperparameters (lr, betas, ...) come back with the state dict
    optimizer: torch.optim.Optimizer = (
        torch.optim.Adam(params.tensors()) if cls is torch.optim.Adam
        else torch.optim.SGD(params.tensors())
    )
    optimizer.load_state_dict(opt["state_dict"])
    return FirstOrderState(params, optimizer, f["rng"], None, f["n_agents"], f["step"],
                           f["scores"])


register(FirstOrderState, "bilevel.search.FirstOrderState", encode=_encode_state,
         decode=_decode_state)


@serializable("bilevel.search.FirstOrder")
@dataclass(frozen=True)
class FirstOrder:
    """Gradient ascent/descent through the entropy-regularised inner problem.

    Parameters
    ----------
    alpha : float, default 0.01
        Entropy regularisation strength α > 0 (paper: 0.01).
    iters : int, default 1000
        Number of steps.
    n_profiles : int, default 20
        Fresh type profiles per step (paper: 20).
    lr : float, default 0.01
        Learning rate (paper: 0.01).
    optimizer : {"adam", "sgd"}, default "adam"
        Adam at ``lr``, or plain (stochastic) gradient steps as in the authors' code (the
        paper names no rule). Adam is the default: at the paper's lr and 2,000 steps it is
        better or level on every row of Tables 1 and 4 (``docs/results.md``), where plain
        steps stall on revenue plateaus (Table 1, n=3 m=2: 0.64 against 0.69).
    estimator : {"exact", "envelope"}, default "exact"
        Gradient of the regularised objective, or the paper's asw-envelope revenue estimator.
    start : AMA, optional
        Starting mechanism (multistart); default b ~ U[0, 1], w = 1.
    inner : callable ``(c (B, S, A) tensor) -> x (B, S, A) tensor``, optional
        Differentiable inner solver; default the fast entropic solver for ``alpha``.
    device : str, default "cpu"
    regularised_solver : {"fast", "cvxpy", "soft"}, default "fast"
        Which regularised solver to differentiate through (when ``inner`` is not given);
        ``"soft"`` is the causal-entropy variant (a different regulariser).
    """

    alpha: float = 0.01
    iters: int = 1000
    n_profiles: int = 20
    lr: float = 0.01
    optimizer: str = "adam"
    estimator: str = "exact"
    start: AMA | None = None
    inner: InnerFn | None = None
    device: str = "cpu"
    regularised_solver: str = "fast"

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha)
        if self.regularised_solver not in ("fast", "cvxpy", "soft"):
            raise ValueError(
                "expected regularised_solver in ('fast', 'cvxpy', 'soft'), "
                f"got {self.regularised_solver!r}"
            )
        check_positive("lr", self.lr)
        check_count("iters", self.iters)
        check_count("n_profiles", self.n_profiles)
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"expected optimizer in ('sgd', 'adam'), got {self.optimizer!r}")
        if self.estimator not in ("exact", "envelope"):
            raise ValueError(f"expected estimator in ('exact', 'envelope'), got {self.estimator!r}")

    def total_steps(self, problem: DesignProblem) -> int:
        """``iters``."""
        return self.iters

    def init(self, problem: DesignProblem, rng: np.random.Generator) -> FirstOrderState:
        """Initial parameters and optimiser.

        Raises
        ------
        ValueError
            If the objective has no differentiable (torch) form.
        """
        check_differentiable(problem)
        params = init_params(problem, rng, self.start, self.device)
        opt: torch.optim.Optimizer
        if self.optimizer == "adam":
            opt = torch.optim.Adam(params.tensors(), lr=self.lr)
        else:
            opt = torch.optim.SGD(params.tensors(), lr=self.lr)
        return FirstOrderState(params, opt, rng, self._inner(problem), problem.env.n_agents)

    def _inner(self, problem: DesignProblem) -> InnerFn:
        return self.inner or regularised_inner(
            problem.env.mdp, self.alpha, self.device, self.regularised_solver
        )

    def step(self, problem: DesignProblem, state: FirstOrderState) -> FirstOrderState:
        """One stochastic gradient step on fresh profiles."""
        env, obj = problem.env, problem.objective
        batch = sample_batch(env, obj, state.rng, self.n_profiles, self.device)
        p = state.params
        w = p.weights(env.n_agents)
        c = affine_welfare(w, p.b, batch.all_rewards)  # ((1 + n) K or K, S, A)
        if state.inner is None:  # a state loaded from a checkpoint
            state.inner = self._inner(problem)
        x_all = state.inner(c)
        K = self.n_profiles
        x = x_all[:K]
        x_cf = x_all[K:].reshape(env.n_agents, K, *x.shape[1:]) if x_all.shape[0] > K else None
        score = profile_objective(
            obj, w, p.b, batch, x, x_cf, envelope=self.estimator == "envelope"
        ).mean()
        loss = -score if obj.maximize else score
        state.optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        for t in p.tensors():
            if t.grad is None or not torch.all(torch.isfinite(t.grad)):
                raise FloatingPointError(
                    f"expected finite gradients at step {state.step}, got NaN or inf "
                    "(try a larger alpha or a smaller learning rate)"
                )
        state.optimizer.step()
        state.scores.append(float(score.detach()))
        state.step += 1
        return state

    def done(self, state: FirstOrderState) -> bool:
        """Whether ``iters`` steps were taken."""
        return state.step >= self.iters

    def best(self, state: FirstOrderState) -> tuple[AMA, float]:
        """The last iterate and its (regularised, noisy) training score."""
        mech = state.params.to_ama(state.n_agents, "first_order")
        return mech, (state.scores[-1] if state.scores else float("nan"))

    def history(self, state: FirstOrderState) -> list[tuple[int, float]]:
        """``(step, regularised training objective)``."""
        return list(enumerate(state.scores))


def check_differentiable(problem: DesignProblem) -> None:
    """Raise a one-line ``ValueError`` unless first order can differentiate the objective."""
    obj = problem.objective
    if not obj.differentiable:
        raise ValueError(
            f"expected an objective differentiable in the occupancy measures for first-order "
            f"search, got {obj.name!r} without a torch form (build it with "
            "Objective.from_outcomes(fn) or Objective.from_occupancy(fn, differentiable=True), "
            "or use grid, zeroth_order or cma, which take any objective)"
        )


def check_positive(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"expected {name} as a number > 0, got {value!r}")
    if not (np.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"expected {name} > 0, got {value!r}")


def check_count(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is an int ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"expected {name} as an int >= 1, got {value!r}")
