"""The value kernels of the bandit auction (Appendix D.2, Table 2 of the paper).

Discrete types
    Once good ``j`` is allocated to buyer ``i``, the value moves from ``v`` to ``v'`` in the
    support ``V`` with probability ``exp(-α |v' - v|) / Σ_{u ∈ V} exp(-α |u - v|)``, where
    ``α = rate · experience`` (``rate = 1/2``). A good that is not allocated keeps its value
    exactly: the per-(i, j) transition is the mixture ``x · R + (1 - x) · 1{v' = v}``. More
    experience makes the value stickier; ``α = 0`` is a uniform redraw.
Continuous types
    In logit space ``s = log(v* / (1 - v*))`` with ``v* = (v - low) / (high - low)``, the next
    logit is ``s' ~ N(s, σ)`` with the *standard deviation*
    ``σ = (1 - x) σ_no + x / (1 + α)`` (``σ_no = 0.01``), then ``v' = low + (high - low) ·
    sigmoid(s')``. Goods that are not allocated still drift, by ``σ_no``.

The extraction of Table 2 lost the minus signs of the exponent and of the mixture's ``1 - x``;
they are restored here. Which periods the experience counts (``α`` with or without the current
allocation) is the setting's ``experience_includes_current`` (see
:class:`bilevel.models.dynamic.BanditAuctionSetting`).

Examples
--------
>>> import torch
>>> row = discrete_kernel(torch.tensor([1.0, 2.0, 3.0]), 0.5)[0]
>>> [round(p, 4) for p in row.tolist()]
[0.5065, 0.3072, 0.1863]
>>> float(continuous_sigma(torch.tensor(1.0), torch.tensor(0.0), 0.01))
1.0
"""

from __future__ import annotations

import torch

__all__ = ["continuous_sigma", "continuous_step", "discrete_kernel", "logit_box", "sigmoid_box"]

Tensor = torch.Tensor

#: Values are clamped this far inside the box before the logit (the logit of a bound is infinite).
BOX_EPS = 1e-12


def discrete_kernel(support: Tensor, alpha: Tensor | float) -> Tensor:
    """Rows of the discrete kernel ``R(v' | v; α)`` for every ``v`` of the support.

    Parameters
    ----------
    support : Tensor, shape (K,)
        The value support ``V`` (sorted or not; rows and columns follow its order).
    alpha : Tensor of any shape ``B``, or float
        The stickiness ``α >= 0`` (``rate × experience``).

    Returns
    -------
    Tensor, shape (*B, K, K)
        ``out[..., a, b] = R(support[b] | support[a]; α)``; every row sums to 1.

    Raises
    ------
    ValueError
        For a support that is not one-dimensional and non-empty, or a negative ``α``.
    """
    if not isinstance(support, Tensor) or support.ndim != 1 or support.numel() < 1:
        raise ValueError(f"expected support as a non-empty 1-D tensor, got {support!r}")
    a = torch.as_tensor(alpha, dtype=support.dtype, device=support.device)
    if bool((a < 0).any()):
        raise ValueError(f"expected alpha >= 0, got {a.min().item()}")
    dist = (support.unsqueeze(0) - support.unsqueeze(1)).abs()  # (K, K): |v' - v|
    return torch.softmax(-a[..., None, None] * dist, dim=-1)


def continuous_sigma(x: Tensor, alpha: Tensor, sigma_no: float) -> Tensor:
    """The logit-step standard deviation ``σ = (1 - x) σ_no + x / (1 + α)``.

    Parameters
    ----------
    x : Tensor, any shape
        Allocation (probability in ``[0, 1]``, or the realised 0/1 indicator).
    alpha : Tensor, broadcastable to ``x``
        ``rate × experience`` (``>= 0``).
    sigma_no : float
        Drift of a good that is not allocated.

    Returns
    -------
    Tensor, broadcast shape of ``x`` and ``alpha``
    """
    return (1.0 - x) * sigma_no + x / (1.0 + alpha)


def logit_box(v: Tensor, low: float, high: float) -> Tensor:
    """``log(v* / (1 - v*))`` with ``v* = (v - low) / (high - low)`` clamped into the open box.

    Parameters
    ----------
    v : Tensor, any shape
    low, high : float

    Returns
    -------
    Tensor, shape of ``v``
    """
    s = ((v - low) / (high - low)).clamp(BOX_EPS, 1.0 - BOX_EPS)
    return torch.log(s) - torch.log1p(-s)


def sigmoid_box(s: Tensor, low: float, high: float) -> Tensor:
    """``low + (high - low) · sigmoid(s)``, clipped into ``[low, high]``.

    Parameters
    ----------
    s : Tensor, any shape
    low, high : float

    Returns
    -------
    Tensor, shape of ``s``
    """
    return (low + (high - low) * torch.sigmoid(s)).clamp(low, high)


def continuous_step(
    v: Tensor, sigma: Tensor, z: Tensor, low: float, high: float
) -> Tensor:
    """One continuous-type transition: ``v' = box(logit(v) + σ z)``.

    Parameters
    ----------
    v : Tensor, any shape
        Current values in ``[low, high]``.
    sigma : Tensor, broadcastable to ``v``
        Standard deviation of the logit step (:func:`continuous_sigma`).
    z : Tensor, shape of ``v``
        Standard normal draws.
    low, high : float

    Returns
    -------
    Tensor, shape of ``v``
        Next values in ``[low, high]``.
    """
    return sigmoid_box(logit_box(v, low, high) + sigma * z, low, high)
