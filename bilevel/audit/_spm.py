"""Exploitability of sequential price mechanisms: force every feasible bundle at every visit.

A sequential price mechanism (SPM) visits each agent at most once and offers it take-it-or-
leave-it prices for the remaining units; the agent's only action is the bundle it takes (or
nothing) at its visit, and it pays the posted prices of that bundle. Its "truthful" strategy is
the utility-maximising bundle (the SPM process's buyer rule). Agent i's ex-post gain at a
profile ``v`` is

    phi_i(v) = max_b u_i(v_i; b) - u_i(v_i; truthful),

where ``b`` runs over every bundle of item types (unit demand: nothing or one unit of one type;
additive: any set of types, one unit each) forced at i's visit, the rest of the episode
following the mechanism (its later offers may react to the deviation) and every other agent
taking its utility-maximising bundle. A misreport is one such bundle choice, so this deviation
space is exhaustive. Because i's visit and its prices are fixed by the agents visited before it
and i is never visited again, no bundle beats the utility-maximising one: the gain is 0 exactly
(Brero et al. 2021, "Preliminaries": buying a utility-maximising bundle is a dominant
strategy). The audit measures it by simulation, so a mechanism outside that class -- or buyers
that do not maximise utility (``response=``) -- shows a positive gain.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bilevel.audit._result import Exploitability
from bilevel.models.spm import (
    HORIZONS,
    STATISTICS,
    TIE_RULES,
    SPMProcess,
    SPMSetting,
    make_spm_setting,
)
from bilevel.models.typing import FloatArray
from bilevel.solvers.rl import ActorCritic
from bilevel.solvers.spm import SPMPolicy, resolve_price_grid

__all__ = ["Response", "spm_exploitability"]

Tensor = torch.Tensor

#: A buyer's response at its visit, replacing the utility-maximising one:
#: ``response(values (E, d), prices (E, d), available (E, d) bool) -> bundle (E, d) bool``
#: (units of each type taken; unavailable types are dropped).
Response = Callable[[Tensor, Tensor, Tensor], Tensor]

_F64 = torch.float64
_MAX_ROWS = 1 << 18  # simulated rows (profiles x agents x bundles) per chunk
_MAX_BUNDLES = 1 << 10


def _bundles(d: int, valuation: str) -> Tensor:
    """Every bundle an agent can take: (B, d) bool, the empty bundle first."""
    if valuation == "unit_demand":
        return torch.cat([torch.zeros(1, d, dtype=torch.bool), torch.eye(d, dtype=torch.bool)])
    if 2**d > _MAX_BUNDLES:
        raise ValueError(f"expected at most {_MAX_BUNDLES} bundles (2^d), got 2^{d}")
    return torch.tensor(list(itertools.product([False, True], repeat=d)), dtype=torch.bool)


def _resolve(
    mechanism: Any, setting: SPMSetting | str | None, statistic: str | None, tie: str | None,
    price_grid: Any,
) -> tuple[SPMSetting, SPMPolicy, str, str]:
    """The setting, the greedy mechanism, its statistic and the tie rule."""
    from bilevel.spm import SPMDesigner

    if isinstance(setting, str):
        setting = make_spm_setting(setting)
    if setting is not None and not isinstance(setting, SPMSetting):
        raise TypeError(
            f"expected the setting as an SPMSetting or a name, got {type(setting).__name__}"
        )
    if isinstance(mechanism, SPMDesigner):
        if not hasattr(mechanism, "mechanism_"):
            raise ValueError("expected a fitted SPMDesigner (call fit first), got an unfitted one")
        own: SPMSetting = mechanism.setting_
        if setting is not None and setting is not own and setting.name != own.name:
            raise ValueError(
                f"expected the designer's setting {own.name!r} (or None), got {setting.name!r}"
            )
        return (own, mechanism.mechanism_, mechanism.statistic if statistic is None else statistic,
                mechanism.tie if tie is None else tie)
    if setting is None:  # pragma: no cover - spm_exploitability passes the designer alone
        raise TypeError("expected a setting, got None")
    stat = "price_allocation" if statistic is None else statistic
    if isinstance(mechanism, ActorCritic):
        grid = price_grid
        if isinstance(grid, str) and grid == "finite":
            grid = "auto" if setting.finite else None
        from bilevel.spm import mechanism_of

        return setting, mechanism_of(mechanism, resolve_price_grid(setting, grid)), stat, (
            "strict" if tie is None else tie)
    if callable(mechanism):
        return setting, mechanism, stat, "strict" if tie is None else tie
    raise TypeError(
        "expected a fitted SPMDesigner, an ActorCritic or a policy (obs, mask) -> (agent, "
        f"prices), got {type(mechanism).__name__}"
    )


def _profiles(setting: SPMSetting, samples: int | None, seed: int,
              exact_limit: int) -> tuple[Tensor, Tensor, bool]:
    """Value profiles (K, n, d) and their weights (K,) summing to 1; whether enumerated."""
    if samples is None and setting.finite and setting.n_profiles <= exact_limit:
        vals, probs = zip(*setting.profiles(), strict=True)
        return torch.cat(vals).to(_F64), torch.cat(probs).to(_F64), True
    if samples is None:
        samples = 1000
    values = setting.sample(samples, torch.Generator().manual_seed(seed)).to(_F64)
    return values, torch.full((samples,), 1.0 / samples, dtype=_F64), False


def _forcing_values(bundle: Tensor, prices: Tensor) -> Tensor:
    """Values under which ``bundle`` is the buyer's unique best response to ``prices``.

    One unit of a wanted type is worth its price + 1 (utility 1 > 0), any other type's is
    worth -1 (utility < 0), so either tie rule takes exactly the bundle's available types (unit
    demand: the single wanted type, or nothing).
    """
    return torch.where(bundle, prices + 1.0, torch.full_like(prices, -1.0))


def _simulate(setting: SPMSetting, policy: SPMPolicy, values: Tensor, forced_agent: Tensor,
              forced_bundle: Tensor, statistic: str, tie: str, horizon: str,
              response: Response | None) -> tuple[Tensor, Tensor]:
    """Run one episode per row; the row's ``forced_agent`` (-1: none) takes ``forced_bundle``.

    Returns each agent's final utility (E, n) and the bundle each agent took (E, n, d).
    """
    proc = SPMProcess(setting, tie=tie, horizon=horizon, dtype=_F64)
    proc.reset(values)
    E = values.shape[0]
    rows = torch.arange(E)
    for _ in range(setting.n_agents):
        if bool(proc.done.all()):
            break
        agent, prices = policy(proc.observation(statistic), proc.agent_mask())
        agent = torch.as_tensor(agent).to(torch.int64)
        prices = torch.as_tensor(prices).to(_F64)
        if agent.shape != (E,) or prices.shape != (E, setting.n_types):
            raise ValueError(
                f"expected the policy to return agent ({E},) and prices ({E}, "
                f"{setting.n_types}), got {tuple(agent.shape)} and {tuple(prices.shape)}"
            )
        own = values[rows, agent.clamp(0, setting.n_agents - 1)]
        if response is None:
            swap = torch.zeros(E, dtype=torch.bool)
            bundle = torch.zeros(E, setting.n_types, dtype=torch.bool)
        else:
            bundle = torch.as_tensor(response(own, prices, proc.items_left > 0)).to(torch.bool)
            if bundle.shape != (E, setting.n_types):
                raise ValueError(
                    f"expected response bundles of shape ({E}, {setting.n_types}), got "
                    f"{tuple(bundle.shape)}"
                )
            swap = torch.ones(E, dtype=torch.bool)
        forced = agent == forced_agent
        bundle = torch.where(forced.unsqueeze(1), forced_bundle, bundle)
        swap = (swap | forced) & ~proc.done
        # the buyer rule of the process takes its best response to the stored values: for the
        # forced rows, store values whose unique best response is the forced bundle for this
        # one step, then restore the true ones (later steps never see agent i again)
        idx = swap.nonzero().squeeze(1)
        proc.values[idx, agent[idx]] = _forcing_values(bundle[idx], prices[idx])
        proc.step(agent, prices)
        proc.values[idx, agent[idx]] = values[idx, agent[idx]]
    if not bool(proc.done.all()):
        raise RuntimeError("SPM episodes did not end after n steps")  # pragma: no cover
    took = proc.allocation > 0
    return proc.agent_values() - proc.payments, took


def spm_exploitability(
    problem: Any,
    mechanism: Any = None,
    *,
    samples: int | None = None,
    seed: int = 0,
    statistic: str | None = None,
    tie: str | None = None,
    horizon: str = "early",
    price_grid: Any = "finite",
    response: Response | None = None,
    exact_limit: int = 4096,
) -> Exploitability:
    """Exploitability of a sequential price mechanism by enumerating bundles at every visit.

    For each type profile and each agent ``i``, every bundle (every feasible choice at a posted
    price, the empty one included) is forced at ``i``'s visit while the mechanism runs the rest
    of the episode greedily and the other agents take their utility-maximising bundles; ``i``'s
    gain is its best forced utility minus its truthful one (paired: the same profile).

    Parameters
    ----------
    problem : SPMSetting, str or SPMDesigner
        The setting (or its registered name, default parameters) -- or a fitted
        :class:`bilevel.spm.SPMDesigner` alone (``mechanism`` None), which carries its setting.
    mechanism : SPMDesigner, ActorCritic or SPMPolicy, optional
        A fitted designer (its greedy ``mechanism_``, statistic and tie rule are used; its
        setting must be ``problem``), a trained ``policy_`` network (with ``price_grid``), or
        any deterministic mechanism ``policy(obs (E, obs_dim), agent_mask (E, n)) -> (agent
        (E,), prices (E, d))`` such as :func:`bilevel.solvers.spm.static_mechanism`.
    samples : int, optional
        Number of sampled value profiles K (seeded by ``seed``). Default: every profile of a
        finite support of at most ``exact_limit`` profiles (probability weighted), else 1000
        samples.
    seed : int, default 0
        Seed of the sampled profiles.
    statistic : str, optional
        Observation statistic the policy reads (default: the designer's, else
        ``"price_allocation"``).
    tie : {"strict", "weak"}, optional
        Buyer tie rule (default: the designer's, else ``"strict"``).
    horizon : {"early", "full"}, default "early"
        Episode end of the SPM process.
    price_grid : default "finite"
        Price grid of an ``ActorCritic`` policy, as for ``SPMDesigner``.
    response : callable, optional
        The buyers' truthful behaviour: ``response(values (E, d), prices (E, d), available
        (E, d)) -> bundle (E, d) bool``. Default: the utility-maximising bundle (the SPM's
        dominant strategy). Another rule is a negative control: buyers that do not maximise
        utility can gain by deviating.
    exact_limit : int, default 4096
        Largest finite support enumerated when ``samples`` is None.

    Returns
    -------
    Exploitability
        ``kind="exact"`` (the deviation space is enumerated), ``notion="ex_post"``,
        ``method="spm-bundle-enumeration"``, ``resolution=None``; ``se`` None when the support
        is enumerated, else the paired standard error over the K sampled profiles.
        ``best_deviation[i]`` has shape (K, d): the units of each type of agent i's best bundle
        per profile (its truthful bundle when nothing beats it; zeros when never visited). A
        bundle with a sold-out type is infeasible and counts as taking the bundle's available
        types (unit demand: nothing).

    Raises
    ------
    TypeError
        For a mechanism or setting of the wrong type, or a setting without a mechanism.
    ValueError
        For an unfitted designer, a setting that is not the designer's, an unknown statistic,
        tie rule or horizon, or ``samples``/``exact_limit`` that are not ints >= 1.

    Examples
    --------
    >>> from bilevel.solvers.spm import static_mechanism
    >>> mech = static_mechanism([0, 1], [[2 / 3], [0.0]])   # Proposition 1's optimal SPM
    >>> r = spm_exploitability("proposition1", mech)
    >>> r.max_gain <= 1e-9, r.kind, r.n_profiles
    (True, 'exact', 4)
    """
    for name, val, lo in (("samples", samples, 1), ("exact_limit", exact_limit, 1)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < lo):
            raise ValueError(f"expected {name} as an int >= {lo}, got {val!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"expected seed as an int, got {type(seed).__name__}")
    from bilevel.spm import SPMDesigner

    if mechanism is None and isinstance(problem, SPMDesigner):
        problem, mechanism = None, problem
    elif mechanism is None:
        raise TypeError(
            f"expected a mechanism (or a fitted SPMDesigner alone), got {type(problem).__name__} "
            "and None"
        )
    st, policy, stat, tie_ = _resolve(mechanism, problem, statistic, tie, price_grid)
    if stat not in STATISTICS:
        raise ValueError(f"expected statistic in {STATISTICS}, got {stat!r}")
    if tie_ not in TIE_RULES:
        raise ValueError(f"expected tie in {TIE_RULES}, got {tie_!r}")
    if horizon not in HORIZONS:
        raise ValueError(f"expected horizon in {HORIZONS}, got {horizon!r}")
    if response is not None and not callable(response):
        raise TypeError(f"expected response as a callable or None, got {type(response).__name__}")

    values, weights, enumerated = _profiles(st, samples, seed, exact_limit)
    K, n, d = values.shape
    bundles = _bundles(d, st.valuation)  # (B, d)
    B = bundles.shape[0]
    u_tr = torch.empty(K, n, dtype=_F64)
    took_tr = torch.empty(K, n, d, dtype=torch.bool)
    best_u = torch.empty(K, n, dtype=_F64)
    best_b = torch.empty(K, n, d, dtype=torch.bool)
    step = max(1, _MAX_ROWS // (n * B))
    none = torch.full((1,), -1, dtype=torch.int64)
    for s in range(0, K, step):
        v = values[s : s + step]
        k = v.shape[0]
        u, took = _simulate(st, policy, v, none.expand(k), bundles[:1].expand(k, d), stat,
                            tie_, horizon, response)
        u_tr[s : s + k], took_tr[s : s + k] = u, took
        # rows ordered (profile, agent, bundle)
        rv = v.repeat_interleave(n * B, dim=0)
        ra = torch.arange(n).repeat_interleave(B).repeat(k)
        rb = bundles.repeat(k * n, 1)
        uf, tf = _simulate(st, policy, rv, ra, rb, stat, tie_, horizon, response)
        own_u = uf.reshape(k, n, B, n).diagonal(dim1=1, dim2=3).permute(0, 2, 1)  # (k, n, B)
        own_t = tf.reshape(k, n, B, n, d)[:, torch.arange(n), :, torch.arange(n)]  # (n, k, B, d)
        own_t = own_t.permute(1, 0, 2, 3)  # (k, n, B, d)
        j = own_u.argmax(dim=2)  # (k, n)
        bu = own_u.gather(2, j.unsqueeze(2)).squeeze(2)
        bb = own_t.gather(2, j[:, :, None, None].expand(k, n, 1, d)).squeeze(2)
        # not clamped at 0: forcing the truthful bundle replays the truthful episode, so the
        # max is >= the truthful utility unless the mechanism is not deterministic
        best_u[s : s + k] = bu
        best_b[s : s + k] = torch.where((bu > u).unsqueeze(2), bb, took)
    gains = (best_u - u_tr).numpy()  # (K, n)
    w = weights.numpy()
    per: FloatArray = gains.T @ w
    if enumerated:
        se: float | None = None
        per_se: FloatArray | None = None
    elif K > 1:
        per_se = gains.std(axis=0, ddof=1) / math.sqrt(K)
        se = float(gains.sum(axis=1).std(ddof=1) / math.sqrt(K))
    else:
        per_se, se = np.full(n, np.nan), float("nan")
    best = tuple(best_b[:, i].to(_F64).numpy() for i in range(n))
    return Exploitability(float(per.sum()), per, se, per_se, best, "exact",
                          "spm-bundle-enumeration", None, K, "ex_post", u_tr.numpy().T @ w)
