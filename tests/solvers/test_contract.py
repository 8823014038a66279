"""The contract of every inner solver of ``bilevel.solvers``, run over the test catalogue.

In the shape of scipy's ``LinprogCommonTests``: :class:`SolverContract` holds the tests every
solver must pass, :class:`ExactContract` and :class:`RegularisedContract` add those of each
kind, and one ``Test*`` subclass per solver (and back end) says how to call it. On every
instance of :func:`tests.catalogue.problems` (small named environments and random layered and
cyclic MDPs, each with a batch of K = 3 rewards):

* the result is an :class:`~bilevel.solvers.InnerSolution` with status ``OPTIMAL``, values
  (K,), occupancy (K, S, A), state values (K, S) and a policy (K, S) for exact solvers (None for
  the stochastic regularised solutions);
* the occupancy measure conserves flow, ``M x = mu0``, and is nonnegative, to 1e-9;
* a batch of K rewards gives the K single solves, to 1e-9;
* a reward of the wrong shape raises a one-line ValueError "expected ..., got ...";
* exact solvers agree with each other (with the numpy DP) to 1e-9;
* regularised solvers approach the exact optimum V* as alpha -> 0 within the bound their
  regulariser gives: if H is the regulariser and h_min <= H <= h_max on the flow polytope, the
  regularised maximiser x_alpha satisfies ``0 <= V* - c.x_alpha <= alpha (h_max - h_min)`` and
  ``alpha h_min <= fun - V* <= alpha h_max``, and ``c.x_alpha`` does not decrease as alpha
  decreases. For the causal (policy) entropy of the soft-Bellman solver ``0 <= H <= log A`` per
  layer (per unit of discounted mass on cyclic MDPs); for the occupancy entropy,
  ``-sum x log x`` over the ``n = |layer| * A`` entries of a layer of mass at most 1 lies in
  ``[0, max(log n, n / e)]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np
import pytest
import torch

from bilevel.models import TabularMDP
from bilevel.models.typing import FloatArray
from bilevel.solvers import (
    CvxpyEntropicLayer,
    EntropicSolver,
    InnerSolution,
    SoftBellmanSolver,
    Status,
    mosek_licensed,
    solve_dp,
    solve_entropic,
    solve_lp,
)
from tests import catalogue

TOL = 1e-9
ALL = catalogue.problem_keys()
# a layered environment, a cyclic one and two random MDPs: for the slow cvxpylayers solver
SMALL = ["sales-2x1", "gridworld-3", "layered-stochastic-0", "cyclic-deterministic-1"]
# the messages of these solvers do not read "expected ..., got ..." yet (see the xfails)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    # tiny problems: intra-op threads only add contention on a shared machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``problem`` over the catalogue keys the solver class is checked on."""
    if "problem" in metafunc.fixturenames:
        cls = metafunc.cls
        keys = ALL if cls is None else cls.keys
        metafunc.parametrize("problem", [catalogue.problem(k) for k in keys], ids=keys)


BAD_SHAPES: dict[str, Callable[[int, int], tuple[int, ...]]] = {
    "S": lambda S, A: (S,),
    "S,A+1": lambda S, A: (S, A + 1),
    "S+1,A": lambda S, A: (S + 1, A),
    "2,S,A+1": lambda S, A: (2, S, A + 1),
    "1,1,S,A": lambda S, A: (1, 1, S, A),
}


def _flow_residual(mdp: TabularMDP, x: FloatArray) -> float:
    M = mdp.flow_matrix()
    return max(float(np.abs(M @ xk.ravel() - mdp.mu0).max()) for xk in x)


# ---------------------------------------------------------------------- the common contract


