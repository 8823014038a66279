"""Exact dynamic programming in the discrete bandit auction (the dynamic mechanism-design paper
with evolving types, its discrete environment: values {1, 2, 3}, uniform prior, kernel
K(v' | v) ∝ exp(−α|v' − v|) with α = ½ × experience counting the current allocation).

Targets: the posted-price exploitabilities and revenues, and the revenue and welfare of the
dynamic pivot mechanism of Bergemann and Välimäki (2010) for two buyers and T = 1..4, all derived
by exact DP; the one-period values also in closed form (posted 2: 4/3; second price: 14/9, welfare
22/9). The DP's best response is checked independently by enumerating every history-dependent
report strategy on a tiny randomised mechanism.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import pytest

from bilevel.models.typing import FloatArray
from bilevel.solvers.dynamic._exact import (
    HistoryMechanism,
    TabularMechanism,
    _BayesBestResponse,
    _index,
    _setting,
    best_posted_price,
    best_response_value,
    discrete_kernel,
    dynamic_pivot,
    experience_kernels,
    myopic_second_price,
    posted_price,
    truthful_value,
)

S = np.array([1.0, 2.0, 3.0])


def test_kernel_rows_match_the_table() -> None:
    """Rows of K_disc(α) for α = 0.5, 1.0, 1.5 (to 1e-4) and the experience indexing."""
    rows = {
        0.5: [[0.5065, 0.3072, 0.1863], [0.2741, 0.4519, 0.2741], [0.1863, 0.3072, 0.5065]],
        1.0: [[0.6652, 0.2447, 0.0900], [0.2119, 0.5761, 0.2119], [0.0900, 0.2447, 0.6652]],
        1.5: [[0.7856, 0.1753, 0.0391], [0.1543, 0.6914, 0.1543], [0.0391, 0.1753, 0.7856]],
    }
    for alpha, want in rows.items():
        np.testing.assert_allclose(discrete_kernel(S, alpha), want, atol=1e-4)
    ks = experience_kernels(S, 3)
    np.testing.assert_allclose(ks[0], discrete_kernel(S, 0.5), atol=0, rtol=0)
    np.testing.assert_allclose(ks[2], discrete_kernel(S, 1.5), atol=0, rtol=0)
    np.testing.assert_allclose(ks.sum(axis=2), 1.0, atol=1e-15)
    np.testing.assert_allclose(
        experience_kernels(S, 2, experience_includes_current=False)[0], 1 / 3, atol=1e-15
    )


@pytest.mark.parametrize(
    ("price", "horizon", "revenue", "utility", "phi"),
    [
        (2.0, 1, 4 / 3, 1 / 3, 0.0),
        (2.0, 2, 2.359738, 0.593516, 0.0),
        (2.0, 3, 3.232044, 0.820226, 0.0),
        (2.0, 8, 6.878117, 1.818859, 0.086642),
        (2.0, 10, 8.249203, 2.203847, 0.201693),
        (1.5, 3, 2.424033, 1.628237, 0.109320),
    ],
)
def test_posted_price_one_buyer(
    price: float, horizon: int, revenue: float, utility: float, phi: float
) -> None:
    """Truthful revenue and utility, and the exact exploitability of a posted price (n = 1)."""
    mech = posted_price(price, n=1, horizon=horizon, support=S)
    tv = truthful_value(mech, support=S)
    assert tv.revenue == pytest.approx(revenue, abs=1e-6)
    assert float(tv.utilities[0]) == pytest.approx(utility, abs=1e-6)
    assert tv.welfare == pytest.approx(tv.revenue + float(tv.utilities[0]), abs=1e-12)
    br = best_response_value(mech, support=S)
    assert br.kind == "exact"
    assert br.truthful == pytest.approx(float(tv.utilities[0]), abs=1e-12)
    assert br.gain == pytest.approx(phi, abs=1e-6)
    assert br.gain >= -1e-12


def test_discounting_by_hand() -> None:
    """Posted 2, T = 2, γ = 1/2: period 0 earns 4/3; in period 1 only buyers with v₀ ≥ 2 have
    learned, and they buy again with probability K_0.5(2, ≥2) resp. K_0.5(3, ≥2)."""
    k = discrete_kernel(S, 0.5)
    second = 2.0 * (k[1, 1:].sum() + k[2, 1:].sum()) / 3
    tv = truthful_value(posted_price(2.0, n=1, horizon=2, support=S), support=S, gamma=0.5)
    assert tv.revenue == pytest.approx(4 / 3 + 0.5 * second, abs=1e-12)


def test_posted_one_point_five_overbids_only_at_value_one() -> None:
    """At p = 1.5, T = 3 the deviation is the experimentation of a v₀ = 1 buyer: gain 0.3280
    for v₀ = 1, i.e. 0.10932 averaged over v₀; buyers with v₀ ≥ 2 buy anyway."""
    mech = posted_price(1.5, n=1, horizon=3, support=S)
    br = best_response_value(mech, support=S)
    assert br.policy is not None
    assert br.policy[0, 0, 0] >= 1  # v = 1 at τ = 0: report at least 2 (buy)
    assert br.policy[0, 0, 1] == 1 and br.policy[0, 0, 2] == 2  # truthful otherwise
    assert 3 * br.gain == pytest.approx(0.3280, abs=1e-4)


def test_best_posted_price() -> None:
    """Candidates are the support values and midpoints; T = 1 gives Myerson's price 2 (4/3);
    T = 3 gives 2 (3.232044, exploitability 0), with 1.5 the exploitable candidate."""
    one = best_posted_price(n=1, horizon=1, support=S)
    assert one.price == 2.0 and one.revenue == pytest.approx(4 / 3, abs=1e-12)
    three = best_posted_price(n=1, horizon=3, support=S)
    np.testing.assert_allclose(three.candidates, [1.0, 1.5, 2.0, 2.5, 3.0], atol=0)
    assert three.price == 2.0 and three.kind == "exact"
    assert three.revenue == pytest.approx(3.232044, abs=1e-6)
    assert three.exploitability == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(three.exploitabilities, [0, 0.109320, 0, 0, 0], atol=1e-6)


def test_myopic_second_price_one_period() -> None:
    """T = 1, n = 2: the second-price auction has revenue 14/9 and welfare 22/9, and is IC."""
    mech = myopic_second_price(n=2, horizon=1, support=S)
    tv = truthful_value(mech, support=S)
    assert tv.revenue == pytest.approx(14 / 9, abs=1e-12)
    assert tv.welfare == pytest.approx(22 / 9, abs=1e-12)
    br = best_response_value(mech, agent=1, observe="clairvoyant", support=S)
    assert br.kind == "upper_bound" and br.gain == pytest.approx(0.0, abs=1e-12)


PIVOT = [
    (1, 1.555556, 2.444444),
    (2, 3.265868, 4.734132),
    (3, 4.997166, 7.002834),
    (4, 6.736382, 9.263618),
]


@pytest.mark.parametrize(("horizon", "revenue", "welfare"), PIVOT)
def test_dynamic_pivot_two_buyers(horizon: int, revenue: float, welfare: float) -> None:
    """Dynamic pivot, n = 2, m = 1: revenue and welfare (1e-6), clairvoyant gain ≤ 1e-9 for both
    buyers (so φ = 0 is proved), and every continuation utility is ≥ 0 (ex-post IR)."""
    mech = dynamic_pivot(n=2, horizon=horizon, support=S)
    tv = truthful_value(mech, support=S)
    assert tv.revenue == pytest.approx(revenue, abs=1e-6)
    assert tv.welfare == pytest.approx(welfare, abs=1e-6)
    assert tv.welfare == pytest.approx(tv.revenue + float(tv.utilities.sum()), abs=1e-12)
    assert tv.utility_by_state is not None
    assert float(tv.utility_by_state.min()) >= -1e-12
    for i in range(2):
        br = best_response_value(mech, agent=i, observe="clairvoyant", support=S)
        assert br.kind == "upper_bound"
        assert abs(br.gain) <= 1e-9


def test_myopic_second_price_is_exploitable_dynamically() -> None:
    """With learning, the per-period second price is not dynamically IC (clairvoyant gain > 0):
    the pivot's externality pricing is what removes the gain."""
    mech = myopic_second_price(n=2, horizon=3, support=S)
    gains = [
        best_response_value(mech, agent=i, observe="clairvoyant", support=S).gain for i in range(2)
    ]
    assert gains[0] == pytest.approx(gains[1], abs=1e-12)
    assert gains[0] > 0.1


