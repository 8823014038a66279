"""Bridges between the batched torch mechanisms of the bandit auction and the exact tables.

The deviator environment and the process (:mod:`bilevel.models.dynamic`) take a mechanism as a
torch callable ``mechanism(history (E, τ+1, n, m), cumulative (E, n, m)) -> (allocation (E, n+1,
m), payments (E, n))``; the exact dynamic programs (``_exact.py``) take tables. This module
converts between them so that one mechanism can be audited both ways:

* :func:`exact_arrays` — the setting's support, prior, discount and kernel-per-experience arrays,
  exactly as the process applies them (the keyword arguments of the exact functions);
* :func:`tabulate` — any torch mechanism of a discrete, one-good, realised-allocation setting as
  a :class:`HistoryMechanism`, by calling it once per period on every public history (report
  profiles and realised winners) and every current report profile;
* :func:`markov_form` — a history table that depends on the history only through the
  experience profile, rewritten as a :class:`TabularMechanism` (which the exact Bayesian best
  response of several buyers needs);
* :func:`as_torch` — a :class:`TabularMechanism` as a torch callable (to train learned deviators
  against it or to simulate it).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from bilevel.models.dynamic import BanditAuctionSetting, Mechanism
from bilevel.models.dynamic import discrete_kernel as _torch_kernel
from bilevel.models.typing import FloatArray
from bilevel.solvers.dynamic._exact import (
    HistoryMechanism,
    TabularMechanism,
    _history_experience,
)

__all__ = ["MAX_TABULATED_ROWS", "as_torch", "exact_arrays", "markov_form", "tabulate"]

Tensor = torch.Tensor

#: Largest number of (history, report profile) rows :func:`tabulate` evaluates in one period.
MAX_TABULATED_ROWS = 2_000_000


def _check_exact_setting(setting: object, what: str) -> BanditAuctionSetting:
    if not isinstance(setting, BanditAuctionSetting):
        raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
    if not setting.discrete:
        raise ValueError(
            f"expected a discrete setting for {what} (exact tables need a finite type space), "
            "got continuous types"
        )
    if setting.n_goods != 1:
        raise ValueError(f"expected one good for {what}, got n_goods = {setting.n_goods}")
    if setting.allocation != "realized":
        raise ValueError(
            f"expected allocation='realized' for {what} (expected allocations make the "
            f"experience continuous), got {setting.allocation!r}"
        )
    return setting


def exact_arrays(setting: BanditAuctionSetting) -> dict[str, Any]:
    """The exact programs' view of a discrete one-good setting.

    Parameters
    ----------
    setting : BanditAuctionSetting
        Discrete types, one good, realised allocations.

    Returns
    -------
    dict
        ``support`` (V,), ``prior`` (V,), ``gamma`` and ``kernel`` (T, V, V) — ``kernel[k]`` is
        the move of a value at a consumption with ``k`` earlier consumptions, ``K(α)`` with
        ``α = kernel_rate · (k + 1)`` when the experience includes the current allocation (else
        ``k``), as :class:`bilevel.models.dynamic.BanditAuctionProcess` applies it — ready to
        pass as keyword arguments to :func:`truthful_value` and :func:`best_response_value`.

    Raises
    ------
    ValueError, TypeError
        For a continuous, multi-good or expected-allocation setting.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting
    >>> a = exact_arrays(make_bandit_setting("discrete", horizon=3))
    >>> a["support"].tolist(), a["kernel"].shape
    ([1.0, 2.0, 3.0], (3, 3, 3))
    """
    s = _check_exact_setting(setting, "the exact arrays")
    sup = s.support_tensor()
    shift = 1.0 if s.experience_includes_current else 0.0
    alphas = s.kernel_rate * (torch.arange(s.horizon, dtype=torch.float64) + shift)
    kernel = _torch_kernel(sup, alphas).numpy().copy()
    return {
        "support": sup.numpy().copy(),
        "prior": np.asarray(s.prior, dtype=np.float64),
        "gamma": float(s.gamma),
        "kernel": kernel,
    }


def tabulate(
    setting: BanditAuctionSetting, mechanism: Mechanism, *, name: str = "tabulated"
) -> HistoryMechanism:
    """Tabulate a torch mechanism over every public history: its exact form.

    Period τ's table has one row per history of τ (report profile, realised winner) pairs — in
    the order of :class:`HistoryMechanism` — and one column per current report profile. The
    mechanism is called once per period on all of them (``history`` holds the reports of
    periods 0..τ, ``cumulative`` the winners' counts before τ), so a mechanism that conditions on
    anything in the public record is tabulated exactly.

    Parameters
    ----------
    setting : BanditAuctionSetting
        Discrete types, one good, realised allocations.
    mechanism : Mechanism
        ``(history (E, τ+1, n, 1), cumulative (E, n, 1)) -> (allocation (E, n+1, 1), payments
        (E, n))``.
    name : str, optional
        Label of the result.

    Returns
    -------
    HistoryMechanism

    Raises
    ------
    ValueError
        For a setting without exact tables, a table too large (more than
        :data:`MAX_TABULATED_ROWS` rows in a period), or outputs of the wrong shape, outside
        [0, 1], or whose columns do not sum to 1.
    TypeError
        For a non-callable mechanism.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=2)
    >>> h = tabulate(s, posted_price(s, 2.0))
    >>> [a.shape for a in h.allocation]
    [(1, 3, 2), (6, 3, 2)]
    """
    s = _check_exact_setting(setting, "tabulate")
    if not callable(mechanism):
        raise TypeError(f"expected a callable mechanism, got {type(mechanism).__name__}")
    n, T, V = s.n_buyers, s.horizon, len(s.support)
    sup = s.support_tensor()
    n_prof = V**n
    prof = torch.tensor(list(itertools.product(range(V), repeat=n)), dtype=torch.int64)
    prof = prof.reshape(n_prof, n)
    branch = n_prof * (n + 1)
    if branch ** (T - 1) * n_prof > MAX_TABULATED_ROWS:
        raise ValueError(
            f"expected at most {MAX_TABULATED_ROWS} (history, report) rows per period, got "
            f"{branch ** (T - 1) * n_prof} at τ = {T - 1} (n = {n}, |V| = {V}, T = {T})"
        )
    allocs: list[FloatArray] = []
    pays: list[FloatArray] = []
    for tau in range(T):
        n_hist = branch**tau
        if tau:
            steps = torch.tensor(
                list(itertools.product(range(branch), repeat=tau)), dtype=torch.int64
            ).reshape(n_hist, tau)
        else:
            steps = torch.zeros(1, 0, dtype=torch.int64)
        past_prof, past_win = steps // (n + 1), steps % (n + 1)  # (H, τ)
        past = sup[prof[past_prof]]  # (H, τ, n)
        counts = torch.stack(
            [(past_win == j + 1).sum(dim=1) for j in range(n)], dim=1
        ).to(torch.float64)  # (H, n)
        rows = n_hist * n_prof
        history = torch.cat(
            [
                past.unsqueeze(1).expand(n_hist, n_prof, tau, n),
                sup[prof].reshape(1, n_prof, 1, n).expand(n_hist, n_prof, 1, n),
            ],
            dim=2,
        ).reshape(rows, tau + 1, n, 1)
        cumulative = counts.unsqueeze(1).expand(n_hist, n_prof, n).reshape(rows, n, 1)
        with torch.no_grad():
            out = mechanism(history, cumulative)
        x, p = _check_outputs(out, rows, n, tau)
        allocs.append(x.reshape(n_hist, n_prof, n + 1))
        pays.append(p.reshape(n_hist, n_prof, n))
    return HistoryMechanism(tuple(allocs), tuple(pays), name=name)


def _check_outputs(out: object, rows: int, n: int, tau: int) -> tuple[FloatArray, FloatArray]:
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(
            f"expected the mechanism to return (allocation, payments), got {type(out).__name__}"
        )
    x_t, p_t = out
    if not isinstance(x_t, Tensor) or tuple(x_t.shape) != (rows, n + 1, 1):
        got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
        raise ValueError(
            f"expected allocation of shape ({rows}, {n + 1}, 1) at τ = {tau}, got {got}"
        )
    if not isinstance(p_t, Tensor) or tuple(p_t.shape) != (rows, n):
        got = tuple(p_t.shape) if isinstance(p_t, Tensor) else type(p_t).__name__
        raise ValueError(f"expected payments of shape ({rows}, {n}) at τ = {tau}, got {got}")
    x = x_t.detach().to(device="cpu", dtype=torch.float64)[:, :, 0].numpy().copy()
    p = p_t.detach().to(device="cpu", dtype=torch.float64).numpy().copy()
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(p))):
        raise ValueError(f"expected finite allocation and payments at τ = {tau}, got NaN or inf")
    if x.min() < -1e-9 or x.max() > 1 + 1e-9 or np.abs(x.sum(axis=1) - 1).max() > 1e-6:
        raise ValueError(
            f"expected allocation probabilities in [0, 1] summing to 1 over null + buyers at "
            f"τ = {tau}, got a column sum deviation of {np.abs(x.sum(axis=1) - 1).max():.3g}"
        )
    x = np.clip(x, 0.0, 1.0)
    x /= x.sum(axis=1, keepdims=True)
    return x, p


def markov_form(
    mechanism: HistoryMechanism, *, atol: float = 1e-12
) -> TabularMechanism | None:
    """The :class:`TabularMechanism` of a history mechanism that only reads the experience.

    Parameters
    ----------
    mechanism : HistoryMechanism
    atol : float, default 1e-12
        Largest difference between two histories' rows with the same experience profile that
        still counts as equal.

    Returns
    -------
    TabularMechanism or None
        Tables over (τ, experience profile, report profile) — conditioned on experience only
        if some period's rows differ across experience profiles — or None when two histories
        with the same period and experience profile get different outcomes (the mechanism
        reads more of the history). Unreachable experience profiles (counts above τ) keep the
        good and charge nothing.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting, posted_price
    >>> s = make_bandit_setting("discrete", horizon=3)
    >>> markov_form(tabulate(s, posted_price(s, 2.0))).uses_experience
    False
    """
    if not isinstance(mechanism, HistoryMechanism):
        raise TypeError(f"expected a HistoryMechanism, got {type(mechanism).__name__}")
    n, T = mechanism.n, mechanism.horizon
    n_prof = mechanism.allocation[0].shape[1]
    exp = _history_experience(n, T, n_prof)
    n_exp = T**n
    alloc = np.zeros((T, n_exp, n_prof, n + 1))
    alloc[..., 0] = 1.0
    pay = np.zeros((T, n_exp, n_prof, n))
    for tau in range(T):
        a, q, e = mechanism.allocation[tau], mechanism.payments[tau], exp[tau]
        first = np.full(n_exp, -1, dtype=np.int64)
        rows = np.arange(e.size)[::-1]
        first[e[rows]] = rows  # the first history of each experience profile
        ref = first[e]
        if np.abs(a - a[ref]).max() > atol or np.abs(q - q[ref]).max() > atol:
            return None
        seen = first >= 0
        alloc[tau, seen] = a[first[seen]]
        pay[tau, seen] = q[first[seen]]
    reached = [np.unique(e) for e in exp]
    flat = all(
        np.abs(alloc[t, reached[t]] - alloc[t, reached[t][0]]).max() <= atol
        and np.abs(pay[t, reached[t]] - pay[t, reached[t][0]]).max() <= atol
        for t in range(T)
    )
    if flat:
        firsts = [int(reached[t][0]) for t in range(T)]
        alloc = np.stack([alloc[t, firsts[t]] for t in range(T)])[:, None]
        pay = np.stack([pay[t, firsts[t]] for t in range(T)])[:, None]
    return TabularMechanism(alloc, pay, name=mechanism.name)


def as_torch(mechanism: TabularMechanism, setting: BanditAuctionSetting) -> Mechanism:
    """A :class:`TabularMechanism` as the torch callable of the process and deviator env.

    Parameters
    ----------
    mechanism : TabularMechanism
        Tables over (τ, experience profile, report profile).
    setting : BanditAuctionSetting
        The discrete one-good setting it is played in (its support indexes the reports).

    Returns
    -------
    Mechanism
        Reads the current reports (which must lie on the support) and the experience counts
        (clipped at T − 1, as in the tables).

    Raises
    ------
    ValueError, TypeError
        For a mechanism whose (T, V**n, n + 1) does not fit the setting, or (when called)
        reports off the support.

    Examples
    --------
    >>> import torch
    >>> from bilevel.models.dynamic import make_bandit_setting
    >>> from bilevel.solvers.dynamic import posted_price
    >>> s = make_bandit_setting("discrete", horizon=2)
    >>> mech = as_torch(posted_price(2.0, n=1, horizon=2, support=s.support), s)
    >>> x, p = mech(torch.tensor([[[[3.0]]]]), torch.zeros(1, 1, 1))
    >>> x[0, :, 0].tolist(), p.tolist()
    ([0.0, 1.0], [[2.0]])
    """
    if not isinstance(mechanism, TabularMechanism):
        raise TypeError(f"expected a TabularMechanism, got {type(mechanism).__name__}")
    s = _check_exact_setting(setting, "as_torch")
    n, T, V = s.n_buyers, s.horizon, len(s.support)
    want = (T, V**n, n + 1)
    got = (mechanism.horizon, mechanism.allocation.shape[2], mechanism.allocation.shape[3])
    if got != want:
        raise ValueError(
            f"expected a mechanism with (T, V**n, n + 1) = {want} to fit the setting, got {got}"
        )
    alloc = torch.from_numpy(mechanism.allocation)
    pay = torch.from_numpy(mechanism.payments)
    sup = s.support_tensor()
    vw = torch.tensor([V ** (n - 1 - i) for i in range(n)], dtype=torch.int64)
    ew = torch.tensor([T ** (n - 1 - i) for i in range(n)], dtype=torch.int64)
    uses_exp = mechanism.uses_experience

    def tabular(history: Tensor, cumulative: Tensor) -> tuple[Tensor, Tensor]:
        tau = history.shape[1] - 1
        if not 0 <= tau < T:
            raise ValueError(f"expected a history of 1..{T} periods, got {tau + 1}")
        dev, dt = history.device, history.dtype
        rep = history[:, -1, :, 0].to(device="cpu", dtype=torch.float64)
        idx = torch.searchsorted(sup, rep.contiguous()).clamp(max=V - 1)
        if not bool((sup[idx] == rep).all()):
            raise ValueError(f"expected reports on the support {s.support}, got others")
        r = (idx * vw).sum(dim=1)
        if uses_exp:
            e = cumulative[:, :, 0].to(device="cpu").round().to(torch.int64).clamp(0, T - 1)
            k = (e * ew).sum(dim=1)
        else:
            k = torch.zeros_like(r)
        x = alloc[tau, k, r].unsqueeze(-1)  # (E, n + 1, 1)
        p = pay[tau, k, r]
        return x.to(device=dev, dtype=dt), p.to(device=dev, dtype=dt)

    return tabular
