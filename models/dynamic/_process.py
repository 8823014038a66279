"""The batched bandit-auction process: ``E`` episodes of a dynamic mechanism at once.

One row is one episode. Every period τ = 0..T-1 each buyer reports a value vector, the caller
(a mechanism) supplies allocation probabilities and payments, and :meth:`BanditAuctionProcess.step`
applies the dynamics of the paper's Appendix D.2 (with Table 2's kernels): buyer ``i`` earns
``Σ_j v_ij a_ij - p_i``, the seller ``Σ_i p_i - Σ_ij c_ij a_ij``, and each consumed good moves
its value (allocation-dependent learning), where ``a`` is the realised 0/1 allocation
(``allocation="realized"``: one winner per good drawn from its column and made public) or the
probabilities themselves (``"expected"``). Rows advance in lockstep (every episode lasts ``T``).

Randomness comes from explicit generators only: each :meth:`~BanditAuctionProcess.reset` and
:meth:`~BanditAuctionProcess.step` draws one salt from the generator it is given, and row ``r``'s
numbers are a hash of (salt, r) (:mod:`bilevel.models.dynamic._random`), so the first 8 rows of
``E = 64`` equal ``E = 8`` with the same seed. Draws use fixed slots (allocation, move, value), so
the two allocation modes consume the same numbers and agree exactly on 0/1 allocations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bilevel.models.dynamic._kernels import continuous_sigma, continuous_step
from bilevel.models.dynamic._random import draw_salt, normals, uniforms
from bilevel.models.dynamic._setting import BanditAuctionSetting

__all__ = ["BanditAuctionProcess", "BanditStep"]

Tensor = torch.Tensor

_SLOT_ALLOCATION, _SLOT_MOVE, _SLOT_VALUE = 1, 2, 3


@dataclass(frozen=True)
class BanditStep:
    """What one period of :class:`BanditAuctionProcess` produced (undiscounted).

    Attributes
    ----------
    utility : Tensor, shape (E, n)
        Buyers' rewards ``Σ_j v_ij a_ij - p_i`` at their true values.
    revenue : Tensor, shape (E,)
        The seller's reward ``Σ_i p_i - Σ_ij c_ij a_ij``.
    welfare : Tensor, shape (E,)
        Total surplus ``Σ_ij (v_ij - c_ij) a_ij``.
    allocation : Tensor, shape (E, n + 1, m)
        The executed allocation ``a`` (row 0: the null buyer): realised 0/1 draws, or the
        probabilities in ``"expected"`` mode.
    done : Tensor, shape (E,), bool
        Whether this was the last period.
    """

    utility: Tensor
    revenue: Tensor
    welfare: Tensor
    allocation: Tensor
    done: Tensor


class BanditAuctionProcess:
    """``E`` rows of the bandit auction stepped in lockstep.

    Parameters
    ----------
    setting : BanditAuctionSetting
    device : torch.device or str, optional
    dtype : torch.dtype, optional
        Floating dtype of values, allocations and rewards (default float64).

    Attributes
    ----------
    values : Tensor, shape (E, n, m)
        True current valuations ``v_τ``.
    experience : Tensor, shape (E, n, m)
        Executed allocations summed over the periods before τ (whole consumptions when
        realised, probabilities when expected); also the public cumulative allocation.
    reports : Tensor, shape (E, T, n, m)
        Report history (periods ≥ τ are zero).
    last_allocation : Tensor, shape (E, n + 1, m)
        The executed allocation of period τ - 1 (zeros at τ = 0).
    tau : int
        The current period (``T`` once finished).
    total_utility : Tensor, shape (E, n)
        Discounted buyers' utilities so far, ``Σ_k γ^k u_{i,k}``.
    total_revenue, total_welfare : Tensor, shape (E,)
        Discounted seller reward and surplus so far.

    Examples
    --------
    One buyer at posted price 2 for three periods, all rows truthful:

    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=3)
    >>> proc, mech = BanditAuctionProcess(s), posted_price(s, 2.0)
    >>> g = torch.Generator().manual_seed(1)
    >>> proc.reset(50_000, g)
    >>> while not proc.finished:
    ...     x, p = mech(proc.history_with(proc.values), proc.experience)
    ...     _ = proc.step(proc.values, x, p, g)
    >>> abs(float(proc.total_revenue.mean()) - 3.232044) < 0.05   # the exact value, sampled
    True
    """

    def __init__(
        self,
        setting: BanditAuctionSetting,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if not isinstance(setting, BanditAuctionSetting):
            raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"expected a floating dtype, got {dtype}")
        self.setting = setting
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.n, self.m, self.T = setting.n_buyers, setting.n_goods, setting.horizon
        self._costs = setting.cost_tensor(dtype=dtype, device=self.device)
        self._support = setting.support_tensor(dtype=dtype, device=self.device)
        self._alloc_empty(0)

    # ------------------------------------------------------------------ state

    def _alloc_empty(self, E: int) -> None:
        n, m, T, dev, dt = self.n, self.m, self.T, self.device, self.dtype
        self.values = torch.zeros(E, n, m, dtype=dt, device=dev)
        self.experience = torch.zeros(E, n, m, dtype=dt, device=dev)
        self.reports = torch.zeros(E, T, n, m, dtype=dt, device=dev)
        self.last_allocation = torch.zeros(E, n + 1, m, dtype=dt, device=dev)
        self.total_utility = torch.zeros(E, n, dtype=dt, device=dev)
        self.total_revenue = torch.zeros(E, dtype=dt, device=dev)
        self.total_welfare = torch.zeros(E, dtype=dt, device=dev)
        self.tau = 0
        self._rows = torch.arange(E, dtype=torch.int64, device=dev)

    @property
    def num_rows(self) -> int:
        """Number of rows ``E`` (set by the last :meth:`reset`)."""
        return int(self.values.shape[0])

    @property
    def finished(self) -> bool:
        """Whether every row has played its ``T`` periods."""
        return self.tau >= self.T

    @property
    def done(self) -> Tensor:
        """Rows whose episode has ended, shape (E,), bool (all equal: rows are in lockstep)."""
        return torch.full((self.num_rows,), self.finished, dtype=torch.bool, device=self.device)

    @property
    def cumulative_allocation(self) -> Tensor:
        """The public cumulative allocation before τ, shape (E, n, m) (= :attr:`experience`)."""
        return self.experience

    def reset(
        self, num: int, generator: torch.Generator, *, values: Tensor | None = None
    ) -> None:
        """Start ``num`` episodes at τ = 0.

        Parameters
        ----------
        num : int
            Rows ``E``.
        generator : torch.Generator
            Draws the initial values (one salt; row ``r`` depends on it and ``r`` only).
        values : Tensor, shape (num, n, m), optional
            Given initial values instead of draws (in the support or the box).

        Raises
        ------
        ValueError
            For a bad ``num`` or values of the wrong shape or outside the type space.
        """
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise ValueError(f"expected num as an int >= 0, got {num!r}")
        self._alloc_empty(num)
        if values is None:
            salt = draw_salt(generator)
            v = self.setting.initial_values(salt, self._rows, dtype=self.dtype)
        else:
            v = self._check_types(values, "values", (num, self.n, self.m))
        self.values = v.to(device=self.device, dtype=self.dtype).clone()

    # ------------------------------------------------------------------ checks

    def _check_types(self, x: Tensor, what: str, shape: tuple[int, ...]) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"expected {what} as a Tensor, got {type(x).__name__}")
        if tuple(x.shape) != shape:
            raise ValueError(f"expected {what} of shape {shape}, got {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=self.dtype)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"expected finite {what}, got NaN or inf")
        if self.setting.discrete:
            ok = ((x.unsqueeze(-1) - self._support).abs() <= 1e-9).any(-1)
            if not bool(ok.all()):
                raise ValueError(
                    f"expected {what} in the support {self.setting.support}, "
                    f"got {x[~ok][0].item()}"
                )
        else:
            lo, hi = self.setting.bounds
            if float(x.min()) < lo or float(x.max()) > hi:
                raise ValueError(
                    f"expected {what} in [{lo}, {hi}], got [{float(x.min())}, {float(x.max())}]"
                )
        return x

    def _check_outcome(self, allocation: Tensor, payments: Tensor) -> tuple[Tensor, Tensor]:
        E, n, m = self.num_rows, self.n, self.m
        if not isinstance(allocation, Tensor) or tuple(allocation.shape) != (E, n + 1, m):
            got = tuple(allocation.shape) if isinstance(allocation, Tensor) else type(allocation)
            raise ValueError(f"expected allocation of shape ({E}, {n + 1}, {m}), got {got}")
        if not isinstance(payments, Tensor) or tuple(payments.shape) != (E, n):
            got = tuple(payments.shape) if isinstance(payments, Tensor) else type(payments)
            raise ValueError(f"expected payments of shape ({E}, {n}), got {got}")
        x = allocation.to(device=self.device, dtype=self.dtype)
        p = payments.to(device=self.device, dtype=self.dtype)
        if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(p).all()):
            raise ValueError("expected finite allocation and payments, got NaN or inf")
        if E and (float(x.min()) < -1e-12 or float(x.max()) > 1 + 1e-12):
            raise ValueError(
                f"expected allocation probabilities in [0, 1], got [{float(x.min())}, "
                f"{float(x.max())}]"
            )
        cols = x.sum(1)
        if E and float((cols - 1.0).abs().max()) > 1e-9:
            raise ValueError(
                "expected allocation columns (null buyer + buyers) summing to 1, got sums in "
                f"[{float(cols.min())}, {float(cols.max())}]"
            )
        return x.clamp(0.0, 1.0), p

    # ------------------------------------------------------------------ dynamics

    def history_with(self, reports: Tensor) -> Tensor:
        """The report history of periods 0..τ with ``reports`` as period τ's profile.

        Parameters
        ----------
        reports : Tensor, shape (E, n, m)

        Returns
        -------
        Tensor, shape (E, τ + 1, n, m)
        """
        r = reports.to(device=self.device, dtype=self.dtype)
        return torch.cat([self.reports[:, : self.tau], r.unsqueeze(1)], dim=1)

    def step(
        self,
        reports: Tensor,
        allocation: Tensor,
        payments: Tensor,
        generator: torch.Generator,
        *,
        validate: bool = True,
    ) -> BanditStep:
        """Play period τ: record the reports, execute the outcome, move the consumed values.

        Parameters
        ----------
        reports : Tensor, shape (E, n, m)
            The period's report profile (recorded in :attr:`reports`).
        allocation : Tensor, shape (E, n + 1, m)
            Allocation probabilities; row 0 is the null buyer, rows 1..n the buyers; each
            column sums to 1.
        payments : Tensor, shape (E, n)
            Transfers paid by the buyers (any sign).
        generator : torch.Generator
            One salt is drawn from it for the allocation and value draws.
        validate : bool, optional
            Check shapes, ranges and column sums (host synchronisations).

        Returns
        -------
        BanditStep

        Raises
        ------
        ValueError
            After the last period, or for invalid inputs when ``validate``.
        """
        if self.finished:
            raise ValueError(f"expected an unfinished episode (call reset), got τ = {self.tau}")
        E, n, m, s = self.num_rows, self.n, self.m, self.setting
        if validate:
            rep = self._check_types(reports, "reports", (E, n, m))
            x, p = self._check_outcome(allocation, payments)
        else:
            rep = reports.to(device=self.device, dtype=self.dtype)
            x = allocation.to(device=self.device, dtype=self.dtype)
            p = payments.to(device=self.device, dtype=self.dtype)
        salt = draw_salt(generator)
        rows = self._rows
        if s.allocation == "realized":
            u = uniforms(salt, _SLOT_ALLOCATION, rows, m).to(self.dtype)  # (E, m)
            cum = x.cumsum(dim=1)  # (E, n + 1, m)
            winner = (cum <= u.unsqueeze(1) * cum[:, -1:, :]).sum(dim=1).clamp(max=n)
            a = torch.nn.functional.one_hot(winner, n + 1).to(self.dtype).permute(0, 2, 1)
        else:
            a = x
        ab = a[:, 1:, :]  # (E, n, m)
        gross = self.values * ab
        cost = (self._costs * ab).sum(dim=(1, 2))
        utility = gross.sum(dim=2) - p
        revenue = p.sum(dim=1) - cost
        welfare = gross.sum(dim=(1, 2)) - cost
        # ---- valuation dynamics (per buyer and good, independently)
        before = self.experience
        alpha = s.kernel_rate * (before + ab if s.experience_includes_current else before)
        if s.discrete:
            if s.allocation == "realized":
                move = ab > 0.5
            else:
                u_move = uniforms(salt, _SLOT_MOVE, rows, n * m).reshape(E, n, m)
                move = u_move.to(self.dtype) < ab
            dist = (self._support - self.values.unsqueeze(-1)).abs()  # (E, n, m, K)
            cdf = torch.softmax(-alpha.unsqueeze(-1) * dist, dim=-1).cumsum(dim=-1)
            u_val = uniforms(salt, _SLOT_VALUE, rows, n * m).reshape(E, n, m, 1).to(self.dtype)
            new = self._support[(u_val >= cdf[..., :-1]).sum(dim=-1)]
            self.values = torch.where(move, new, self.values)
        else:
            sigma = continuous_sigma(ab, alpha, s.sigma_no)
            z = normals(salt, _SLOT_VALUE, rows, n * m).reshape(E, n, m).to(self.dtype)
            self.values = continuous_step(self.values, sigma, z, s.low, s.high)
        self.experience = before + ab
        self.reports[:, self.tau] = rep
        self.last_allocation = a
        disc = s.gamma**self.tau
        self.total_utility = self.total_utility + disc * utility
        self.total_revenue = self.total_revenue + disc * revenue
        self.total_welfare = self.total_welfare + disc * welfare
        self.tau += 1
        return BanditStep(utility, revenue, welfare, a, self.done)
