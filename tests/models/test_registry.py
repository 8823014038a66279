"""The generic registry, and the conformance checkers run over every registered instance.

* ``Registry``: registering, building, listing, the one-line errors, the duplicate policy;
* every registered environment (defaults and small parameterisations), game variant and SPM
  setting passes its checker (``check_env``, ``check_game``, ``check_spm_setting``);
* each checker catches a broken instance, one test per rule, with an explicit wrong value;
* ``AMA.check_env`` is a deprecated alias of ``AMA.check_compatible``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from bilevel.models import (
    Environment,
    EnvSpec,
    Registry,
    StackelbergGame,
    check_env,
    check_game,
    check_spm_setting,
    custom_env,
    list_envs,
    list_games,
    make_env,
    make_game,
    mdp_from_arrays,
    register_env,
)
from bilevel.models.typing import FloatArray

# ---------------------------------------------------------------------- Registry


def _square(*, side: int = 1) -> tuple[int, int]:
    return (side, side)


def _shapes() -> Registry[tuple[int, int]]:
    reg: Registry[tuple[int, int]] = Registry("a shape", returns=tuple, forbidden=":")
    reg.register("square", _square, "two equal sides")
    return reg


def test_registry_registers_builds_and_lists() -> None:
    reg = _shapes()
    reg.register("rectangle", lambda *, w=1, h=2: (w, h))
    assert reg.make("square", side=3) == (3, 3)
    assert reg.make("rectangle") == (1, 2)
    assert reg.names() == ["rectangle", "square"]
    assert [s.name for s in reg.list()] == ["rectangle", "square"]
    assert reg.list()[1].parameters == {"side": 1}
    assert reg.list()[1].description == "two equal sides"
    assert "square" in reg and "circle" not in reg
    assert len(reg) == 2 and list(reg) == ["rectangle", "square"]
    spec = reg.get("square")
    assert spec is not None and spec.builder is _square
    assert reg.get("circle") is None


def test_registry_unknown_name_lists_the_names() -> None:
    with pytest.raises(ValueError, match=r"^expected a shape in \['square'\], got 'circle'$"):
        _shapes().make("circle")
    with pytest.raises(TypeError, match=r"^expected a shape as a str, got int$"):
        _shapes().make(3)  # type: ignore[arg-type]


def test_registry_unknown_parameter_lists_the_parameters() -> None:
    with pytest.raises(
        ValueError, match=r"^expected parameters of 'square' among \['side'\], got unknown \['r'\]$"
    ):
        _shapes().make("square", r=2)


def test_registry_passes_any_keyword_to_a_builder_with_kwargs() -> None:
    reg = _shapes()
    reg.register("any", lambda **kw: (len(kw), 0))
    assert reg.make("any", a=1, b=2) == (2, 0)
    assert reg.list()[0].parameters == {}


def test_registry_checks_what_builders_return() -> None:
    reg = _shapes()
    reg.register("bad", lambda: [1, 1])  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match=r"^expected the builder of 'bad' to return an instance of "
                                        r"tuple, got list$"):
        reg.make("bad")


@pytest.mark.parametrize(
    ("name", "builder", "exc", "match"),
    [
        ("", _square, ValueError, r"^expected a registry name as a non-empty str without ':'"),
        ("a:b", _square, ValueError, r"without ':', got 'a:b'$"),
        (3, _square, ValueError, r"non-empty str without ':', got 3$"),
        ("ok", "not callable", TypeError, r"^expected a callable builder, got str$"),
    ],
)
def test_registry_refuses_bad_registrations(name: Any, builder: Any, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        _shapes().register(name, builder)


def test_registry_duplicate_replaces_the_previous_builder() -> None:
    reg = _shapes()
    reg.register("square", lambda *, side=1: (side, -side), "replaced")
    assert reg.make("square", side=2) == (2, -2)
    assert reg.names() == ["square"] and reg.list()[0].description == "replaced"


def test_env_registry_wrappers_keep_their_behaviour() -> None:
    specs = list_envs()
    assert [s.name for s in specs] == ["gridworld", "matching", "sales", "scheduling"]
    assert all(isinstance(s, EnvSpec) for s in specs)
    env = make_env("sales", n_agents=2, n_items=1)
    assert env.origin == ("sales", {"n_agents": 2, "n_items": 1})
    with pytest.raises(ValueError, match=r"^expected an environment name in \[.*\], got 'x'$"):
        make_env("x")
    with pytest.raises(ValueError, match=r"got unknown \['n_item'\]$"):
        make_env("sales", n_item=2)
    with pytest.raises(ValueError, match=r"^expected a registry name as a non-empty str, got ''$"):
        register_env("", make_env)


# ---------------------------------------------------------------------- every registered instance

#: Small parameterisations per environment, besides its defaults (every registered
#: environment must have an entry: a new environment is checked from the start).
ENV_PARAMS: dict[str, list[dict[str, Any]]] = {
    "gridworld": [{"grid": 2, "dist": "uniform"}, {"n_agents": 3, "grid": 3, "gamma": 0.5}],
    "matching": [{"n_agents": 3, "rounds": 2, "dist": "asymmetric"}],
    "sales": [{"n_agents": 2, "n_items": 3, "dist": "asymmetric"}, {"n_items": 1, "gamma": 0.9}],
    "scheduling": [{"n_agents": 3, "n_tasks": 2, "dist": "asymmetric"},
                   {"makespan": "reference"}],
}

#: Every variant name of every registered game: the colon names of the papers' settings.
GAME_VARIANTS = [
    *(f"normal_form:game_{k}{r}" for k in (1, 2, 3, 4) for r in ("", ":randomized")),
    "matrix_design",
    *(f"simple_allocation:{m}" for m in (1, 2, 3)),
    "mspm:PI:2",
    "mspm:PI:3",
    *(f"mspm:MSGSpace:{k}:2" for k in (2, 3, 4, 5, 6)),
    "mspm:MSGSpace:3:3",
]

#: Settings whose defaults are too large for a quick check (inventory: 2^20 profiles).
SPM_PARAMS: dict[str, dict[str, Any]] = {"inventory": {"n_agents": 10}}


def _env_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(s.name, p) for s in list_envs() for p in [{}, *ENV_PARAMS.get(s.name, [])]]


def test_every_registered_env_has_small_parameterisations() -> None:
    assert sorted(ENV_PARAMS) == [s.name for s in list_envs()]


@pytest.mark.parametrize(("name", "params"), _env_cases())
def test_every_registered_env_passes_check_env(name: str, params: dict[str, Any]) -> None:
    check_env(make_env(name, **params))


def test_every_registered_game_has_variants() -> None:
    assert sorted({v.split(":")[0] for v in GAME_VARIANTS}) == [s.name for s in list_games()]


@pytest.mark.parametrize("name", [*GAME_VARIANTS, *(s.name for s in list_games())])
def test_every_registered_game_passes_check_game(name: str) -> None:
    check_game(make_game(name))


@pytest.mark.parametrize("name", GAME_VARIANTS)
def test_every_variant_declares_its_documented_optimum(name: str) -> None:
    # Brero et al., Stackelberg POMDP: Apps. G.1, G.2, §5.1 and App. H; the best 2-message
    # MSPM of MSGSpace with 6 types is not proven optimal and is not declared.
    optimum = make_game(name).optimum
    assert (optimum is None) == (name == "mspm:MSGSpace:6:2")


def _spm_names() -> list[str]:
    from bilevel.models.spm import list_spm_settings

    return [s.name for s in list_spm_settings()]


@pytest.mark.parametrize("name", _spm_names())
def test_every_registered_spm_setting_passes_check_spm_setting(name: str) -> None:
    import torch

    from bilevel.models.spm import make_spm_setting

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared by several jobs
    try:
        check_spm_setting(make_spm_setting(name, **SPM_PARAMS.get(name, {})), samples=200)
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------- check_env, rule by rule

_P = np.zeros((1, 2, 1))  # one state, two actions, the flow leaves: a static auction


def _auction_rewards(v: FloatArray) -> FloatArray:
    R = np.zeros((v.shape[0], 2, 1, 2))
    R[:, 0, 0, 0] = v[:, 0]
    R[:, 1, 0, 1] = v[:, 1]
    return R


def _auction(**kw: Any) -> Environment:
    """A valid two-agent static auction; keywords replace its parts."""
    args: dict[str, Any] = dict(
        n_agents=2, type_shape=(2,), sampler=lambda rng, k: rng.uniform(size=(k, 2)),
        reward_fn=_auction_rewards, recipe="auction/1",
    )
    args.update(kw)
    return custom_env(mdp_from_arrays(_P, [1.0], 1.0), **args)


def test_the_auction_passes() -> None:
    check_env(_auction())


def _gamma(env: Environment, gamma: float) -> Environment:
    mdp = dataclasses.replace(env.mdp)
    object.__setattr__(mdp, "gamma", gamma)  # bypass validation, as a corrupted object would
    return dataclasses.replace(env, mdp=mdp)


class _Drifting:
    """A sampler that ignores its generator (a hidden global state)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, rng: np.random.Generator, k: int) -> FloatArray:
        self.calls += 1
        return np.full((k, 2), 0.1 * self.calls)


