"""The SPM paper's settings and its Proposition 1, 2 and 4 examples.

The settings of Brero et al. (2021), "Experimental Results" (parts 1-3), with the exact
distributions of the extended version's Appendix C, and the examples of Propositions 1, 2
and 4 ("Characterization Results").

Every value is divided by the setting's highest possible value, so all values lie in
``[0, 1]``. Each sampler is written from the setting's generative description; finite-support
settings also enumerate their support (or give independent per-agent marginals), which the tests
check against the sampler and the exact evaluators enumerate.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

from bilevel.models.spm._setting import SPMSetting

__all__ = [
    "additive_across_types",
    "colors",
    "correlated",
    "id_setting",
    "inventory",
    "kitchen_sink",
    "maxmin_fairness",
    "proposition1",
    "proposition2",
    "proposition4",
    "revenue",
    "two_worlds",
]

Tensor = torch.Tensor
_F64 = torch.float64


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected {name} as an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return value


def _check_unit(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected {name} as a float, got {type(value).__name__}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"expected {name} in [0, 1], got {value!r}")
    return float(value)


def _rand(generator: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=_F64, device=generator.device)


def _const(x: float, device: torch.device | None = None) -> Tensor:
    return torch.tensor(x, dtype=_F64, device=device)


def _correlated_values(num: int, n: int, delta: float, generator: torch.Generator) -> Tensor:
    """``z ~ U[(1-δ)/2, (1+δ)/2]``, then ``v_i ~ U[z-(1-δ)/2, z+(1-δ)/2]`` i.i.d.; (num, n)."""
    half = (1.0 - delta) / 2.0
    z = half + delta * _rand(generator, num, 1)
    return z - half + (1.0 - delta) * _rand(generator, num, n)


def _iid_marginals(values: list[float], n: int) -> tuple[tuple[Tensor, Tensor], ...]:
    v = torch.tensor(values, dtype=_F64).reshape(-1, 1)
    p = torch.full((len(values),), 1.0 / len(values), dtype=_F64)
    return tuple((v, p) for _ in range(n))


def _sample_marginals(
    marginals: tuple[tuple[Tensor, Tensor], ...], num: int, generator: torch.Generator
) -> Tensor:
    dev = generator.device
    cols = []
    for v, p in marginals:
        if num == 0:
            cols.append(torch.zeros((0, v.shape[1]), dtype=_F64, device=dev))
            continue
        idx = torch.multinomial(p.to(dev), num, replacement=True, generator=generator)
        cols.append(v.to(dev)[idx])
    return torch.stack(cols, dim=1)


# ---------------------------------------------------------------------- part 1: correlated


def correlated(*, n_agents: int = 20, n_items: int = 5, delta: float = 0.0) -> SPMSetting:
    """Correlated values: ``n`` unit-demand agents, ``k`` identical items (paper part 1).

    ``z ~ U[(1-δ)/2, (1+δ)/2]`` and then ``v_i ~ U[z - (1-δ)/2, z + (1-δ)/2]`` independently
    given ``z``; δ = 0 gives i.i.d. U[0, 1], δ = 1 gives ``v_i = z`` for all ``i``. Values lie
    in [0, 1] already (scale 1).

    Parameters
    ----------
    n_agents, n_items : int
        ``n`` agents and ``k`` identical units.
    delta : float in [0, 1]
        The correlation parameter δ.

    Returns
    -------
    SPMSetting
        ``d = 1`` item type with ``k`` units; values of shape (num, n, 1).

    Examples
    --------
    >>> s = correlated(n_agents=4, n_items=2, delta=0.5)
    >>> s.sample(3, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 4, 1])
    """
    n = _check_int(n_agents, "n_agents")
    k = _check_int(n_items, "n_items")
    dl = _check_unit(delta, "delta")

    def sampler(num: int, g: torch.Generator) -> Tensor:
        return _correlated_values(num, n, dl, g).unsqueeze(-1)

    return SPMSetting(
        name="correlated",
        n_agents=n,
        units=(k,),
        sampler=sampler,
        description=f"{n} unit-demand agents, {k} identical items, correlated values (δ={dl})",
        params={"n_agents": n, "n_items": k, "delta": dl},
    )


def revenue(*, n_agents: int = 20, n_items: int = 5, delta: float = 0.5) -> SPMSetting:
    """The correlated setting with the revenue objective (paper part 3; default δ = 0.5).

    Parameters
    ----------
    n_agents, n_items : int
    delta : float in [0, 1]

    Returns
    -------
    SPMSetting
        As :func:`correlated`, with ``objective="revenue"``.
    """
    base = correlated(n_agents=n_agents, n_items=n_items, delta=delta)
    return SPMSetting(
        name="revenue",
        n_agents=base.n_agents,
        units=base.units,
        sampler=base.sampler,
        objective="revenue",
        description=f"correlated values (δ={base.params['delta']}), revenue objective",
        params=dict(base.params),
    )


def additive_across_types(
    *, n_agents: int = 10, units: tuple[int, int] = (2, 4), delta: float = 0.5
) -> SPMSetting:
    """Additive across two item types A and B (paper part 3).

    An agent's utility is its value for A if it holds a unit of A plus its value for B if it
    holds a unit of B; each type's values come from the correlated generator with parameter δ,
    independently across types (each type has its own ``z``). Values lie in [0, 1] per type.

    Parameters
    ----------
    n_agents : int
    units : (int, int)
        Units of A and of B (default 2 and 4).
    delta : float in [0, 1]

    Returns
    -------
    SPMSetting
        ``valuation="additive"``, ``d = 2``.
    """
    n = _check_int(n_agents, "n_agents")
    if len(units) != 2:
        raise ValueError(f"expected units as two ints, got {units!r}")
    ua, ub = (_check_int(u, "units") for u in units)
    dl = _check_unit(delta, "delta")

    def sampler(num: int, g: torch.Generator) -> Tensor:
        a = _correlated_values(num, n, dl, g)
        b = _correlated_values(num, n, dl, g)
        return torch.stack([a, b], dim=-1)

    return SPMSetting(
        name="additive_across_types",
        n_agents=n,
        units=(ua, ub),
        sampler=sampler,
        valuation="additive",
        description=f"{n} agents, additive over {ua} A and {ub} B units, correlated (δ={dl})",
        params={"n_agents": n, "units": (ua, ub), "delta": dl},
    )


# ---------------------------------------------------------------------- part 2: theory-driven


def colors(*, n_per_color: int = 10) -> SPMSetting:
    """Colors: red, yellow and blue agents; red and yellow items (paper part 2).

    Agents ``0..c-1`` are red, ``c..2c-1`` yellow, ``2c..3c-1`` blue (``c = n_per_color``);
    item type 0 is red, type 1 yellow, with ``c`` units each. Red agents value red items 1,
    yellow agents value yellow items 1; each blue agent draws ``x ~ U[0, 1]`` and values red
    items 2 with probability ``x`` (else yellow items 2). Normalised by 2. OPT = 1.5 c always.

    Parameters
    ----------
    n_per_color : int
        Agents of each color and units of each item color (paper: 10).

    Returns
    -------
    SPMSetting
        ``3c`` agents, ``d = 2``; support of ``2**c`` equally likely profiles.
    """
    c = _check_int(n_per_color, "n_per_color")
    if c > 16:
        raise ValueError(f"expected n_per_color <= 16 (support of 2**c profiles), got {c}")
    base = torch.zeros(3 * c, 2, dtype=_F64)
    base[:c, 0] = 0.5
    base[c : 2 * c, 1] = 0.5

    def sampler(num: int, g: torch.Generator) -> Tensor:
        x = _rand(g, num, c)
        red = _rand(g, num, c) < x
        v = base.to(g.device).expand(num, 3 * c, 2).clone()
        v[:, 2 * c :, 0] = red.to(_F64)
        v[:, 2 * c :, 1] = (~red).to(_F64)
        return v

    bits = torch.tensor(list(itertools.product([1.0, 0.0], repeat=c)), dtype=_F64)
    support = base.expand(bits.shape[0], 3 * c, 2).clone()
    support[:, 2 * c :, 0] = bits
    support[:, 2 * c :, 1] = 1.0 - bits
    probs = torch.full((bits.shape[0],), 1.0 / bits.shape[0], dtype=_F64)
    return SPMSetting(
        name="colors",
        n_agents=3 * c,
        units=(c, c),
        sampler=sampler,
        support=support,
        probs=probs,
        scale=2.0,
        description=f"{c} red, {c} yellow, {c} blue agents; {c} red and {c} yellow items",
        params={"n_per_color": c},
    )


def two_worlds(*, n_agents: int = 10) -> SPMSetting:
    """Two worlds: one item; values i.i.d. on {0.6, 1} ("high") or on {0.1, 0.4} ("low").

    The regime is high or low with probability 1/2 each, common to all agents (paper part 2).
    Values lie in [0, 1] already.

    Parameters
    ----------
    n_agents : int
        Number of agents (paper: 10).

    Returns
    -------
    SPMSetting
        Support of ``2 * 2**n`` profiles.
    """
    n = _check_int(n_agents, "n_agents")
    if n > 16:
        raise ValueError(f"expected n_agents <= 16 (support of 2**(n+1) profiles), got {n}")

    def sampler(num: int, g: torch.Generator) -> Tensor:
        high = _rand(g, num, 1) < 0.5
        top = _rand(g, num, n) < 0.5
        hi = torch.where(top, _const(1.0, g.device), _const(0.6, g.device))
        lo = torch.where(top, _const(0.4, g.device), _const(0.1, g.device))
        return torch.where(high, hi, lo).unsqueeze(-1)

    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=_F64)
    high = torch.where(bits > 0, _const(1.0), _const(0.6))
    low = torch.where(bits > 0, _const(0.4), _const(0.1))
    support = torch.cat([high, low]).unsqueeze(-1)
    probs = torch.full((support.shape[0],), 1.0 / support.shape[0], dtype=_F64)
    return SPMSetting(
        name="two_worlds",
        n_agents=n,
        units=(1,),
        sampler=sampler,
        support=support,
        probs=probs,
        mixture=(
            (0.5, torch.tensor([[0.6], [1.0]], dtype=_F64), torch.tensor([0.5, 0.5], dtype=_F64)),
            (0.5, torch.tensor([[0.1], [0.4]], dtype=_F64), torch.tensor([0.5, 0.5], dtype=_F64)),
        ),
        description=f"{n} agents, 1 item, values i.i.d. on {{0.6,1}} or on {{0.1,0.4}} (p=1/2)",
        params={"n_agents": n},
    )


def inventory(*, n_agents: int = 20, n_items: int = 10) -> SPMSetting:
    """Inventory: ``n`` agents, ``k`` identical items, values i.i.d. uniform on {1/2, 1}.

    Parameters
    ----------
    n_agents, n_items : int
        Paper: 20 agents, 10 items.

    Returns
    -------
    SPMSetting
        Independent marginals (support ``2**n`` profiles, enumerated in chunks).
    """
    n = _check_int(n_agents, "n_agents")
    k = _check_int(n_items, "n_items")
    marg = _iid_marginals([0.5, 1.0], n)

    def sampler(num: int, g: torch.Generator) -> Tensor:
        return 0.5 + 0.5 * (_rand(g, num, n, 1) < 0.5).to(_F64)

    return SPMSetting(
        name="inventory",
        n_agents=n,
        units=(k,),
        sampler=sampler,
        marginals=marg,
        description=f"{n} agents, {k} identical items, values i.i.d. uniform on {{1/2, 1}}",
        params={"n_agents": n, "n_items": k},
    )


def kitchen_sink() -> SPMSetting:
    """Kitchen sink: 3 agents, 3 distinct items A, B, C; needs adaptive order and prices.

    World 1 (probability 1/2): agent 0 values A at 0.01, agent 1 values C at 1, agent 2 values
    C at 5 (probability 0.2) or 0.5. World 2: agent 0 values B at 0.01, agent 2 values C at
    0.499, agent 1 values C at 2 (probability 0.2) or 0. All other values 0; normalised by 5
    (paper part 2).

    Returns
    -------
    SPMSetting
        ``d = 3`` types with one unit each; support of 4 profiles.
    """
    raw = torch.zeros(4, 3, 3, dtype=_F64)
    # world 1: agent 2 high / low
    for w, c2 in enumerate((5.0, 0.5)):
        raw[w, 0, 0] = 0.01
        raw[w, 1, 2] = 1.0
        raw[w, 2, 2] = c2
    # world 2: agent 1 high / low
    for w, c1 in enumerate((2.0, 0.0), start=2):
        raw[w, 0, 1] = 0.01
        raw[w, 2, 2] = 0.499
        raw[w, 1, 2] = c1
    support = raw / 5.0
    probs = torch.tensor([0.1, 0.4, 0.1, 0.4], dtype=_F64)

    def sampler(num: int, g: torch.Generator) -> Tensor:
        world2 = _rand(g, num) < 0.5
        high = _rand(g, num) < 0.2
        idx = world2.to(torch.int64) * 2 + (~high).to(torch.int64)
        return support.to(g.device)[idx]

    return SPMSetting(
        name="kitchen_sink",
        n_agents=3,
        units=(1, 1, 1),
        sampler=sampler,
        support=support,
        probs=probs,
        scale=5.0,
        description="3 agents, 3 distinct items; optimal SPM needs adaptive order and prices",
        params={},
    )


def id_setting() -> SPMSetting:
    """ID: 6 agents, 2 identical items; agents/items left is not a sufficient statistic.

    Agents 0-2 are i.i.d. uniform on {0, 60}. If exactly one agent ``i`` of them has 60, agent
    ``i + 3`` is uniform on {0, 40} and the other two of agents 3-5 uniform on {0, 21} (all
    independent); otherwise agents 3-5 value 0. Normalised by 60 (paper part 2).

    Returns
    -------
    SPMSetting
        Support of 29 profiles.
    """
    profiles: list[list[float]] = []
    probs: list[float] = []
    for first in itertools.product([0.0, 60.0], repeat=3):
        highs = [i for i in range(3) if first[i] > 0]
        if len(highs) != 1:
            profiles.append([*first, 0.0, 0.0, 0.0])
            probs.append(1.0 / 8.0)
            continue
        i = highs[0]
        for rest in itertools.product([0, 1], repeat=3):
            second = [
                (40.0 if j == i else 21.0) * rest[j] for j in range(3)
            ]
            profiles.append([*first, *second])
            probs.append(1.0 / 64.0)
    support = torch.tensor(profiles, dtype=_F64).unsqueeze(-1) / 60.0
    prob_t = torch.tensor(probs, dtype=_F64)

    def sampler(num: int, g: torch.Generator) -> Tensor:
        first = (_rand(g, num, 3) < 0.5).to(_F64)
        exactly_one = first.sum(1, keepdim=True) == 1
        coins = (_rand(g, num, 3) < 0.5).to(_F64)
        second = torch.where(first > 0, 40.0, 21.0) * coins * exactly_one
        return (torch.cat([first * 60.0, second], dim=1) / 60.0).unsqueeze(-1)

    return SPMSetting(
        name="id",
        n_agents=6,
        units=(2,),
        sampler=sampler,
        support=support,
        probs=prob_t,
        scale=60.0,
        description="6 agents, 2 identical items; the allocation reveals who pairs with whom",
        params={},
    )


# ---------------------------------------------------------------------- part 3: max-min


def maxmin_fairness() -> SPMSetting:
    """Max-min fairness: 1 orange, 4 blue, 4 red agents; 5 black and 5 white items.

    Agent 0 is orange, 1-4 blue, 5-8 red; type 0 is black, type 1 white. With probability 1/2:
    orange values black U[0.5, 1] (white 0), blue black U[0.4, 0.5] and white U[0, 0.25], red
    black U[0.9, 1] and white U[0.4, 0.5]. Otherwise red and blue swap their distributions and
    orange values white U[0.5, 1] (black 0). Objective: ``min_i v_i(x_i)`` (paper part 3).

    Returns
    -------
    SPMSetting
        ``objective="maxmin"``, continuous.
    """

    def unif(g: torch.Generator, num: int, k: int, lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * _rand(g, num, k)

    def sampler(num: int, g: torch.Generator) -> Tensor:
        swap = (_rand(g, num) < 0.5).reshape(num, 1, 1)
        orange = unif(g, num, 1, 0.5, 1.0)
        lo_b, lo_w = unif(g, num, 4, 0.4, 0.5), unif(g, num, 4, 0.0, 0.25)
        hi_b, hi_w = unif(g, num, 4, 0.9, 1.0), unif(g, num, 4, 0.4, 0.5)
        weak = torch.stack([lo_b, lo_w], dim=-1)  # the U[0.4,0.5]/U[0,0.25] group
        strong = torch.stack([hi_b, hi_w], dim=-1)  # the U[0.9,1]/U[0.4,0.5] group
        zero = torch.zeros_like(orange)
        o_world1 = torch.stack([orange, zero], dim=-1)
        o_world2 = torch.stack([zero, orange], dim=-1)
        world1 = torch.cat([o_world1, weak, strong], dim=1)  # blue weak, red strong
        world2 = torch.cat([o_world2, strong, weak], dim=1)  # roles swapped
        return torch.where(swap, world2, world1)

    return SPMSetting(
        name="maxmin_fairness",
        n_agents=9,
        units=(5, 5),
        sampler=sampler,
        objective="maxmin",
        description="1 orange, 4 blue, 4 red agents; 5 black, 5 white items; max-min fairness",
        params={},
    )


# ---------------------------------------------------------------------- the propositions


def proposition1() -> SPMSetting:
    """Proposition 1: one item, two i.i.d. agents uniform on {1, 3}; normalised by 3.

    Prices 2 then 0 (2/3 then 0 normalised) reach E[OPT] = 2.5 raw; no single price does.

    Returns
    -------
    SPMSetting
    """
    return SPMSetting(
        name="proposition1",
        n_agents=2,
        units=(1,),
        sampler=lambda num, g: _sample_marginals(_iid_marginals([1 / 3, 1.0], 2), num, g),
        marginals=_iid_marginals([1 / 3, 1.0], 2),
        scale=3.0,
        description="1 item, 2 i.i.d. agents on {1, 3}: needs personalised prices",
        params={},
    )


def proposition2() -> SPMSetting:
    """Proposition 2: two identical items, three i.i.d. agents uniform on {1, 3}; scale 3.

    The optimal SPM needs adaptive prices (the paper's proof sketch).

    Returns
    -------
    SPMSetting
    """
    return SPMSetting(
        name="proposition2",
        n_agents=3,
        units=(2,),
        sampler=lambda num, g: _sample_marginals(_iid_marginals([1 / 3, 1.0], 3), num, g),
        marginals=_iid_marginals([1 / 3, 1.0], 3),
        scale=3.0,
        description="2 items, 3 i.i.d. agents on {1, 3}: needs adaptive prices",
        params={},
    )


def proposition4() -> SPMSetting:
    """Proposition 4: two identical items, four independent agents; normalised by 15.

    Agent 0 uniform on {1, 15}, agent 1 on {3, 12}, agents 2 and 3 on {2, 8} (the example of
    the proof, which the AAAI text defers to the extended version); the optimal SPM needs
    adaptive order and adaptive prices.

    Returns
    -------
    SPMSetting
    """
    half = torch.tensor([0.5, 0.5], dtype=_F64)
    marg = tuple(
        (torch.tensor(v, dtype=_F64).reshape(2, 1) / 15.0, half)
        for v in ([1.0, 15.0], [3.0, 12.0], [2.0, 8.0], [2.0, 8.0])
    )
    return SPMSetting(
        name="proposition4",
        n_agents=4,
        units=(2,),
        sampler=lambda num, g: _sample_marginals(marg, num, g),
        marginals=marg,
        scale=15.0,
        description="2 items, 4 independent agents: needs adaptive order and prices",
        params={},
    )