class SolverContract:
    """Tests every inner solver passes; subclasses implement :meth:`solve` (and more)."""

    keys: ClassVar[list[str]] = ALL
    """Catalogue problems this solver is checked on."""
    returns_solution: ClassVar[bool] = True
    """Whether :meth:`solve` returns an InnerSolution (else only :meth:`occupancy` applies)."""
    exact: ClassVar[bool] = True
    shape_message_xfail: ClassVar[str] = ""
    """Reason the bad-shape message test is expected to fail (a known library gap), or ''."""

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        """Solve rewards of shape (K, S, A) or (S, A)."""
        raise NotImplementedError

    def occupancy(self, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        """The occupancy measures (K, S, A) (or (S, A)) of the solutions, as numpy."""
        sol = self.solve(mdp, rewards)
        assert sol.occupancy is not None
        x = sol.occupancy
        return x[0] if np.ndim(rewards) == 2 else x

    def test_returns_an_optimal_inner_solution(self, problem: catalogue.Problem) -> None:
        if not self.returns_solution:
            pytest.skip("this interface returns occupancy measures, not an InnerSolution")
        mdp, c = problem.mdp, problem.rewards
        K, (S, A) = c.shape[0], mdp.shape
        sol = self.solve(mdp, c)
        assert isinstance(sol, InnerSolution)
        assert sol.status is Status.OPTIMAL and sol.success, sol.message
        assert sol.statuses == (Status.OPTIMAL,) * K and sol.batch_size == K
        assert sol.value.shape == sol.fun.shape == (K,)
        assert sol.occupancy is not None and sol.occupancy.shape == (K, S, A)
        assert sol.state_values is None or sol.state_values.shape == (K, S)
        if self.exact:
            assert sol.policy is not None and sol.policy.shape == (K, S)
            assert sol.policy.dtype.kind == "i"
            np.testing.assert_allclose(sol.fun, sol.value, rtol=0, atol=TOL)
        else:
            assert sol.policy is None  # a stochastic solution
        np.testing.assert_allclose(
            sol.value, np.einsum("ksa,ksa->k", sol.occupancy, c), rtol=0, atol=TOL
        )

    def test_occupancy_conserves_flow_and_is_nonnegative(
        self, problem: catalogue.Problem
    ) -> None:
        mdp, c = problem.mdp, problem.rewards
        x = self.occupancy(mdp, c)
        assert x.shape == c.shape and x.dtype == np.float64
        assert np.all(np.isfinite(x))
        assert float(x.min()) >= -TOL
        assert _flow_residual(mdp, x) <= TOL

    def test_a_batch_equals_single_solves(self, problem: catalogue.Problem) -> None:
        mdp, c = problem.mdp, problem.rewards
        if self.returns_solution:
            batch = self.solve(mdp, c)
            for k in range(c.shape[0]):
                single = self.solve(mdp, c[k])
                assert single.batch_size == 1 and single.occupancy is not None
                assert batch.occupancy is not None
                np.testing.assert_allclose(single.value, batch.value[k : k + 1], rtol=0, atol=TOL)
                np.testing.assert_allclose(
                    single.occupancy[0], batch.occupancy[k], rtol=0, atol=TOL, err_msg=f"k={k}"
                )
            return
        x = self.occupancy(mdp, c)
        for k in range(c.shape[0]):
            xk = self.occupancy(mdp, c[k])
            assert xk.shape == mdp.shape
            np.testing.assert_allclose(xk, x[k], rtol=0, atol=TOL, err_msg=f"k={k}")

    @pytest.mark.parametrize("shape", list(BAD_SHAPES))
    def test_a_bad_reward_shape_is_a_one_line_value_error(
        self, shape: str, request: pytest.FixtureRequest
    ) -> None:
        if self.shape_message_xfail:
            request.applymarker(pytest.mark.xfail(reason=self.shape_message_xfail, strict=True))
        mdp = catalogue.named_env("sales-3x2").mdp
        dims = BAD_SHAPES[shape](*mdp.shape)
        with pytest.raises(ValueError) as info:
            self.solve(mdp, np.zeros(dims)) if self.returns_solution else self.occupancy(
                mdp, np.zeros(dims)
            )
        msg = str(info.value)
        assert "\n" not in msg
        assert re.fullmatch(r"expected .+, got .+", msg), msg


# ---------------------------------------------------------------------- exact solvers


class ExactContract(SolverContract):
    """Exact solvers also agree with each other (the numpy DP is the reference)."""

    exact = True

    def test_agrees_with_the_other_exact_solvers(self, problem: catalogue.Problem) -> None:
        mdp, c = problem.mdp, problem.rewards
        ref = solve_dp(mdp, c)
        sol = self.solve(mdp, c)
        np.testing.assert_allclose(sol.value, ref.value, rtol=0, atol=TOL)
        assert sol.state_values is not None and ref.state_values is not None
        np.testing.assert_allclose(sol.state_values @ mdp.mu0, ref.value, rtol=0, atol=TOL)


class TestSolveDPNumpy(ExactContract):

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_dp(mdp, rewards, backend="numpy")


class TestSolveDPTorch(ExactContract):

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_dp(mdp, rewards, backend="torch")


class TestSolveLPHighs(ExactContract):

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_lp(mdp, rewards, solver="highs")


class TestSolveLPCvxpy(ExactContract):
    """The cvxpy model with its free back end (HiGHS, or Clarabel), passed explicitly."""


    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_lp(mdp, rewards, solver="cvxpy")


@pytest.mark.skipif(not mosek_licensed(), reason="no MOSEK licence on this machine")
class TestSolveLPMosek(ExactContract):

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_lp(mdp, rewards, solver="mosek")


# ---------------------------------------------------------------------- regularised solvers


def _occupancy_entropy_range(mdp: TabularMDP) -> tuple[float, float]:
    """Bounds of ``-sum x log x`` over the flow polytope of ``mdp``."""
    A = mdp.n_actions
    if mdp.layers is not None and mdp.gamma == 1.0:
        # every layer carries mass m <= 1 over n entries: 0 <= -sum x log x <= m log(n / m)
        sizes = [len(layer) * A for layer in mdp.layers]
        return 0.0, sum(max(math.log(n), n / math.e) for n in sizes)
    # total mass m' <= m = sum(mu0) / (1 - gamma) over n = S A entries:
    # -m' log m' <= -sum x log x <= m' log(n / m'), the latter increasing up to m' = n / e
    m = float(np.sum(mdp.mu0)) / (1.0 - mdp.gamma)
    n = mdp.n_states * A
    top = min(m, n / math.e)
    return min(0.0, -m * math.log(m)), top * math.log(n / top)


def _causal_entropy_range(mdp: TabularMDP) -> tuple[float, float]:
    """Bounds of ``sum_s d(s) H(pi(.|s))``: log A per unit of (discounted) state mass."""
    mass = (len(mdp.layers) if mdp.layers is not None and mdp.gamma == 1.0
            else float(np.sum(mdp.mu0)) / (1.0 - mdp.gamma))
    return 0.0, mass * math.log(mdp.n_actions)


class RegularisedContract(SolverContract):
    """Regularised solvers also approach the exact optimum as alpha -> 0, within their bound."""

    exact = False
    alpha: ClassVar[float] = 0.1
    """Temperature of the common tests."""
    alphas: ClassVar[tuple[float, ...]] = (1.0, 0.1, 0.01, 0.001)

    def solve_at(self, alpha: float, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        """Occupancy measures (K, S, A) of the solutions at temperature ``alpha``."""
        raise NotImplementedError

    def regulariser(self, x: FloatArray) -> FloatArray:
        """The regulariser H(x) (K,) that the solver adds, times alpha, to ``c.x``."""
        raise NotImplementedError

    def entropy_range(self, mdp: TabularMDP) -> tuple[float, float]:
        """Bounds ``(h_min, h_max)`` of the regulariser on the flow polytope of ``mdp``."""
        raise NotImplementedError

    def occupancy(self, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        c = np.asarray(rewards)
        x = self.solve_at(self.alpha, mdp, c if c.ndim == 3 else c[None])
        return x if c.ndim == 3 else x[0]

    def test_approaches_the_exact_value_as_alpha_goes_to_zero(
        self, problem: catalogue.Problem
    ) -> None:
        mdp, c = problem.mdp, problem.rewards
        exact = solve_dp(mdp, c).value
        h_min, h_max = self.entropy_range(mdp)
        previous = np.full(c.shape[0], -np.inf)
        for alpha in self.alphas:
            x = self.solve_at(alpha, mdp, c)
            value = np.einsum("ksa,ksa->k", x, c)
            fun = value + alpha * self.regulariser(x)
            gap = exact - value
            assert np.all(gap >= -TOL), (alpha, gap)
            assert np.all(gap <= alpha * (h_max - h_min) + TOL), (alpha, gap, h_max - h_min)
            assert np.all(fun - exact >= alpha * h_min - TOL), (alpha, fun - exact)
            assert np.all(fun - exact <= alpha * h_max + TOL), (alpha, fun - exact)
            assert np.all(value >= previous - TOL), (alpha, value, previous)
            previous = value


def _xlogx(x: FloatArray) -> FloatArray:
    out: FloatArray = np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)
    return out


class OccupancyEntropyContract(RegularisedContract):
    """The entropy-regularised occupancy program of Curry et al. (2024), Appendix E."""

    def regulariser(self, x: FloatArray) -> FloatArray:
        out: FloatArray = -_xlogx(x).sum(axis=(1, 2))
        return out

    def entropy_range(self, mdp: TabularMDP) -> tuple[float, float]:
        return _occupancy_entropy_range(mdp)


class TestSolveEntropic(OccupancyEntropyContract):

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return solve_entropic(mdp, rewards, self.alpha)

    def solve_at(self, alpha: float, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        sol = solve_entropic(mdp, rewards, alpha)
        assert sol.success and sol.occupancy is not None
        np.testing.assert_allclose(  # fun is the regularised optimum
            sol.fun, sol.value + alpha * self.regulariser(sol.occupancy), rtol=0, atol=TOL
        )
        return sol.occupancy


class TestEntropicSolver(OccupancyEntropyContract):
    """The differentiable call ``EntropicSolver(mdp, alpha)(c)`` (torch in, torch out)."""

    returns_solution = False

    def solve_at(self, alpha: float, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        x = EntropicSolver(mdp, alpha)(torch.as_tensor(rewards, dtype=torch.float64))
        return x.detach().numpy()

    def occupancy(self, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        x = EntropicSolver(mdp, self.alpha)(torch.as_tensor(rewards, dtype=torch.float64))
        return x.detach().numpy()


class TestCvxpyEntropicLayer(OccupancyEntropyContract):
    """The cvxpylayers reference (Clarabel, free): slow, so on a few problems and temperatures."""

    keys = SMALL
    alphas = (1.0, 0.1, 0.01)

    def solve(self, mdp: TabularMDP, rewards: FloatArray) -> InnerSolution:
        return CvxpyEntropicLayer(mdp, self.alpha, solver="clarabel").solve(
            torch.as_tensor(rewards, dtype=torch.float64)
        )

    def solve_at(self, alpha: float, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        sol = CvxpyEntropicLayer(mdp, alpha, solver="clarabel").solve(torch.as_tensor(rewards))
        assert sol.success and sol.occupancy is not None
        return sol.occupancy


class TestSoftBellmanSolver(RegularisedContract):
    """Causal-entropy regularisation (soft value iteration), torch in, torch out."""

    returns_solution = False

    def solve_at(self, alpha: float, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        x = SoftBellmanSolver(mdp, alpha)(torch.as_tensor(rewards, dtype=torch.float64))
        return x.detach().numpy()

    def occupancy(self, mdp: TabularMDP, rewards: FloatArray) -> FloatArray:
        x = SoftBellmanSolver(mdp, self.alpha)(torch.as_tensor(rewards, dtype=torch.float64))
        return x.detach().numpy()

    def regulariser(self, x: FloatArray) -> FloatArray:
        d = x.sum(axis=2, keepdims=True)
        pi = np.where(d > 0, x / np.where(d > 0, d, 1.0), 0.0)
        out: FloatArray = -(d[..., 0] * _xlogx(pi).sum(axis=2)).sum(axis=1)
        return out

    def entropy_range(self, mdp: TabularMDP) -> tuple[float, float]:
        return _causal_entropy_range(mdp)