class _Reprs:
    """A recipe whose repr changes every time: an identity that is not stable."""

    def __init__(self) -> None:
        self.n = 0

    def __repr__(self) -> str:
        self.n += 1
        return f"recipe{self.n}"


def _counting_rewards() -> Callable[[FloatArray], FloatArray]:
    calls = [0]

    def rewards(v: FloatArray) -> FloatArray:
        calls[0] += 1
        return _auction_rewards(v) * calls[0]

    return rewards


def _zero_both(v: FloatArray, i: int) -> FloatArray:
    v[:, :] = 0.0  # also changes the other agent's type
    return v


def _single_parameter_off() -> Any:
    from bilevel.models import SingleParameter, uniform_values

    q = np.zeros((2, 1, 2))
    q[0, 0, 1] = q[1, 0, 0] = 1.0  # swapped: agent 0 gets action 1
    return SingleParameter(lambda t: t, lambda t: np.broadcast_to(q, (t.shape[0], *q.shape)),
                           [uniform_values(0, 1)] * 2)


ENV_RULES: list[tuple[str, Callable[[], Any], type, str]] = [
    ("not-an-env", lambda: "sales", TypeError, r"^expected an Environment, got str$"),
    ("mdp-gamma", lambda: _gamma(_auction(), 1.5), ValueError, r"^expected gamma in \(0, 1\]"),
    ("type-shape-agents-first",
     lambda: _auction(type_shape=(3,), sampler=lambda r, k: r.uniform(size=(k, 3))),
     ValueError, r"expected type_shape \(n, \.\.\.\) with the n = 2 agents first"),
    ("objective", lambda: _auction(objective="profit"), ValueError,
     r"expected the objective of 'custom' in \['revenue', 'welfare'\], got 'profit'$"),
    ("sampler-shape", lambda: _auction(sampler=lambda r, k: r.uniform(size=(k, 3))), ValueError,
     r"expected sampled types of shape \(k, \*type_shape\) = \(1, 2\) from 'custom', got \(1, 3\)"),
    ("sampler-finite", lambda: _auction(sampler=lambda r, k: np.full((k, 2), np.nan)), ValueError,
     r"^expected finite sampled types from 'custom', got NaN or inf$"),
    ("sampler-seeded", lambda: _auction(sampler=_Drifting()), ValueError,
     r"expected the sampler of 'custom' to be a function of its generator"),
    ("rewards-shape", lambda: _auction(reward_fn=lambda v: _auction_rewards(v)[:, :1]),
     ValueError, r"expected rewards of shape \(k, n, S, A\) = \(1, 2, 1, 2\) from 'custom', "
     r"got \(1, 1, 1, 2\)$"),
    ("rewards-finite", lambda: _auction(reward_fn=lambda v: _auction_rewards(v) + np.inf),
     ValueError, r"^expected finite rewards from 'custom', got NaN or inf$"),
    ("rewards-nonnegative", lambda: _auction(reward_fn=lambda v: _auction_rewards(v) - 2.0),
     ValueError, r"expected non-negative rewards from 'custom' \(nonnegative_rewards=True\), got "
     r"minimum -2 for agent 0"),
    ("rewards-deterministic", lambda: _auction(reward_fn=_counting_rewards()), ValueError,
     r"^expected reward_fn of 'custom' to be deterministic"),
    ("counterfactual-shape", lambda: _auction(counterfactual_fn=lambda v, i: v[:, :1]), ValueError,
     r"expected counterfactual types of agent 0 of shape \(k, \*type_shape\) = \(1, 2\)"),
    ("counterfactual-finite", lambda: _auction(counterfactual_fn=lambda v, i: v * np.inf),
     ValueError, r"^expected finite counterfactual types of agent 0 from 'custom'"),
    ("counterfactual-others", lambda: _auction(counterfactual_fn=_zero_both), ValueError,
     r"^expected the counterfactual of agent 0 to keep the other agents' types"),
    ("counterfactual-rewards", lambda: _auction(counterfactual_fn=lambda v, i: v - 5.0 * (
        np.arange(2) == i)), ValueError, r"non-negative rewards .* at agent 0's counterfactual"),
    ("cost-shape", lambda: _auction(costs={"c": lambda v: np.zeros((v.shape[0], 2))}),
     ValueError, r"expected cost 'c' of 'custom' of shape \(k, S, A\) = \(1, 1, 2\), got \(1, 2\)"),
    ("cost-finite", lambda: _auction(costs={"c": lambda v: np.full((v.shape[0], 1, 2), np.nan)}),
     ValueError, r"^expected finite cost 'c' from 'custom', got NaN or inf$"),
    ("single-parameter", lambda: _auction(single_parameter=_single_parameter_off()), ValueError,
     r"^expected rewards == values · allocation for 'custom'"),
    ("identity-stable", lambda: _auction(recipe=_Reprs()), ValueError,
     r"^expected identity\(\) of 'custom' to be stable, got '[0-9a-f]{20}' and '[0-9a-f]{20}' "
     r"for a copy$"),
]


