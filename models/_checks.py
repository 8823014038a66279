"""Conformance checkers: ``check_env`` for environments, ``check_game`` for Stackelberg games.

Each checker exercises an instance through its public contract on a few small seeded inputs
and raises one ``ValueError`` (or ``TypeError``) "expected …, got …" naming the first rule it
breaks; it returns None otherwise. A test runs them over every registered instance
(``tests/models/test_registry.py``), together with ``check_spm_setting`` for SPM settings.
They check contracts, not economics: a passing environment can still be a poor model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

from bilevel.models._env import Environment, check_count
from bilevel.models._mdp import check_mdp
from bilevel.models._single_parameter import check_single_parameter
from bilevel.models.typing import FloatArray

if TYPE_CHECKING:
    from bilevel.models.stackelberg import StackelbergGame

__all__ = ["check_env", "check_game"]

_IDENTITY = re.compile(r"[0-9a-f]{20}")


# ---------------------------------------------------------------------- environments


def check_env(env: Environment, *, sizes: Sequence[int] = (1, 2, 5), seed: int = 0) -> None:
    """Check that an environment keeps the contract of :class:`~bilevel.models.Environment`.

    The rules, checked in this order (the first broken one raises):

    1. ``env`` is an :class:`~bilevel.models.Environment` and its MDP passes
       :func:`~bilevel.models.check_mdp`;
    2. ``type_shape`` is ``(n, ...)`` (agents on the first type axis) and ``objective`` is
       ``"revenue"``, ``"welfare"`` or a key of ``costs``;
    3. for every ``k`` in ``sizes``, the sampler given ``numpy.random.default_rng(seed)``
       returns finite types of shape ``(k, *type_shape)``, and the same types again for a new
       generator with the same seed (it is a function of its generator);
    4. ``reward_fn`` returns finite rewards of shape ``(k, n, S, A)``, non-negative when
       ``nonnegative_rewards`` is declared, and the same rewards for the same types;
    5. every agent's counterfactual types have shape ``(k, *type_shape)``, are finite, leave
       the other agents' types unchanged, and have rewards obeying rule 4;
    6. every cost returns finite coefficients of shape ``(k, S, A)``;
    7. a declared ``single_parameter`` structure matches the rewards
       (:func:`~bilevel.models.check_single_parameter` on the sampled types);
    8. ``identity()`` is 20 hex characters, the same for a copy of the environment and, for
       an environment built by :func:`~bilevel.models.make_env`, for a rebuilt one.

    Parameters
    ----------
    env : Environment
    sizes : sequence of int, default (1, 2, 5)
        Numbers of type profiles ``k`` drawn.
    seed : int, default 0
        Seed of the generators given to the sampler.

    Raises
    ------
    TypeError
        If ``env`` is not an Environment (or a field has the wrong type).
    ValueError
        Naming the first broken rule: "expected …, got …".

    Examples
    --------
    >>> from bilevel.models import make_env
    >>> check_env(make_env("sales", n_agents=2, n_items=2))
    >>> env = make_env("sales", n_agents=2, n_items=2)
    >>> broken = dataclasses.replace(env, reward_fn=lambda t: -env.reward_fn(t))
    >>> check_env(broken)
    Traceback (most recent call last):
    ...
    ValueError: expected non-negative rewards from 'sales' (nonnegative_rewards=True), got ...
    """
    if not isinstance(env, Environment):
        raise TypeError(f"expected an Environment, got {type(env).__name__}")
    ks = [check_count(k, "each size") for k in sizes]
    if not ks:
        raise ValueError("expected at least one size, got none")
    check_mdp(env.mdp)
    n, label = env.n_agents, repr(env.name)
    if env.type_shape[:1] != (n,):
        raise ValueError(
            f"expected type_shape (n, ...) with the n = {n} agents first for {label}, got "
            f"{env.type_shape}"
        )
    objectives = ["revenue", "welfare", *sorted(env.costs)]
    if env.objective not in objectives:
        raise ValueError(
            f"expected the objective of {label} in {objectives}, got {env.objective!r}"
        )
    for k in ks:
        types = _sampled(env, k, seed)
        again = _sampled(env, k, seed)
        if not np.array_equal(types, again):
            raise ValueError(
                f"expected the sampler of {label} to be a function of its generator, got "
                f"different types for two generators seeded {seed} (k = {k})"
            )
        rewards = _rewards(env, types, k, "")
        if not np.array_equal(rewards, _rewards(env, types, k, "")):
            raise ValueError(
                f"expected reward_fn of {label} to be deterministic, got different rewards for "
                f"the same {k} profiles"
            )
        for i in range(n):
            cf = _array(env.counterfactual_fn(types.copy(), i), f"agent {i}'s counterfactual")
            if cf.shape != types.shape:
                raise ValueError(
                    f"expected counterfactual types of agent {i} of shape (k, *type_shape) = "
                    f"{types.shape} from {label}, got {cf.shape}"
                )
            if not np.all(np.isfinite(cf)):
                raise ValueError(
                    f"expected finite counterfactual types of agent {i} from {label}, got NaN "
                    "or inf"
                )
            others = np.arange(n) != i
            if not np.array_equal(cf[:, others], types[:, others]):
                raise ValueError(
                    f"expected the counterfactual of agent {i} to keep the other agents' types "
                    f"of {label}, got changed types"
                )
            _rewards(env, cf, k, f" at agent {i}'s counterfactual types")
        for name in sorted(env.costs):
            C = _array(env.costs[name](types.copy()), f"cost {name!r}")
            expected = (k, env.n_states, env.n_actions)
            if C.shape != expected:
                raise ValueError(
                    f"expected cost {name!r} of {label} of shape (k, S, A) = {expected}, got "
                    f"{C.shape}"
                )
            if not np.all(np.isfinite(C)):
                raise ValueError(f"expected finite cost {name!r} from {label}, got NaN or inf")
        if env.single_parameter is not None:
            check_single_parameter(env, types)
    _check_identity(env)


def _sampled(env: Environment, k: int, seed: int) -> FloatArray:
    """The sampler's types for ``k`` profiles from a fresh generator, checked."""
    types = _array(env.sampler(np.random.default_rng(seed), k), "sampled types")
    expected = (k, *env.type_shape)
    if types.shape != expected:
        raise ValueError(
            f"expected sampled types of shape (k, *type_shape) = {expected} from {env.name!r}, "
            f"got {types.shape}"
        )
    if not np.all(np.isfinite(types)):
        raise ValueError(f"expected finite sampled types from {env.name!r}, got NaN or inf")
    return types


