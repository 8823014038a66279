"""Bad input raises ValueError / TypeError with an informative "expected ..., got ..." message.

Conventions item 10: no asserts for user input; every check is tested with ``match=``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bilevel import (
    AMA,
    AMADesigner,
    GridSearch,
    custom_env,
    evaluate,
    make_env,
    mdp_from_arrays,
    mdp_from_successors,
    mechanism_outcomes,
    sobol_candidates,
    solve_dp,
    solve_lp,
    vcg,
)
from bilevel.models import Environment
from bilevel.models.typing import FloatArray


@pytest.fixture(scope="module")
def sales() -> Environment:
    return make_env("sales", n_agents=3, n_items=2)  # (S, A) = (5, 4), types (3,)


@pytest.fixture(scope="module")
def grid() -> Environment:
    return make_env("gridworld", n_agents=2, grid=3)  # (9, 4), types (2, 3, 3)


def chain_p() -> np.ndarray:
    """Two states, two actions: state 0 -> state 1, then the flow leaves."""
    P = np.zeros((2, 2, 2))
    P[0, :, 1] = 1.0
    return P


# ---------------------------------------------------------------------- rewards and types


@pytest.mark.parametrize("shape", [(5,), (5, 3), (4, 4), (2, 5, 5), (1, 1, 5, 4)])
@pytest.mark.parametrize("solver", ["dp", "lp"])
def test_reward_wrong_shape(sales: Environment, shape: tuple[int, ...], solver: str) -> None:
    fn = solve_dp if solver == "dp" else solve_lp
    with pytest.raises(ValueError, match=r"expected reward of shape \(S, A\) = \(5, 4\).*got"):
        fn(sales.mdp, np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("solver", ["dp", "lp"])
def test_reward_nonfinite(sales: Environment, bad: float, solver: str) -> None:
    fn = solve_dp if solver == "dp" else solve_lp
    c = np.ones((2, 5, 4))
    c[1, 3, 2] = bad
    with pytest.raises(ValueError, match=r"expected finite rewards, got NaN or inf"):
        fn(sales.mdp, c)


def test_types_wrong_shape(sales: Environment, grid: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected types of shape \(k, \*type_shape\) = \(k, 3\)"):
        sales.rewards(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"expected types of shape .*\(k, 3\), got \(3,\)"):
        sales.rewards(np.zeros(3))  # a single profile without the batch axis
    with pytest.raises(ValueError, match=r"\(k, 2, 3, 3\), got \(1, 2, 9\)"):
        grid.rewards(np.zeros((1, 2, 9)))
    with pytest.raises(ValueError, match=r"expected types of shape"):
        mechanism_outcomes(sales, vcg(sales), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"expected types of shape"):
        sales.counterfactual(np.zeros((2, 4)), 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_types_nonfinite(sales: Environment, bad: float) -> None:
    types = np.array([[0.1, bad, 0.3]])
    with pytest.raises(ValueError, match=r"expected finite types, got NaN or inf"):
        sales.rewards(types)
    with pytest.raises(ValueError, match=r"expected finite types"):
        mechanism_outcomes(sales, vcg(sales), types)
    with pytest.raises(ValueError, match=r"expected finite types"):
        mechanism_outcomes(sales, vcg(sales), np.array([[0.1, 0.2, 0.3]]), reports=types)


def test_reports_shape_must_match_types(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected reports of shape \(2, 3\), got \(1, 3\)"):
        mechanism_outcomes(sales, vcg(sales), np.zeros((2, 3)), reports=np.zeros((1, 3)))


def test_counterfactual_agent_index(sales: Environment) -> None:
    for i in (-1, 3, 1.0, True):
        with pytest.raises(ValueError, match=r"expected an agent index in \[0, 3\)"):
            sales.counterfactual(np.zeros((1, 3)), i)  # type: ignore[arg-type]


def _custom(reward_fn: Callable[[FloatArray], FloatArray]) -> Environment:
    mdp = mdp_from_arrays(np.zeros((1, 2, 1)), [1.0], 1.0)
    return custom_env(
        mdp,
        n_agents=2,
        type_shape=(2,),
        reward_fn=reward_fn,
        sampler=lambda rng, k: rng.uniform(size=(k, 2)),
    )


def test_custom_env_reward_fn_checked() -> None:
    wrong_shape = _custom(lambda v: np.zeros((v.shape[0], 2, 1, 3)))
    with pytest.raises(
        ValueError, match=r"expected rewards of shape \(k, n, S, A\) = \(4, 2, 1, 2\), got"
    ):
        wrong_shape.rewards(wrong_shape.sample_types(0, 4))
    nan = _custom(lambda v: np.full((v.shape[0], 2, 1, 2), np.nan))
    with pytest.raises(ValueError, match=r"expected finite rewards, got NaN or inf"):
        nan.rewards(nan.sample_types(0, 4))


# ---------------------------------------------------------------------- MDP structure


def test_non_stochastic_row() -> None:
    P = chain_p()
    P[0, 1, 1] = 0.5  # row (0, a1) sums to 0.5
    with pytest.raises(
        ValueError,
        match=r"expected every transition row P\(\. \| s, a\) to sum to 1"
        r".*got .*0\.5\)? for state 0, action 'a1'",
    ):
        mdp_from_arrays(P, [1.0, 0.0], 1.0)
    P = chain_p()
    P[0, 0, :] = [0.7, 0.7]
    with pytest.raises(ValueError, match=r"to sum to 1 \(or 0 where flow leaves\), got .*1\.4"):
        mdp_from_arrays(P, [1.0, 0.0], 0.9)


def test_negative_probability() -> None:
    P = chain_p()
    P[0, 0] = [-0.5, 1.5]
    with pytest.raises(ValueError, match=r"expected non-negative transition probabilities"):
        mdp_from_arrays(P, [1.0, 0.0], 0.9)


def test_nonfinite_probability() -> None:
    P = chain_p()
    P[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"expected finite transition probabilities"):
        mdp_from_arrays(P, [1.0, 0.0], 1.0)


@pytest.mark.parametrize("shape", [(2, 2), (2, 2, 3), (2, 2, 2, 1)])
def test_transition_array_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expected P of shape \(S, A, S\), got"):
        mdp_from_arrays(np.zeros(shape), [1.0, 0.0], 1.0)


@pytest.mark.parametrize(
    ("mu0", "pattern"),
    [
        ([0.5, 0.4], r"expected mu0 to be a probability distribution"),
        ([1.5, -0.5], r"expected mu0 to be a probability distribution"),
        ([np.nan, 1.0], r"expected mu0 to be a probability distribution"),
        ([1.0], r"expected mu0 of shape \(S,\) = \(2,\), got \(1,\)"),
        ([[1.0, 0.0]], r"expected mu0 of shape \(S,\) = \(2,\), got \(1, 2\)"),
    ],
)
def test_mu0_not_a_distribution(mu0: list[float], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        mdp_from_arrays(chain_p(), mu0, 1.0)


@pytest.mark.parametrize("gamma", [0.0, -0.5, 1.0000001, 2.0, np.nan, np.inf])
def test_gamma_out_of_range(gamma: float) -> None:
    with pytest.raises(ValueError, match=r"expected gamma in \(0, 1\], got"):
        mdp_from_arrays(chain_p(), [1.0, 0.0], gamma)


@pytest.mark.parametrize("env_name", ["sales", "scheduling", "matching", "gridworld"])
def test_env_gamma_out_of_range(env_name: str) -> None:
    with pytest.raises(ValueError, match=r"expected gamma in \(0, 1\], got 1\.5"):
        make_env(env_name, gamma=1.5)
    with pytest.raises(TypeError, match=r"expected gamma as a float, got str"):
        make_env(env_name, gamma="0.9")


def test_gamma_one_with_cycle() -> None:
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 0] = 1.0  # 0 -> 1 -> 0
    with pytest.raises(ValueError, match=r"expected gamma < 1 for an MDP whose transition graph"):
        mdp_from_arrays(P, [1.0, 0.0], 1.0)
    # A self-loop is a cycle too.
    with pytest.raises(ValueError, match=r"has a cycle"):
        mdp_from_arrays(np.ones((1, 1, 1)), [1.0], 1.0)
    with pytest.raises(ValueError, match=r"expected gamma < 1 for the gridworld"):
        make_env("gridworld", gamma=1.0)
    mdp_from_arrays(P, [1.0, 0.0], 0.99)  # fine when discounted


def test_mdp_from_successors_bad_input() -> None:
    with pytest.raises(ValueError, match=r"expected at least one action, got 0"):
        mdp_from_successors(0, lambda s, a: [], [], 1.0)
    with pytest.raises(ValueError, match=r"to sum to 1"):
        mdp_from_successors(0, lambda s, a: [(1, 0.3)] if s == 0 else [], ["a"], 1.0)
    with pytest.raises(ValueError, match=r"expected gamma < 1"):
        mdp_from_successors(0, lambda s, a: [(1 - s, 1.0)], ["a"], 1.0)


def test_labels_count() -> None:
    with pytest.raises(ValueError, match=r"expected 2 state labels, got 3"):
        mdp_from_arrays(chain_p(), [1.0, 0.0], 1.0, states=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected 2 action names, got 1"):
        mdp_from_arrays(chain_p(), [1.0, 0.0], 1.0, actions=["x"])
    with pytest.raises(ValueError, match=r"expected unique state labels"):
        mdp_from_arrays(chain_p(), [1.0, 0.0], 1.0, states=["a", "a"])


# ---------------------------------------------------------------------- mechanisms


@pytest.mark.parametrize("w", [[0.0, 1.0], [-1.0, 1.0], [np.nan, 1.0]])
def test_weights_must_be_positive(w: list[float]) -> None:
    with pytest.raises(ValueError, match=r"expected weights w > 0 and finite, got"):
        AMA(w, np.zeros((5, 4)))


def test_nan_boosts() -> None:
    b = np.zeros((5, 4))
    b[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"expected finite boosts, got NaN or inf"):
        AMA([1.0, 1.0, 1.0], b)


def test_boosts_shape_for_env(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"boosts must have shape \(S, A\) = \(5, 4\)"):
        AMA(np.ones(3), np.zeros((5, 3))).check_compatible(sales)


# ---------------------------------------------------------------------- registry


def test_unknown_environment() -> None:
    with pytest.raises(
        ValueError, match=r"expected an environment name in \[.*'sales'.*\], got 'nope'"
    ):
        make_env("nope")


@pytest.mark.parametrize(
    ("name", "dist"),
    [
        ("sales", "normal"),
        ("scheduling", "onecell"),
        ("gridworld", "asymmetric"),
        ("matching", "gaussian"),
    ],
)
def test_unknown_distribution(name: str, dist: str) -> None:
    with pytest.raises(ValueError, match=rf"expected dist in \(.*\), got '{dist}'"):
        make_env(name, dist=dist)


def test_unknown_parameter_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"got unknown \['n_item'\]"):
        make_env("sales", n_item=2)
    with pytest.raises(ValueError, match=r"expected n_agents >= 1, got 0"):
        make_env("sales", n_agents=0)
    with pytest.raises(TypeError, match=r"expected n_items as an int, got float"):
        make_env("sales", n_items=2.0)
    with pytest.raises(ValueError, match=r"expected grid >= 2, got 1"):
        make_env("gridworld", grid=1)
    with pytest.raises(ValueError, match=r"expected makespan in \('clamped', 'reference'\)"):
        make_env("scheduling", makespan="wallclock")


def test_unknown_cost(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected a cost of environment 'sales'"):
        sales.cost("makespan", np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"expected objective in \['revenue', 'welfare'\]"):
        evaluate(sales, vcg(sales), n_samples=5, objective="makespan")


# ---------------------------------------------------------------------- K = 0


def test_k_zero(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected k >= 1, got 0"):
        sales.sample_types(np.random.default_rng(0), 0)
    with pytest.raises(TypeError, match=r"expected k as an int, got float"):
        sales.sample_types(0, 2.0)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"expected at least one reward array \(K >= 1\), got K = 0"
    ):
        solve_dp(sales.mdp, np.zeros((0, 5, 4)))
    with pytest.raises(
        ValueError, match=r"expected at least one type profile \(k >= 1\), got k = 0"
    ):
        sales.rewards(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"k >= 1"):
        mechanism_outcomes(sales, vcg(sales), np.zeros((0, 3)))


def test_k_zero_lp(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"K >= 1"):
        solve_lp(sales.mdp, np.zeros((0, 5, 4)))


def test_unknown_lp_solver(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected solver in \('highs', 'cvxpy', 'mosek'\)"):
        solve_lp(sales.mdp, np.zeros((5, 4)), solver="glpk")


# ---------------------------------------------------------------------- designer / evaluate


def test_designer_unknown_method(sales: Environment) -> None:
    with pytest.raises(
        ValueError,
        match=r"^AMADesigner: expected method as one of \('grid', 'first_order'",
    ):
        AMADesigner(method="nope").fit(sales)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(n_points=0), r"^AMADesigner: expected n_points as an int >= 1 or None, got 0$"),
        (dict(n_profiles=0), r"^AMADesigner: expected n_profiles as an int >= 1"),
        (dict(eval_samples=-1), r"^AMADesigner: expected eval_samples as an int >= 0, got -1$"),
        (dict(seed=-3), r"^AMADesigner: expected seed as an int >= 0, got -3$"),
        (dict(max_steps=0), r"^AMADesigner: expected max_steps as an int >= 1 or None, got 0$"),
        (dict(boost_box=(1.0, -1.0)), r"^AMADesigner: expected boost_box as \(lo, hi\)"),
        (dict(boost_box=(-np.inf, 1.0)), r"finite lo < hi"),
        (dict(inner="simplex"), r"expected inner solver in \('dp', 'lp'\)"),
        (dict(objective="profit"), r"expected objective in \['revenue', 'welfare'\]"),
    ],
)
def test_designer_bad_parameters(
    sales: Environment, kwargs: dict[str, object], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        AMADesigner(**kwargs).fit(sales)  # type: ignore[arg-type]


def test_designer_parameter_of_the_wrong_type(sales: Environment) -> None:
    with pytest.raises(TypeError, match=r"^AMADesigner: expected n_points as an int >= 1 or None, "
                                        r"got 2\.5$"):
        AMADesigner(n_points=2.5).fit(sales)  # type: ignore[arg-type]


def test_designer_needs_environment() -> None:
    with pytest.raises(TypeError, match=r"expected an Environment \(see make_env\), got int"):
        AMADesigner().fit(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError,
                       match=r"expected an environment name in \[.*'sales'.*\], got 'salez'"):
        AMADesigner().fit("salez")


def test_grid_search_bad_parameters() -> None:
    with pytest.raises(ValueError, match=r"expected n_points as an int >= 1, got 0"):
        GridSearch(n_points=0)
    with pytest.raises(ValueError, match=r"expected batch_candidates as an int >= 1 or None"):
        GridSearch(batch_candidates=0)
    with pytest.raises(ValueError, match=r"got 1.5"):
        GridSearch(batch_candidates=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected a boost box \(lo, hi\) with finite lo < hi"):
        sobol_candidates(4, 2, (3, 2), (1.0, -1.0), False)
    with pytest.raises(ValueError, match=r"expected n_points as an int >= 1, got 0"):
        sobol_candidates(0, 2, (3, 2), (-1.0, 1.0), False)


def test_evaluate_bad_parameters(sales: Environment) -> None:
    with pytest.raises(ValueError, match=r"expected n_samples >= 1, got 0"):
        evaluate(sales, vcg(sales), n_samples=0)
    with pytest.raises(TypeError, match=r"expected n_samples as an int, got float"):
        evaluate(sales, vcg(sales), n_samples=10.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expected batch_size >= 1, got 0"):
        evaluate(sales, vcg(sales), n_samples=10, batch_size=0)
    with pytest.raises(ValueError, match=r"expected baseline 'vcg', an AMA or None, got 'myerson'"):
        evaluate(sales, vcg(sales), n_samples=10, baseline="myerson")
    with pytest.raises(ValueError, match=r"expected a mechanism for 3 agents"):
        evaluate(sales, vcg(sales), n_samples=10, baseline=AMA(np.ones(2), np.zeros((5, 4))))