@pytest.mark.parametrize(("rule", "build", "exc", "match"), ENV_RULES,
                         ids=[r[0] for r in ENV_RULES])
def test_check_env_catches_each_broken_rule(
    rule: str, build: Callable[[], Any], exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        check_env(build())


@pytest.mark.parametrize(("sizes", "match"), [((), "at least one size"), ((0,), "each size >= 1")])
def test_check_env_refuses_bad_sizes(sizes: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_env(_auction(), sizes=sizes)


# ---------------------------------------------------------------------- check_game, rule by rule


@dataclass(frozen=True, eq=False)
class _Toy(StackelbergGame):
    """One follower with two types and two actions; the leader commits to a scale ``x``.

    ``payoffs(x)`` is ``x`` times a fixed table; ``tamper`` rewrites the tables to break a rule.
    """

    name: str = "toy"
    priors: tuple[Any, ...] = (np.array([0.25, 0.75]),)
    n_actions: tuple[Any, ...] = (2,)
    optimum: Any = 1.0
    text: str = "a toy game"
    tamper: Callable[[FloatArray, FloatArray], tuple[Any, Any]] | None = None

    def payoffs(self, x: Any) -> tuple[FloatArray, FloatArray]:
        x = np.asarray(x, dtype=np.float64)[..., None, None]
        lead = x * np.array([[1.0, 0.0], [0.0, 1.0]])  # (..., K, J)
        fol = lead[..., None] * 0.5  # (..., K, J, 1)
        return (fol, lead) if self.tamper is None else self.tamper(fol, lead)

    def describe(self) -> str:
        return self.text


def _toy(**kw: Any) -> _Toy:
    return _Toy(**kw)


class _BadSampler(_Toy):
    def sample_types(self, generator: Any, size: int) -> Any:
        return np.full((size, 1), 2, dtype=np.int64)  # type 2 of a follower with 2 types


GAME_RULES: list[tuple[str, Callable[[], Any], tuple[Any, ...] | None, type, str]] = [
    ("not-a-game", lambda: "normal_form", None, TypeError,
     r"^expected a StackelbergGame, got str$"),
    ("no-policy", lambda: _toy(), None, TypeError,
     r"^expected policy=\(<payoffs arguments>,\) for a game of type _Toy"),
    ("name", lambda: _toy(name=""), (1.0,), ValueError,
     r"^expected the game's name as a non-empty str, got ''$"),
    ("describe", lambda: _toy(text=""), (1.0,), ValueError, r"^expected describe\(\) of 'toy'"),
    ("n-actions", lambda: _toy(n_actions=(0,)), (1.0,), ValueError,
     r"^expected n_actions of 'toy' as a non-empty tuple of ints >= 1, got \(0,\)$"),
    ("priors-count", lambda: _toy(priors=(np.array([0.5, 0.5]),) * 2), (1.0,), ValueError,
     r"^expected a tuple of 1 priors \(one per follower\) for 'toy', got 2$"),
    ("prior-positive", lambda: _toy(priors=(np.array([0.0, 1.0]),)), (1.0,), ValueError,
     r"^expected the prior of follower 0 of 'toy' with finite positive entries, got \[0.0, 1.0\]$"),
    ("prior-sum", lambda: _toy(priors=(np.array([0.25, 0.5]),)), (1.0,), ValueError,
     r"^expected the prior of follower 0 of 'toy' to sum to 1, got 0.75$"),
    ("sampled-types", lambda: _BadSampler(), (1.0,), ValueError,
     r"^expected sampled types of 'toy' in \[0, T_i\) for T = \(2,\)"),
    ("follower-shape", lambda: _toy(tamper=lambda f, ld: (f[..., 0], ld)), (1.0,), ValueError,
     r"shapes \(\.\.\., K, J, n\) and \(\.\.\., K, J\) = \(2, 2, 1\) and \(2, 2\), got \(2, 2\) "
     r"and \(2, 2\)$"),
    ("leader-shape", lambda: _toy(tamper=lambda f, ld: (f, ld[..., :1])), (1.0,), ValueError,
     r"= \(2, 2, 1\) and \(2, 2\), got \(2, 2, 1\) and \(2, 1\)$"),
    ("payoffs-pair", lambda: _toy(tamper=lambda f, ld: f), (1.0,), ValueError,
     r"^expected payoffs of 'toy' as a \(follower, leader\) pair, got ndarray$"),
    ("payoffs-finite", lambda: _toy(tamper=lambda f, ld: (f, ld * np.nan)), (1.0,), ValueError,
     r"^expected finite payoffs of 'toy', got NaN or inf$"),
    ("payoffs-batch", lambda: _toy(tamper=lambda f, ld: (f, ld + np.arange(ld.size).reshape(
        ld.shape) * (ld.ndim > 2))), (1.0,), ValueError,
     r"batch of 2 copies of a policy to equal the unbatched ones, got different tables at batch "
     r"index 0$"),
    ("optimum-finite", lambda: _toy(optimum=float("nan")), (1.0,), ValueError,
     r"^expected optimum of 'toy' as None or a finite float, got nan$"),
    ("optimum-number", lambda: _toy(optimum=True), (1.0,), ValueError,
     r"^expected optimum of 'toy' as None or a finite float, got True$"),
]


@pytest.mark.parametrize(("rule", "build", "policy", "exc", "match"), GAME_RULES,
                         ids=[r[0] for r in GAME_RULES])
def test_check_game_catches_each_broken_rule(
    rule: str, build: Callable[[], Any], policy: tuple[Any, ...] | None, exc: type, match: str
) -> None:
    with pytest.raises(exc, match=match):
        check_game(build(), policy=policy)


def test_check_game_passes_the_toy_and_checks_a_declared_spm_optimum() -> None:
    check_game(_toy(), policy=(1.0,))
    check_game(_toy(optimum=None), policy=(np.array(0.5),))
    game = make_game("mspm:PI:2")
    object.__setattr__(game, "spm_optimum", float("inf"))
    with pytest.raises(ValueError, match=r"^expected spm_optimum of 'mspm:PI:2' as None or a "
                                         r"finite float, got inf$"):
        check_game(game)


class _Bare(StackelbergGame):
    """A game that forgets to declare ``optimum`` (a class attribute of every built-in game)."""

    name = "bare"
    priors = (np.array([1.0]),)
    n_actions = (1,)

    def payoffs(self, x: Any) -> tuple[FloatArray, FloatArray]:
        lead = np.broadcast_to(np.asarray(x, dtype=np.float64)[..., None, None],
                               (*np.shape(x), 1, 1)).copy()
        return lead[..., None], lead

    def describe(self) -> str:
        return "bare"


def test_check_game_reports_a_missing_optimum() -> None:
    with pytest.raises(ValueError, match=r"^expected 'bare' to declare optimum \(a float or "
                                         r"None\), got none$"):
        check_game(_Bare(), policy=(1.0,))


# ---------------------------------------------------------------------- check_spm_setting


def test_check_spm_setting_is_reexported_and_catches_a_wrong_shape() -> None:
    import torch

    from bilevel.models.spm import SPMSetting
    from bilevel.models.spm import check_spm_setting as original

    assert check_spm_setting is original
    flat = SPMSetting("flat", 2, (1,), lambda num, g: torch.zeros(num, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^expected samples of shape \(1000, 2, 1\) and dtype "
                                         r"float64, got \(1000, 2\) torch.float64$"):
        check_spm_setting(flat)


# ---------------------------------------------------------------------- AMA.check_env rename


def test_ama_check_env_is_a_deprecated_alias_of_check_compatible() -> None:
    from bilevel import AMA

    env = make_env("sales", n_agents=2, n_items=2)
    mech = AMA(np.ones(2), np.zeros(env.mdp.shape))
    mech.check_compatible(env)
    with pytest.warns(DeprecationWarning, match="AMA.check_env is deprecated .* use "
                                                "AMA.check_compatible"):
        mech.check_env(env)
    with pytest.warns(DeprecationWarning), pytest.raises(
        ValueError, match="expected a mechanism for 3 agents, got weights for 2"
    ):
        mech.check_env(make_env("sales", n_agents=3, n_items=2))


# ---------------------------------------------------------------------- factories and plugins


def test_make_env_builds_a_module_function_factory_that_pickles_as_its_recipe() -> None:
    import pickle

    env = make_env("tests.models.factories:auction", n_agents=3)
    assert env.origin == ("tests.models.factories:auction", {"n_agents": 3})
    back = pickle.loads(pickle.dumps(env))  # the lambda sampler is rebuilt, not pickled
    assert back.identity() == env.identity()
    assert np.array_equal(back.sample_types(0, 4), env.sample_types(0, 4))


@pytest.mark.parametrize("spec, match", [
    ("a:b:c", "expected an environment factory as 'package.module:function'"),
    ("no_such_module_xyz:f", "expected an importable module"),
    ("tests.models.factories:nope", "to define 'nope'"),
    ("tests.models.factories:NOT_CALLABLE", "to be callable, got int"),
])
def test_make_env_refuses_bad_factory_specs_in_one_line(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        make_env(spec)
    assert "\n" not in str(info.value)


def test_make_env_refuses_unknown_factory_keywords() -> None:
    with pytest.raises(ValueError, match="got unknown \\['color'\\]"):
        make_env("tests.models.factories:auction", color=1)


def test_plugins_of_the_entry_point_group_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from bilevel.models import _registry

    ep = EntryPoint("test_auction_plugin", "tests.models.factories:auction",
                    _registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(_registry, "entry_points",
                        lambda group: [ep] if group == "bilevel.environments" else [])
    monkeypatch.setattr(_registry, "ENVIRONMENTS", _registry.Registry(
        "an environment name", returns=Environment, spec_type=_registry.EnvSpec))
    env = make_env("test_auction_plugin", n_agents=2)
    assert env.origin == ("test_auction_plugin", {"n_agents": 2})
    assert [s.name for s in _registry.list_envs()] == ["test_auction_plugin"]
