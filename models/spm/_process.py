"""The batched SPM decision process: ``E`` episodes of a sequential price mechanism at once.

One row is one run of the mechanism on one value profile. Each step the mechanism picks a
remaining agent and posts one price per item type; the agent takes its utility-maximising
bundle (its dominant strategy) and pays its prices; the episode ends when no agent or no unit
remains (the SPM protocol and POMDP of Brero et al. (2021), "Preliminaries" and "Learning Optimal
SPMs"), or optionally only after every agent was visited (SP-B, the authors' Stackelberg POMDP
code; ``docs/references.md``).
Everything is plain torch tensors, so learners and exact evaluators drive the same arithmetic.

Buyer's response
    Unit demand: the agent takes one unit of the available type with the highest utility
    ``v_ij - p_j`` (ties between types: the lowest type index) if that utility is positive
    (``tie="strict"``, the default and SP-B's rule) or non-negative (``tie="weak"``, SP-A's).
    Additive across types: the agent takes one unit of every available type with positive
    (resp. non-negative) utility.

Observation statistics (``statistic=``), all in [0, 1] when prices are in [0, 1]
    ``"none"``              a constant 1 (ASP baseline: no history), dim 1;
    ``"agents_left"``       remaining-agent indicators (PSP baseline, Prop. 6), dim n;
    ``"items_agents_left"`` + remaining units of each type over its initial units, dim n + d;
    ``"allocation"``        + the n x d allocation matrix (units held), dim n + d + n d;
    ``"price_allocation"``  + the n x d prices each visited agent faced (0 before its visit),
    dim n + d + 2 n d (the full history).
"""

from __future__ import annotations

import torch

from bilevel.models.spm._optimum import optimal_welfare
from bilevel.models.spm._setting import OBJECTIVES, SPMSetting

__all__ = ["HORIZONS", "STATISTICS", "TIE_RULES", "SPMProcess", "observation_dim"]

Tensor = torch.Tensor

#: Observation statistics, from least to most informative.
STATISTICS = ("none", "agents_left", "items_agents_left", "allocation", "price_allocation")

#: Buyer tie rules: buy only at positive utility, or also at zero utility.
TIE_RULES = ("strict", "weak")

#: Episode ends: when no agent or no unit remains (the paper, SP-A), or only once every agent
#: has been visited (SP-B's fixed horizon of n steps; later visits cannot buy).
HORIZONS = ("early", "full")


def observation_dim(statistic: str, n: int, d: int) -> int:
    """Length of one observation of ``statistic`` with ``n`` agents and ``d`` item types.

    Parameters
    ----------
    statistic : str
        One of :data:`STATISTICS`.
    n, d : int

    Returns
    -------
    int

    Examples
    --------
    >>> observation_dim("price_allocation", 20, 1)
    61
    """
    dims = {
        "none": 1,
        "agents_left": n,
        "items_agents_left": n + d,
        "allocation": n + d + n * d,
        "price_allocation": n + d + 2 * n * d,
    }
    if statistic not in dims:
        raise ValueError(f"expected statistic in {STATISTICS}, got {statistic!r}")
    return dims[statistic]


