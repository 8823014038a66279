"""SPM settings: validation, and every sampler against its stated distribution.

Tolerances are ~4-5 standard errors of the sample statistic at the given sample size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from bilevel.models.spm import SPMSetting, check_spm_setting, list_spm_settings, make_spm_setting

N = 100_000


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Run single-threaded: the CI machine has two cores shared by several jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", [spec.name for spec in list_spm_settings()])
def test_every_setting_samples_normalised_values_reproducibly(name: str) -> None:
    s = make_spm_setting(name, n_agents=10) if name == "inventory" else make_spm_setting(name)
    check_spm_setting(s, samples=500)
    v = s.sample(2000, _gen(1))
    assert v.shape == (2000, s.n_agents, s.n_types)
    assert v.dtype == torch.float64
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    assert torch.equal(v, s.sample(2000, _gen(1)))
    assert not torch.equal(v, s.sample(2000, _gen(2)))


@pytest.mark.parametrize("name", [spec.name for spec in list_spm_settings()])
def test_finite_supports_are_distributions(name: str) -> None:
    s = make_spm_setting(name, n_agents=10) if name == "inventory" else make_spm_setting(name)
    if not s.finite:
        assert s.n_profiles == 0
        with pytest.raises(ValueError, match="finite"):
            next(s.profiles())
        return
    total, count = 0.0, 0
    for values, probs in s.profiles(chunk=4096):
        assert values.shape[1:] == (s.n_agents, s.n_types)
        total += float(probs.sum())
        count += int(probs.shape[0])
    assert count == s.n_profiles
    assert total == pytest.approx(1.0, abs=1e-12)


def _frequencies_match(s: SPMSetting, num: int = N) -> None:
    """Every support profile's sample frequency is within 5 standard errors of its probability."""
    assert s.support is not None and s.probs is not None
    sample = s.sample(num, _gen(3)).reshape(num, -1)
    support = s.support.reshape(s.support.shape[0], -1)
    match = (sample[:, None, :] - support[None, :, :]).abs().amax(-1) < 1e-12  # (num, K)
    assert bool((match.sum(1) == 1).all()), "a sampled profile is outside the support"
    freq = match.to(torch.float64).mean(0)
    se = torch.sqrt(s.probs * (1 - s.probs) / num)
    assert bool(((freq - s.probs).abs() <= 5 * se + 1e-12).all())


@pytest.mark.parametrize("name", ["kitchen_sink", "id", "proposition1", "proposition2"])
def test_small_supports_match_their_samplers(name: str) -> None:
    s = make_spm_setting(name)
    if s.support is None:  # independent marginals: materialise the product support
        vals, probs = next(s.profiles(chunk=1 << 20))
        s = SPMSetting(s.name, s.n_agents, s.units, s.sampler, support=vals, probs=probs)
    _frequencies_match(s, 40_000)


def test_kitchen_sink_support_is_the_stated_one() -> None:
    s = make_spm_setting("kitchen_sink")
    assert s.support is not None and s.probs is not None
    raw = s.support * 5.0
    # world 1: a1 values A at 0.01, a2 values C at 1, a3 values C at 5 (0.2) or 0.5 (0.8)
    assert raw[0].tolist() == [[0.01, 0, 0], [0, 0, 1], [0, 0, 5]]
    assert raw[1].tolist() == [[0.01, 0, 0], [0, 0, 1], [0, 0, 0.5]]
    # world 2: a1 values B at 0.01, a3 values C at 0.499, a2 values C at 2 (0.2) or 0 (0.8)
    assert torch.allclose(raw[2], torch.tensor([[0, 0.01, 0], [0, 0, 2], [0, 0, 0.499]]).double())
    assert torch.allclose(raw[3], torch.tensor([[0, 0.01, 0], [0, 0, 0], [0, 0, 0.499]]).double())
    assert s.probs.tolist() == [0.1, 0.4, 0.1, 0.4]


def test_id_support_structure() -> None:
    s = make_spm_setting("id")
    assert s.support is not None and s.probs is not None
    raw = (s.support[..., 0] * 60).round()
    assert raw.shape == (29, 6)
    for row, p in zip(raw.tolist(), s.probs.tolist(), strict=True):
        highs = [i for i in range(3) if row[i] == 60]
        if len(highs) == 1:
            i = highs[0]
            assert p == pytest.approx(1 / 64)
            assert row[3 + i] in (0, 40)
            assert all(row[3 + j] in (0, 21) for j in range(3) if j != i)
        else:
            assert p == pytest.approx(1 / 8)
            assert row[3:] == [0, 0, 0]


