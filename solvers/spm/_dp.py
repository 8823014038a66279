"""Best SPM, PSP and ASP values by dynamic programming and exhaustive search (no learning).

Which method applies depends on the setting's structure:

* **agents i.i.d. given a latent component, one item type** (inventory, Propositions 1-2, two
  worlds; :meth:`SPMSetting.iid_components`): agents are exchangeable, so

  - best SPM: a DP over (agents left, units left, posterior over components), the posterior
    being a function of how many offers at each grid price were accepted or refused;
  - best PSP: every sequence of grid prices, evaluated in batch by propagating the law of the
    units left in each component (order is irrelevant, only positions matter);
  - best ASP: every single grid price;

* **i.i.d. U[0, 1] values** (the correlated setting with δ = 0): closed-form DP thresholds for
  the best SPM, and a one-dimensional maximisation of ``E[min(N_p, k)] * E[v | v > p]`` for the
  best ASP;
* **any small finite support** (kitchen sink, ID, Proposition 4): exhaustive search over
  adaptive policies (agent and grid price vector after every observable history), memoised on
  the set of value profiles consistent with the history.

Prices range over a grid: by default ``bilevel.models.spm.default_price_grid``, which with the
strict tie rule realises every distinct purchase decision of a finite-support agent, so the
grid optimum is the optimum over all prices. Objectives: welfare and revenue (max-min fairness
is not additive over steps and is not handled).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import binom

from bilevel.models.spm import SPMProcess, SPMSetting
from bilevel.models.spm._grid import default_price_grid

__all__ = [
    "SPMValue",
    "best_asp_value",
    "best_psp_value",
    "best_spm_value",
    "exchangeable_static_value",
]


@dataclass(frozen=True)
class SPMValue:
    """An expected objective value.

    Attributes
    ----------
    value : float
        The expected objective (normalised units of the setting).
    se : float
        Monte Carlo standard error (0 for exact methods).
    method : str
        How it was obtained: ``"enumeration"``, ``"monte_carlo"``, ``"closed_form"``,
        ``"dp"`` (dynamic program) or ``"search"`` (exhaustive search over a price grid).
    n_profiles : int
        Profiles enumerated or sampled (0 for closed forms and DPs over marginals).
    details : mapping of str to Any
        Method-specific extras, e.g. an optimal price.
    """

    value: float
    se: float
    method: str
    n_profiles: int
    details: Mapping[str, Any] = field(default_factory=dict)

FloatArray = np.ndarray
_ADDITIVE_OBJECTIVES = ("welfare", "revenue")


def _objective(setting: SPMSetting, objective: str | None) -> str:
    obj = setting.objective if objective is None else objective
    if obj not in _ADDITIVE_OBJECTIVES:
        raise ValueError(f"expected objective in {_ADDITIVE_OBJECTIVES}, got {obj!r}")
    return obj


def _check_tie(tie: str) -> str:
    if tie not in ("strict", "weak"):
        raise ValueError(f"expected tie in ('strict', 'weak'), got {tie!r}")
    return tie


def _is_uniform_iid(setting: SPMSetting) -> bool:
    return (
        setting.name in ("correlated", "revenue")
        and float(setting.params.get("delta", -1.0)) == 0.0
        and setting.n_types == 1
    )


# ---------------------------------------------------------------------- i.i.d. mixtures


class _Mixture:
    """Per-component sale probability and expected gain at each grid price (one item type)."""

    def __init__(
        self, setting: SPMSetting, grid: Sequence[float], objective: str, tie: str
    ) -> None:
        comps = setting.iid_components()
        if comps is None or setting.n_types != 1:
            raise ValueError(
                "expected a one-type setting with agents i.i.d. given a component, "
                f"got {setting.name!r}"
            )
        self.weights = np.array([w for w, _, _ in comps], dtype=np.float64)
        self.grid = np.asarray(grid, dtype=np.float64)
        G, C = len(self.grid), len(comps)
        self.sell = np.zeros((G, C))
        self.gain = np.zeros((G, C))
        for c, (_, vals, probs) in enumerate(comps):
            v = vals[:, 0].numpy()
            pr = probs.numpy()
            for gi, p in enumerate(self.grid):
                buys = v > p if tie == "strict" else v >= p
                self.sell[gi, c] = float(pr[buys].sum())
                per = v if objective == "welfare" else np.full_like(v, p)
                self.gain[gi, c] = float((pr * per)[buys].sum())
        self.n = setting.n_agents
        self.k = setting.units[0]


def _mixture_spm(mix: _Mixture) -> tuple[float, int]:
    """Best adaptive SPM by a DP over (agents left, units left, accept/refuse counts)."""
    G, C = mix.sell.shape
    memo: dict[tuple[int, ...], float] = {}

    def value(r: int, q: int, counts: tuple[int, ...], belief: FloatArray) -> float:
        if r == 0 or q == 0:
            return 0.0
        key = (r, q) if C == 1 else (r, q, *counts)
        if key in memo:
            return memo[key]
        best = -math.inf
        for gi in range(G):
            s = mix.sell[gi]
            p_buy = float(belief @ s)
            val = float(belief @ mix.gain[gi])
            if p_buy > 0:
                b = belief * s / p_buy
                c2 = counts if C == 1 else _bump(counts, 2 * gi + 1)
                val += p_buy * value(r - 1, q - 1, c2, b)
            if p_buy < 1:
                b = belief * (1 - s) / (1 - p_buy)
                c2 = counts if C == 1 else _bump(counts, 2 * gi)
                val += (1 - p_buy) * value(r - 1, q, c2, b)
            best = max(best, val)
        memo[key] = best
        return best

    start = (0,) * (2 * G)
    return value(mix.n, mix.k, start, mix.weights.copy()), len(memo)


def _bump(counts: tuple[int, ...], i: int) -> tuple[int, ...]:
    return (*counts[:i], counts[i] + 1, *counts[i + 1 :])


def _static_values(mix: _Mixture, seqs: torch.Tensor) -> torch.Tensor:
    """Expected objective of price sequences; seqs (B, n) grid indices -> (B,)."""
    B = seqs.shape[0]
    C, k = mix.sell.shape[1], mix.k
    sell = torch.as_tensor(mix.sell)
    gain = torch.as_tensor(mix.gain)
    dist = torch.zeros(B, C, k + 1, dtype=torch.float64)
    dist[:, :, k] = 1.0
    total = torch.zeros(B, C, dtype=torch.float64)
    for t in range(seqs.shape[1]):
        s = sell[seqs[:, t]]  # (B, C)
        live = dist[:, :, 1:].sum(-1)
        total = total + live * gain[seqs[:, t]]
        moved = dist[:, :, 1:] * s.unsqueeze(-1)
        dist = torch.cat(
            [dist[:, :, :1] + moved[:, :, :1], dist[:, :, 1:] * (1 - s).unsqueeze(-1)], dim=-1
        )
        dist[:, :, 1:-1] = dist[:, :, 1:-1] + moved[:, :, 1:]
    return total @ torch.as_tensor(mix.weights)


def _mixture_psp(mix: _Mixture, limit: int, chunk: int = 1 << 16) -> tuple[float, list[float]]:
    G, n = len(mix.grid), mix.n
    useful = [gi for gi in range(G) if mix.sell[gi].max() > 0]
    if len(useful) ** n > limit:
        raise ValueError(
            f"expected at most {limit} price sequences to enumerate, got {len(useful)}**{n}"
        )
    idx = torch.tensor(useful, dtype=torch.int64)
    total = len(useful) ** n
    best, best_seq = -math.inf, torch.zeros(n, dtype=torch.int64)
    base = len(useful)
    for s in range(0, total, chunk):
        code = torch.arange(s, min(total, s + chunk), dtype=torch.int64)
        digits = torch.empty(code.shape[0], n, dtype=torch.int64)
        rest = code
        for t in range(n - 1, -1, -1):
            digits[:, t] = rest % base
            rest = rest // base
        seqs = idx[digits]
        vals = _static_values(mix, seqs)
        j = int(vals.argmax())
        if float(vals[j]) > best + 1e-15:
            best, best_seq = float(vals[j]), seqs[j].clone()
    return best, [float(mix.grid[i]) for i in best_seq.tolist()]


def _mixture_asp(mix: _Mixture) -> tuple[float, float]:
    G = len(mix.grid)
    seqs = torch.arange(G, dtype=torch.int64).unsqueeze(1).expand(G, mix.n)
    vals = _static_values(mix, seqs)
    j = int(vals.argmax())
    return float(vals[j]), float(mix.grid[j])


# ---------------------------------------------------------------------- i.i.d. U[0, 1]


def _uniform_spm(n: int, k: int, objective: str) -> float:
    V = np.zeros((n + 1, k + 1))
    for r in range(1, n + 1):
        for q in range(1, k + 1):
            delta = V[r - 1, q] - V[r - 1, q - 1]
            if objective == "welfare":  # threshold p = delta: gain (1 - delta)^2 / 2
                V[r, q] = V[r - 1, q] + (1.0 - delta) ** 2 / 2.0
            else:  # revenue: p = (1 + delta) / 2, gain (1 - delta)^2 / 4
                V[r, q] = V[r - 1, q] + (1.0 - delta) ** 2 / 4.0
    return float(V[n, k])


def _uniform_asp(n: int, k: int, objective: str) -> tuple[float, float]:
    def value(p: float) -> float:
        units = np.arange(n + 1)
        sold = float((np.minimum(units, k) * binom.pmf(units, n, 1.0 - p)).sum())
        per = (1.0 + p) / 2.0 if objective == "welfare" else p
        return sold * per

    grid = np.linspace(0.0, 1.0, 2001)
    vals = np.array([value(float(p)) for p in grid])
    j = int(vals.argmax())
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    res = minimize_scalar(lambda p: -value(float(p)), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})
    p = float(res.x) if -float(res.fun) >= vals[j] else float(grid[j])
    return value(p), p


# ---------------------------------------------------------------------- exhaustive search


def _search_spm(
    setting: SPMSetting, grids: tuple[tuple[float, ...], ...], objective: str, tie: str,
    max_profiles: int,
) -> tuple[float, int]:
    if not setting.finite or setting.n_profiles > max_profiles:
        raise ValueError(
            f"expected a finite support of at most {max_profiles} profiles for the exhaustive "
            f"search, got {setting.name!r} with {setting.n_profiles or 'infinitely many'}"
        )
    vals_l, probs_l = zip(*setting.profiles(max_profiles), strict=True)
    values = torch.cat(vals_l).numpy()  # (K, n, d)
    probs = torch.cat(probs_l).numpy()
    K, n, d = values.shape
    additive = setting.valuation == "additive"
    price_vecs = np.array(list(itertools.product(*grids)), dtype=np.float64)  # (P, d)
    memo: dict[tuple[int, int, tuple[int, ...]], float] = {}

    def respond(i: int, avail: tuple[int, ...], members: np.ndarray) -> np.ndarray:
        """Bitmask of the types agent ``i`` buys, per (price vector, member): (P, m)."""
        util = values[members, i][None, :, :] - price_vecs[:, None, :]  # (P, m, d)
        ok = util > 0 if tie == "strict" else util >= 0
        ok = ok & (np.array(avail) > 0)[None, None, :]
        if additive:
            codes: np.ndarray = (ok * (1 << np.arange(d))).sum(-1)
            return codes
        masked = np.where(np.array(avail)[None, None, :] > 0, util, -np.inf)
        best = masked.argmax(-1)
        bought = np.take_along_axis(ok, best[..., None], -1)[..., 0]
        return np.where(bought, 1 << best, 0)

    def gain(i: int, members: np.ndarray, code: int, p: np.ndarray) -> float:
        types = [j for j in range(d) if code >> j & 1]
        if not types:
            return 0.0
        if objective == "welfare":
            per = values[members, i][:, types].sum(-1)
        else:
            per = np.full(members.shape[0], p[types].sum())
        return float((probs[members] * per).sum())

    def value(members_key: int, members: np.ndarray, left: int, avail: tuple[int, ...]) -> float:
        if left == 0 or sum(avail) == 0:
            return 0.0
        key = (members_key, left, avail)
        if key in memo:
            return memo[key]
        best = -math.inf
        for i in range(n):
            if not left >> i & 1:
                continue
            resp = respond(i, avail, members)  # (P, m)
            seen: set[bytes] = set()
            for pi in range(price_vecs.shape[0]):
                row = resp[pi]
                if objective == "welfare":
                    sig = row.tobytes()
                    if sig in seen:
                        continue
                    seen.add(sig)
                total = 0.0
                for code in np.unique(row):
                    sub = members[row == code]
                    total += gain(i, sub, int(code), price_vecs[pi])
                    new_avail = tuple(
                        a - (code >> j & 1) for j, a in enumerate(avail)
                    )
                    sub_key = int(sum(1 << int(x) for x in sub))
                    total += value(sub_key, sub, left & ~(1 << i), new_avail)
                best = max(best, total)
        memo[key] = best
        return best

    everyone = np.arange(K)
    v = value((1 << K) - 1, everyone, (1 << n) - 1, tuple(setting.units))
    return v, len(memo)


def _search_static(
    setting: SPMSetting,
    grids: tuple[tuple[float, ...], ...],
    anonymous: bool,
    objective: str,
    tie: str,
    limit: int,
    chunk_rows: int = 1 << 19,
) -> tuple[float, dict[str, object]]:
    """Best static mechanism (order x per-agent or anonymous grid prices) by enumeration."""
    if not setting.finite:
        raise ValueError(f"expected a finite-support setting, got continuous {setting.name!r}")
    n, K = setting.n_agents, setting.n_profiles
    P = math.prod(len(g) for g in grids)
    assignments = P if anonymous else P**n
    total = math.factorial(n) * assignments
    # Size check before materialising anything: n! orders alone exhaust memory for n ~ 12.
    if total * K > limit:
        raise ValueError(
            f"expected at most {limit} (mechanism, profile) rows to enumerate, got {total * K}"
        )
    orders = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.int64)
    vecs = torch.tensor(list(itertools.product(*grids)), dtype=torch.float64)  # (P, d)
    values = torch.cat([v for v, _ in setting.profiles(K)])
    probs = torch.cat([p for _, p in setting.profiles(K)])
    proc = SPMProcess(setting, objective=objective, tie=tie, dtype=torch.float64)
    per = max(1, chunk_rows // K)
    best, best_code = -math.inf, 0
    for start in range(0, total, per):
        code = torch.arange(start, min(total, start + per), dtype=torch.int64)
        m = int(code.shape[0])
        order_idx, assign = code // assignments, code % assignments
        if anonymous:
            price_idx = assign.unsqueeze(1).expand(m, n)
        else:
            digits = []
            rest = assign
            for _ in range(n):
                digits.append(rest % P)
                rest = rest // P
            price_idx = torch.stack(digits, dim=1)  # agent i's price vector index
        rank = torch.argsort(orders[order_idx], dim=1)  # rank[m, agent]
        prices = vecs[price_idx]  # (m, n, d)
        rank_r = rank.repeat_interleave(K, 0)
        prices_r = prices.repeat_interleave(K, 0)
        proc.reset(values.repeat(m, 1, 1))
        rows = torch.arange(m * K)
        for _ in range(n):
            if bool(proc.done.all()):
                break
            agent = torch.where(proc.agent_mask(), rank_r, n + 1).argmin(1)
            proc.step(agent, prices_r[rows, agent], validate=False)
        vals = (proc.objective().reshape(m, K) * probs).sum(1)
        j = int(vals.argmax())
        if float(vals[j]) > best + 1e-15:
            best, best_code = float(vals[j]), start + j
    order = orders[best_code // assignments].tolist()
    best_assign = best_code % assignments
    if anonymous:
        agent_prices = [vecs[best_assign].tolist()] * n
    else:
        agent_prices = [vecs[(best_assign // P**i) % P].tolist() for i in range(n)]
    return best, {"order": order, "prices": agent_prices}


# ---------------------------------------------------------------------- public dispatchers


def _grids(
    setting: SPMSetting, price_grid: Sequence[float] | Sequence[Sequence[float]] | None
) -> tuple[tuple[float, ...], ...]:
    if price_grid is None:
        return default_price_grid(setting)
    items = list(price_grid)
    if items and all(isinstance(x, (int, float)) for x in items):
        return tuple(tuple(float(x) for x in items if isinstance(x, (int, float)))
                     for _ in range(setting.n_types))
    if len(items) != setting.n_types:
        raise ValueError(
            f"expected a price grid or {setting.n_types} grids, got {len(items)} entries"
        )
    return tuple(tuple(float(y) for y in x) for x in items if isinstance(x, Sequence))


def best_spm_value(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    price_grid: Sequence[float] | Sequence[Sequence[float]] | None = None,
    max_profiles: int = 64,
) -> SPMValue:
    """The best adaptive SPM's expected objective (over a price grid).

    Parameters
    ----------
    setting : SPMSetting
    objective : {"welfare", "revenue"}, optional
    tie : {"strict", "weak"}, optional
    price_grid : sequence of float, or d sequences, optional
        Default: :func:`bilevel.models.spm.default_price_grid` (exact for finite supports under
        the strict rule).
    max_profiles : int, optional
        Largest support handed to the exhaustive search.

    Returns
    -------
    SPMValue
        ``"closed_form"`` (i.i.d. U[0, 1]), ``"dp"`` (i.i.d. mixtures) or ``"search"``;
        ``details["states"]`` counts memoised states.

    Raises
    ------
    ValueError
        When no method applies (continuous non-uniform settings, large supports).

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> round(best_spm_value(make_spm_setting("correlated")).value, 4)
    4.1293
    """
    obj = _objective(setting, objective)
    _check_tie(tie)
    if _is_uniform_iid(setting):
        n, k = setting.n_agents, setting.units[0]
        return SPMValue(_uniform_spm(n, k, obj), 0.0, "closed_form", 0)
    grids = _grids(setting, price_grid)
    if setting.iid_components() is not None and setting.n_types == 1:
        val, states = _mixture_spm(_Mixture(setting, grids[0], obj, tie))
        return SPMValue(val, 0.0, "dp", 0, {"states": states})
    val, states = _search_spm(setting, grids, obj, tie, max_profiles)
    return SPMValue(val, 0.0, "search", setting.n_profiles, {"states": states})


def best_psp_value(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    price_grid: Sequence[float] | Sequence[Sequence[float]] | None = None,
    limit: int = 1 << 22,
) -> SPMValue:
    """The best personalised static-price mechanism with a static order.

    Exchangeable agents with one item type: every sequence of grid prices that sell with
    positive probability (for welfare, a price at which no agent ever buys is dominated by the
    highest selling one), by position. Other finite supports: every (order, per-agent grid
    price vectors) pair, evaluated by enumeration of the profiles.

    Parameters
    ----------
    setting : SPMSetting
    objective : {"welfare", "revenue"}, optional
    tie : {"strict", "weak"}, optional
    price_grid : sequence of float, or d sequences, optional
    limit : int, optional
        Largest number of price sequences (exchangeable case) or (mechanism, profile) rows
        (general case) enumerated.

    Returns
    -------
    SPMValue
        ``method="search"``; ``details["prices"]`` is an optimal price sequence by position
        (exchangeable case) or per agent, with ``details["order"]`` (general case).

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> r = best_psp_value(make_spm_setting("proposition1"))
    >>> round(r.value * 3, 12), r.details["prices"]
    (2.5, [0.666666666667, 0.0])
    """
    obj = _objective(setting, objective)
    _check_tie(tie)
    grids = _grids(setting, price_grid)
    if setting.n_types == 1 and setting.iid_components() is not None:
        val, seq = _mixture_psp(_Mixture(setting, grids[0], obj, tie), limit)
        return SPMValue(val, 0.0, "search", 0, {"prices": seq})
    val, details = _search_static(setting, grids, False, obj, tie, limit)
    return SPMValue(val, 0.0, "search", setting.n_profiles, details)


def best_asp_value(
    setting: SPMSetting,
    *,
    objective: str | None = None,
    tie: str = "strict",
    price_grid: Sequence[float] | Sequence[Sequence[float]] | None = None,
    limit: int = 1 << 22,
) -> SPMValue:
    """The best anonymous static price vector with a static order.

    Exchangeable agents with one item type: every grid price (order irrelevant); i.i.d.
    U[0, 1]: a continuous maximisation; other finite supports: every (order, grid price
    vector) pair, evaluated by enumeration of the profiles.

    Parameters
    ----------
    setting : SPMSetting
    objective : {"welfare", "revenue"}, optional
    tie : {"strict", "weak"}, optional
    price_grid : sequence of float, or d sequences, optional
    limit : int, optional
        Largest number of (mechanism, profile) rows enumerated in the general case.

    Returns
    -------
    SPMValue
        ``details["price"]`` is an optimal price (a list of d prices in the general case,
        with ``details["order"]`` the visiting order).

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> r = best_asp_value(make_spm_setting("correlated"))
    >>> round(r.value, 4), round(r.details["price"], 3)
    (3.979, 0.648)
    """
    obj = _objective(setting, objective)
    _check_tie(tie)
    if _is_uniform_iid(setting):
        val, p = _uniform_asp(setting.n_agents, setting.units[0], obj)
        return SPMValue(val, 0.0, "closed_form", 0, {"price": p})
    grids = _grids(setting, price_grid)
    if setting.n_types == 1 and setting.iid_components() is not None:
        val, p = _mixture_asp(_Mixture(setting, grids[0], obj, tie))
        return SPMValue(val, 0.0, "search", 0, {"price": p})
    val, details = _search_static(setting, grids, True, obj, tie, limit)
    details["price"] = details["prices"][0]  # type: ignore[index]
    return SPMValue(val, 0.0, "search", setting.n_profiles, details)


def exchangeable_static_value(
    setting: SPMSetting,
    prices: Sequence[float],
    *,
    objective: str | None = None,
    tie: str = "strict",
) -> SPMValue:
    """Exact value of a static price sequence when agents are exchangeable (one item type).

    With agents i.i.d. given a component, the order is irrelevant: the ``t``-th visited agent
    is offered ``prices[t]``. All prices 0 give random serial dictatorship.

    Parameters
    ----------
    setting : SPMSetting
        One item type, agents i.i.d. given a component.
    prices : sequence of float, length n
        The price offered at each position.
    objective : {"welfare", "revenue"}, optional
    tie : {"strict", "weak"}, optional

    Returns
    -------
    SPMValue
        ``method="dp"``.

    Examples
    --------
    >>> from bilevel.models.spm import make_spm_setting
    >>> exchangeable_static_value(make_spm_setting("proposition1"), [2 / 3, 0.0]).value * 3
    2.5
    """
    obj = _objective(setting, objective)
    _check_tie(tie)
    if len(prices) != setting.n_agents:
        raise ValueError(f"expected {setting.n_agents} prices, got {len(prices)}")
    grid = sorted(set(float(p) for p in prices))
    mix = _Mixture(setting, grid, obj, tie)
    seq = torch.tensor([[grid.index(float(p)) for p in prices]], dtype=torch.int64)
    return SPMValue(float(_static_values(mix, seq)[0]), 0.0, "dp", 0)