# ------------------------------------------------------------------------------------------
# Independent check: enumerate every history-dependent strategy on a tiny case (n = 1, T = 2)
# ------------------------------------------------------------------------------------------


def _random_mechanism(rng: np.random.Generator, support: FloatArray) -> TabularMechanism:
    """A randomised mechanism over (τ, experience, report), one buyer, T = 2."""
    nv = support.shape[0]
    p1 = rng.uniform(0.1, 0.9, size=(2, 2, nv))
    alloc = np.stack([1 - p1, p1], axis=-1)
    pay = rng.uniform(-0.5, 2.5, size=(2, 2, nv, 1))
    return TabularMechanism(alloc, pay)


def _brute_force(
    x0: FloatArray,
    p0: FloatArray,
    x1: FloatArray,
    p1: FloatArray,
    support: FloatArray,
    prior: FloatArray,
    kernel: FloatArray,
) -> tuple[float, float]:
    """(best, truthful) expected utility over every strategy s0(v0), s1(v0, a0, v1), n = 1, T = 2.

    The mechanism: period 0 allocates with x0[r0] (V, 2) and charges p0[r0]; period 1 with
    x1[r0, a0, r1] (V, 2, V, 2) and p1[r0, a0, r1], i.e. it may depend on the whole history. The
    buyer observes its values and the realised allocation (its report r0 = s0(v0) is a function
    of v0, so (v0, a0, v1) is its whole information at τ = 1).
    """
    nv = support.shape[0]

    def value(s0: tuple[int, ...], s1: dict[tuple[int, int, int], int]) -> float:
        total = 0.0
        for v0 in range(nv):
            r0 = s0[v0]
            u = x0[r0, 1] * support[v0] - p0[r0]
            for a0 in (0, 1):
                pa = x0[r0, a0]
                for v1 in range(nv):
                    pv = kernel[0, v0, v1] if a0 == 1 else float(v1 == v0)
                    r1 = s1[(v0, a0, v1)]
                    u += pa * pv * (x1[r0, a0, r1, 1] * support[v1] - p1[r0, a0, r1])
            total += prior[v0] * u
        return total

    infos = list(itertools.product(range(nv), (0, 1), range(nv)))
    best = -np.inf
    for s0 in itertools.product(range(nv), repeat=nv):
        for choice in itertools.product(range(nv), repeat=len(infos)):
            best = max(best, value(s0, dict(zip(infos, choice, strict=True))))
    truth = value(tuple(range(nv)), {k: k[2] for k in infos})
    return float(best), truth