def test_two_worlds_regimes() -> None:
    s = make_spm_setting("two_worlds")
    v = s.sample(N, _gen(4))[..., 0]
    high = v.min(1).values >= 0.6
    assert float(high.double().mean()) == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / N))
    assert set(torch.unique(v[high]).tolist()) == {0.6, 1.0}
    assert set(torch.unique(v[~high]).tolist()) == {0.1, 0.4}
    # within a regime values are i.i.d. fair coins
    top = (v[high] == 1.0).double()
    assert float(top.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(torch.corrcoef(top[:, :2].T)[0, 1]) == pytest.approx(0.0, abs=0.02)
    assert s.n_profiles == 2048 and s.iid_components() is not None


def test_inventory_and_propositions_marginals() -> None:
    inv = make_spm_setting("inventory")
    v = inv.sample(N, _gen(5))
    assert set(torch.unique(v).tolist()) == {0.5, 1.0}
    assert float(v.mean()) == pytest.approx(0.75, abs=0.002)
    assert inv.iid and inv.n_profiles == 2**20
    p4 = make_spm_setting("proposition4")
    assert not p4.iid and p4.independent
    v4 = p4.sample(N, _gen(6))[..., 0] * 15
    for i, (lo, hi) in enumerate([(1, 15), (3, 12), (2, 8), (2, 8)]):
        assert set(torch.unique(v4[:, i].round()).tolist()) == {lo, hi}
        assert float(v4[:, i].mean()) == pytest.approx((lo + hi) / 2, abs=0.05 * (hi - lo))


@pytest.mark.parametrize("delta", [0.0, 0.25, 0.5, 1.0])
def test_correlated_moments(delta: float) -> None:
    s = make_spm_setting("correlated", n_agents=5, n_items=2, delta=delta)
    v = s.sample(N, _gen(7))[..., 0]
    # v_i = z - (1-δ)/2 + (1-δ) u_i: mean 1/2, Var = (δ² + (1-δ)²)/12, Cov(v_i, v_j) = δ²/12
    assert float(v.mean()) == pytest.approx(0.5, abs=0.003)
    cov = torch.cov(v[:, :2].T)
    assert float(cov[0, 0]) == pytest.approx((delta**2 + (1 - delta) ** 2) / 12, abs=0.002)
    assert float(cov[0, 1]) == pytest.approx(delta**2 / 12, abs=0.002)
    half = (1 - delta) / 2
    z_hat = v.mean(1)
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    # every value lies within (1-δ)/2 of the common z, so the spread is at most 1-δ
    assert float((v.max(1).values - v.min(1).values).max()) <= 1 - delta + 1e-12
    assert float(z_hat.min()) >= half - 1e-12 - (1 - delta) / 2


def test_additive_types_are_independent_correlated_draws() -> None:
    s = make_spm_setting("additive_across_types")
    assert s.valuation == "additive" and s.units == (2, 4)
    v = s.sample(N, _gen(8))
    a, b = v[:, 0, 0], v[:, 0, 1]
    assert float(a.mean()) == pytest.approx(0.5, abs=0.003)
    assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) == pytest.approx(0.0, abs=0.02)
    # within a type, δ = 0.5 correlation: Cov = 0.25 / 12
    assert float(torch.cov(v[:, :2, 0].T)[0, 1]) == pytest.approx(0.25 / 12, abs=0.002)


def test_colors_structure() -> None:
    s = make_spm_setting("colors")
    v = s.sample(N, _gen(9))
    assert torch.equal(v[:, :10], torch.tensor([0.5, 0.0]).double().expand(N, 10, 2))
    assert torch.equal(v[:, 10:20], torch.tensor([0.0, 0.5]).double().expand(N, 10, 2))
    blue = v[:, 20:]
    assert bool(((blue.sum(-1) == 1.0) & (blue.max(-1).values == 1.0)).all())
    red = blue[..., 0]
    # x ~ U[0,1] then Bernoulli(x): marginally a fair coin, independent across blue agents
    assert float(red.mean()) == pytest.approx(0.5, abs=0.003)
    assert float(torch.corrcoef(red[:, :2].T)[0, 1]) == pytest.approx(0.0, abs=0.02)
    assert s.n_profiles == 1024 and s.scale == 2.0


def test_maxmin_fairness_worlds() -> None:
    s = make_spm_setting("maxmin_fairness")
    assert s.objective == "maxmin" and s.units == (5, 5)
    v = s.sample(N, _gen(10))
    world1 = v[:, 0, 0] > 0  # orange values black
    assert float(world1.double().mean()) == pytest.approx(0.5, abs=0.008)

    def in_range(x: torch.Tensor, lo: float, hi: float) -> bool:
        return bool(((x >= lo) & (x <= hi)).all())

    w1, w2 = v[world1], v[~world1]
    assert in_range(w1[:, 0, 0], 0.5, 1) and bool((w1[:, 0, 1] == 0).all())
    assert in_range(w1[:, 1:5, 0], 0.4, 0.5) and in_range(w1[:, 1:5, 1], 0, 0.25)
    assert in_range(w1[:, 5:, 0], 0.9, 1) and in_range(w1[:, 5:, 1], 0.4, 0.5)
    assert in_range(w2[:, 0, 1], 0.5, 1) and bool((w2[:, 0, 0] == 0).all())
    assert in_range(w2[:, 5:, 0], 0.4, 0.5) and in_range(w2[:, 5:, 1], 0, 0.25)
    assert in_range(w2[:, 1:5, 0], 0.9, 1) and in_range(w2[:, 1:5, 1], 0.4, 0.5)
    assert float(w1[:, 1, 0].mean()) == pytest.approx(0.45, abs=0.002)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="expected an SPM setting"):
        make_spm_setting("nope")
    with pytest.raises(ValueError, match="unknown"):
        make_spm_setting("correlated", n=3)
    with pytest.raises(ValueError, match="delta"):
        make_spm_setting("correlated", delta=1.5)
    with pytest.raises(TypeError, match="n_agents"):
        make_spm_setting("inventory", n_agents=2.0)
    s = make_spm_setting("proposition1")
    with pytest.raises(TypeError, match="Generator"):
        s.sample(3, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num"):
        s.sample(-1, _gen())
    with pytest.raises(ValueError, match="probs"):
        SPMSetting(
            "x", 1, (1,), s.sampler, support=torch.zeros(2, 1, 1), probs=torch.tensor([0.5, 0.6])
        )
    with pytest.raises(ValueError, match="units"):
        SPMSetting("x", 1, (), s.sampler)
