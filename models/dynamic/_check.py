"""``check_bandit_setting``: the conformance check every bandit-auction setting passes."""

from __future__ import annotations

import torch

from bilevel.models.dynamic._kernels import discrete_kernel
from bilevel.models.dynamic._setting import BanditAuctionSetting

__all__ = ["check_bandit_setting"]


def check_bandit_setting(
    setting: BanditAuctionSetting, *, samples: int = 1000, seed: int = 0
) -> None:
    """Check that a setting's sampler and kernels are consistent.

    Checks: initial values have shape (num, n, m), dtype float64, finite values in the support
    (discrete) or the box (continuous); the same seed gives the same draws and a smaller batch
    is a prefix of a larger one; the prior sums to 1; the discrete kernel rows sum to 1 at the
    experience levels of the horizon.

    Parameters
    ----------
    setting : BanditAuctionSetting
    samples : int, optional
    seed : int, optional

    Raises
    ------
    ValueError
        Describing the first failed check.

    Examples
    --------
    >>> from bilevel.models.dynamic import make_bandit_setting
    >>> check_bandit_setting(make_bandit_setting("continuous", n_goods=2))
    """
    if not isinstance(setting, BanditAuctionSetting):
        raise TypeError(f"expected a BanditAuctionSetting, got {type(setting).__name__}")
    n, m = setting.n_buyers, setting.n_goods
    v = setting.sample(samples, torch.Generator().manual_seed(seed))
    if tuple(v.shape) != (samples, n, m) or v.dtype != torch.float64:
        raise ValueError(
            f"expected samples of shape ({samples}, {n}, {m}) and dtype float64, "
            f"got {tuple(v.shape)} {v.dtype}"
        )
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"expected finite initial values for {setting.name!r}")
    lo, hi = setting.bounds
    if float(v.min()) < lo or float(v.max()) > hi:
        raise ValueError(
            f"expected initial values in [{lo}, {hi}], got [{float(v.min())}, {float(v.max())}]"
        )
    if setting.discrete:
        sup = setting.support_tensor()
        inside = (v.unsqueeze(-1) == sup).any(-1)
        if not bool(inside.all()):
            raise ValueError(f"expected initial values in the support {setting.support}")
    again = setting.sample(samples, torch.Generator().manual_seed(seed))
    if not torch.equal(v, again):
        raise ValueError("expected reproducible samples for a seed, got different draws")
    half = setting.sample(samples // 2, torch.Generator().manual_seed(seed))
    if not torch.equal(v[: samples // 2], half):
        raise ValueError("expected a smaller batch to be a prefix of a larger one, got others")
    assert setting.prior is not None
    if abs(sum(setting.prior) - 1.0) > 1e-9:
        raise ValueError(f"expected prior summing to 1, got {sum(setting.prior)}")
    if setting.discrete:
        alpha = setting.kernel_rate * torch.arange(setting.horizon + 1, dtype=torch.float64)
        rows = discrete_kernel(setting.support_tensor(), alpha).sum(-1)
        if float((rows - 1.0).abs().max()) > 1e-12:
            raise ValueError("expected discrete kernel rows summing to 1")