def test_dp_matches_enumeration_of_all_strategies() -> None:
    """On a random randomised mechanism (support {1, 3}, T = 2, random kernel and prior, random
    payments of both signs), the DP's best response and truthful value equal the maximum over
    all 4 × 256 history-dependent strategies and the truthful strategy's value (1e-12)."""
    rng = np.random.default_rng(7)
    support = np.array([1.0, 3.0])
    prior = np.array([0.3, 0.7])
    k = rng.uniform(size=(2, 2, 2))
    kernel = k / k.sum(axis=2, keepdims=True)
    mech = _random_mechanism(rng, support)
    x, p = mech.allocation, mech.payments[..., 0]
    x1 = np.broadcast_to(x[1][None], (2, 2, 2, 2))  # x1[r0, a0] = x[1, experience a0]
    p1 = np.broadcast_to(p[1][None], (2, 2, 2))
    best, truth = _brute_force(x[0, 0], p[0, 0], x1, p1, support, prior, kernel)
    br = best_response_value(mech, support=support, prior=prior, kernel=kernel)
    assert br.value == pytest.approx(best, abs=1e-12)
    assert br.truthful == pytest.approx(truth, abs=1e-12)
    assert br.gain > 0.05  # the case is not trivially truthful
    tv = truthful_value(mech, support=support, prior=prior, kernel=kernel)
    assert float(tv.utilities[0]) == pytest.approx(truth, abs=1e-12)


