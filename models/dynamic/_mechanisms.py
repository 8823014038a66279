"""Simple per-period mechanisms of the bandit auction (myopic baselines and test fixtures).

A mechanism here is any callable ``mechanism(history, cumulative) -> (allocation, payments)``:
``history`` (E, τ+1, n, m) holds the report profiles of periods 0..τ (the last is the current
one), ``cumulative`` (E, n, m) the allocations executed before τ; it returns allocation
probabilities (E, n+1, m) whose row 0 is the null buyer (each column sums to 1) and payments
(E, n). The two built here look at the current reports only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from bilevel.models.dynamic._setting import BanditAuctionSetting

__all__ = ["Mechanism", "posted_price", "second_price"]

Tensor = torch.Tensor

#: ``(history (E, τ+1, n, m), cumulative (E, n, m)) -> (allocation (E, n+1, m), payments (E, n))``.
Mechanism = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _prices(setting: BanditAuctionSetting, price: float | Sequence[float], what: str) -> Tensor:
    m = setting.n_goods
    if isinstance(price, bool):
        raise ValueError(f"expected {what} as a finite float or {m} floats, got {price!r}")
    vals = [float(price)] * m if isinstance(price, (int, float)) else [float(p) for p in price]
    if len(vals) != m or not all(torch.isfinite(torch.tensor(vals))):
        raise ValueError(f"expected {what} as a finite float or {m} floats, got {price!r}")
    return torch.tensor(vals, dtype=torch.float64)


def _winners(reports: Tensor, reserve: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Highest report per good (ties: lowest index), whether it meets the reserve, and the
    second-highest report (``-inf`` with one buyer)."""
    n = reports.shape[1]
    best, who = reports.max(dim=1)  # first maximum: lowest index
    ok = best >= reserve.to(reports)
    if n > 1:
        masked = reports.scatter(1, who.unsqueeze(1), -torch.inf)
        second = masked.max(dim=1).values
    else:
        second = torch.full_like(best, -torch.inf)
    return who, ok, second


def _outcome(who: Tensor, ok: Tensor, price: Tensor, n: int) -> tuple[Tensor, Tensor]:
    winner = torch.where(ok, who + 1, torch.zeros_like(who))  # 0 = null buyer
    alloc = torch.nn.functional.one_hot(winner, n + 1).to(price.dtype).permute(0, 2, 1)
    pay = (alloc[:, 1:, :] * price.unsqueeze(1)).sum(-1)
    return alloc, pay


def posted_price(setting: BanditAuctionSetting, price: float | Sequence[float]) -> Mechanism:
    """Per-period posted prices: each good goes to the highest report ``>= price``, who pays it.

    With one buyer this is "allocate iff the report is at least ``p`` and charge ``p``".

    Parameters
    ----------
    setting : BanditAuctionSetting
    price : float or m floats

    Returns
    -------
    Mechanism

    Examples
    --------
    >>> import torch
    >>> from bilevel.models.dynamic import make_bandit_setting
    >>> mech = posted_price(make_bandit_setting("discrete"), 2.0)
    >>> x, p = mech(torch.tensor([[[[3.0]]], [[[1.0]]]]), torch.zeros(2, 1, 1))
    >>> x[:, :, 0].tolist(), p.tolist()
    ([[0.0, 1.0], [1.0, 0.0]], [[2.0], [0.0]])
    """
    prices = _prices(setting, price, "price")
    n = setting.n_buyers

    def mechanism(history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        reports = history[:, -1]
        who, ok, _ = _winners(reports, prices)
        return _outcome(who, ok, prices.to(reports).expand(reports.shape[0], -1), n)

    return mechanism


def second_price(
    setting: BanditAuctionSetting, reserve: float | Sequence[float] = 0.0
) -> Mechanism:
    """Per-period (myopic) second-price auctions, one per good, with a reserve.

    The highest report ``>= reserve`` wins (ties: the lowest buyer index) and pays
    ``max(reserve, second-highest report)``.

    Parameters
    ----------
    setting : BanditAuctionSetting
    reserve : float or m floats

    Returns
    -------
    Mechanism
    """
    res = _prices(setting, reserve, "reserve")
    n = setting.n_buyers

    def mechanism(history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        reports = history[:, -1]
        who, ok, second = _winners(reports, res)
        price = torch.maximum(second, res.to(reports))
        return _outcome(who, ok, price, n)

    return mechanism