def _rewards(env: Environment, types: FloatArray, k: int, where: str) -> FloatArray:
    """``reward_fn`` on a copy of ``types``, checked for shape, finiteness and sign."""
    R = _array(env.reward_fn(types.copy()), "rewards")
    expected = (k, env.n_agents, env.n_states, env.n_actions)
    if R.shape != expected:
        raise ValueError(
            f"expected rewards of shape (k, n, S, A) = {expected} from {env.name!r}{where}, got "
            f"{R.shape}"
        )
    if not np.all(np.isfinite(R)):
        raise ValueError(f"expected finite rewards from {env.name!r}{where}, got NaN or inf")
    if env.nonnegative_rewards:
        mins = R.min(axis=(0, 2, 3))
        i = int(np.argmin(mins))
        if mins[i] < 0:
            raise ValueError(
                f"expected non-negative rewards from {env.name!r} (nonnegative_rewards=True)"
                f"{where}, got minimum {mins[i]:.3g} for agent {i} with k = {k} profiles"
            )
    return R


def _array(x: Any, what: str) -> FloatArray:
    """``x`` as a float64 array, or a one-line error naming ``what``."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"expected {what} as a float array, got {type(x).__name__}") from exc


def _check_identity(env: Environment) -> None:
    """``identity()`` is well formed and the same for a copy and for a registry rebuild."""
    ident = env.identity()
    if not isinstance(ident, str) or not _IDENTITY.fullmatch(ident):
        raise ValueError(f"expected identity() as 20 hex characters, got {ident!r}")
    copies = [("a copy", dataclasses.replace(env))]
    if env.origin is not None:
        from bilevel.models._registry import make_env

        name, kwargs = env.origin
        copies.append(("a rebuild by make_env", make_env(name, **dict(kwargs))))
    for what, other in copies:
        if other.identity() != ident:
            raise ValueError(
                f"expected identity() of {env.name!r} to be stable, got {ident!r} and "
                f"{other.identity()!r} for {what}"
            )


# ---------------------------------------------------------------------- Stackelberg games


def check_game(game: StackelbergGame, *, policy: tuple[Any, ...] | None = None,
               seed: int = 0) -> None:
    """Check that a game keeps the contract of :class:`~bilevel.models.StackelbergGame`.

    The rules, checked in this order (the first broken one raises):

    1. ``game`` is a StackelbergGame with a non-empty ``name`` and ``describe()``;
    2. ``n_actions`` is a non-empty tuple of ints ≥ 1; ``priors`` holds one finite,
       positive vector per follower summing to 1 (within 1e-12), and the type profiles'
       probabilities sum to 1;
    3. ``sample_types`` with a numpy generator seeded ``seed`` returns types of shape
       ``(size, n)`` within each follower's type range, the same for the same seed;
    4. ``payoffs(*policy)`` returns finite tables of shapes ``(K, J, n)`` (followers) and
       ``(K, J)`` (leader), and with the policy stacked twice on a leading axis the shapes
       ``(2, K, J, n)`` and ``(2, K, J)`` with both halves equal to the unbatched tables
       (within 1e-12: batched products may round differently);
    5. the declared ``optimum`` (and ``spm_optimum`` where the game has one) is present and
       is None or a finite number.

    Parameters
    ----------
    game : StackelbergGame
    policy : tuple, optional
        The positional arguments of ``game.payoffs`` (one tabular leader policy). By default
        a fixed policy for the built-in games (row 0 or equal weights for normal-form games,
        zero transfers, the items ``0, 1, ...`` in turn, agent 0 first at price 0.5 then 0);
        required for other games.
    seed : int, default 0

    Raises
    ------
    TypeError
        If ``game`` is not a StackelbergGame, or no policy is given for a game that is not
        built in.
    ValueError
        Naming the first broken rule: "expected …, got …".

    Examples
    --------
    >>> from bilevel.models import make_game
    >>> check_game(make_game("normal_form:game_2:randomized"))
    >>> check_game(make_game("simple_allocation:2"), policy=([0, 3],))
    Traceback (most recent call last):
    ...
    ValueError: expected items in [0, 3), got [0, 3]
    """
    from bilevel.models.stackelberg import StackelbergGame

    if not isinstance(game, StackelbergGame):
        raise TypeError(f"expected a StackelbergGame, got {type(game).__name__}")
    name = game.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"expected the game's name as a non-empty str, got {name!r}")
    text = game.describe()
    if not isinstance(text, str) or not text:
        raise ValueError(f"expected describe() of {name!r} as a non-empty str, got {text!r}")
    acts = game.n_actions
    if (
        not isinstance(acts, tuple)
        or not acts
        or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or a < 1 for a in acts)
    ):
        raise ValueError(
            f"expected n_actions of {name!r} as a non-empty tuple of ints >= 1, got {acts!r}"
        )
    n = len(acts)
    _check_priors(game, name, n)
    _check_sampling(game, name, n, seed)
    _check_payoffs(game, name, n, _example_policy(game) if policy is None else tuple(policy))
    for attr in ("optimum", "spm_optimum"):
        if attr == "optimum" or hasattr(game, attr):
            _check_value(game, name, attr)


def _check_priors(game: StackelbergGame, name: str, n: int) -> None:
    priors = game.priors
    if not isinstance(priors, tuple) or len(priors) != n:
        got = len(priors) if isinstance(priors, tuple) else type(priors).__name__
        raise ValueError(
            f"expected a tuple of {n} priors (one per follower) for {name!r}, got {got}"
        )
    for i, p in enumerate(priors):
        a = np.asarray(p, dtype=np.float64)
        if a.ndim != 1 or a.size < 1:
            raise ValueError(
                f"expected the prior of follower {i} of {name!r} as a non-empty vector, got "
                f"shape {a.shape}"
            )
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(
                f"expected the prior of follower {i} of {name!r} with finite positive entries, "
                f"got {a.tolist()}"
            )
        if abs(float(a.sum()) - 1.0) > 1e-12:
            raise ValueError(
                f"expected the prior of follower {i} of {name!r} to sum to 1, got "
                f"{float(a.sum())!r}"
            )
    profiles, probs = game.type_profiles()
    K = game.n_profiles
    if np.shape(profiles) != (K, n) or np.shape(probs) != (K,):
        raise ValueError(
            f"expected type profiles (K, n) = ({K}, {n}) and probabilities (K,) for {name!r}, "
            f"got {np.shape(profiles)} and {np.shape(probs)}"
        )
    total = float(np.sum(probs))
    if abs(total - 1.0) > 1e-12:
        raise ValueError(
            f"expected type-profile probabilities of {name!r} summing to 1, got {total!r}"
        )


def _check_sampling(game: StackelbergGame, name: str, n: int, seed: int) -> None:
    size = 8
    t = np.asarray(game.sample_types(np.random.default_rng(seed), size))
    if t.shape != (size, n) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(
            f"expected sampled types of {name!r} as integers of shape (size, n) = ({size}, {n}), "
            f"got {t.dtype} {t.shape}"
        )
    high = np.asarray(game.n_types)
    if np.any(t < 0) or np.any(t >= high):
        raise ValueError(
            f"expected sampled types of {name!r} in [0, T_i) for T = {game.n_types}, got "
            f"{t.tolist()}"
        )
    if not np.array_equal(t, np.asarray(game.sample_types(np.random.default_rng(seed), size))):
        raise ValueError(
            f"expected the same sampled types of {name!r} for the same seed, got different ones"
        )


def _check_payoffs(game: StackelbergGame, name: str, n: int, policy: tuple[Any, ...]) -> None:
    K, J = game.n_profiles, game.n_joint_actions
    fol, lead = _tables(game, name, policy, (), K, J, n)
    stacked = tuple(np.stack([np.asarray(a)] * 2) for a in policy)
    fol2, lead2 = _tables(game, name, stacked, (2,), K, J, n)
    for b in range(2):
        pairs = ((fol2[b], fol), (lead2[b], lead))
        if not all(np.allclose(x, y, rtol=1e-12, atol=1e-12) for x, y in pairs):
            raise ValueError(
                f"expected payoffs of {name!r} for a batch of 2 copies of a policy to equal the "
                f"unbatched ones, got different tables at batch index {b}"
            )


def _tables(
    game: StackelbergGame, name: str, policy: tuple[Any, ...], batch: tuple[int, ...],
    K: int, J: int, n: int,
) -> tuple[FloatArray, FloatArray]:
    out = game.payoffs(*policy)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(
            f"expected payoffs of {name!r} as a (follower, leader) pair, got {type(out).__name__}"
        )
    fol, lead = (_array(x, "payoffs") for x in out)
    want_f, want_l = (*batch, K, J, n), (*batch, K, J)
    if fol.shape != want_f or lead.shape != want_l:
        dims = "(..., K, J, n) and (..., K, J)"
        raise ValueError(
            f"expected payoffs of {name!r} of shapes {dims} = {want_f} and {want_l}, got "
            f"{fol.shape} and {lead.shape}"
        )
    if not (np.all(np.isfinite(fol)) and np.all(np.isfinite(lead))):
        raise ValueError(f"expected finite payoffs of {name!r}, got NaN or inf")
    return fol, lead


def _check_value(game: StackelbergGame, name: str, attr: str) -> None:
    if not hasattr(game, attr):
        raise ValueError(f"expected {name!r} to declare {attr} (a float or None), got none")
    v = getattr(game, attr)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, Real) or not np.isfinite(float(v)):
        raise ValueError(f"expected {attr} of {name!r} as None or a finite float, got {v!r}")


def _example_policy(game: StackelbergGame) -> tuple[Any, ...]:
    """A fixed leader policy of a built-in game (the positional arguments of ``payoffs``)."""
    from bilevel.models.stackelberg import (
        MatrixDesignGame,
        MSPMGame,
        NormalFormGame,
        SimpleAllocationGame,
    )

    if isinstance(game, NormalFormGame):
        return (np.linspace(0.25, 1.0, game.n_rows),) if game.randomized else (0,)
    if isinstance(game, MatrixDesignGame):
        return (np.zeros((*game.n_actions, 2)),)
    if isinstance(game, SimpleAllocationGame):
        return (np.arange(game.n_messages) % game.n_items,)
    if isinstance(game, MSPMGame):
        M = game.n_messages
        return (np.zeros((M, M), dtype=np.int64), np.full((M, M), 0.5), np.zeros((M, M)))
    raise TypeError(
        f"expected policy=(<payoffs arguments>,) for a game of type {type(game).__name__} "
        "(no default policy), got None"
    )