def test_history_dp_matches_enumeration_of_all_strategies() -> None:
    """A random mechanism over the whole history (period 1 depends on the report and winner of
    period 0), n = 1, T = 2, support {1, 3}: its exact best response and truthful value equal
    the enumeration over all strategies (1e-12)."""
    rng = np.random.default_rng(11)
    support = np.array([1.0, 3.0])
    prior = np.array([0.55, 0.45])
    k = rng.uniform(size=(2, 2, 2))
    kernel = k / k.sum(axis=2, keepdims=True)
    q0, q1 = rng.uniform(0.1, 0.9, size=(1, 2)), rng.uniform(0.1, 0.9, size=(4, 2))
    alloc = (np.stack([1 - q0, q0], axis=-1), np.stack([1 - q1, q1], axis=-1))
    pay = (rng.uniform(-0.5, 2.5, size=(1, 2, 1)), rng.uniform(-0.5, 2.5, size=(4, 2, 1)))
    mech = HistoryMechanism(alloc, pay)
    # Histories at τ = 1 index as r0 · 2 + a0.
    x1 = alloc[1].reshape(2, 2, 2, 2)
    p1 = pay[1][..., 0].reshape(2, 2, 2)
    best, truth = _brute_force(alloc[0][0], pay[0][0, :, 0], x1, p1, support, prior, kernel)
    br = best_response_value(mech, support=support, prior=prior, kernel=kernel)
    assert br.kind == "exact" and br.policy is None
    assert br.value == pytest.approx(best, abs=1e-12)
    assert br.truthful == pytest.approx(truth, abs=1e-12)
    assert br.gain > 0.05
    tv = truthful_value(mech, support=support, prior=prior, kernel=kernel)
    assert float(tv.utilities[0]) == pytest.approx(truth, abs=1e-12)
    assert tv.utility_by_state is None


@pytest.mark.parametrize(
    ("mech", "agent", "observe"),
    [
        (posted_price(1.5, n=1, horizon=3, support=S), 0, "own"),
        (myopic_second_price(n=2, horizon=3, support=S, ties="lowest"), 1, "clairvoyant"),
        (dynamic_pivot(n=2, horizon=3, support=S), 0, "clairvoyant"),
    ],
)
def test_history_form_of_a_tabular_mechanism_has_the_same_values(
    mech: TabularMechanism, agent: int, observe: Literal["own", "clairvoyant"]
) -> None:
    """Writing a mechanism over histories (experience read off each history) leaves its revenue,
    welfare and best-response gain unchanged (1e-12): the two DPs agree."""
    hist = HistoryMechanism.from_tabular(mech)
    a, b = truthful_value(mech, support=S), truthful_value(hist, support=S)
    assert b.revenue == pytest.approx(a.revenue, abs=1e-12)
    assert b.welfare == pytest.approx(a.welfare, abs=1e-12)
    ga = best_response_value(mech, agent=agent, observe=observe, support=S)
    gb = best_response_value(hist, agent=agent, observe=observe, support=S)
    assert gb.gain == pytest.approx(ga.gain, abs=1e-12)
    assert gb.revenue == pytest.approx(ga.revenue, abs=1e-12)