class SPMProcess:
    """``E`` rows of the SPM decision process stepped in lockstep.

    Parameters
    ----------
    setting : SPMSetting
        Agents, item types, units and valuation class.
    objective : {"welfare", "revenue", "maxmin"}, optional
        Default: the setting's objective.
    tie : {"strict", "weak"}, optional
        Buyer tie rule (see the module docstring); default ``"strict"``.
    horizon : {"early", "full"}, optional
        End episodes when units run out (default) or always after ``n`` steps.
    device : torch.device or str, optional
    dtype : torch.dtype, optional
        Dtype of values, prices and observations (float64 for exact evaluation).

    Attributes
    ----------
    values : Tensor, shape (E, n, d)
        The rows' value profiles.
    agents_left : Tensor, shape (E, n), bool
        Agents not yet visited.
    items_left : Tensor, shape (E, d)
        Remaining units of each type (as floats).
    allocation : Tensor, shape (E, n, d)
        Units of each type held by each agent.
    payments : Tensor, shape (E, n)
        Payments so far.
    prices_faced : Tensor, shape (E, n, d)
        The prices each visited agent was offered (0 for agents not yet visited).
    steps : Tensor, shape (E,), int64
        Steps taken in each row's episode.
    done : Tensor, shape (E,), bool
        Rows whose episode has ended (a step on them is a no-op).
    optimum : Tensor, shape (E,)
        Ex-post optimal welfare OPT(v) of each row (the welfare-loss baseline).

    Examples
    --------
    Proposition 1 (normalised by 3): agent 0 at price 2/3, then agent 1 at price 0.

    >>> from bilevel.models.spm import make_spm_setting
    >>> proc = SPMProcess(make_spm_setting("proposition1"), dtype=torch.float64)
    >>> proc.reset(torch.tensor([[[1 / 3], [1.0]], [[1 / 3], [1 / 3]]], dtype=torch.float64))
    >>> proc.step(torch.tensor([0, 0]), torch.tensor([[2 / 3], [2 / 3]]))
    tensor([False, False])
    >>> proc.step(torch.tensor([1, 1]), torch.tensor([[0.0], [0.0]]))
    tensor([True, True])
    >>> (proc.objective() * 3).tolist()
    [3.0, 1.0]
    """

    def __init__(
        self,
        setting: SPMSetting,
        *,
        objective: str | None = None,
        tie: str = "strict",
        horizon: str = "early",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(setting, SPMSetting):
            raise TypeError(f"expected an SPMSetting, got {type(setting).__name__}")
        obj = setting.objective if objective is None else objective
        if obj not in OBJECTIVES:
            raise ValueError(f"expected objective in {OBJECTIVES}, got {obj!r}")
        if tie not in TIE_RULES:
            raise ValueError(f"expected tie in {TIE_RULES}, got {tie!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"expected a floating dtype, got {dtype}")
        self.setting = setting
        self.objective_name = obj
        if horizon not in HORIZONS:
            raise ValueError(f"expected horizon in {HORIZONS}, got {horizon!r}")
        self.tie = tie
        self.horizon = horizon
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.n = setting.n_agents
        self.d = setting.n_types
        self.units = torch.tensor(setting.units, dtype=dtype, device=self.device)
        self._alloc_empty(0)

    # ------------------------------------------------------------------ state

    def _alloc_empty(self, E: int) -> None:
        n, d, dev, dt = self.n, self.d, self.device, self.dtype
        self.values = torch.zeros(E, n, d, dtype=dt, device=dev)
        self.agents_left = torch.ones(E, n, dtype=torch.bool, device=dev)
        self.items_left = self.units.expand(E, d).clone()
        self.allocation = torch.zeros(E, n, d, dtype=dt, device=dev)
        self.payments = torch.zeros(E, n, dtype=dt, device=dev)
        self.prices_faced = torch.zeros(E, n, d, dtype=dt, device=dev)
        self.steps = torch.zeros(E, dtype=torch.int64, device=dev)
        self.done = torch.zeros(E, dtype=torch.bool, device=dev)
        self.optimum = torch.zeros(E, dtype=dt, device=dev)

    @property
    def num_rows(self) -> int:
        """Number of rows ``E`` (set by the last :meth:`reset`)."""
        return int(self.values.shape[0])

    def _check_values(self, values: Tensor) -> Tensor:
        if not isinstance(values, torch.Tensor):
            raise TypeError(f"expected values as a Tensor, got {type(values).__name__}")
        if values.ndim != 3 or tuple(values.shape[1:]) != (self.n, self.d):
            raise ValueError(
                f"expected values of shape (E, {self.n}, {self.d}), got {tuple(values.shape)}"
            )
        return values.to(dtype=self.dtype, device=self.device)

    def reset(self, values: Tensor) -> None:
        """Start one episode per given value profile (one row each).

        Parameters
        ----------
        values : Tensor, shape (E, n, d)
            Value profiles (sampled with :meth:`SPMSetting.sample` or enumerated).
        """
        v = self._check_values(values)
        self._alloc_empty(int(v.shape[0]))
        self.values = v.clone()
        self.optimum = self._optimum(self.values)

    def reset_rows(self, rows: Tensor, values: Tensor) -> None:
        """Restart the episodes of some rows (auto-reset).

        Parameters
        ----------
        rows : Tensor, shape (E,), bool
            Rows to restart.
        values : Tensor, shape (int(rows.sum()), n, d)
            Their new value profiles, in row order.
        """
        if rows.shape != (self.num_rows,) or rows.dtype != torch.bool:
            raise ValueError(
                f"expected rows as a bool tensor of shape ({self.num_rows},), "
                f"got {rows.dtype} {tuple(rows.shape)}"
            )
        v = self._check_values(values)
        idx = rows.nonzero().squeeze(1)
        if v.shape[0] != idx.shape[0]:
            raise ValueError(f"expected {idx.shape[0]} value profiles, got {v.shape[0]}")
        if idx.numel() == 0:
            return
        self.values[idx] = v
        self.agents_left[idx] = True
        self.items_left[idx] = self.units
        self.allocation[idx] = 0.0
        self.payments[idx] = 0.0
        self.prices_faced[idx] = 0.0
        self.steps[idx] = 0
        self.done[idx] = False
        self.optimum[idx] = self._optimum(v)

    def _optimum(self, values: Tensor) -> Tensor:
        return optimal_welfare(values, self.setting.units, self.setting.valuation)

    # ------------------------------------------------------------------ dynamics

    def agent_mask(self) -> Tensor:
        """Agents that may be chosen now.

        Returns
        -------
        Tensor, shape (E, n), bool
            The remaining agents of each active row; all True for finished rows (whose step is
            a no-op), so that every row has a legal choice.
        """
        return self.agents_left | self.done.unsqueeze(1)

    def step(self, agent: Tensor, prices: Tensor, *, validate: bool = True) -> Tensor:
        """Visit one agent per row at the given prices.

        Parameters
        ----------
        agent : Tensor, shape (E,), int64
            The agent visited in each row; must be a remaining agent in active rows.
        prices : Tensor, shape (E, d)
            The price of one unit of each type offered to that agent.
        validate : bool, optional
            Check that every active row visits a remaining agent and that prices are finite
            (host synchronisations).

        Returns
        -------
        Tensor, shape (E,), bool
            Rows whose episode ended with this step.

        Raises
        ------
        ValueError
            For wrong shapes, non-finite prices or a visited agent chosen again.
        """
        E = self.num_rows
        if agent.shape != (E,):
            raise ValueError(f"expected agent of shape ({E},), got {tuple(agent.shape)}")
        if prices.shape != (E, self.d):
            raise ValueError(f"expected prices of shape ({E}, {self.d}), got {tuple(prices.shape)}")
        agent = agent.to(device=self.device, dtype=torch.int64)
        prices = prices.to(device=self.device, dtype=self.dtype)
        rows = torch.arange(E, device=self.device)
        active = ~self.done
        if validate:
            if bool(((agent < 0) | (agent >= self.n)).any()):
                raise ValueError(f"expected agent indices in [0, {self.n}), got {agent.tolist()}")
            if not bool(torch.isfinite(prices).all()):
                raise ValueError("expected finite prices, got NaN or inf")
            if bool((active & ~self.agents_left[rows, agent]).any()):
                raise ValueError(
                    "expected a remaining agent in every active row, got a visited one"
                )
        agent = agent.clamp(0, self.n - 1)
        v = self.values[rows, agent]  # (E, d)
        avail = self.items_left > 0
        util = v - prices
        ok = util > 0 if self.tie == "strict" else util >= 0
        if self.setting.valuation == "unit_demand":
            best = torch.where(avail, util, torch.full_like(util, -torch.inf)).argmax(dim=1)
            take = torch.nn.functional.one_hot(best, self.d).to(torch.bool)
            bought = take & ok & avail
        else:
            bought = ok & avail
        bought = bought & active.unsqueeze(1)
        b = bought.to(self.dtype)
        self.items_left = self.items_left - b
        self.allocation[rows, agent] = self.allocation[rows, agent] + b
        self.payments[rows, agent] = self.payments[rows, agent] + (b * prices).sum(1)
        act = active.unsqueeze(1)
        self.prices_faced[rows, agent] = torch.where(act, prices, self.prices_faced[rows, agent])
        self.agents_left[rows, agent] = self.agents_left[rows, agent] & ~active
        self.steps = self.steps + active.to(torch.int64)
        finished = ~self.agents_left.any(dim=1)
        if self.horizon == "early":
            finished = finished | (self.items_left.sum(dim=1) <= 0)
        ended = active & finished
        self.done = self.done | ended
        return ended

    # ------------------------------------------------------------------ outcomes

    def agent_values(self) -> Tensor:
        """Each agent's value for its current bundle.

        Returns
        -------
        Tensor, shape (E, n)
        """
        return (self.allocation.clamp(max=1.0) * self.values).sum(dim=2)

    def objective(self, name: str | None = None) -> Tensor:
        """The objective of each row's current (final, once done) outcome.

        Parameters
        ----------
        name : {"welfare", "revenue", "maxmin"}, optional
            Default: the process's objective.

        Returns
        -------
        Tensor, shape (E,)
        """
        obj = self.objective_name if name is None else name
        if obj == "welfare":
            return self.agent_values().sum(dim=1)
        if obj == "revenue":
            return self.payments.sum(dim=1)
        if obj == "maxmin":
            return self.agent_values().min(dim=1).values
        raise ValueError(f"expected objective in {OBJECTIVES}, got {obj!r}")

    def observation(self, statistic: str = "price_allocation") -> Tensor:
        """The observation statistic of every row (see the module docstring).

        Parameters
        ----------
        statistic : str
            One of :data:`STATISTICS`.

        Returns
        -------
        Tensor, shape (E, observation_dim(statistic, n, d))
        """
        E = self.num_rows
        if statistic == "none":
            return torch.ones(E, 1, dtype=self.dtype, device=self.device)
        agents = self.agents_left.to(self.dtype)
        if statistic == "agents_left":
            return agents
        parts = [agents, self.items_left / self.units]
        if statistic == "items_agents_left":
            return torch.cat(parts, dim=1)
        parts.append(self.allocation.reshape(E, -1))
        if statistic == "allocation":
            return torch.cat(parts, dim=1)
        if statistic == "price_allocation":
            parts.append(self.prices_faced.reshape(E, -1))
            return torch.cat(parts, dim=1)
        raise ValueError(f"expected statistic in {STATISTICS}, got {statistic!r}")
