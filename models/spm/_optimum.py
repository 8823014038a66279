"""Ex-post optimal welfare OPT(v) of a batch of value profiles (the welfare-loss baseline).

Unit demand with ``d`` item types of ``units[j]`` identical units is a transportation problem;
it is solved exactly per row by

* ``d = 1``: the sum of the ``k`` highest positive values;
* additive valuations: that sum per type (types separate);
* ``d = 2``: the split rule -- sorting agents by ``v_i0 - v_i1``, some optimal allocation gives
  type 0 only to a prefix and type 1 only to the suffix (swapping a crossed pair never lowers
  welfare), so OPT is the best over the ``n + 1`` splits of top-``k0`` of the prefix plus
  top-``k1`` of the suffix;
* otherwise, enumeration of every feasible assignment when there are few
  (``(d + 1) ** n <= 4096``).
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["optimal_welfare"]

Tensor = torch.Tensor

_MAX_ASSIGNMENTS = 4096


def _top_k_sum(values: Tensor, k: int) -> Tensor:
    """Sum of the ``k`` largest positive entries along the last axis; (..., n) -> (...)."""
    k = min(k, values.shape[-1])
    return values.clamp_min(0).topk(k, dim=-1).values.sum(-1)


def _split_rule(values: Tensor, units: tuple[int, ...]) -> Tensor:
    """Exact OPT for unit demand over two types; values (E, n, 2) -> (E,)."""
    E, n, _ = values.shape
    order = torch.argsort(values[..., 0] - values[..., 1], dim=1, descending=True)
    v = torch.gather(values, 1, order.unsqueeze(-1).expand(E, n, 2)).clamp_min(0)
    s = torch.arange(n + 1, device=values.device).reshape(n + 1, 1)
    prefix = torch.arange(n, device=values.device).reshape(1, n) < s  # (n+1, n)
    first = torch.where(prefix, v[:, None, :, 0], 0.0)  # (E, n+1, n)
    second = torch.where(~prefix, v[:, None, :, 1], 0.0)
    return (_top_k_sum(first, units[0]) + _top_k_sum(second, units[1])).max(dim=1).values


def _assignments(n: int, units: tuple[int, ...], device: torch.device) -> Tensor:
    """All feasible unit-demand assignments as one-hot (A, n, d) (type index d = nothing)."""
    d = len(units)
    rows = []
    for a in itertools.product(range(d + 1), repeat=n):
        counts = [a.count(j) for j in range(d)]
        if all(c <= u for c, u in zip(counts, units, strict=True)):
            rows.append(a)
    idx = torch.tensor(rows, dtype=torch.int64, device=device)
    onehot = torch.nn.functional.one_hot(idx, d + 1)[..., :d]
    return onehot


def optimal_welfare(values: Tensor, units: tuple[int, ...], valuation: str) -> Tensor:
    """Ex-post optimal welfare of each value profile.

    Parameters
    ----------
    values : Tensor, shape (E, n, d)
        Value profiles.
    units : tuple of int, length d
        Units per item type.
    valuation : {"unit_demand", "additive"}

    Returns
    -------
    Tensor, shape (E,)
        ``max_x sum_i v_i(x_i)`` over feasible allocations, in ``values``' dtype.

    Raises
    ------
    ValueError
        For a shape mismatch, or a unit-demand instance with ``d >= 3`` types too large to
        enumerate.

    Examples
    --------
    >>> v = torch.tensor([[[0.2], [0.9], [0.5]]])
    >>> optimal_welfare(v, (2,), "unit_demand")
    tensor([1.4000])
    """
    if values.ndim != 3 or values.shape[2] != len(units):
        raise ValueError(
            f"expected values of shape (E, n, {len(units)}), got {tuple(values.shape)}"
        )
    E, n, d = values.shape
    if valuation == "additive" or d == 1:
        return sum(
            (_top_k_sum(values[..., j], units[j]) for j in range(d)),
            start=torch.zeros(E, dtype=values.dtype, device=values.device),
        )
    if valuation != "unit_demand":
        raise ValueError(f"expected valuation 'unit_demand' or 'additive', got {valuation!r}")
    if d == 2:
        return _split_rule(values, units)
    if (d + 1) ** n > _MAX_ASSIGNMENTS:
        raise ValueError(
            f"expected a unit-demand instance with d <= 2 or (d+1)**n <= {_MAX_ASSIGNMENTS}, "
            f"got n={n}, d={d}"
        )
    assign = _assignments(n, units, values.device).to(values.dtype)  # (A, n, d)
    return torch.einsum("eij,aij->ea", values, assign).max(dim=1).values