def _brute_force_two(
    mech: TabularMechanism, support: FloatArray, prior: FloatArray, kernel: FloatArray
) -> tuple[float, float]:
    """(best, truthful) expected utility of buyer 0 against truthful buyer 1, n = 2, T = 2, over
    every strategy s0(v0), s1(v0, a0, v1) of a buyer that sees its values and the winners.

    Profiles index as r_0 V + r_1, experience profiles as e_0 T + e_1 (T = 2).
    """
    nv = support.shape[0]
    x, p = mech.allocation, mech.payments[..., 0]
    infos = list(itertools.product(range(nv), range(3), range(nv)))
    # c[s0-choice of v0][info, r1]: weighted period-1 utility of each choice at each info set.
    base = np.zeros((nv, nv))  # (v0, r0): period-0 utility, weighted
    c = np.zeros((nv, nv, len(infos), nv))  # (v0, r0, info, r1)
    for vi, vj, r0 in itertools.product(range(nv), range(nv), range(nv)):
        w = prior[vi] * prior[vj]
        prof = r0 * nv + vj
        base[vi, r0] += w * (x[0, 0, prof, 1] * support[vi] - p[0, 0, prof])
        for a0 in range(3):
            e1 = {0: 0, 1: 2, 2: 1}[a0]
            for wi, wj in itertools.product(range(nv), range(nv)):
                pi = kernel[0, vi, wi] if a0 == 1 else float(wi == vi)
                pj = kernel[0, vj, wj] if a0 == 2 else float(wj == vj)
                q = w * x[0, 0, prof, a0] * pi * pj
                k = infos.index((vi, a0, wi))
                for r1 in range(nv):
                    prof1 = r1 * nv + wj
                    c[vi, r0, k, r1] += q * (x[1, e1, prof1, 1] * support[wi] - p[1, e1, prof1])
    choices = np.array(list(itertools.product(range(nv), repeat=len(infos))))  # (C, I)
    rows = np.arange(len(infos))
    best = -np.inf
    for s0 in itertools.product(range(nv), repeat=nv):
        period0 = sum(base[v, s0[v]] for v in range(nv))
        # Period-1 utility only counts the info sets whose v0 plays s0(v0).
        table = sum(c[v, s0[v]] for v in range(nv))  # (I, nv)
        best = max(best, period0 + float(table[rows, choices].sum(axis=1).max()))
    truth = sum(base[v, v] for v in range(nv)) + sum(
        c[v, v][k, infos[k][2]] for v in range(nv) for k in range(len(infos))
    )
    return float(best), float(truth)


def test_bayesian_dp_matches_enumeration_two_buyers() -> None:
    """n = 2, T = 2, support {1, 3}: a random randomised mechanism that depends on experience;
    the Bayesian best response of a buyer who sees only its values and the winners equals the
    maximum over all 2^2 × 2^12 history-dependent strategies (1e-12), and lies between the truth
    and the clairvoyant bound."""
    rng = np.random.default_rng(3)
    support = np.array([1.0, 3.0])
    prior = np.array([0.4, 0.6])
    k = rng.uniform(size=(2, 2, 2))
    kernel = k / k.sum(axis=2, keepdims=True)
    raw = rng.uniform(0.05, 1.0, size=(2, 4, 4, 3))
    mech = TabularMechanism(
        raw / raw.sum(axis=-1, keepdims=True), rng.uniform(-0.5, 2.5, size=(2, 4, 4, 2))
    )
    best, truth = _brute_force_two(mech, support, prior, kernel)
    kw = {"support": support, "prior": prior, "kernel": kernel}
    br = best_response_value(mech, observe="own", sees_payments=False, **kw)
    assert br.kind == "exact" and br.policy is None
    assert br.value == pytest.approx(best, abs=1e-12)
    assert br.truthful == pytest.approx(truth, abs=1e-12)
    assert br.gain > 0.01
    seen = best_response_value(mech, observe="own", **kw)
    clair = best_response_value(mech, observe="clairvoyant", **kw)
    assert br.value <= seen.value + 1e-12 <= clair.value + 2e-12


def test_bayesian_recursion_with_one_buyer_equals_the_mdp() -> None:
    """The belief recursion with no other buyer (a single belief state) reproduces the MDP's
    0.109320 at posted 1.5, T = 3."""
    mech = posted_price(1.5, n=1, horizon=3, support=S)
    st = _setting(1, 3, 1.0, S, None, None)
    value, _ = _BayesBestResponse(st, _index(1, 3, 3), mech, 0, True)()
    tv = truthful_value(mech, support=S)
    assert value - float(tv.utilities[0]) == pytest.approx(0.109320, abs=1e-6)


@pytest.mark.parametrize("horizon", [2, 3])
def test_bayesian_bounds_are_ordered_two_buyers(horizon: int) -> None:
    """n = 2: 0 ≤ Bayesian (winners only) ≤ Bayesian (winners and own payment) ≤ clairvoyant, on
    the myopic second price (strictly exploitable) and the pivot (all ≈ 0)."""
    second = myopic_second_price(n=2, horizon=horizon, support=S)
    blind = best_response_value(second, sees_payments=False, support=S).gain
    seen = best_response_value(second, support=S).gain
    clair = best_response_value(second, observe="clairvoyant", support=S).gain
    assert 0.005 < blind <= seen + 1e-12 <= clair + 2e-12
    assert seen < clair - 0.05  # the clairvoyant bound is not tight here
    pivot = dynamic_pivot(n=2, horizon=horizon, support=S)
    assert abs(best_response_value(pivot, agent=1, support=S).gain) <= 1e-9


