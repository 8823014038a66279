"""Exact (or Monte Carlo) values of given SPMs, of the ex-post optimum and of RSD.

* :func:`evaluate_mechanism` runs a deterministic mechanism -- a callable over the batched
  observations -- on every profile of a finite support (one row per profile, probability
  weighted: exact), or on Monte Carlo samples (with a standard error).
* :func:`expected_optimum` is E[OPT(v)] (enumeration, the closed form of the correlated
  settings, or Monte Carlo).
* :func:`rsd_value` is random serial dictatorship's value (all prices 0, uniformly random order).

Results are :class:`SPMValue` records (value, standard error or 0, method, profiles).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Sequence

import torch

from bilevel.models.spm import SPMProcess, SPMSetting, optimal_welfare
from bilevel.solvers.spm._dp import (
    SPMValue,
    best_asp_value,
    best_psp_value,
    best_spm_value,
    exchangeable_static_value,
)

__all__ = [
    "SPMPolicy",
    "SPMValue",
    "evaluate_mechanism",
    "expected_optimum",
    "rsd_value",
    "spm_reference_values",
    "static_mechanism",
]

Tensor = torch.Tensor

#: A deterministic mechanism over batched observations: ``policy(obs (E, obs_dim), agent_mask
#: (E, n) bool) -> (agent (E,) int64, prices (E, d))``; it must pick an allowed agent.
SPMPolicy = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]

_F64 = torch.float64


def _check_generator(generator: torch.Generator | None, what: str) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"expected a torch.Generator for the Monte Carlo estimate of {what}, "
            f"got {type(generator).__name__}"
        )
    return generator


def _check_samples(samples: int) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"expected samples as an int >= 2, got {samples!r}")
    return samples


def _mc(values: Tensor) -> tuple[float, float]:
    n = values.shape[0]
    return float(values.mean()), float(values.std(unbiased=True)) / math.sqrt(n)


def _run(
    setting: SPMSetting,
    policy: SPMPolicy,
    values: Tensor,
    statistic: str,
    objective: str | None,
    tie: str,
) -> Tensor:
    proc = SPMProcess(setting, objective=objective, tie=tie, dtype=_F64)
    proc.reset(values)
    for _ in range(setting.n_agents):
        if bool(proc.done.all()):
            break
        agent, prices = policy(proc.observation(statistic), proc.agent_mask())
        proc.step(agent, prices)
    if not bool(proc.done.all()):
        raise RuntimeError("SPM episodes did not end after n steps")  # pragma: no cover
    return proc.objective()


def evaluate_mechanism(
    setting: SPMSetting,
    policy: SPMPolicy,
    *,
    statistic: str = "price_allocation",
    objective: str | None = None,
    tie: str = "strict",
    samples: int | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 65536,
    exact_limit: int = 1 << 21,
) -> SPMValue:
    """Expected objective of a deterministic mechanism.

    Parameters
    ----------
    setting : SPMSetting
    policy : SPMPolicy
        ``policy(obs, agent_mask) -> (agent, prices)`` on the observation ``statistic``.
    statistic : str, optional
        Observation statistic handed to the policy.
    objective : str, optional
        Default: the setting's.
    tie : {"strict", "weak"}, optional
    samples : int, optional
        Monte Carlo sample size. When None, a finite support with at most ``exact_limit``
        profiles is enumerated (exact); otherwise 100 000 samples.
    generator : torch.Generator, optional
        Required for Monte Carlo.
    chunk : int, optional
        Profiles per batch.
    exact_limit : int, optional

    Returns
    -------
    SPMValue
        ``method="enumeration"`` (se 0) or ``"monte_carlo"``.

    Examples
    --------
    Proposition 1 (values /3): prices 2 then 0 reach E[OPT] = 2.5 raw.

    >>> from bilevel.models.spm import make_spm_setting
    >>> mech = static_mechanism([0, 1], [[2 / 3], [0.0]])
    >>> r = evaluate_mechanism(make_spm_setting("proposition1"), mech)
    >>> round(r.value * 3, 12), r.method
    (2.5, 'enumeration')
    """
    if samples is None and setting.finite and setting.n_profiles <= exact_limit:
        total = torch.zeros((), dtype=_F64)
        for values, probs in setting.profiles(chunk):
            obj = _run(setting, policy, values, statistic, objective, tie)
            total = total + (obj * probs).sum()
        return SPMValue(float(total), 0.0, "enumeration", setting.n_profiles)
    num = _check_samples(100_000 if samples is None else samples)
    g = _check_generator(generator, "a mechanism's value")
    parts = []
    for s in range(0, num, chunk):
        values = setting.sample(min(chunk, num - s), g)
        parts.append(_run(setting, policy, values, statistic, objective, tie))
    mean, se = _mc(torch.cat(parts))
    return SPMValue(mean, se, "monte_carlo", num)


def static_mechanism(
    order: Sequence[int], prices: Sequence[Sequence[float]] | Tensor
) -> SPMPolicy:
    """A static mechanism: a fixed visiting order and fixed per-agent prices (PSP; ASP when
    every agent's prices are equal; RSD-like when all are 0).

    Parameters
    ----------
    order : sequence of int, length n
        A permutation of the agents: the visiting order.
    prices : array-like, shape (n, d)
        ``prices[i]`` is offered to agent ``i`` (indexed by agent, not by position).

    Returns
    -------
    SPMPolicy
        Ignores the observation; picks the first remaining agent in ``order``.

    Examples
    --------
    >>> mech = static_mechanism([1, 0], [[0.5], [0.2]])
    >>> mech(torch.ones(2, 1), torch.tensor([[True, True], [True, False]]))
    (tensor([1, 0]), tensor([[0.2000],
            [0.5000]], dtype=torch.float64))
    """
    order_t = torch.as_tensor(list(order), dtype=torch.int64)
    n = int(order_t.shape[0])
    if sorted(order_t.tolist()) != list(range(n)):
        raise ValueError(f"expected order as a permutation of range({n}), got {list(order)}")
    price_t = torch.as_tensor(prices, dtype=_F64)
    if price_t.ndim != 2 or price_t.shape[0] != n:
        raise ValueError(f"expected prices of shape ({n}, d), got {tuple(price_t.shape)}")
    rank = torch.empty(n, dtype=torch.int64)
    rank[order_t] = torch.arange(n)

    def policy(obs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if mask.shape[1] != n:
            raise ValueError(f"expected an agent mask with {n} columns, got {mask.shape[1]}")
        key = torch.where(mask, rank.to(mask.device), n + 1)
        agent = key.argmin(dim=1)
        return agent, price_t.to(mask.device)[agent]

    return policy


# ---------------------------------------------------------------------- E[OPT]


def _correlated_opt(n: int, k: int, delta: float) -> float:
    """E[sum of the top k of n values] in the correlated generator (closed form).

    ``v_i = z - (1-δ)/2 + (1-δ) u_i`` with ``u_i`` i.i.d. U[0, 1] and E[z] = 1/2, so the top-k
    sum has mean ``k/2 + (1-δ) (sum_{r=1..k} (n+1-r)/(n+1) - k/2)``.
    """
    k = min(k, n)
    top = sum((n + 1 - r) / (n + 1) for r in range(1, k + 1))
    return k / 2 + (1 - delta) * (top - k / 2)


def expected_optimum(
    setting: SPMSetting,
    *,
    samples: int | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 65536,
    exact_limit: int = 1 << 21,
) -> SPMValue:
    """E[OPT(v)], the expected ex-post optimal welfare.

    Parameters
    ----------
    setting : SPMSetting
    samples : int, optional
        Force Monte Carlo with this many samples.
    generator : torch.Generator, optional
        Required for Monte Carlo.
    chunk, exact_limit : int, optional

    Returns
    -------
    SPMValue
        ``"enumeration"`` for finite supports, ``"closed_form"`` for the correlated, revenue and
        additive-across-types settings, else ``"monte_carlo"``.

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> round(expected_optimum(make_spm_setting("correlated")).value, 4)
    4.2857
    """
    if samples is None and setting.finite and setting.n_profiles <= exact_limit:
        total = 0.0
        for values, probs in setting.profiles(chunk):
            opt = optimal_welfare(values, setting.units, setting.valuation)
            total += float((opt * probs).sum())
        return SPMValue(total, 0.0, "enumeration", setting.n_profiles)
    if samples is None and setting.name in ("correlated", "revenue"):
        p = setting.params
        val = _correlated_opt(int(p["n_agents"]), int(p["n_items"]), float(p["delta"]))
        return SPMValue(val, 0.0, "closed_form", 0)
    if samples is None and setting.name == "additive_across_types":
        p = setting.params
        val = sum(
            _correlated_opt(int(p["n_agents"]), int(u), float(p["delta"])) for u in p["units"]
        )
        return SPMValue(val, 0.0, "closed_form", 0)
    num = _check_samples(100_000 if samples is None else samples)
    g = _check_generator(generator, "E[OPT]")
    parts = []
    for s in range(0, num, chunk):
        values = setting.sample(min(chunk, num - s), g)
        parts.append(optimal_welfare(values, setting.units, setting.valuation))
    mean, se = _mc(torch.cat(parts))
    return SPMValue(mean, se, "monte_carlo", num)


# ---------------------------------------------------------------------- RSD


def rsd_value(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    samples: int | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 65536,
    exact_limit: int = 1 << 21,
) -> SPMValue:
    """Random serial dictatorship: a uniformly random order, every price 0.

    Parameters
    ----------
    setting : SPMSetting
    objective : str, optional
    tie : {"strict", "weak"}, optional
        With the strict rule an agent with value 0 takes nothing.
    samples : int, optional
        Force Monte Carlo.
    generator : torch.Generator, optional
        Required for Monte Carlo.
    chunk, exact_limit : int, optional

    Returns
    -------
    SPMValue
        ``"dp"`` when agents are exchangeable with one item type (the order is then
        irrelevant), ``"enumeration"`` over all (order, profile) pairs when
        ``n! * K <= exact_limit``, else ``"monte_carlo"`` (one random order per profile).

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> rsd_value(make_spm_setting("proposition1")).value * 3   # E[value of agent 0]
    2.0
    """
    n, d = setting.n_agents, setting.n_types
    zeros = torch.zeros(n, d, dtype=_F64)
    if samples is None and d == 1 and setting.iid_components() is not None:
        return exchangeable_static_value(setting, [0.0] * n, objective=objective, tie=tie)
    if (
        samples is None
        and setting.finite
        and math.factorial(n) * setting.n_profiles <= exact_limit
    ):
        total = 0.0
        perms = list(itertools.permutations(range(n)))
        for order in perms:
            r = evaluate_mechanism(
                setting, static_mechanism(order, zeros), objective=objective, tie=tie,
                statistic="none", chunk=chunk, exact_limit=exact_limit,
            )
            total += r.value
        return SPMValue(total / len(perms), 0.0, "enumeration", len(perms) * setting.n_profiles)
    num = _check_samples(100_000 if samples is None else samples)
    g = _check_generator(generator, "RSD's value")
    parts = []
    for s in range(0, num, chunk):
        m = min(chunk, num - s)
        values = setting.sample(m, g)
        keys = torch.rand(m, n, generator=g, dtype=_F64, device=g.device)

        def policy(obs: Tensor, mask: Tensor, keys: Tensor = keys) -> tuple[Tensor, Tensor]:
            agent = torch.where(mask, keys.to(mask.device), 2.0).argmin(dim=1)
            return agent, torch.zeros(mask.shape[0], d, dtype=_F64, device=mask.device)

        parts.append(_run(setting, policy, values, "none", objective, tie))
    mean, se = _mc(torch.cat(parts))
    return SPMValue(mean, se, "monte_carlo", num)


def spm_reference_values(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    generator: torch.Generator | None = None,
    samples: int = 100_000,
    psp_limit: int = 1 << 21,
) -> dict[str, SPMValue]:
    """E[OPT], RSD and the best SPM / PSP / ASP values that an exact method can compute.

    Parameters
    ----------
    setting : SPMSetting
    objective : str, optional
        Default: the setting's. E[OPT] is the optimal *welfare* (an upper bound on revenue); it
        is omitted for max-min fairness.
    tie : {"strict", "weak"}, optional
    generator : torch.Generator, optional
        Enables Monte Carlo estimates of E[OPT] and RSD where no exact method applies.
    samples : int, optional
        Monte Carlo sample size.
    psp_limit : int, optional
        Largest number of price sequences enumerated for the best PSP.

    Returns
    -------
    dict of str to SPMValue
        Keys among ``"optimum"``, ``"rsd"``, ``"best_spm"``, ``"best_psp"``, ``"best_asp"``;
        a key is absent when no method applies (e.g. best PSP of kitchen sink; only RSD for
        max-min fairness; Monte Carlo quantities without a generator).

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> vals = spm_reference_values(make_spm_setting("proposition1"))
    >>> {k: round(v.value * 3, 6) for k, v in vals.items()}
    {'optimum': 2.5, 'rsd': 2.0, 'best_spm': 2.5, 'best_psp': 2.5, 'best_asp': 2.25}
    """
    obj = setting.objective if objective is None else objective
    out: dict[str, SPMValue] = {}
    if obj in ("welfare", "revenue"):
        try:
            out["optimum"] = expected_optimum(setting, generator=generator, samples=None)
        except ValueError:
            if generator is not None:
                out["optimum"] = expected_optimum(setting, generator=generator, samples=samples)
    try:
        out["rsd"] = rsd_value(setting, objective=obj, tie=tie)
    except ValueError:
        if generator is not None:
            out["rsd"] = rsd_value(
                setting, objective=obj, tie=tie, generator=generator, samples=samples
            )
    if obj not in ("welfare", "revenue"):
        return out
    for key, fn in (("best_spm", best_spm_value), ("best_asp", best_asp_value)):
        with contextlib.suppress(ValueError):
            out[key] = fn(setting, objective=obj, tie=tie)
    with contextlib.suppress(ValueError):
        out["best_psp"] = best_psp_value(setting, objective=obj, tie=tie, limit=psp_limit)
    return {k: out[k] for k in ("optimum", "rsd", "best_spm", "best_psp", "best_asp") if k in out}