def test_priority_buyer_faces_the_single_buyer_problem() -> None:
    """Posted 1.5, T = 3, two buyers, ties to the lowest index: buyer 0 is served whenever it
    takes, whatever buyer 1 does, so its exact Bayesian gain is the one-buyer 0.109320, and the
    clairvoyant bound is tight for it."""
    mech = posted_price(1.5, n=2, horizon=3, support=S, ties="lowest")
    own = best_response_value(mech, agent=0, support=S)
    clair = best_response_value(mech, agent=0, observe="clairvoyant", support=S)
    assert own.gain == pytest.approx(0.109320, abs=1e-6)
    assert clair.gain == pytest.approx(own.gain, abs=1e-12)
    high = posted_price(2.0, n=2, horizon=1, support=S, among="highest", ties="lowest")
    # Profiles (r0, r1) in row-major order: (2, 2) goes to buyer 0, (2, 3) to buyer 1.
    np.testing.assert_array_equal(high.allocation[0, 0, 4], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(high.allocation[0, 0, 5], [0.0, 0.0, 1.0])
    split = posted_price(2.0, n=2, horizon=1, support=S)
    np.testing.assert_array_equal(split.allocation[0, 0, 5], [0.0, 0.5, 0.5])


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def test_bad_input() -> None:
    """Shapes that do not fit, an invalid support, prior or kernel, a wrong agent or observe all
    raise one-line errors."""
    mech = posted_price(2.0, n=1, horizon=2, support=S)
    with pytest.raises(ValueError, match=r"expected a mechanism with \(T, V\*\*n, n \+ 1\)"):
        truthful_value(mech, support=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="expected a finite, strictly increasing support, got"):
        posted_price(2.0, n=1, horizon=2, support=np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected prior of shape \(3,\), got \(2,\)"):
        truthful_value(mech, support=S, prior=np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="expected a probability vector as prior, got"):
        truthful_value(mech, support=S, prior=np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="expected kernel rows summing to 1, got"):
        truthful_value(mech, support=S, kernel=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"expected kernel of shape \(3, 3\) or"):
        truthful_value(mech, support=S, kernel=np.ones((1, 3, 3)) / 3)
    with pytest.raises(ValueError, match=r"expected gamma in \[0, 1\], got 1.5"):
        truthful_value(mech, support=S, gamma=1.5)
    with pytest.raises(ValueError, match=r"expected agent in \[0, 1\), got 1"):
        best_response_value(mech, agent=1, support=S)
    with pytest.raises(ValueError, match="expected observe 'own' or 'clairvoyant', got 'all'"):
        best_response_value(mech, observe="all", support=S)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected horizon to be a positive integer, got 0"):
        posted_price(2.0, n=1, horizon=0, support=S)
    with pytest.raises(ValueError, match="expected allocation probabilities summing to 1"):
        TabularMechanism(np.full((1, 1, 3, 2), 0.7), np.zeros((1, 1, 3, 1)))
    with pytest.raises(ValueError, match=r"expected payments of shape \(1, 1, 3, 1\), got"):
        TabularMechanism(np.full((1, 1, 3, 2), 0.5), np.zeros((1, 1, 3, 2)))
    with pytest.raises(ValueError, match="expected ties 'split' or 'lowest', got 'random'"):
        myopic_second_price(n=2, horizon=1, support=S, ties="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected among 'takers' or 'highest', got 'all'"):
        posted_price(2.0, n=2, horizon=1, support=S, among="all")  # type: ignore[arg-type]
    hist = HistoryMechanism.from_tabular(posted_price(2.0, n=2, horizon=2, support=S))
    with pytest.raises(ValueError, match=r"expected observe='clairvoyant' .* got observe='own'"):
        best_response_value(hist, support=S)
    with pytest.raises(ValueError, match=r"expected allocation\[1\] of shape \(27, 9, 3\)"):
        HistoryMechanism(hist.allocation[:1] + hist.allocation[:1], hist.payments)
    with pytest.raises(
        TypeError, match="expected a TabularMechanism or HistoryMechanism, got dict"
    ):
        truthful_value({}, support=S)  # type: ignore[arg-type]
